/**
 * Writes one batch for a whole batch of callers: the concurrent requests of a server, or the
 * concurrent deliveries of a worker, each ask for one row, and the database is asked once (one
 * round trip, one commit) for all of them.
 */
export interface BatcherOptions<In, Out> {
  /**
   * Writes `inputs` as one batch and answers one result per input, in the same order. Rejecting
   * fails every caller of the batch with that error (to the stores, `StoreUnavailable`): none of
   * them is told its row is there, since a statement commits whole or not at all.
   */
  readonly write: (inputs: readonly In[]) => Promise<readonly Out[]>;
  /** The most inputs one batch takes (default 200); the rest go in the next batch. */
  readonly maxBatch?: number;
  /**
   * For a failed batch of several inputs: true when the error may be one input's fault (a value
   * the database refused), so that each input is written again alone, one after another in the
   * batch's order, and only its own caller fails. Without it, or when it answers false (the
   * database is away), the batch fails whole.
   */
  readonly retryAlone?: (error: unknown) => boolean;
  /**
   * Inputs whose keys are equal never share a batch: the second goes into the next one. For
   * writes, where one statement may not touch a row twice (`ON CONFLICT DO UPDATE` refuses to,
   * an `UPDATE … FROM` would apply one of the two and report both).
   */
  readonly key?: (input: In) => string;
  /**
   * `false` (the default): one batch in flight at a time; calls made while it is written wait
   * for it and then go together, so under load the batches grow rather than the round trips
   * (the accept path, where requests arrive one by one). `true`: every call waiting at the end
   * of a turn is written then, in as many batches as it takes, side by side, each on a
   * connection of its own (a worker's deliveries, which move in step and must not wait for
   * another batch's commit).
   */
  readonly concurrent?: boolean;
}

interface Call<In, Out> {
  readonly input: In;
  resolve(out: Out): void;
  reject(error: unknown): void;
}

/**
 * Gathers calls into batches. A call waits for the end of the event-loop turn it was made in
 * (`setImmediate`), so that the calls of every request or task that turn handled go together;
 * what happens to calls made while a batch is being written is `BatcherOptions.concurrent`'s
 * choice. An idle process writes a lone call at the end of its turn, within a millisecond.
 */
export class Batcher<In, Out> {
  private waiting: Call<In, Out>[] = [];
  private writing = false;
  private scheduled = false;
  private readonly maxBatch: number;

  /** Throws (a wiring bug) when `maxBatch` is not a positive whole number. */
  constructor(private readonly options: BatcherOptions<In, Out>) {
    this.maxBatch = options.maxBatch ?? 200;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) {
      throw new Error(`maxBatch must be a positive integer, got ${this.maxBatch}`);
    }
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
      if (this.options.concurrent === true) this.drainAll();
      else void this.flush();
    });
  }

  /** Every waiting call, now, in as many batches as it takes. */
  private drainAll(): void {
    while (this.waiting.length > 0) void this.settle(this.take());
  }

  private async flush(): Promise<void> {
    if (this.writing || this.waiting.length === 0) return;
    const batch = this.take();
    this.writing = true;
    try {
      await this.settle(batch);
    } finally {
      this.writing = false;
      if (this.waiting.length > 0) this.schedule();
    }
  }

  /** Up to maxBatch waiting calls, no key twice; the rest keep their order for the next batch. */
  private take(): Call<In, Out>[] {
    const { key } = this.options;
    if (key === undefined) return this.waiting.splice(0, this.maxBatch);
    const batch: Call<In, Out>[] = [];
    const rest: Call<In, Out>[] = [];
    const keys = new Set<string>();
    for (const call of this.waiting) {
      const k = key(call.input);
      if (batch.length < this.maxBatch && !keys.has(k)) {
        keys.add(k);
        batch.push(call);
      } else {
        rest.push(call);
      }
    }
    this.waiting = rest;
    return batch;
  }

  /** Writes `batch` and answers each of its calls; never rejects. */
  private async settle(batch: readonly Call<In, Out>[]): Promise<void> {
    try {
      const outs = await this.write(batch.map((call) => call.input));
      batch.forEach((call, i) => call.resolve(outs[i]!));
    } catch (error) {
      if (batch.length > 1 && this.options.retryAlone?.(error) === true) {
        // One after another, in the batch's order: of two calls for one row (an id given twice,
        // where the statement keeps the first), the first is written first, as in the batch.
        for (const call of batch) await this.settle([call]);
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
