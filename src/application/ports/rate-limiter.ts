import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * The state of one key's window after (or, for `peek`, without) a request: what the
 * `RateLimit-*` headers say. Windows are fixed: they start at a key's first request and last
 * `windowMs`.
 */
export interface RateLimitState {
  /** The request may go ahead (for `peek`: one more would be allowed). */
  readonly allowed: boolean;
  /** Requests allowed per window. */
  readonly limit: number;
  /** Requests left in this window, never below 0. */
  readonly remaining: number;
  /** Milliseconds until the window ends and the count starts again. */
  readonly resetMs: number;
}

/**
 * Counts requests per key (an API key, a client address, a user name) in fixed windows. The
 * counts live where every server sees them, so a limit holds for the service, not per process.
 */
export interface RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  /** Counts one request for `key` and answers whether it was within the limit. */
  consume(key: string): TaskEither<StoreUnavailable, RateLimitState>;
  /** The state of `key`'s window without counting anything. */
  peek(key: string): TaskEither<StoreUnavailable, RateLimitState>;
}
