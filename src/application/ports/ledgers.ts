import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';

export interface StoreUnavailable {
  readonly _tag: 'StoreUnavailable';
  readonly reason: string;
}

export type Claim =
  | { readonly _tag: 'New' }
  /** The same key with the same payload: answer as the first time, publish nothing. */
  | { readonly _tag: 'Repeat'; readonly id: EmailId }
  /** The same key with another payload, or the first request is still being handled. */
  | { readonly _tag: 'Conflict'; readonly reason: 'different-payload' | 'in-progress' };

/** Remembers `Idempotency-Key`s (and the form's one-time nonce) so a repeat publishes nothing. */
export interface IdempotencyStore {
  claim(key: string, payload: string, id: EmailId): TaskEither<StoreUnavailable, Claim>;
  /** The request was accepted: later repeats get its id. */
  complete(key: string): TaskEither<StoreUnavailable, void>;
  /** The request was not accepted (queue down): the key may be used again. */
  release(key: string): TaskEither<StoreUnavailable, void>;
}

/**
 * Which ids were already delivered, so a task redelivered after a crash between the send and the
 * ack is not sent twice. Delivery stays at least once: a crash during the send itself can still
 * repeat it, and the id in the message lets the receiver spot that.
 */
export interface DeliveryLedger {
  delivered(id: EmailId): TaskEither<StoreUnavailable, string | undefined>;
  record(id: EmailId, providerId: string): TaskEither<StoreUnavailable, void>;
}
