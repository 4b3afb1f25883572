import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../../application/ports/system.js';
import { cannotOpen, isNewDataDir, lockDataDir, unlockDataDir } from './pglite-data-dir.js';
import { compileWasmWithLiftoffOnly, startParams } from './pglite-engine.js';
import type { SqlClient } from './sql-client.js';
import { isConnectionError, safeReason } from './sql-client.js';

export { DataDirUnusable } from './pglite-data-dir.js';
export type { DataDirProblem } from './pglite-data-dir.js';

export interface PgliteOpenOptions {
  /** A folder (created with its parents if missing), or `'memory'` to keep nothing. */
  readonly dataDir: string;
  /** Opening, closing and engine failures are logged here (default: nowhere). */
  readonly logger?: Logger;
  /**
   * When the folder is new: also apply the migrations in the child process that creates it
   * (`pglite-initdb.ts`), so that this process never loads node-pg-migrate (about 20 MB
   * resident for the rest of its life) only to bring an empty database up to date. What it
   * applied is `migratedWhenCreated`. Ignored for `'memory'` and for an existing folder.
   */
  readonly migrateWhenCreated?: boolean;
}

/**
 * node-pg-migrate's view of a connection: `query(text)` or `query({ text, values })`, of which it
 * reads `rows`. See `PgliteDatabase.session`.
 */
export interface PgliteSession {
  query(
    textOrConfig: string | { readonly text: string; readonly values?: readonly unknown[] },
    values?: readonly unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null; command: string }>;
}

/**
 * node-postgres turns every parameter into text this way (a Date into local time with its offset,
 * an array into an array literal, an object into JSON). Doing the same here means a parameter
 * PostgreSQL would refuse is refused by PGlite too, instead of PGlite guessing from the type.
 */
const pgUtils: unknown = createRequire(import.meta.url)('pg/lib/utils.js');
if (
  typeof pgUtils !== 'object' ||
  pgUtils === null ||
  !('prepareValue' in pgUtils) ||
  typeof pgUtils.prepareValue !== 'function'
) {
  throw new Error('pg/lib/utils.js no longer exports prepareValue: check the pg version');
}
const prepareValue = pgUtils.prepareValue as (value: unknown) => unknown;

const prepared = (params: readonly unknown[]): unknown[] => params.map((p) => prepareValue(p));

/**
 * Results as node-postgres gives them: its parser for every type the engine knows (int8 and
 * numeric as strings, bytea as a Buffer, dates in local time, intervals as objects), where PGlite
 * would give numbers and Uint8Arrays. Set after start-up, because PGlite fills in its own array
 * parsers then. A type created later has no parser in either driver: both give its text.
 */
async function adoptPgParsers(pglite: PGlite): Promise<void> {
  const types = await pglite.query<{ oid: number }>('SELECT oid::int4 AS oid FROM pg_type');
  for (const { oid } of types.rows) pglite.parsers[oid] = pg.types.getTypeParser(oid, 'text');
}

const INITDB = fileURLToPath(new URL('./pglite-initdb.js', import.meta.url));
/** `pglite-initdb.js <folder> --migrate`: create, then migrate (see `InitdbReport`). */
export const MIGRATE_FLAG = '--migrate';

/**
 * What the child process writes on standard output, one JSON object a line, each tagged
 * `initdb` so that anything else on that stream (a preload given in NODE_OPTIONS that prints) is
 * told apart and skipped: node-pg-migrate's warnings and errors as they come, then either the
 * migrations it applied or why it failed, a complete sentence.
 */
export type InitdbReport =
  | { readonly initdb: 'log'; readonly level: 'warn' | 'error'; readonly message: string }
  | { readonly initdb: 'applied'; readonly names: readonly string[] }
  | { readonly initdb: 'failed'; readonly message: string };

/** One line of the child's output as a report; undefined for anything else. */
export function reportIn(line: string): InitdbReport | undefined {
  if (!line.startsWith('{"initdb":')) return undefined;
  try {
    const report = JSON.parse(line) as Partial<Record<string, unknown>>;
    const { initdb, message, names, level } = report;
    if (initdb === 'applied' && Array.isArray(names) && names.every((n) => typeof n === 'string')) {
      return { initdb, names: names as string[] };
    }
    if (initdb === 'failed' && typeof message === 'string') return { initdb, message };
    if (
      initdb === 'log' &&
      typeof message === 'string' &&
      (level === 'warn' || level === 'error')
    ) {
      return { initdb, level, message };
    }
  } catch {
    // Not ours after all: skipped like any other line.
  }
  return undefined;
}

