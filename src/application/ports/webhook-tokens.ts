import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * How long a token is remembered. A webhook is refused when its timestamp is more than five
 * minutes from now, so a token remembered at `at` can only be replayed until `at` plus ten
 * minutes at the very latest (signed up to five minutes ahead, accepted up to five after that).
 */
export const WEBHOOK_TOKEN_MEMORY_MS = 10 * 60_000;

/**
 * The one-time tokens of signed webhooks (Mailgun's `signature.token`), shared by every server so
 * that a captured request cannot be replayed to any of them.
 */
export interface WebhookTokens {
  /**
   * Notes `token` as seen at `at`: true the first time, false for a token seen before. Forgets
   * tokens seen more than `WEBHOOK_TOKEN_MEMORY_MS` before `at` as it goes, so the store stays
   * small without a purge of its own.
   */
  remember(token: string, at: Date): TaskEither<StoreUnavailable, boolean>;
  /**
   * Forgets `token`: its request was refused for a reason of ours (a store did not answer), and
   * the provider's retry of the very same request must not be taken for a replay.
   */
  forget(token: string): TaskEither<StoreUnavailable, void>;
}
