import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';
import type { StoreUnavailable } from './email-log.js';

/** What a claim answered: this worker may send, the email went out already, or another sends. */
export type SendClaim =
  | { readonly _tag: 'Claimed' }
  | { readonly _tag: 'AlreadySent'; readonly providerId: string }
  /** Another holder's claim is live until `until`; it may still record, release or die. */
  | { readonly _tag: 'Busy'; readonly holder: string; readonly until: Date };

/**
 * Who sends an email, shared by every worker: a send is claimed before it is made, so that two
 * tasks of one id on two workers (a republished task, an Idempotency-Key taken over, a
 * redelivery after a lost connection) cannot both send. A claim is one atomic step in the store:
 * of two holders racing, exactly one is answered `Claimed`.
 *
 * The claim is a lease. Its holder renews it while the send runs (claiming again extends it), so
 * a worker that died mid-send blocks the email only until the lease ends; then another worker
 * takes over and sends again. That is why delivery stays at least once: a death after the
 * provider accepted and before `record` repeats the send (the id in the message lets the
 * receiver spot it).
 */
export interface DeliveryLedger {
  /**
   * Claims the send of `id` for `holder` until `now + leaseMs`. Claimed when no one holds it,
   * when the last claim's lease ended by `now`, or when `holder` holds it already (a renewal);
   * AlreadySent once it was recorded; Busy while another holder's lease runs.
   */
  claim(
    id: EmailId,
    holder: string,
    now: Date,
    leaseMs: number,
  ): TaskEither<StoreUnavailable, SendClaim>;
  /**
   * Records that the provider accepted `id`, whoever holds the claim (the send went out: that is
   * the truth to keep); recording the same id again keeps the first entry.
   */
  record(id: EmailId, providerId: string, at: Date): TaskEither<StoreUnavailable, void>;
  /** Frees `holder`'s claim when its send did not go out; another holder's claim stays. */
  release(id: EmailId, holder: string): TaskEither<StoreUnavailable, void>;
  /**
   * Forgets sends recorded before `cutoff`, and claims whose lease ended before it (their
   * holders died); answers how many.
   */
  purgeOlderThan(cutoff: Date): TaskEither<StoreUnavailable, number>;
}