/** The most of the child's output kept: its reports are short; anything past it is dropped. */
const MAX_CHILD_OUTPUT = 256 * 1024;

/**
 * Creates the database in the new, empty folder `dir` in a child process (`pglite-initdb.ts`
 * says why), with `migrate` migrates it there too, then exits it: `PGlite.create` on the folder
 * afterwards only opens it. Takes a few seconds, as creating in this process did. Answers the
 * migrations applied (undefined without `migrate`, or when the child said nothing of them: the
 * caller then migrates as for an existing folder). The child's warnings go to `logger`.
 * @throws Error with the child's own sentence (`creating …` or `migrating … failed: …`), else
 *   the last line it wrote on standard error, when it fails.
 */
function createInChild(
  dir: string,
  migrate: boolean,
  logger: Logger | undefined,
): Promise<string[] | undefined> {
  return new Promise((resolvePromise, reject) => {
    const args = migrate ? [INITDB, dir, MIGRATE_FLAG] : [INITDB, dir];
    // Standard input is a pipe the child watches: it ends when this process dies, and the child
    // then stops instead of writing on in a folder whose lock names a dead process.
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let applied: string[] | undefined;
    let failed: string | undefined;
    let kept = 0;
    let partial = '';
    let stderr = '';
    const take = (line: string) => {
      const report = reportIn(line);
      if (report?.initdb === 'applied') applied = [...report.names];
      else if (report?.initdb === 'failed') failed = report.message;
      else if (report?.initdb === 'log') logger?.[report.level]({ where: dir }, report.message);
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      kept += chunk.length;
      if (kept > MAX_CHILD_OUTPUT) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) take(line);
    });
    // Its tail: the last line says why, after whatever the engine printed before.
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      take(partial);
      if (code === 0) {
        resolvePromise(migrate ? applied : undefined);
        return;
      }
      const lastLine = stderr.trim().split('\n').at(-1);
      const why = lastLine || (signal ?? `exit status ${String(code)}`);
      reject(new Error(failed ?? `creating the embedded database failed: ${why}`));
    });
  });
}

/** What `query` may see inside `transaction(work)`: whether that transaction is still open. */
interface Scope {
  open: boolean;
}

const COMMAND = /^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK)\s*;?\s*$/i;

/**
 * PostgreSQL in the process (PGlite, a WASM build of PostgreSQL 18), behind the same `SqlClient`
 * surface as `PgDatabase`, so that every SQL store and migration runs on it unchanged.
 *
 * One engine serves one process through one connection: queries run one at a time, and a
 * transaction holds the engine until it ends (other queries wait). The data folder is locked
 * against a second process. Results and parameters are converted exactly as node-postgres does.
 * Durability: a committed write survives the process being killed; the engine runs with
 * `fsync` off, so it may not survive the machine losing power.
 */
