/**
 * A counting semaphore over the sends of one worker: at most `limit` are at the provider at
 * once (WORKER_CONCURRENCY). Waiters are served first come, first served.
 *
 * Why the bound is on sends and not on the queue's handlers: a handler also records the outcome
 * and acks after its send; with the bound on handlers, each turn of a slot paid those database
 * and broker round trips before the next send could start, so WORKER_CONCURRENCY sends of 670 ms
 * went out at noticeably less than WORKER_CONCURRENCY / 0.67 s. With the bound here, a send's
 * bookkeeping runs while the next send already holds its slot.
 */
export class SendSlots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  /** `limit`: a whole number ≥ 1, else a RangeError (a bug in the caller's configuration). */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`send slots must be a whole number ≥ 1, got ${limit}`);
    }
    this.free = limit;
  }

  /**
   * Resolves once a slot is this caller's, with the function that gives it back (calling it
   * again does nothing, so every exit path may call it).
   */
  async take(): Promise<() => void> {
    if (this.free > 0) {
      this.free -= 1;
    } else {
      // The releaser hands its slot straight to this waiter: `free` stays 0 meanwhile, so no
      // caller arriving in between can overtake the queue.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    };
  }

  /** Slots taken now (0 … limit): for tests and metrics. */
  get inUse(): number {
    return this.limit - this.free;
  }
}
