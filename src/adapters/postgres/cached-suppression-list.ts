import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { InvalidCursor, StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  Suppression,
  SuppressionList,
  SuppressionPage,
} from '../../application/ports/suppression-list.js';
import type { Logger } from '../../application/ports/system.js';
import { safeReason } from './sql-client.js';
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

/** Between two attempts to connect the listener, or to load the list, in milliseconds. */
export const RETRY_MS = 2_000;
/**
 * While the database is not migrated yet (a server's start), how often the copy checks again, in
 * milliseconds: a check costs no statement, and a server that takes requests at once would
 * otherwise ask PostgreSQL for each batch of them for the first `RETRY_MS`.
 */
export const MIGRATION_POLL_MS = 50;
/** How often the listening connection is checked with a `SELECT 1`, in milliseconds. */
export const HEALTH_CHECK_MS = 10_000;
/** How long a connection attempt or a check may take before the connection counts as lost. */
export const CHECK_TIMEOUT_MS = 5_000;
/** While the list is longer than the limit: how often it is counted again, in milliseconds. */
export const RECHECK_MS = 60_000;

/** What the triggers send: a row added or removed, or a TRUNCATE (everything may have gone). */
type Change = RowChange | { readonly op: 'reload' };
/** A row added or removed: what the copy applies. */
interface RowChange {
  readonly op: 'add' | 'remove';
  readonly address: string;
}

/** What a list sends itself after its own write (see `caughtUp`); every other list ignores it. */
interface Mark {
  readonly op: 'mark';
  readonly list: string;
  readonly id: number;
}

/** A mark sent and not heard yet: the writes it answers, and its timeout once sent. */
interface PendingMark {
  readonly id: number;
  readonly waiters: (() => void)[];
  timer?: NodeJS.Timeout;
}

const NONE: ReadonlySet<string> = new Set();
const ignore = (): void => undefined;

function parseChange(payload: string | undefined): Change | Mark | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload ?? '');
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { op, address, list, id } = value as Record<string, unknown>;
  if (op === 'reload') return { op };
  if (op === 'mark' && typeof list === 'string' && typeof id === 'number') return { op, list, id };
  if ((op === 'add' || op === 'remove') && typeof address === 'string') return { op, address };
  return undefined;
}

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
  /** RETRY_MS, HEALTH_CHECK_MS, CHECK_TIMEOUT_MS and RECHECK_MS unless given (tests: shorter). */
  readonly retryMs?: number;
  readonly healthCheckMs?: number;
  readonly checkTimeoutMs?: number;
  readonly recheckMs?: number;
}

/** Where `suppressed` answers from right now: the copy in memory, or PostgreSQL. */
export type CacheMode = 'memory' | 'database';

/**
 * The suppression list of `inner`, whose look-ups (`suppressed`) answer from a copy in memory
 * kept current by PostgreSQL's LISTEN/NOTIFY (the `suppressions` table's triggers announce every
 * change). Every other method is `inner`'s; this process's own add or remove answers once the
 * copy has it: after the write commits, the listening connection notifies itself a mark and waits
 * for it (notifications arrive in commit order, so the write's own came first). Applying a write
 * directly instead could undo a later change by another process heard before the write's answer.
 *
 * How current the copy is: a change committed by another process is seen once its notification
 * arrives, a few milliseconds later. The copy is loaded only after `LISTEN` has taken effect, so
 * a change is in the copy, or announced to it, or both; the changes heard while it loads are
 * applied after it, in order (applying one again is harmless: an add or remove of one address).
 * Until the copy is loaded, from the moment the listening connection is lost (an error, its end,
 * or a `SELECT 1` every `healthCheckMs` not answered within `checkTimeoutMs`, which finds a path
 * gone silent) until it is connected again and the list copied anew, and while the list has more
 * than `limit` addresses (counted again every `recheckMs`), each look-up asks PostgreSQL.
 *
 * For screening at accept time (`email server`): a recipient suppressed milliseconds before
 * may be accepted, as one suppressed milliseconds after would be, and the worker looks every
 * recipient up in PostgreSQL again before the send.
 *
 * The listening connection is a `pg.Client` of its own rather than pg-listen's: pg-listen 1.7's
 * reconnection loop cannot be stopped (it leaked a connection per attempt when the first one was
 * cut, and went on after `close()`), and its check has no timeout.
 */
