import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
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
 * Applies every pending migration over an already connected client, in one transaction, under
 * node-pg-migrate's advisory lock in `wait` mode: concurrent callers (ten servers starting at
 * once) queue on the lock, and each one after the first finds nothing left to do. (Its default
 * mode, `fail`, would make every caller but one throw.) Answers the names it applied.
 * Throws on any failure: migrations run at start-up, where an error must stop the process.
 */
export async function migrateClient(
  client: ClientBase,
  log: Logger,
): Promise<{ applied: string[] }> {
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
    const result = await migrateClient(client, log);
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
    // node-pg-migrate only calls `query` on the client it is given and reads `rows`.
    const result = await target.session((session) =>
      migrateClient(session as unknown as ClientBase, log),
    );
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
