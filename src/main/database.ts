import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { CachedSuppressionList } from '../adapters/postgres/cached-suppression-list.js';
import { migrate, migrateSql } from '../adapters/postgres/migrate.js';
import { PgDatabase } from '../adapters/postgres/pg-database.js';
import type { PgliteDatabase } from '../adapters/postgres/pglite-database.js';
import type { SqlClient } from '../adapters/postgres/sql-client.js';
import { SqlSuppressionList } from '../adapters/postgres/sql-suppression-list.js';

/**
 * A role's database, whichever engine runs it: the SQL surface every store and the embedded
 * queue are written against, and whether it can be used now.
 */
export interface OpenDatabase {
  readonly client: SqlClient;
  /** For logs: the URL with its password masked, or the embedded database's folder. */
  readonly where: string;
  /** Reachable and migrated: what `/readyz` needs from the database. */
  ready(): boolean;
  close(): Promise<void>;
}

const MIGRATE_RETRY_MS = 2_000;

/**
 * Opens DATABASE_URL and applies the migrations in the background, again every two seconds
 * until they succeed. A role starts even while the database is away, like it does while the
 * broker is: it answers 503 and not-ready until both are there. The migrations take an advisory
 * lock, so replicas starting together apply them once.
 */
export function openDatabase(config: Config, log: Logger): OpenDatabase {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required (checked by loadConfig)');
  const url = config.databaseUrl.reveal();
  const database = new PgDatabase({ url, logger: log });
  void database.start();
  let migrated = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let warned = false;
  const attempt = (): void => {
    // migrate() logs what it applied itself.
    migrate(url, log).then(
      () => {
        migrated = true;
      },
      (err: unknown) => {
        if (closed) return;
        if (!warned) {
          warned = true;
          log.warn(
            {
              database: database.redactedUrl,
              err: err instanceof Error ? err.message : String(err),
            },
            'The database is not reachable yet; answering 503 until it is',
          );
        }
        retry = setTimeout(attempt, MIGRATE_RETRY_MS);
        retry.unref();
      },
    );
  };
  attempt();
  return {
    client: database.client,
    where: database.redactedUrl,
    ready: () => migrated && database.isReady(),
    async close() {
      closed = true;
      clearTimeout(retry);
      await database.close();
    },
  };
}

/**
 * Brings an embedded database opened with `migrateWhenCreated` up to date: a new folder was
 * migrated by the child process that created it (its names are logged and answered, and this
 * process loads no node-pg-migrate), an existing one is migrated here (`migrateSql`).
 * Throws as `migrateSql` does.
 */
export async function migrateOpened(
  database: PgliteDatabase,
  log: Logger,
): Promise<{ applied: string[] }> {
  const applied = database.migratedWhenCreated;
  if (applied === undefined) return migrateSql(database, log);
  log.info({ where: database.where, applied }, 'database migrated');
  return { applied: [...applied] };
}

/**
 * Opens the embedded PostgreSQL (PGlite) in `dataDir` (`memory`: nothing kept), creating the
 * folder on first use, and migrates it before answering: it is in this process, so there is
 * nothing to wait for. Rejects with `DataDirUnusable` (exit 2, naming DATA_DIR) when the folder
 * cannot be written, holds something else, or is in use by another process.
 */
export async function openEmbeddedDatabase(dataDir: string, log: Logger): Promise<OpenDatabase> {
  // Loaded here: `email server` and `email worker` never open the embedded engine.
  const { PgliteDatabase } = await import('../adapters/postgres/pglite-database.js');
  const database = await PgliteDatabase.open({ dataDir, logger: log, migrateWhenCreated: true });
  try {
    await migrateOpened(database, log);
  } catch (err) {
    await database.close();
    throw err;
  }
  await database.start();
  return opened(database, database.where);
}

/**
 * The database a command that needs state uses: DATABASE_URL when it is set, else the embedded
 * one in DATA_DIR, the same `email dev` uses.
 */
export async function openCommandDatabase(config: Config, log: Logger): Promise<OpenDatabase> {
  if (!config.databaseUrl) return openEmbeddedDatabase(config.dataDir, log);
  const url = config.databaseUrl.reveal();
  await migrate(url, log);
  const database = new PgDatabase({ url, logger: log });
  await database.start();
  return opened(database, database.redactedUrl);
}

/** A database opened and migrated before use: ready whenever its engine answers. */
const opened = (database: PgDatabase | PgliteDatabase, where: string): OpenDatabase => ({
  client: database.client,
  where,
  ready: () => database.isReady(),
  close: () => database.close(),
});

/**
 * The suppression list of a role on DATABASE_URL (`email server`), as a copy in
 * memory kept current by PostgreSQL's notifications (`CachedSuppressionList`), started: its
 * look-ups ask PostgreSQL until the copy is loaded (once `db` is migrated), and whenever it
 * cannot be trusted. Stop it after the role's last look-up, before `db.close()`.
 */
export function suppressionCopy(
  config: Config,
  log: Logger,
  db: OpenDatabase,
): CachedSuppressionList {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required (checked by loadConfig)');
  const suppressions = new CachedSuppressionList(new SqlSuppressionList(db.client), {
    url: config.databaseUrl.reveal(),
    log,
    ready: () => db.ready(),
  });
  void suppressions.start();
  return suppressions;
}