export class CachedSuppressionList implements SuppressionList {
  private readonly url: string;
  private readonly log: Logger;
  private readonly ready: () => boolean;
  private readonly limit: number;
  private readonly retryMs: number;
  private readonly healthCheckMs: number;
  private readonly checkTimeoutMs: number;
  private readonly recheckMs: number;
  /** The listening connection, from its creation until it is lost or stopped. */
  private client: pg.Client | undefined;
  private health: NodeJS.Timeout | undefined;
  /** The next connection attempt, or the next load. */
  private timer: NodeJS.Timeout | undefined;
  /** The copy; undefined while look-ups ask PostgreSQL. */
  private keys: Set<string> | undefined;
  /** Changes heard while a copy is being loaded, applied after it in order. */
  private heard: RowChange[] | undefined;
  /** This list's name in its marks (see `caughtUp`). */
  private readonly name = randomBytes(8).toString('hex');
  private marks = 0;
  /** The mark sent and not heard yet, with the writes it answers. */
  private mark: PendingMark | undefined;
  /** Writes committed after that mark was sent: the next mark answers them. */
  private waiters: (() => void)[] = [];
  /** A load is under way; `again`: another must follow it (a reload was asked meanwhile). */
  private loading = false;
  private again = false;
  private warnedPayload = false;
  /** The listening connection's queries, one at a time (pg warns of a query sent during another). */
  private asking: Promise<unknown> = Promise.resolve();
  private checking = false;
  /** Bumped by every new load and every lost connection: a load of an older one is dropped. */
  private generation = 0;
  private down = false;
  private overLimit = false;
  /** The last load failed (said once per streak of failures). */
  private loadFailing = false;
  private stopped = false;

  constructor(
    private readonly inner: SqlSuppressionList,
    options: CachedSuppressionListOptions,
  ) {
    this.url = options.url;
    this.log = options.log;
    this.ready = options.ready ?? (() => true);
    this.limit = options.limit ?? SUPPRESSION_CACHE_LIMIT;
    this.retryMs = options.retryMs ?? RETRY_MS;
    this.healthCheckMs = options.healthCheckMs ?? HEALTH_CHECK_MS;
    this.checkTimeoutMs = options.checkTimeoutMs ?? CHECK_TIMEOUT_MS;
    this.recheckMs = options.recheckMs ?? RECHECK_MS;
  }

  /**
   * Connects the listening connection, then copies the list. Resolves once the first attempt to
   * connect is over, whatever its outcome: look-ups ask PostgreSQL until the copy is there, and a
   * failed connection is tried again every `retryMs` in the background.
   */
  start(): Promise<void> {
    return this.connect();
  }

  /** Closes the listening connection and every timer; look-ups ask PostgreSQL from then on. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.forget();
    clearInterval(this.health);
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await this.close(client);
  }

  /** Where look-ups answer from now (the server's /metrics, and tests). */
  mode(): CacheMode {
    return this.keys === undefined ? 'database' : 'memory';
  }

  /** How many addresses the copy holds (0 while there is none; see `mode`). */
  size(): number {
    return this.keys?.size ?? 0;
  }

  add(entry: Suppression): TE.TaskEither<StoreUnavailable, boolean> {
    return this.writing(this.inner.add(entry));
  }

  remove(address: string): TE.TaskEither<StoreUnavailable, boolean> {
    return this.writing(this.inner.remove(address));
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

  list(
    limit: number,
    cursor?: string,
  ): TE.TaskEither<StoreUnavailable | InvalidCursor, SuppressionPage> {
    return this.inner.list(limit, cursor);
  }

  /** `write`, answered once the copy has it (when there is a copy). */
  private writing<A>(
    write: TE.TaskEither<StoreUnavailable, A>,
  ): TE.TaskEither<StoreUnavailable, A> {
    return async () => {
      const written = await write();
      if (E.isRight(written)) await this.caughtUp();
      return written;
    };
  }

  /**
   * Resolves once every change committed before the call is in the copy: the listening
   * connection notifies a mark of this list's and waits to hear it (notifications arrive in
   * commit order). One mark is in flight at a time, and answers every write that called before
   * it was sent; the writes that call meanwhile wait for the next. A mark not heard within
   * `checkTimeoutMs` of being sent counts as a lost connection. Every wait ends at once when the
   * copy is dropped (a lost connection, `stop`): look-ups then ask PostgreSQL, which has the
   * write. At once when no copy is kept or being loaded.
   */
  private caughtUp(): Promise<void> {
    if (this.client === undefined || (this.keys === undefined && this.heard === undefined)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.sendMark();
    });
  }

