import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import pgListen from 'pg-listen';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  Suppression,
  SuppressionList,
  SuppressionPage,
} from '../../application/ports/suppression-list.js';
import type { Logger } from '../../application/ports/system.js';
import type { SqlSuppressionList } from './sql-suppression-list.js';

/** The channel the `suppressions` table's triggers announce every change on (migration 1768608000000). */
export const SUPPRESSION_CHANNEL = 'email_suppressions';

/**
 * The most addresses kept in memory (about 100 bytes each, so 10 MB at most). A longer list is
 * not copied: every look-up asks PostgreSQL, as SqlSuppressionList does.
 */
export const SUPPRESSION_CACHE_LIMIT = 100_000;

/** The listening connection's `application_name`, as `pg_stat_activity` shows it. */
export const LISTENER_NAME = 'queued-email (suppression listener)';

/** How long to wait before loading the list again after a load failed, in milliseconds. */
export const RELOAD_RETRY_MS = 2_000;

/** What the triggers send: a row added or removed, or a TRUNCATE (everything may have gone). */
type Change =
  { readonly op: 'add' | 'remove'; readonly address: string } | { readonly op: 'reload' };

const NONE: ReadonlySet<string> = new Set();

function parseChange(payload: unknown): Change | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const { op, address } = payload as { op?: unknown; address?: unknown };
  if (op === 'reload') return { op };
  if ((op === 'add' || op === 'remove') && typeof address === 'string') return { op, address };
  return undefined;
}

// pg-listen is CommonJS with `exports.default`: the default import is the whole module.exports.
const createSubscriber = pgListen.default;

export interface CachedSuppressionListOptions {
  /** PostgreSQL's URL for the listening connection (one of its own, outside the pool). */
  readonly url: string;
  readonly log: Logger;
  /**
   * True once the database is migrated: the list is copied only then, so that no change goes
   * unannounced between the copy and the triggers' migration. Default: always.
   */
  readonly ready?: () => boolean;
  /** SUPPRESSION_CACHE_LIMIT unless given (tests use a small one). */
  readonly limit?: number;
  /** RELOAD_RETRY_MS unless given. */
  readonly retryMs?: number;
}

/** Where `suppressed` answers from right now: the copy in memory, or PostgreSQL. */
export type CacheMode = 'memory' | 'database';

/**
 * The suppression list of `inner`, whose look-ups (`suppressed`) answer from a copy in memory
 * kept current by PostgreSQL's LISTEN/NOTIFY (through pg-listen, which reconnects and listens
 * again after a lost connection). Every other method is `inner`'s, and this process's own adds
 * and removes update the copy as soon as they are committed.
 *
 * How current the copy is: a change committed by another process is seen once its notification
 * arrives, a few milliseconds later (PostgreSQL delivers notifications after the commit, in
 * commit order). Until the copy is loaded, while the listening connection is lost (from the
 * moment pg-listen starts reconnecting until the list is copied again), and while the list has
 * more than `limit` addresses, each look-up asks PostgreSQL. Changes that arrive while the list
 * is being copied are applied after the copy, in order; applying a change again is harmless
 * (an add or remove of one address), so the copy ends as the table is.
 *
 * For screening at accept time (`email server`): a recipient suppressed milliseconds before
 * may be accepted, as one suppressed milliseconds after would be, and the worker looks every
 * recipient up in PostgreSQL again before the send.
 */
export class CachedSuppressionList implements SuppressionList {
  private readonly url: string;
  private subscriber: ReturnType<typeof createSubscriber> | undefined;
  private readonly limit: number;
  private readonly retryMs: number;
  private readonly ready: () => boolean;
  private readonly log: Logger;
  /** The copy; undefined while look-ups ask PostgreSQL. */
  private keys: Set<string> | undefined;
  /** Changes heard while a copy is being loaded, applied after it in order. */
  private heard: Change[] | undefined;
  /** Bumped by every new load and every lost connection: a load of an older one is dropped. */
  private generation = 0;
  private retry: NodeJS.Timeout | undefined;
  private overLimitLogged = false;
  private stopped = false;

  constructor(
    private readonly inner: SqlSuppressionList,
    options: CachedSuppressionListOptions,
  ) {
    this.limit = options.limit ?? SUPPRESSION_CACHE_LIMIT;
    this.retryMs = options.retryMs ?? RELOAD_RETRY_MS;
    this.ready = options.ready ?? (() => true);
    this.log = options.log;
    this.url = options.url;
  }

  /**
   * Connects the listening connection and copies the list. Resolves once the first attempt is
   * over, whatever its outcome: until the copy is there, look-ups ask PostgreSQL, and a failed
   * connection is tried again every `retryMs` in the background.
   */
  async start(): Promise<void> {
    if (this.stopped || this.subscriber !== undefined) return;
    const subscriber = this.listener();
    this.subscriber = subscriber;
    try {
      // Listened to before connecting, so that pg-listen listens again on every new connection.
      void subscriber.listenTo(SUPPRESSION_CHANNEL)?.catch(() => undefined);
      await subscriber.connect();
    } catch (error) {
      this.log.warn(
        { reason: error instanceof Error ? error.message : String(error) },
        'Cannot listen for suppression list changes yet; look-ups ask PostgreSQL meanwhile',
      );
      // A client that failed to connect cannot connect again: a new listener, later.
      this.subscriber = undefined;
      await subscriber.close().catch(() => undefined);
      if (this.stopped) return;
      this.retry = setTimeout(() => void this.start(), this.retryMs);
      this.retry.unref();
    }
  }

