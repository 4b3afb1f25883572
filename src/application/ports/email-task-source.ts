import type { AttemptRecord } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';

/** A task as the worker receives it: the request, which attempt this is, and what came before. */
export interface EmailTask {
  readonly request: EmailRequest;
  /** 1 for the first try. */
  readonly attempt: number;
  readonly history: readonly AttemptRecord[];
  /**
   * A copy an operator's "Retry now" put on the queue ahead of the waiting task (see
   * `RetryQueue`): the worker acts on it, and drops the waiting task of the same attempt.
   */
  readonly expedited?: true;
}

/**
 * What the worker decided about a task; the queue carries it out before it acknowledges the
 * task, so a crash at any point leaves the task to be delivered again rather than lost.
 */
export type Disposition =
  | { readonly _tag: 'Done' }
  | {
      readonly _tag: 'Retry';
      readonly attempt: number;
      readonly delayMs: number;
      readonly history: readonly AttemptRecord[];
      /**
       * Set when an expedited task (see `EmailTask`) is retried with the same attempt (a throttle,
       * a wait for its transport's pace): the copy keeps its mark, or it would come back looking
       * like the waiting task it replaced and be dropped as that one is.
       */
      readonly expedited?: true;
    }
  | {
      readonly _tag: 'DeadLetter';
      readonly reason: string;
      readonly history: readonly AttemptRecord[];
    }
  /**
   * No decision yet: a store the worker needs did not answer, or another worker is sending the
   * same email. The queue keeps the task in this worker, unacknowledged, and offers it to the
   * handler again after a pause, so an outage of the database neither loses the task nor spends
   * its attempts.
   *
   * `sent` says the provider already accepted the email and only the record of it is missing
   * (the worker remembers the send in memory). Handing such a task back would let the next
   * worker send it again, so stop() keeps asking it until the grace period ends; any other
   * Redeliver goes back at once.
   */
  | { readonly _tag: 'Redeliver'; readonly reason: string; readonly sent?: true };

/** The longest pause before a held task (Redeliver) is asked again. */
export const MAX_REDELIVER_PAUSE_MS = 5_000;

/**
 * How long a task source waits before asking a Redeliver again, in milliseconds: `firstMs`,
 * doubling with each `earlier` ask, at most `MAX_REDELIVER_PAUSE_MS`. One rule for every queue,
 * so a database outage paces every adapter alike.
 */
export const redeliverPauseMs = (firstMs: number, earlier: number): number =>
  Math.min(firstMs * 2 ** Math.min(earlier, 10), MAX_REDELIVER_PAUSE_MS);

/** True for a Redeliver whose send went out but is not recorded yet (see Disposition). */
export const sentButUnrecorded = (disposition: Disposition): boolean =>
  disposition._tag === 'Redeliver' && disposition.sent === true;

/**
 * Decides what becomes of a task. It answers every expected failure with a disposition; a
 * rejection is a bug, and the queue hands the task back to the broker after a pause.
 */
export type TaskHandler = (task: EmailTask) => Promise<Disposition>;

/** The worker's side: where tasks come from. Driven by main, not by a use case. */
export interface EmailTaskSource {
  /** Starts delivering tasks to `handler`, at most the configured number at once. */
  consume(handler: TaskHandler): Promise<void>;
  /**
   * Takes no new task; waits up to `graceMs` for those in hand, then lets the rest go back. A
   * task answered Redeliver goes back at once, unless its send went out (`sent`): that one is
   * asked again until it is done or the grace period ends, and if it still is not recorded then,
   * its id is logged at error level before it goes back (another worker may send it again).
   */
  stop(graceMs: number): Promise<void>;
}