  private sendMark(): void {
    const client = this.client;
    if (this.mark !== undefined || this.waiters.length === 0 || client === undefined) return;
    this.marks += 1;
    const mark: PendingMark = { id: this.marks, waiters: this.waiters };
    this.mark = mark;
    this.waiters = [];
    const payload = JSON.stringify({ op: 'mark', list: this.name, id: mark.id });
    this.ask(client, 'SELECT pg_notify($1, $2)', [SUPPRESSION_CHANNEL, payload], () => {
      if (this.mark !== mark) return;
      mark.timer = setTimeout(() => {
        this.lost(client, new Error('its own notification did not come back in time'));
      }, this.checkTimeoutMs);
      mark.timer.unref();
    }).catch((error: unknown) => this.lost(client, error));
  }

  /** The mark `id` came back: its writes are answered, and the next mark goes out. */
  private markHeard(id: number): void {
    const mark = this.mark;
    if (mark === undefined || mark.id !== id) return;
    clearTimeout(mark.timer);
    this.mark = undefined;
    for (const resolve of mark.waiters) resolve();
    this.sendMark();
  }

  /** Ends every write's wait (the copy is dropped, or the list stopped). */
  private releaseWaiters(): void {
    const mark = this.mark;
    this.mark = undefined;
    clearTimeout(mark?.timer);
    const waiters = [...(mark?.waiters ?? []), ...this.waiters];
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** A query on the listening connection, after the one before it. */
  private ask(
    client: pg.Client,
    sql: string,
    params: unknown[] = [],
    onSent?: () => void,
  ): Promise<unknown> {
    const answer = this.asking.then(() => {
      const query = client.query(sql, params);
      onSent?.();
      return query;
    });
    this.asking = answer.catch(ignore);
    return answer;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.url,
      application_name: LISTENER_NAME,
      keepAlive: true,
      connectionTimeoutMillis: this.checkTimeoutMs,
      query_timeout: this.checkTimeoutMs,
    });
    this.client = client;
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    client.on('notification', (message) => {
      if (client === this.client && message.channel === SUPPRESSION_CHANNEL) {
        this.hear(message.payload);
      }
    });
    try {
      // pg never settles connect() for a client ended while connecting (stop()): its end does.
      await new Promise<void>((resolve, reject) => {
        client.once('end', () => reject(new Error('the connection ended while connecting')));
        client.connect().then(() => resolve(), reject);
      });
      await this.ask(client, `LISTEN ${SUPPRESSION_CHANNEL}`);
    } catch (error) {
      return this.lost(client, error);
    }
    if (client !== this.client) return;
    if (this.down) this.log.info({}, 'Listening for suppression list changes again');
    this.down = false;
    this.health = setInterval(() => {
      if (this.checking) return;
      this.checking = true;
      this.ask(client, 'SELECT 1')
        .catch((error: unknown) => this.lost(client, error))
        .finally(() => {
          this.checking = false;
        });
    }, this.healthCheckMs);
    this.health.unref();
    // Only now: every change committed from here on is announced to this connection.
    this.reload();
  }

  /** The listening connection failed or ended: the copy is dropped, and a new one made later. */
  private lost(client: pg.Client, error?: unknown): void {
    if (client !== this.client) return;
    this.client = undefined;
    clearInterval(this.health);
    this.forget();
    void this.close(client);
    if (this.stopped) return;
    if (!this.down) {
      this.down = true;
      this.log.warn(
        { reason: error === undefined ? 'the connection ended' : safeReason(error) },
        'Not listening for suppression list changes; look-ups ask PostgreSQL until it is back',
      );
    }
    this.timer = setTimeout(() => void this.connect(), this.retryMs);
    this.timer.unref();
  }

  /** Ends a connection no longer used, waiting at most `checkTimeoutMs` (a silent path never answers). */
  private async close(client: pg.Client): Promise<void> {
    client.removeAllListeners('notification');
    client.on('error', ignore);
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      client.end().catch(ignore),
      new Promise<void>((resolve) => {
        timeout = setTimeout(resolve, this.checkTimeoutMs);
        timeout.unref();
      }),
    ]);
    clearTimeout(timeout);
  }

  /** A notification: applied, or kept until the copy being loaded is there. */
  private hear(payload: string | undefined): void {
    const change = parseChange(payload);
    if (change?.op === 'mark') {
      if (change.list === this.name) this.markHeard(change.id);
    } else if (change === undefined) {
      // Anyone may NOTIFY on the channel: said once, and the list copied again to be sure.
      if (!this.warnedPayload) {
        this.warnedPayload = true;
        this.log.warn(
          {},
          'A suppression list notification was not understood; copying the list again',
        );
      }
      this.reload();
    } else if (change.op === 'reload') {
      this.reload();
    } else {
      this.apply(change);
    }
  }

  private apply(change: RowChange): void {
    if (this.heard !== undefined) this.heard.push(change);
    else if (this.keys === undefined) return;
    else if (change.op === 'remove') this.keys.delete(change.address);
    else if (this.keys.add(change.address).size > this.limit) this.tooLong();
  }

  /** Look-ups ask PostgreSQL until the next copy; a load under way is dropped, waits ended. */
  private forget(): void {
    this.generation += 1;
    this.keys = undefined;
    this.heard = undefined;
    this.loading = false;
    this.again = false;
    clearTimeout(this.timer);
    this.releaseWaiters();
  }

  /**
   * Copies the list anew; the changes heard meanwhile are applied after it. Asked during a load,
   * one more load follows it (that one may have read the table before the change): a burst of
   * TRUNCATEs costs two loads, not one each.
   */
  private reload(): void {
    if (this.stopped || this.client === undefined) return;
    this.keys = undefined;
    if (this.loading) {
      this.again = true;
      return;
    }
    this.generation += 1;
    clearTimeout(this.timer);
    this.heard = [];
    this.loading = true;
    void this.load(this.generation);
  }

  private async load(generation: number): Promise<void> {
    const migrated = this.ready();
    const loaded = migrated
      ? await this.inner.addressesUpTo(this.limit)()
      : E.left({ _tag: 'StoreUnavailable' as const, reason: 'the database is not migrated yet' });
    if (generation !== this.generation || this.stopped) return;
    this.loading = false;
    if (this.again) {
      this.again = false;
      return this.reload();
    }
    if (E.isLeft(loaded)) {
      // Not yet migrated is the start's normal wait; a query that fails is news, said once.
      if (migrated && !this.loadFailing) {
        this.loadFailing = true;
        this.log.warn(
          { reason: loaded.left.reason, retryMs: this.retryMs },
          'Could not copy the suppression list; look-ups ask PostgreSQL, and it is tried again',
        );
      }
      return this.reloadIn(migrated ? this.retryMs : Math.min(this.retryMs, MIGRATION_POLL_MS));
    }
    if (this.loadFailing) {
      this.loadFailing = false;
      this.log.info({}, 'Copied the suppression list again');
    }
    if (loaded.right === undefined) return this.tooLong();
    const heard = this.heard ?? [];
    this.heard = undefined;
    this.keys = new Set(loaded.right);
    if (this.overLimit) {
      this.overLimit = false;
      this.log.info({ limit: this.limit }, 'The suppression list fits in memory again');
    }
    for (const change of heard) this.apply(change);
  }

  /** The list is longer than `limit`: look-ups ask PostgreSQL, and it is counted again later. */
  private tooLong(): void {
    this.forget();
    if (!this.overLimit) {
      this.overLimit = true;
      this.log.info(
        { limit: this.limit },
        'The suppression list is longer than the copy kept in memory may be; look-ups ask PostgreSQL',
      );
    }
    this.reloadIn(this.recheckMs);
  }

  private reloadIn(ms: number): void {
    // Changes are not kept meanwhile: the next load starts from the table again.
    this.heard = undefined;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), ms);
    this.timer.unref();
  }
}