  /** Closes the listening connection; look-ups ask PostgreSQL from then on. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.forget();
    clearTimeout(this.retry);
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    await subscriber?.close().catch(() => undefined);
  }

  private listener(): ReturnType<typeof createSubscriber> {
    const subscriber = createSubscriber(
      { connectionString: this.url, application_name: LISTENER_NAME },
      {
        // Never give up reconnecting (pg-listen's default stops after 3 s, for good), at most
        // one attempt every 5 s; a connection that died silently is found within 10 s.
        retryTimeout: 0,
        retryLimit: Infinity,
        retryInterval: (attempt) => Math.min(5_000, 250 * 2 ** attempt),
        paranoidChecking: 10_000,
      },
    );
    subscriber.events.on('connected', () => this.reload());
    subscriber.events.on('reconnect', (attempt) => {
      // The connection is gone: changes from now on may never be heard.
      if (attempt === 1) this.forget();
    });
    subscriber.events.on('error', (error) => {
      this.log.warn(
        { reason: error.message },
        'Listening for suppression list changes failed; look-ups ask PostgreSQL meanwhile',
      );
    });
    subscriber.notifications.on(SUPPRESSION_CHANNEL, (payload: unknown) => this.hear(payload));
    return subscriber;
  }

  /** Where look-ups answer from now (for tests and `/metrics`). */
  mode(): CacheMode {
    return this.keys === undefined ? 'database' : 'memory';
  }

  /** How many addresses the copy holds (0 while there is none). */
  size(): number {
    return this.keys?.size ?? 0;
  }

  add(entry: Suppression): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.tap(this.inner.add(entry), () => {
      this.apply({ op: 'add', address: entry.address });
      return TE.right(undefined);
    });
  }

  remove(address: string): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.tap(this.inner.remove(address), () => {
      this.apply({ op: 'remove', address });
      return TE.right(undefined);
    });
  }

  suppressed(addresses: readonly string[]): TE.TaskEither<StoreUnavailable, ReadonlySet<string>> {
    const keys = this.keys;
    if (keys === undefined) return this.inner.suppressed(addresses);
    let found: Set<string> | undefined;
    for (const address of addresses) {
      if (keys.has(address)) (found ??= new Set()).add(address);
    }
    const answer = E.right(found ?? NONE);
    return () => Promise.resolve(answer);
  }

  list(limit: number, cursor?: string): TE.TaskEither<StoreUnavailable, SuppressionPage> {
    return this.inner.list(limit, cursor);
  }

  /** A notification: applied, or kept until the copy being loaded is there. */
  private hear(payload: unknown): void {
    const change = parseChange(payload);
    if (change === undefined) {
      this.log.warn(
        {},
        'A suppression list notification was not understood; loading the list again',
      );
      this.reload();
    } else if (change.op === 'reload') {
      this.reload();
    } else {
      this.apply(change);
    }
  }

  private apply(change: Change): void {
    if (this.heard !== undefined) this.heard.push(change);
    else if (this.keys === undefined || change.op === 'reload') return;
    else if (change.op === 'remove') this.keys.delete(change.address);
    else if (this.keys.add(change.address).size > this.limit) this.overLimit();
  }

  /** The list grew past `limit`: look-ups ask PostgreSQL until a reload finds it shorter. */
  private overLimit(): void {
    this.forget();
    if (this.overLimitLogged) return;
    this.overLimitLogged = true;
    this.log.info(
      { limit: this.limit },
      'The suppression list is longer than the copy kept in memory may be; look-ups ask PostgreSQL',
    );
  }

  /** Look-ups ask PostgreSQL until the next copy; a load under way is dropped. */
  private forget(): void {
    this.generation += 1;
    this.keys = undefined;
    this.heard = undefined;
    clearTimeout(this.retry);
  }

  /** Copies the list anew; the changes heard meanwhile are applied after it. */
  private reload(): void {
    if (this.stopped) return;
    this.forget();
    const generation = this.generation;
    this.heard = [];
    void this.load(generation);
  }

  private async load(generation: number): Promise<void> {
    const loaded = this.ready()
      ? await this.inner.addressesUpTo(this.limit)()
      : E.left({ _tag: 'StoreUnavailable' as const, reason: 'the database is not migrated yet' });
    if (generation !== this.generation || this.stopped) return;
    if (E.isLeft(loaded)) {
      // Changes keep being heard meanwhile; the next attempt starts from nothing again.
      this.heard = undefined;
      this.retry = setTimeout(() => this.reload(), this.retryMs);
      this.retry.unref();
      return;
    }
    const heard = this.heard ?? [];
    this.heard = undefined;
    if (loaded.right === undefined) return this.overLimit();
    this.keys = new Set(loaded.right);
    for (const change of heard) this.apply(change);
  }
}
