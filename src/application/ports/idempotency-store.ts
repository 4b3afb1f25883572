import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';
import type { StoreUnavailable } from './email-log.js';

/** How long a key is remembered: a repeat within this answers as the first time. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * How long a claim may stay unfinished before it is judged abandoned (its server died between the
 * claim and the answer). Well above the broker's confirm timeout, so a live request is never
 * taken over.
 */
export const IN_PROGRESS_TIMEOUT_MS = 30_000;

export type Claim =
  /** Go ahead with `id`: the one proposed, or the first claim's when an abandoned one is taken over. */
  | { readonly _tag: 'New'; readonly id: EmailId }
  /** The same key with the same payload: answer as the first time, publish nothing. */
  | { readonly _tag: 'Repeat'; readonly id: EmailId }
  /** The same key with another payload, or the first request is still being handled. */
  | { readonly _tag: 'Conflict'; readonly reason: 'different-payload' | 'in-progress' };

/**
 * Remembers `Idempotency-Key`s (and the form's one-time nonce) so a repeat publishes nothing.
 * A claim is atomic: of two servers racing on one key, exactly one gets `New`.
 *
 * Rules, in order: a key unknown, claimed more than `IDEMPOTENCY_KEY_TTL_MS` ago, or released →
 * `New` with the proposed id (the key now names it, in progress). Another payload digest →
 * `Conflict different-payload`. Completed → `Repeat` with the first id. In progress for less
 * than `IN_PROGRESS_TIMEOUT_MS` → `Conflict in-progress`; longer → `New` with the *first* id, the
 * claim renewed: its server died or lost the store mid-request, perhaps after publishing, and
 * publishing the same id again is safe because the delivery ledger sends an id once.
 */
export interface IdempotencyStore {
  /** `payload` is compared by its SHA-256 digest; `now` is the request's time. */
  claim(key: string, payload: string, id: EmailId, now: Date): TaskEither<StoreUnavailable, Claim>;
  /** The request was accepted: later repeats get its id. */
  complete(key: string): TaskEither<StoreUnavailable, void>;
  /** The request was not accepted (queue down): the key may be used again at once. */
  release(key: string): TaskEither<StoreUnavailable, void>;
  /** Forgets keys claimed before `cutoff`; answers how many. */
  purgeOlderThan(cutoff: Date): TaskEither<StoreUnavailable, number>;
}
