import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { migrate } from '../adapters/postgres/migrate.js';
import { PgDatabase } from '../adapters/postgres/pg-database.js';

/** A role's database: the pool, and whether its migrations have been applied yet. */
export interface OpenDatabase {
  readonly database: PgDatabase;
  migrated(): boolean;
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
    database,
    migrated: () => migrated,
    async close() {
      closed = true;
      clearTimeout(retry);
      await database.close();
    },
  };
}
