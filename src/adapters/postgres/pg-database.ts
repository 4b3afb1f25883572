import pg from 'pg';
import type { PoolClient } from 'pg';
import type { Logger } from '../../application/ports/system.js';
import type { QueryOptions, SqlClient } from './sql-client.js';
import { StoreFault, isConnectionError, safeReason } from './sql-client.js';

export interface PgDatabaseOptions {
  /** `postgres://user:pass@host:5432/db`; only its redacted form is ever logged. */
  readonly url: string;
  /** Readiness changes and idle-connection failures are logged here (default: nowhere). */
  readonly logger?: Logger;
  /** Pool size (default 10). */
  readonly maxConnections?: number;
  /** Opening a connection, TCP and start-up (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** One statement (default 5000 ms): past it the server cancels it and the store answers 503. */
  readonly queryTimeoutMs?: number;
  /** How often readiness is checked with `SELECT 1` (default 1000 ms). */
  readonly pingIntervalMs?: number;
  /** Shown in `pg_stat_activity` (default `queued-email`). */
  readonly applicationName?: string;
}

/** Named statements one database keeps per connection, at most (see `QueryOptions.prepared`). */
const MAX_PREPARED = 500;

/** `postgres://user:***@host:5432/db`: a URL fit for a log line (a `?password=` is masked too). */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    for (const name of ['password', 'sslpassword']) {
      if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    }
    return parsed.toString();
  } catch {
    return '(a database URL that does not parse)';
  }
}

/**
 * A node-postgres pool behind the `SqlClient` surface, with a readiness flag for `/readyz`.
 *
 * Every timeout is short on purpose: a store call on the accept path must answer 503 within
 * seconds when the database is gone, not hang until the client gives up. Readiness is kept by a
 * `SELECT 1` every `pingIntervalMs` (on an unref'd timer, so it never keeps a process alive) and
 * drops at once when any query fails with a connection-class error.
 */
export class PgDatabase {
  /** Every store is built on this. Queries work before `start()`; the pool connects lazily. */
  readonly client: SqlClient;
  readonly redactedUrl: string;
  private readonly pool: pg.Pool;
  /**
   * The pings' own connection: a burst that takes every connection of `pool` is load, not an
   * outage, and must not turn readiness off (a load balancer would pull a healthy server).
   */
  private readonly pingPool: pg.Pool;
  private readonly maxConnections: number;
  private readonly logger: Logger | undefined;
  private readonly pingIntervalMs: number;
  private ready = false;
  private started = false;
  private closed: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** What the log last said, so that only changes are logged, not every failed ping. */
  private reported: boolean | undefined;
  /** The names of prepared statements, by text (see `QueryOptions.prepared`). */
  private readonly prepared = new Map<string, string>();

