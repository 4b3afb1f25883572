import { createHash } from 'node:crypto';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { RateLimiter, RateLimitState } from '../../application/ports/rate-limiter.js';
import { Batcher } from '../postgres/batcher.js';
import type { SqlClient } from '../postgres/sql-client.js';
import { attempt } from '../postgres/sql-client.js';

export interface RateLimitSettings {
  /**
   * Names what is counted (`api`, `sign-in`): limiters with different prefixes count apart, even
   * in one table. At most `MAX_PREFIX_LENGTH` characters.
   */
  readonly keyPrefix: string;
  /** Requests allowed per window: a whole number, at least 1. */
  readonly limit: number;
  /**
   * The window, in milliseconds: a whole number of seconds, at least one second, because
   * rate-limiter-flexible counts its `duration` in seconds (a fraction would be honoured by one
   * of its stores and not by another).
   */
  readonly windowMs: number;
}

/** The `key` column of `rate_limits` is a `varchar(255)` (the library's own table). */
const KEY_COLUMN_LENGTH = 255;
/** A key too long for the column is counted under its digest: `#` and 64 hex digits. */
const DIGEST_KEY_LENGTH = 65;
export const MAX_PREFIX_LENGTH = KEY_COLUMN_LENGTH - 1 - DIGEST_KEY_LENGTH;

/** Start-up errors: settings a person wrote wrong, thrown (not a value) by the factories. */
function checked(settings: RateLimitSettings): RateLimitSettings {
  const { keyPrefix, limit, windowMs } = settings;
  if (keyPrefix.length === 0 || keyPrefix.length > MAX_PREFIX_LENGTH) {
    throw new Error(`a rate limit's keyPrefix must have 1 to ${MAX_PREFIX_LENGTH} characters`);
  }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new Error(`a rate limit's limit must be a whole number ≥ 1, not ${limit}`);
  }
  if (!Number.isSafeInteger(windowMs) || windowMs < 1000 || windowMs % 1000 !== 0) {
    throw new Error(
      `a rate limit's windowMs must be a whole number of seconds (≥ 1000 ms), not ${windowMs}`,
    );
  }
  return settings;
}

/**
 * The key as stored. A client may choose what is counted (a user name at sign-in): a key that
 * would not fit the column is counted under its SHA-256, instead of failing the statement.
 */
const storedKey = (keyPrefix: string, key: string): string =>
  keyPrefix.length + 1 + key.length <= KEY_COLUMN_LENGTH
    ? key
    : `#${createHash('sha256').update(key).digest('hex')}`;

/**
 * The library's answer as the port's state. `resetMs` stays in (0, windowMs]: the library says 0
 * when the window ended while its statement ran, and a client told to wait 0 ms would not wait.
 */
const toState = (
  settings: RateLimitSettings,
  res: RateLimiterRes,
  allowed: boolean,
): RateLimitState => ({
  allowed,
  limit: settings.limit,
  remaining: Math.max(0, Math.min(settings.limit, res.remainingPoints)),
  resetMs: Math.min(settings.windowMs, Math.max(1, Math.ceil(res.msBeforeNext))),
});

/** A key never counted, or whose window ended: the whole window ahead of it. */
const fresh = (settings: RateLimitSettings): RateLimitState => ({
  allowed: true,
  limit: settings.limit,
  remaining: settings.limit,
  resetMs: settings.windowMs,
});

/**
 * The states of `n` requests of one key counted together: the store added `n` and answered the
 * window's count `res.consumedPoints` after it, so they were the requests numbered `total - n + 1`
 * to `total` of the window, each allowed while its number is within the limit.
 */
function statesOf(settings: RateLimitSettings, res: RateLimiterRes, n: number): RateLimitState[] {
  const first = res.consumedPoints - n + 1;
  return Array.from({ length: n }, (_, i) => {
    const number = first + i;
    return {
      ...toState(settings, res, number <= settings.limit),
      remaining: Math.max(0, Math.min(settings.limit, settings.limit - number)),
    };
  });
}

