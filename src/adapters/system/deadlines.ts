import { getEventListeners } from 'node:events';

/** How many idle controllers a `Deadlines` keeps: as many as an agent's sockets (64). */
export const KEPT_CONTROLLERS = 64;

const abortController = (controller: AbortController): void => controller.abort();

/**
 * Abort signals that fire `timeoutMs` after `within` starts, for the calls a sender makes to a
 * provider (Mailgun, SMTP, a webhook receiver): the signal aborts the request, reading its answer
 * included, and `within` tells the caller when it did (`DeadlinePassed`).
 *
 * Why a class and not `new AbortController()` per call: an `AbortSignal` is an `EventTarget`,
 * among the costliest objects a send made. In the worker's allocation profile under the bench's
 * Mailgun load, the signal of each send was the largest single thing that outlived a young
 * collection (about 15% of the bytes promoted), since a send spans one. A controller whose
 * signal never fired and kept no listener is as good as new, so it is kept for the next call
 * (at most `keep` of them); one that aborted, or still has a listener (a library that did not
 * take its own off), is dropped, so a signal handed out is never one that already fired, nor
 * one another request still hears.
 */
export class Deadlines {
  private readonly idle: AbortController[] = [];

  constructor(private readonly keep = KEPT_CONTROLLERS) {}

  /**
   * Runs `work` with a signal that aborts `timeoutMs` milliseconds from now, and answers what it
   * answers. When `work` fails after its signal aborted, throws `DeadlinePassed` (a library may
   * answer an abort with any error); other failures are thrown as they are. A `work` that
   * succeeds is taken at its word even if the signal aborted as it finished.
   */
  async within<T>(timeoutMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = this.idle.pop() ?? new AbortController();
    // The controller as the timer's argument: no closure made per call.
    const timer = setTimeout(abortController, timeoutMs, controller);
    try {
      return await work(controller.signal);
    } catch (error) {
      if (controller.signal.aborted) throw new DeadlinePassed(timeoutMs, error);
      throw error;
    } finally {
      clearTimeout(timer);
      this.giveBack(controller);
    }
  }

  /** The number of controllers kept for the next calls (for tests). */
  get kept(): number {
    return this.idle.length;
  }

  private giveBack(controller: AbortController): void {
    const { signal } = controller;
    if (signal.aborted || this.idle.length >= this.keep) return;
    if (getEventListeners(signal, 'abort').length > 0) return;
    this.idle.push(controller);
  }
}

/**
 * What `Deadlines.within` throws when `work` failed after its signal aborted: the deadline
 * passed. `cause` is what `work` threw (often an `AbortError`).
 */
export class DeadlinePassed extends Error {
  constructor(
    readonly timeoutMs: number,
    cause: unknown,
  ) {
    super(`timed out after ${timeoutMs}ms`, { cause });
    this.name = 'DeadlinePassed';
  }
}
