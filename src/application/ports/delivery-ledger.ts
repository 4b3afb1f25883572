import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * Which ids a provider already accepted, shared by every worker, so a task redelivered after a
 * crash between the send and the ack (or replayed by hand) is not sent twice. It is written
 * before the task is acknowledged and read before every send. Delivery stays at least once: a
 * crash during the send itself can still repeat it, and the id in the message lets the receiver
 * spot that.
 */
export interface DeliveryLedger {
  /** The provider's id for a sent email, or undefined if it was never sent. */
  sent(id: EmailId): TaskEither<StoreUnavailable, string | undefined>;
  /** Records a send; recording the same id again keeps the first entry. */
  record(id: EmailId, providerId: string, at: Date): TaskEither<StoreUnavailable, void>;
  /** Forgets sends recorded before `cutoff`; answers how many. */
  purgeOlderThan(cutoff: Date): TaskEither<StoreUnavailable, number>;
}
