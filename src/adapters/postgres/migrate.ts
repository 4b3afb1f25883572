import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { ClientBase } from 'pg';
import type { Logger } from '../../application/ports/system.js';
import { redactDatabaseUrl } from './pg-database.js';
import type { PgliteDatabase } from './pglite-database.js';
import { isConnectionError, safeReason } from './sql-client.js';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The `migrations/` folder at the repository root (plain PostgreSQL SQL files, run by
 * node-pg-migrate). Compiled, this file is `dist/src/adapters/postgres/migrate.js`, four levels
 * below the root; run from source (tsx), it is three. A deployment must ship the folder next to
 * `dist/` (the Docker image copies it to `/app/migrations`).
 */
export const MIGRATIONS_DIR: string =
  [resolve(here, '../../../migrations'), resolve(here, '../../../../migrations')].find((dir) =>
    existsSync(dir),
  ) ?? resolve(here, '../../../../migrations');

/** The table in which node-pg-migrate notes what it applied (its own default name). */
export const MIGRATIONS_TABLE = 'pgmigrations';

/** node-pg-migrate's warnings and errors go to our logger; its progress lines and debug lines (every SQL) are dropped. */
const migrationLogger = (log: Logger) => ({
  // Its info lines ("> Migrating files:", "### MIGRATION … (UP) ###") repeat, line by line,
  // what our one summary line says: only its warnings and errors are passed on.
  info: () => undefined,
  warn: (message: string) => log.warn({}, message),
  error: (message: string) => log.error({}, message),
});

/**
 * The migrations in MIGRATIONS_DIR by name, as node-pg-migrate names them: every file or link
 * whose name does not start with a dot (its default `ignorePattern`), without its extension.
 */
async function migrationNames(): Promise<string[]> {
  const entries = await readdir(MIGRATIONS_DIR, { withFileTypes: true });
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.'))
    .map((e) => e.name.slice(0, e.name.length - extname(e.name).length));
}

/** What `schemaUpToDate` needs of a connection: node-postgres's `query(text)`, read for `rows`. */
export interface TextQuery {
  query(text: string): Promise<{ readonly rows: readonly unknown[] }>;
}

/**
 * Whether the database has applied exactly the migrations in MIGRATIONS_DIR, no more, no fewer
 * (node-pg-migrate's table in the `public` schema, its default). This is every start but the
 * first after an upgrade, and answering it with two small statements spares the process from
 * loading node-pg-migrate at all: importing it costs about 22 MB resident (its bundle, `glob`,
 * `mlly`), kept for the life of a long-running role. Any doubt (no table yet, a name missing or
 * unknown, the table or the folder unreadable) answers false, and node-pg-migrate decides as
 * before. Two things node-pg-migrate would also refuse on every start are then not looked at:
 * migrations applied in another order than the files' (its `checkOrder`), and a database user
 * who may read its table but not lock it; both are met by the next migration that is pending.
 * Run it outside any transaction: on PGlite a failed statement would abort the one it is in.
 */
export async function schemaUpToDate(client: TextQuery): Promise<boolean> {
  try {
    const files = await migrationNames();
    const table = await client.query(
      `SELECT to_regclass('public.${MIGRATIONS_TABLE}') IS NOT NULL AS present`,
    );
    if ((table.rows[0] as { present?: unknown } | undefined)?.present !== true) return false;
    const ran = await client.query(`SELECT name FROM public.${MIGRATIONS_TABLE}`);
    const applied = new Set(ran.rows.map((r) => (r as { name: string }).name));
    return applied.size === files.length && files.every((name) => applied.has(name));
  } catch {
    // The runner meets the same problem (a dropped connection, a missing folder) and reports it
    // in its own words.
    return false;
  }
}

