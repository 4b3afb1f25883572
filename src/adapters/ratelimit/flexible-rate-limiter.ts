import { createHash } from 'node:crypto';
import * as TE from 'fp-ts/lib/TaskEither.js';
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
 * Tokens a server took from the store ahead of its requests (see `SqlRateLimitOptions.reserve`):
 * the request numbers `next` … `last` of the window ending at `endsAt` (`Date.now()` ms), counted
 * in the store already and handed out here, one per request, without a round trip.
 */
interface Lease {
  next: number;
  readonly last: number;
  readonly endsAt: number;
}

/** The most keys holding a lease at once; past it they are all dropped (tokens left unspent). */
const MAX_LEASES = 10_000;

/**
 * The leases of one limiter, by stored key. Holds tokens only: a key over its limit gets none,
 * so every refusal is the store's answer.
 */
class Leases {
  private readonly byKey = new Map<string, Lease>();

  constructor(private readonly settings: RateLimitSettings) {}

  /** One token of `key`'s lease as the state of the request it allows; undefined when none. */
  take(key: string, now: number): RateLimitState | undefined {
    const lease = this.byKey.get(key);
    if (lease === undefined) return undefined;
    if (lease.endsAt <= now || lease.next > lease.last) {
      this.byKey.delete(key);
      return undefined;
    }
    const number = lease.next;
    lease.next += 1;
    const { limit, windowMs } = this.settings;
    return {
      allowed: true,
      limit,
      remaining: Math.max(0, limit - number),
      resetMs: Math.min(windowMs, Math.max(1, Math.ceil(lease.endsAt - now))),
    };
  }

  /**
   * After the store added `n + extra` for `key` and answered `res`: the extra numbers still
   * within the limit become the key's lease (replacing a spent one: a key is added to only once
   * its lease is spent). `sentAt` is when the add was sent, so that the lease ends no later
   * than the store's window.
   */
  keep(key: string, res: RateLimiterRes, extra: number, sentAt: number): void {
    const last = Math.min(res.consumedPoints, this.settings.limit);
    const next = res.consumedPoints - extra + 1;
    if (extra === 0 || next > last || res.msBeforeNext <= 0) return;
    if (this.byKey.size >= MAX_LEASES) this.byKey.clear();
    this.byKey.set(key, { next, last, endsAt: sentAt + res.msBeforeNext });
  }
}

/**
 * Counts `keys` (stored keys, repeats included), one `consume(key, n + reserve)` per distinct key
 * whose lease (if any) does not cover its requests, and answers each request's state in order.
 * The library's `consume` rejects in two ways: with a `RateLimiterRes` when the key is over its
 * limit (an answer: the requests past it refused), and with the store's `Error` when the store
 * failed (no insurance limiter is set), which fails the batch and so each of its requests
 * (`StoreUnavailable`).
 */
async function countAll(
  settings: RateLimitSettings,
  limiter: RateLimiterAbstract,
  leases: Leases | undefined,
  reserve: number,
  keys: readonly string[],
): Promise<RateLimitState[]> {
  const now = Date.now();
  const states: (RateLimitState | undefined)[] = keys.map((key) => leases?.take(key, now));
  const perKey = new Map<string, number>();
  keys.forEach((key, i) => {
    if (states[i] === undefined) perKey.set(key, (perKey.get(key) ?? 0) + 1);
  });
  const counted = new Map<string, RateLimitState[]>();
  await Promise.all(
    [...perKey].map(async ([key, n]) => {
      const res = await limiter.consume(key, n + reserve).catch((err: unknown) => {
        if (err instanceof RateLimiterRes) return err;
        throw err;
      });
      // The requests take the first numbers the add gave, the lease the rest.
      const consumed = res.consumedPoints - reserve;
      const mine = new RateLimiterRes(
        Math.max(0, settings.limit - consumed),
        res.msBeforeNext,
        consumed,
      );
      counted.set(key, statesOf(settings, mine, n));
      // Timed from before the add: the lease ends no later than the store's window.
      leases?.keep(key, res, reserve, now);
    }),
  );
  return keys.map((key, i) => states[i] ?? counted.get(key)!.shift()!);
}