/**
 * Counts `keys` (stored keys, repeats included), one `consume(key, n)` per distinct key, and
 * answers each request's state in order. The library's `consume` rejects in two ways: with a
 * `RateLimiterRes` when the key is over its limit (an answer: the requests past it refused), and
 * with the store's `Error` when the store failed (no insurance limiter is set), which fails the
 * batch and so each of its requests (`StoreUnavailable`).
 */
async function countAll(
  settings: RateLimitSettings,
  limiter: RateLimiterAbstract,
  keys: readonly string[],
): Promise<RateLimitState[]> {
  const perKey = new Map<string, number>();
  for (const key of keys) perKey.set(key, (perKey.get(key) ?? 0) + 1);
  const counted = new Map<string, RateLimitState[]>();
  await Promise.all(
    [...perKey].map(async ([key, n]) => {
      const res = await limiter.consume(key, n).catch((err: unknown) => {
        if (err instanceof RateLimiterRes) return err;
        throw err;
      });
      counted.set(key, statesOf(settings, res, n));
    }),
  );
  return keys.map((key) => counted.get(key)!.shift()!);
}

/**
 * The port over any rate-limiter-flexible limiter. The requests counted at the same time go
 * together (see `Batcher`): one atomic add of their number per key, rather than one per request,
 * so the count is as exact as one add per request and costs one statement per key and batch.
 */
function flexible(settings: RateLimitSettings, limiter: RateLimiterAbstract): RateLimiter {
  const key = (k: string): string => storedKey(settings.keyPrefix, k);
  const requests = new Batcher<string, RateLimitState>({
    write: (keys) => countAll(settings, limiter, keys),
  });
  return {
    limit: settings.limit,
    windowMs: settings.windowMs,
    consume: (k: string): TE.TaskEither<StoreUnavailable, RateLimitState> =>
      attempt(() => requests.run(key(k))),
    peek: (k: string): TE.TaskEither<StoreUnavailable, RateLimitState> =>
      attempt(async () => {
        const res = await limiter.get(key(k));
        // The memory store keeps an ended window until its timer deletes it: a past end.
        if (res === null || res.msBeforeNext <= 0) return fresh(settings);
        return toState(settings, res, res.remainingPoints > 0);
      }),
  };
}

/** What RateLimiterPostgres calls on its `storeClient` (`storeType: 'client'`). */
interface LibraryQuery {
  readonly text: string;
  readonly values?: readonly unknown[];
  /** A prepared statement's name: not needed, the `SqlClient` has no such thing. */
  readonly name?: string;
}

/**
 * A limiter whose counts are rows of `rate_limits` (created by the migrations, hence
 * `tableCreated: true`), shared by every server on the database: one atomic upsert per key for
 * the requests counted together. Windows are fixed and timed by each server's clock
 * (`Date.now()`, as the library does).
 *
 * Expired rows: the library deletes rows expired over an hour ago every five minutes, per limiter,
 * on an unref'd timer that never rejects (a failed delete is ignored), so it neither keeps the
 * process alive nor needs wiring; nothing else purges the table.
 */
export function sqlRateLimiter(sql: SqlClient, settings: RateLimitSettings): RateLimiter {
  const { keyPrefix, limit, windowMs } = checked(settings);
  const storeClient = {
    // The library reads `rows`, and `rowCount` to tell "no such key" from a key. Its few texts
    // are fixed (the upsert of every count among them): prepared once per connection.
    query: (q: LibraryQuery) =>
      sql
        .query(q.text, q.values ?? [], { prepared: true })
        .then((rows) => ({ rows, rowCount: rows.length })),
  };
  const limiter = new RateLimiterPostgres({
    storeClient,
    storeType: 'client',
    tableName: 'rate_limits',
    tableCreated: true,
    keyPrefix,
    points: limit,
    duration: windowMs / 1000,
  });
  return flexible(settings, limiter);
}

/** A limiter that counts in this process only: for tests and single-process runs. */
export function memoryRateLimiter(settings: RateLimitSettings): RateLimiter {
  const { keyPrefix, limit, windowMs } = checked(settings);
  return flexible(
    settings,
    new RateLimiterMemory({ keyPrefix, points: limit, duration: windowMs / 1000 }),
  );
}