/**
 * Applies every pending migration over an already connected client, in one transaction, under
 * node-pg-migrate's advisory lock in `wait` mode: concurrent callers (ten servers starting at
 * once) queue on the lock, and each one after the first finds nothing left to do. (Its default
 * mode, `fail`, would make every caller but one throw.) Answers the names it applied. Loads
 * node-pg-migrate: callers ask `schemaUpToDate` first.
 * Throws on any failure: migrations run at start-up, where an error must stop the process.
 */
async function migrateClient(client: ClientBase, log: Logger): Promise<{ applied: string[] }> {
  const { runner } = await import('node-pg-migrate');
  const ran = await runner({
    dbClient: client,
    dir: MIGRATIONS_DIR,
    migrationsTable: MIGRATIONS_TABLE,
    direction: 'up',
    singleTransaction: true,
    checkOrder: true,
    advisoryLockMode: 'wait',
    logger: migrationLogger(log),
  });
  return { applied: ran.map((m) => m.name) };
}

/**
 * node-pg-migrate's own errors (a migration file missing or out of order) carry no code and say
 * what to fix, so their text is kept; the driver's are reduced to safe words (`safeReason`).
 */
function why(err: unknown, databaseUrl: string): string {
  const fromDriver = typeof err === 'object' && err !== null && 'code' in err;
  if (fromDriver || isConnectionError(err) || !(err instanceof Error)) return safeReason(err);
  return err.message.split(databaseUrl).join(redactDatabaseUrl(databaseUrl));
}

/**
 * Brings the database at `databaseUrl` up to date; see `migrateClient`. Opens its own connection
 * (no statement timeout: a migration or the wait for another server's lock may take long) and
 * closes it. Errors say why in safe words (never the URL's password) and keep the driver's
 * error as `cause`.
 */
export async function migrate(databaseUrl: string, log: Logger): Promise<{ applied: string[] }> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: 5000,
    application_name: 'queued-email-migrate',
  });
  // A connection dropped while idle between two statements must fail the migration, not crash.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const result = (await schemaUpToDate(client))
      ? { applied: [] }
      : await migrateClient(client, log);
    log.info(
      { url: redactDatabaseUrl(databaseUrl), applied: result.applied },
      result.applied.length > 0 ? 'database migrated' : 'database schema up to date',
    );
    return result;
  } catch (err) {
    throw new Error(
      `migrating ${redactDatabaseUrl(databaseUrl)} failed: ${why(err, databaseUrl)}`,
      {
        cause: err,
      },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The embedded engine's errors quote no URL or credentials: its own words help most. */
function embeddedWhy(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  return code === undefined ? err.message : `${err.message} (SQLSTATE ${code})`;
}

/**
 * Brings either engine up to date with the same migration files: a PostgreSQL URL (see
 * `migrate`) or an open `PgliteDatabase`. On PGlite the whole run (node-pg-migrate's lock, its
 * table and every pending migration) is one transaction that holds the engine, so no other query
 * interleaves; a migration marked `noTransaction` cannot run there. Answers the names applied.
 * Throws on any failure, naming the database (a URL without its password, or the data folder).
 */
export async function migrateSql(
  target: string | PgliteDatabase,
  log: Logger,
): Promise<{ applied: string[] }> {
  if (typeof target === 'string') return migrate(target, log);
  try {
    // Asked on the engine's own client, outside the session's transaction (see schemaUpToDate).
    const outside: TextQuery = {
      query: async (text) => ({ rows: await target.client.query(text) }),
    };
    // node-pg-migrate only calls `query` on the client it is given and reads `rows`.
    const result = (await schemaUpToDate(outside))
      ? { applied: [] }
      : await target.session((session) => migrateClient(session as unknown as ClientBase, log));
    log.info(
      { where: target.where, applied: result.applied },
      result.applied.length > 0 ? 'database migrated' : 'database schema up to date',
    );
    return result;
  } catch (err) {
    throw new Error(
      `migrating the embedded database (${target.where}) failed: ${embeddedWhy(err)}`,
      { cause: err },
    );
  }
}
