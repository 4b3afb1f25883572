import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * Emails held until their `send_at`, by us and not by a provider, so that scheduling works for
 * every transport and failover still applies when one fires. Shared by every worker: an email is
 * released by one of them, under a lease, so a worker that dies while releasing leaves it to
 * another (at least once: the delivery ledger sends an id once).
 */
export interface ScheduledEmails {
  /** Holds email `id` until `dueAt`. */
  hold(id: EmailId, dueAt: Date): TaskEither<StoreUnavailable, void>;
  /**
   * Leases up to `limit` emails due at `now` (and not leased by another until after `now`) for
   * `leaseMs`: the caller publishes each and then calls `released`.
   */
  takeDue(
    now: Date,
    leaseMs: number,
    limit: number,
  ): TaskEither<StoreUnavailable, readonly EmailId[]>;
  /** The email was put on the queue: it is held no more. */
  released(id: EmailId): TaskEither<StoreUnavailable, void>;
  /**
   * Cancels email `id` if it is still held and not being released at `now`: true when it was
   * (it will never be sent), false when it is not held (released, sending, or unknown).
   */
  cancel(id: EmailId, now: Date): TaskEither<StoreUnavailable, boolean>;
  /** When the next held email falls due, if any: how long a poller may sleep. */
  nextDue(): TaskEither<StoreUnavailable, Date | undefined>;
}