  constructor(options: PgDatabaseOptions) {
    this.redactedUrl = redactDatabaseUrl(options.url);
    this.logger = options.logger;
    this.pingIntervalMs = options.pingIntervalMs ?? 1000;
    const queryTimeoutMs = options.queryTimeoutMs ?? 5000;
    this.maxConnections = options.maxConnections ?? 10;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: this.maxConnections,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
      // The server cancels a slow statement and keeps the connection; the client-side timeout,
      // a little longer, covers a server that does not answer at all (a network black hole).
      statement_timeout: queryTimeoutMs,
      query_timeout: queryTimeoutMs + 1000,
      // A process that stalls inside a transaction must not hold its row locks for long.
      idle_in_transaction_session_timeout: Math.max(queryTimeoutMs * 2, 10_000),
      application_name: options.applicationName ?? 'queued-email',
      keepAlive: true,
    });
    // An idle client whose connection drops (server restart, failover) is reported here; without
    // a listener the pool would rethrow it and end the process.
    this.pool.on('error', (err) => {
      this.noteFailure(err);
      this.logger?.warn({ reason: safeReason(err) }, 'an idle database connection failed');
    });
    this.pingPool = new pg.Pool({
      connectionString: options.url,
      max: 1,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
      statement_timeout: queryTimeoutMs,
      query_timeout: queryTimeoutMs + 1000,
      application_name: `${options.applicationName ?? 'queued-email'} (readiness)`,
      keepAlive: true,
    });
    this.pingPool.on('error', () => undefined); // the next ping reports it
    this.client = this.poolClient();
  }

  /** True while the last ping (or query) reached the database: what `/readyz` reports. */
  isReady(): boolean {
    return this.ready;
  }

  /**
   * Starts the readiness pings and resolves after the first one, reached or not: it never
   * rejects, so a process can start while the database is still coming up. Idempotent.
   */
  async start(): Promise<void> {
    if (this.started || this.closed !== undefined) return;
    this.started = true;
    await this.ping();
  }

  /** Stops the pings and closes every connection. Idempotent. */
  close(): Promise<void> {
    if (this.closed === undefined) {
      clearTimeout(this.timer);
      this.ready = false;
      this.closed = Promise.all([this.pool.end(), this.pingPool.end()]).then(() => undefined);
    }
    return this.closed;
  }

  private async ping(): Promise<void> {
    let reason = '';
    const reached = await this.pingPool.query('SELECT 1').then(
      () => true,
      (err: unknown) => {
        reason = safeReason(err);
        return false;
      },
    );
    if (this.closed !== undefined) return;
    this.ready = reached;
    if (reached !== this.reported) {
      if (reached) this.logger?.info({ url: this.redactedUrl }, 'the database is reachable');
      else this.logger?.warn({ url: this.redactedUrl, reason }, 'the database is not reachable');
      this.reported = reached;
    }
    this.timer = setTimeout(() => void this.ping(), this.pingIntervalMs);
    this.timer.unref();
  }

  private noteFailure(err: unknown): void {
    if (isConnectionError(err)) this.ready = false;
  }

  /**
   * node-postgres says "timeout exceeded when trying to connect" both when the server does not
   * answer and when every connection of the pool is busy; only the pool's state tells them apart.
   * Busy is answered as such (503 all the same) and leaves readiness alone.
   */
  private busyOrFailed(err: unknown): unknown {
    const waitedForPool =
      err instanceof Error &&
      /timeout exceeded when trying to connect/i.test(err.message) &&
      this.pool.totalCount >= this.maxConnections;
    if (waitedForPool) {
      return new StoreFault('the database is busy: every connection is in use; try again shortly');
    }
    this.noteFailure(err);
    return err;
  }

  /**
   * Runs the statement on `on`: named when prepared (the name stands for its text, the same on
   * every connection, which node-postgres prepares on first use), else unnamed. An unnamed one
   * goes as its text and values rather than as a config object: node-postgres copies a config
   * object through its property descriptors for every query (more than the rest of sending it,
   * for a worker's batched statements), and a text it only wraps.
   */
  private submit(
    on: pg.Pool | PoolClient,
    text: string,
    params: readonly unknown[],
    options: QueryOptions | undefined,
  ): Promise<pg.QueryResult> {
    const values = [...params];
    const name = options?.prepared === true ? this.preparedName(text) : undefined;
    return name === undefined ? on.query(text, values) : on.query({ name, text, values });
  }

  /** The name of a prepared statement's text; undefined past MAX_PREPARED (run unnamed). */
  private preparedName(text: string): string | undefined {
    let name = this.prepared.get(text);
    if (name === undefined) {
      // A bug would show as ever more names: past the bound, statements run unnamed.
      if (this.prepared.size >= MAX_PREPARED) return undefined;
      name = `queued_email_${this.prepared.size + 1}`;
      this.prepared.set(text, name);
    }
    return name;
  }

  private async run<Row>(query: () => Promise<pg.QueryResult>): Promise<readonly Row[]> {
    try {
      const result = await query();
      // A query that got through proves the database is there, sooner than the next ping.
      if (this.started && this.closed === undefined) this.ready = true;
      return result.rows;
    } catch (err) {
      throw this.busyOrFailed(err);
    }
  }

  private poolClient(): SqlClient {
    return {
      query: (sql, params = [], options) =>
        this.run(() => this.submit(this.pool, sql, params, options)),
      transaction: (work) => this.transaction(work),
    };
  }

  private async transaction<T>(work: (tx: SqlClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.busyOrFailed(err);
    }
    // A checked-out client has no pool listener: a connection that drops between two statements
    // would otherwise emit an unhandled 'error' and end the process.
    const onError = (err: Error): void => this.noteFailure(err);
    client.on('error', onError);
    let broken = false;
    try {
      await this.run(() => client.query('BEGIN'));
      const result = await work(this.txClient(client, 0));
      await this.run(() => client.query('COMMIT'));
      return result;
    } catch (err) {
      // A connection that cannot even roll back is not given to the next caller.
      broken = await client.query('ROLLBACK').then(
        () => false,
        () => true,
      );
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private txClient(client: PoolClient, depth: number): SqlClient {
    return {
      query: (sql, params = [], options) =>
        this.run(() => this.submit(client, sql, params, options)),
      transaction: async (work) => {
        const savepoint = `sp_${depth + 1}`;
        await this.run(() => client.query(`SAVEPOINT ${savepoint}`));
        try {
          const result = await work(this.txClient(client, depth + 1));
          await this.run(() => client.query(`RELEASE SAVEPOINT ${savepoint}`));
          return result;
        } catch (err) {
          await client.query(`ROLLBACK TO SAVEPOINT ${savepoint}`).catch(() => undefined);
          throw err;
        }
      },
    };
  }
}