export class PgliteDatabase {
  /** Every store is built on this. */
  readonly client: SqlClient;
  /** For log lines: the data folder (absolute), or `memory`. */
  readonly where: string;
  /** True when this open created the database (a new folder, or memory). */
  readonly created: boolean;
  /** How long `open` took, in milliseconds. */
  readonly openedInMs: number;
  /**
   * The migrations the creating child applied (`PgliteOpenOptions.migrateWhenCreated` on a new
   * folder), in order; undefined when it did not migrate.
   */
  readonly migratedWhenCreated: readonly string[] | undefined;
  private readonly scope = new AsyncLocalStorage<Scope>();
  private started = false;
  private broken = false;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly pglite: PGlite,
    where: string,
    created: boolean,
    openedInMs: number,
    private readonly lockPath: string | undefined,
    private readonly logger: Logger | undefined,
    migratedWhenCreated?: readonly string[],
  ) {
    this.where = where;
    this.created = created;
    this.openedInMs = openedInMs;
    this.migratedWhenCreated = migratedWhenCreated;
    this.client = {
      query: <Row>(sql: string, params: readonly unknown[] = []) =>
        this.outside(async () => (await this.pglite.query<Row>(sql, prepared(params))).rows),
      transaction: (work) => this.outside(() => this.transaction(work)),
    };
  }

  /**
   * Opens (and on first use creates) the database in `options.dataDir`. A new folder takes a few
   * seconds (the engine runs initdb), an existing one well under a second; `'memory'` is like a
   * new folder and keeps nothing. Not migrated: see `migrateSql`.
   * @throws DataDirUnusable when the folder cannot be created or written, another process uses
   *   it, it holds other files, or it holds a database this engine cannot open.
   */
  static async open(options: PgliteOpenOptions): Promise<PgliteDatabase> {
    const began = performance.now();
    const memory = options.dataDir === 'memory';
    const where = memory ? 'memory' : resolve(options.dataDir);
    const lockPath = memory ? undefined : lockDataDir(where);
    let pglite: PGlite;
    let created = true;
    let migrated: string[] | undefined;
    compileWasmWithLiftoffOnly();
    try {
      if (memory) {
        pglite = await PGlite.create({ startParams: startParams() });
      } else {
        created = isNewDataDir(where);
        if (created) {
          const migrate = options.migrateWhenCreated === true;
          migrated = await createInChild(where, migrate, options.logger);
        }
        pglite = await PGlite.create({ dataDir: where, startParams: startParams() }).catch(
          (err: unknown) => {
            throw created ? err : cannotOpen(where, err);
          },
        );
      }
      await adoptPgParsers(pglite);
    } catch (err) {
      if (lockPath !== undefined) unlockDataDir(lockPath);
      throw err;
    }
    const ms = Math.round(performance.now() - began);
    options.logger?.info({ where, created, ms }, 'the embedded database is open');
    return new PgliteDatabase(pglite, where, created, ms, lockPath, options.logger, migrated);
  }

  /**
   * An engine this process has just created and holds alone, under a data folder lock taken by
   * its parent: for `pglite-initdb.ts`, which migrates the database it created (see
   * `PgliteOpenOptions.migrateWhenCreated`). Takes no lock; `close()` closes the engine.
   */
  static adopt(pglite: PGlite, where: string): PgliteDatabase {
    return new PgliteDatabase(pglite, where, true, 0, undefined, undefined);
  }

  /** True between `start()` and `close()` while the engine works: what `/readyz` reports. */
  isReady(): boolean {
    return this.started && !this.broken && this.closed === undefined;
  }

  /** Checks the engine answers (`SELECT 1`); never rejects, like `PgDatabase.start`. Idempotent. */
  async start(): Promise<void> {
    if (this.started || this.closed !== undefined) return;
    this.started = true;
    await this.run(() => this.pglite.query('SELECT 1')).catch(() => undefined);
  }

  /**
   * Waits for the queries already sent, shuts the engine down (so the next open needs no crash
   * recovery) and releases the folder's lock. Idempotent; queries afterwards reject.
   */
  close(): Promise<void> {
    if (this.closed === undefined) {
      this.closed = this.pglite
        .close()
        .catch((err: unknown) => {
          this.logger?.warn({ where: this.where, reason: safeReason(err) }, 'closing failed');
        })
        .finally(() => {
          if (this.lockPath !== undefined) unlockDataDir(this.lockPath);
        });
    }
    return this.closed;
  }

  /**
   * Runs `work` with the engine to itself and inside one transaction, committed when `work`
   * resolves and rolled back when it rejects, over a client shaped like node-postgres's, for
   * node-pg-migrate. Its `BEGIN`, `COMMIT` and `ROLLBACK` become a savepoint of that transaction
   * (so a migration cannot interleave with other queries); a statement with no parameters may
   * hold several statements (PGlite's `exec`); `rows` are those of the last one.
   */
  session<T>(work: (session: PgliteSession) => Promise<T>): Promise<T> {
    return this.outside(() =>
      this.pglite.transaction(async (tx) => {
        let savepoint = false;
        const exec = async (text: string) => {
          const results = await tx.exec(text);
          const last = results.at(-1);
          return {
            rows: last?.rows ?? [],
            rowCount: last?.affectedRows ?? null,
            command: last?.command ?? '',
          };
        };
        const session: PgliteSession = {
          query: async (textOrConfig, values) => {
            const text = typeof textOrConfig === 'string' ? textOrConfig : textOrConfig.text;
            const params = values ?? (typeof textOrConfig === 'string' ? [] : textOrConfig.values);
            const command = COMMAND.exec(text)?.[1]?.toUpperCase();
            // PostgreSQL only warns about a BEGIN inside a transaction or a COMMIT outside one.
            if (command === 'BEGIN' || command?.startsWith('START')) {
              if (savepoint) return exec('SELECT 1 WHERE false');
              savepoint = true;
              return exec('SAVEPOINT migration');
            }
            if (command !== undefined) {
              if (!savepoint) return exec('SELECT 1 WHERE false');
              savepoint = false;
              return exec(
                command === 'ROLLBACK'
                  ? 'ROLLBACK TO SAVEPOINT migration'
                  : 'RELEASE SAVEPOINT migration',
              );
            }
            if (params === undefined || params.length === 0) return exec(text);
            const result = await tx.query<Record<string, unknown>>(text, prepared(params));
            return {
              rows: result.rows,
              rowCount: result.affectedRows ?? null,
              command: result.command ?? '',
            };
          },
        };
        return this.inScope(() => work(session));
      }),
    );
  }

  private async run<A>(work: () => Promise<A>): Promise<A> {
    try {
      return await work();
    } catch (err) {
      this.noteFailure(err);
      throw err;
    }
  }

  private noteFailure(err: unknown): void {
    if (typeof err === 'object' && err !== null) {
      // PGlite adds the statement and its parameters to its errors; node-postgres does not, and a
      // logged error must not quote an email's content.
      for (const key of ['query', 'params', 'queryOptions']) Reflect.deleteProperty(err, key);
    }
    // A WASM trap (`RuntimeError`) leaves the engine unusable; readiness must say so for good.
    const trapped = err instanceof Error && err.name === 'RuntimeError';
    if (trapped || (isConnectionError(err) && this.closed === undefined)) {
      if (!this.broken) {
        this.logger?.error(
          { where: this.where, reason: safeReason(err) },
          'the embedded database failed',
        );
      }
      this.broken = true;
    }
  }

  /**
   * Runs `work` on the engine from outside any transaction. A query on the root client from
   * inside `transaction(work)` would wait for the transaction to end, which waits for `work`: a
   * deadlock. (On PostgreSQL it would run on another connection, outside the transaction: a bug
   * there too.) Rejected at once instead of hanging.
   */
  private async outside<A>(work: () => Promise<A>): Promise<A> {
    if (this.scope.getStore()?.open === true) {
      const err = new Error(
        'a query on the database client inside transaction(work) would wait for that ' +
          'transaction forever: use the client `work` is given',
      );
      this.logger?.error({ where: this.where, stack: err.stack }, err.message);
      throw err;
    }
    return this.run(work);
  }

  /** Runs `work` marked as inside an open transaction, for `outside` to see. */
  private async inScope<A>(work: () => Promise<A>): Promise<A> {
    const scope: Scope = { open: true };
    try {
      return await this.scope.run(scope, work);
    } finally {
      scope.open = false;
    }
  }

  private transaction<T>(work: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.pglite.transaction((tx) => this.inScope(() => work(this.txClient(tx, 0))));
  }

  private txClient(tx: Transaction, depth: number): SqlClient {
    return {
      query: <Row>(sql: string, params: readonly unknown[] = []) =>
        this.run(async () => (await tx.query<Row>(sql, prepared(params))).rows),
      transaction: async (work) => {
        const savepoint = `sp_${depth + 1}`;
        await this.run(() => tx.exec(`SAVEPOINT ${savepoint}`));
        try {
          const result = await work(this.txClient(tx, depth + 1));
          await this.run(() => tx.exec(`RELEASE SAVEPOINT ${savepoint}`));
          return result;
        } catch (err) {
          await tx.exec(`ROLLBACK TO SAVEPOINT ${savepoint}`).catch(() => undefined);
          throw err;
        }
      },
    };
  }
}
