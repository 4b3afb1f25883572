/**
 * Writes one batch for a whole batch of callers: the concurrent requests of a server each ask for
 * one row, and the database is asked once (one round trip, one commit) for all of them.
 */
export interface BatcherOptions<In, Out> {
  /**
   * Writes `inputs` as one batch and answers one result per input, in the same order. Rejecting
   * fails every caller of the batch with that error (to the stores, `StoreUnavailable`): none of
   * them is told its row is there.
   */
  readonly write: (inputs: readonly In[]) => Promise<readonly Out[]>;
  /** The most inputs one batch takes (default 200); the rest wait for the next batch. */
  readonly maxBatch?: number;
  /**
   * For a failed batch of several inputs: true when the error may be one input's fault (a value
   * the database refused), so that each input is written again alone and only its own caller
   * fails. Without it, or when it answers false (the database is away), the batch fails whole.
   */
  readonly retryAlone?: (error: unknown) => boolean;
}

interface Call<In, Out> {
  readonly input: In;
  resolve(out: Out): void;
  reject(error: unknown): void;
}

/**
 * Gathers calls into batches. A call waits for the end of the event-loop turn it was made in
 * (`setImmediate`), so that the calls of every request that turn handled go together; while a
 * batch is being written, new calls wait for it to return, and then go together too. So there is
 * one batch in flight at a time: under load the batches grow, rather than the round trips. An
 * idle server writes a lone call at the end of its turn, within a millisecond.
 */
export class Batcher<In, Out> {
  private waiting: Call<In, Out>[] = [];
  private writing = false;
  private scheduled = false;
  private readonly maxBatch: number;

  constructor(private readonly options: BatcherOptions<In, Out>) {
    this.maxBatch = options.maxBatch ?? 200;
  }

  /** Adds `input` to the next batch and answers its own result, or its batch's failure. */
  run(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.writing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.writing || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.writing = true;
    try {
      await this.settle(batch);
    } finally {
      this.writing = false;
      if (this.waiting.length > 0) this.schedule();
    }
  }

  /** Writes `batch` and answers each of its calls; never rejects. */
  private async settle(batch: readonly Call<In, Out>[]): Promise<void> {
    try {
      const outs = await this.write(batch.map((call) => call.input));
      batch.forEach((call, i) => call.resolve(outs[i]!));
    } catch (error) {
      if (batch.length > 1 && this.options.retryAlone?.(error) === true) {
        await Promise.all(batch.map((call) => this.settle([call])));
      } else {
        for (const call of batch) call.reject(error);
      }
    }
  }

  private async write(inputs: readonly In[]): Promise<readonly Out[]> {
    const outs = await this.options.write(inputs);
    if (outs.length !== inputs.length) {
      // A bug in the caller's `write`: no caller may be answered with another one's result.
      throw new Error(`a batch of ${inputs.length} was answered with ${outs.length} results`);
    }
    return outs;
  }
}

/**
 * True for errors one row of a batch can cause by its values alone (SQLSTATE classes 22, data
 * exception, and 23, integrity constraint violation): worth writing each row again alone.
 */
export function isDataError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('code' in error)) return false;
  const { code } = error;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}
