// What the PostgreSQL tests need from the machine: a server, and databases no other test file
// uses, made and dropped by the file that uses them.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { redactDatabaseUrl } from '../../src/adapters/postgres/pg-database.js';
import type { Logger } from '../../src/application/ports/system.js';

/** The server the tests use; its database is only a door to create and drop test databases. */
export const POSTGRES_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function withAdmin<A>(work: (client: pg.Client) => Promise<A>): Promise<A> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Fails (never skips) when the server is missing: a green run must mean the tests ran. */
export async function requirePostgres(): Promise<void> {
  try {
    await withAdmin((client) => client.query('SELECT 1'));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `PostgreSQL is not reachable at ${redactDatabaseUrl(POSTGRES_URL)} (${why}) — start it with ` +
        '`pg_ctlcluster --skip-systemctl-redirect 15 main start` (or set TEST_DATABASE_URL)',
      { cause: err },
    );
  }
}

export interface TestDatabase {
  /** A URL to the new database, same server and credentials as `POSTGRES_URL`. */
  readonly url: string;
  readonly name: string;
  /** Drops it, cutting any connection still open (`WITH (FORCE)`). */
  drop(): Promise<void>;
}

/** An empty database named `email_test_<label>_<hex>`, for one test file or one test. */
export async function freshDatabase(label: string): Promise<TestDatabase> {
  const safeLabel = label
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 30);
  const name = `email_test_${safeLabel}_${randomBytes(4).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      withAdmin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A fresh database with every migration applied. */
export async function migratedDatabase(label: string): Promise<TestDatabase> {
  const db = await freshDatabase(label);
  try {
    await migrate(db.url, silent);
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}