/**
 * The port over any rate-limiter-flexible limiter. The requests counted at the same time go
 * together (see `Batcher`): one atomic add of their number per key, rather than one per request,
 * so the count is as exact as one add per request and costs one statement per key and batch.
 * With `reserve` > 0, each add takes that many tokens more, spent by this process's next requests
 * of the key without a statement (see `SqlRateLimitOptions.reserve`).
 */
function flexible(
  settings: RateLimitSettings,
  limiter: RateLimiterAbstract,
  reserve = 0,
): RateLimiter {
  const key = (k: string): string => storedKey(settings.keyPrefix, k);
  const leases = reserve > 0 ? new Leases(settings) : undefined;
  const requests = new Batcher<string, RateLimitState>({
    write: (keys) => countAll(settings, limiter, leases, reserve, keys),
  });
  return {
    limit: settings.limit,
    windowMs: settings.windowMs,
    consume: (k: string): TE.TaskEither<StoreUnavailable, RateLimitState> => {
      const stored = key(k);
      const leased = leases?.take(stored, Date.now());
      if (leased !== undefined) return TE.right(leased);
      return attempt(() => requests.run(stored));
    },
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

export interface SqlRateLimitOptions {
  /**
   * Tokens taken ahead: each add to the store counts this many more than the requests waiting,
   * and this process allows its next requests of the key from them without a statement, until
   * they are spent or the window ends (unspent ones are lost with it). Every allowed request
   * still holds a number within the limit counted in the store, so all servers together never
   * allow more than `limit` a window; a key may be refused early by up to the unspent tokens
   * of the other servers (at most `reserve` each, a stopped server's included until the window
   * ends). Default `defaultReserve(limit)`; 0
   * counts every batch in the store, as exact as one add per request.
   */
  readonly reserve?: number;
}

/** The share of the limit one add takes ahead (see `SqlRateLimitOptions.reserve`). */
export const RESERVE_FRACTION = 0.01;

/**
 * `limit` × RESERVE_FRACTION, rounded down: none below 100 a window (the sign-in failures, the
 * default 600/min takes 6), 10,000 at the highest `RATE_LIMIT` (1,000,000/s).
 */
export const defaultReserve = (limit: number): number => Math.floor(limit * RESERVE_FRACTION);

/**
 * A limiter whose counts are rows of `rate_limits` (created by the migrations, hence
 * `tableCreated: true`), shared by every server on the database: one atomic upsert per key for
 * the requests counted together, which takes `options.reserve` tokens ahead for the key's next
 * requests on this server (never more than `limit` allowed a window across servers; see
 * `SqlRateLimitOptions`). Windows are fixed and timed by each server's clock (`Date.now()`, as
 * the library does). `peek` reads the store's count, which includes tokens taken ahead and not
 * yet spent: it may say fewer remain than requests were allowed. Throws (a wiring bug) on bad
 * settings or a `reserve` that is not a whole number ≥ 0.
 *
 * Expired rows: the library deletes rows expired over an hour ago every five minutes, per limiter,
 * on an unref'd timer that never rejects (a failed delete is ignored), so it neither keeps the
 * process alive nor needs wiring; nothing else purges the table.
 */
export function sqlRateLimiter(
  sql: SqlClient,
  settings: RateLimitSettings,
  options: SqlRateLimitOptions = {},
): RateLimiter {
  const { keyPrefix, limit, windowMs } = checked(settings);
  const reserve = options.reserve ?? defaultReserve(limit);
  if (!Number.isSafeInteger(reserve) || reserve < 0) {
    throw new Error(`a rate limit's reserve must be a whole number ≥ 0, not ${reserve}`);
  }
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
  return flexible(settings, limiter, reserve);
}

/** A limiter that counts in this process only: for tests and single-process runs. */
export function memoryRateLimiter(settings: RateLimitSettings): RateLimiter {
  const { keyPrefix, limit, windowMs } = checked(settings);
  return flexible(
    settings,
    new RateLimiterMemory({ keyPrefix, points: limit, duration: windowMs / 1000 }),
  );
}
