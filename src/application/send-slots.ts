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
  private readonly waiting: ((granted: boolean) => void)[] = [];
  private isClosed = false;

  /** `limit`: a whole number ≥ 1, else a RangeError (a bug in the caller's configuration). */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`send slots must be a whole number ≥ 1, got ${limit}`);
    }
    this.free = limit;
  }

  /**
   * Resolves once a slot is this caller's, with the function that gives it back (calling it
   * again does nothing, so every exit path may call it); undefined once `close` was called,
   * for a caller waiting then or arriving after.
   */
  async take(): Promise<(() => void) | undefined> {
    if (this.isClosed) return undefined;
    if (this.free > 0) {
      this.free -= 1;
    } else {
      // The releaser hands its slot straight to this waiter: `free` stays 0 meanwhile, so no
      // caller arriving in between can overtake the queue.
      const granted = await new Promise<boolean>((resolve) => this.waiting.push(resolve));
      if (!granted) return undefined;
    }
    return this.giveBack();
  }

  /**
   * `take` when a slot is free now (nobody waits then: a freed slot goes straight to a
   * waiter), without waiting: the slot's give-back; undefined when none is free or the slots
   * are closed, for the caller to `take` and wait. It spares a caller that usually finds a
   * slot free whatever it does around a wait (a worker renews its send claim meanwhile).
   */
  tryTake(): (() => void) | undefined {
    if (this.isClosed || this.free === 0) return undefined;
    this.free -= 1;
    return this.giveBack();
  }

  /** The give-back of a slot just taken; calling it again does nothing. */
  private giveBack(): () => void {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const next = this.waiting.shift();
      if (next) next(true);
      else this.free += 1;
    };
  }

  /**
   * No slot is given out any more (the worker is stopping): every waiter is answered undefined
   * at once, so that its task goes back to the queue unsent instead of starting a send after
   * the task source gave up on it. Slots held now stay held until given back.
   */
  close(): void {
    this.isClosed = true;
    for (const waiter of this.waiting.splice(0)) waiter(false);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Slots taken now (0 … limit): for tests and metrics. */
  get inUse(): number {
    return this.limit - this.free;
  }
}
