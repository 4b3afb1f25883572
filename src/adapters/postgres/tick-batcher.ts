/**
 * One statement for the calls of one turn of the event loop. A worker handles its tasks
 * concurrently, and tasks that move in step (answered by one batch, by one broker read, by
 * responses read together) make the same call within one turn: gathered until the next
 * `setImmediate`, they cost the database one round trip and one commit instead of one each.
 *
 * `flush` answers one result per item, in order. A batch that fails (the statement was refused,
 * the database is not there) fails every call in it with the same error: none of it was written,
 * since a statement commits whole or not at all.
 */
export interface TickBatcherOptions<I> {
  /** Items one statement takes at most (default 100); more make several statements. */
  readonly maxBatch?: number;
  /**
   * Items whose keys are equal never share a statement: the second goes into the next one. For
   * writes, where one statement may not touch a row twice (`ON CONFLICT DO UPDATE` refuses to,
   * an `UPDATE … FROM` would apply one of the two and report both).
   */
  readonly key?: (item: I) => string;
}

interface Call<I, O> {
  readonly item: I;
  readonly resolve: (result: O) => void;
  readonly reject: (error: unknown) => void;
}

export class TickBatcher<I, O> {
  private pending: Call<I, O>[] = [];
  private scheduled = false;
  private readonly maxBatch: number;

  constructor(
    private readonly flush: (items: readonly I[]) => Promise<readonly O[]>,
    private readonly options: TickBatcherOptions<I> = {},
  ) {
    this.maxBatch = options.maxBatch ?? 100;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) {
      throw new Error(`maxBatch must be a positive integer, got ${this.maxBatch}`);
    }
  }

  /** Resolves with this item's result once its batch ran; rejects if the batch failed. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.drain());
    });
  }

  private drain(): void {
    this.scheduled = false;
    let calls = this.pending;
    this.pending = [];
    // The batches of one turn run side by side, each on a connection of its own.
    while (calls.length > 0) {
      const { batch, rest } = this.take(calls);
      void this.run(batch);
      calls = rest;
    }
  }

  /** Up to maxBatch calls, no key twice; the rest keep their order for the next batch. */
  private take(calls: Call<I, O>[]): { batch: Call<I, O>[]; rest: Call<I, O>[] } {
    const { key } = this.options;
    if (key === undefined) {
      return { batch: calls.slice(0, this.maxBatch), rest: calls.slice(this.maxBatch) };
    }
    const batch: Call<I, O>[] = [];
    const rest: Call<I, O>[] = [];
    const keys = new Set<string>();
    for (const call of calls) {
      const k = key(call.item);
      if (batch.length < this.maxBatch && !keys.has(k)) {
        keys.add(k);
        batch.push(call);
      } else {
        rest.push(call);
      }
    }
    return { batch, rest };
  }

  private async run(batch: readonly Call<I, O>[]): Promise<void> {
    try {
      const results = await this.flush(batch.map((call) => call.item));
      if (results.length !== batch.length) {
        throw new Error(`a batch of ${batch.length} answered ${results.length} results`);
      }
      batch.forEach((call, i) => call.resolve(results[i] as O));
    } catch (error) {
      for (const call of batch) call.reject(error);
    }
  }
}
