import { expect } from 'chai';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MIGRATIONS_DIR,
  MIGRATIONS_TABLE,
  migrate,
  schemaUpToDate,
} from '../../../src/adapters/postgres/migrate.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import { recordingLogger } from '../../support/fakes.js';
import type { TestDatabase } from '../../support/postgres.js';
import { freshDatabase, requirePostgres } from '../../support/postgres.js';

const migrationNames = (): string[] =>
  readdirSync(MIGRATIONS_DIR)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => file.slice(0, -'.sql'.length))
    .sort();

describe('The PostgreSQL migrations', function () {
  this.timeout(60_000);
  const databases: TestDatabase[] = [];
  const fresh = async (label: string): Promise<TestDatabase> => {
    const db = await freshDatabase(label);
    databases.push(db);
    return db;
  };

  before(requirePostgres);
  after(async () => {
    await Promise.all(databases.map((db) => db.drop()));
  });

  it('are found at the repository root, from the compiled build as from the sources', () => {
    // These tests run compiled, from dist/test/adapters/stores: four levels below the root.
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
    expect(existsSync(join(root, 'package.json'))).to.equal(true);
    expect(MIGRATIONS_DIR).to.equal(join(root, 'migrations'));
    expect(migrationNames()).to.have.length.of.at.least(1);
  });

  it('apply once when ten servers migrate a new database at the same time', async () => {
    const db = await fresh('migrate10');
    const results = await Promise.all(
      Array.from({ length: 10 }, () => migrate(db.url, recordingLogger())),
    );
    const applied = results.filter((r) => r.applied.length > 0);
    expect(applied).to.have.length(1);
    expect(applied[0]!.applied).to.deep.equal(migrationNames());
    expect(results.flatMap((r) => r.applied)).to.deep.equal(migrationNames());

    const database = new PgDatabase({ url: db.url });
    try {
      const ran = await database.client.query<{ name: string }>(
        `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`,
      );
      expect(ran.map((r) => r.name)).to.deep.equal(migrationNames());
      const tables = await database.client.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables
         WHERE table_schema = 'public' ORDER BY table_name`,
      );
      expect(tables.map((t) => t.table_name)).to.include.members([
        'delivery_ledger',
        'emails',
        'idempotency_keys',
        'webhook_deliveries',
        'webhook_endpoints',
        'webhook_jobs',
      ]);
    } finally {
      await database.close();
    }
  });

  it('apply nothing the second time, and say so', async () => {
    const db = await fresh('migrate2');
    const logger = recordingLogger();
    expect((await migrate(db.url, logger)).applied).to.deep.equal(migrationNames());
    expect((await migrate(db.url, logger)).applied).to.deep.equal([]);
    expect(logger.lines.map((l) => l.message)).to.include('database schema up to date');
  });

  it('are up to date exactly when every file and nothing else has been applied', async () => {
    const db = await fresh('uptodate');
    const database = new PgDatabase({ url: db.url });
    const session = {
      query: async (text: string) => ({ rows: await database.client.query(text) }),
    };
    try {
      expect(await schemaUpToDate(session), 'a new database').to.equal(false);
      await migrate(db.url, recordingLogger());
      expect(await schemaUpToDate(session), 'migrated').to.equal(true);
      const last = migrationNames().at(-1)!;
      await database.client.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE name = $1`, [last]);
      expect(await schemaUpToDate(session), 'one file not applied').to.equal(false);
      await database.client.query(
        `INSERT INTO ${MIGRATIONS_TABLE} (name, run_on) VALUES ($1, now()), ($2, now())`,
        [last, '9999999999999_from-a-newer-version'],
      );
      expect(await schemaUpToDate(session), 'one applied that no file has').to.equal(false);
    } finally {
      await database.close();
    }
  });

  it('fail with a reason that shows no password when the database is down', async () => {
    const url = 'postgres://postgres:s3cret-pw@127.0.0.1:1/nowhere';
    const err = await migrate(url, recordingLogger()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.equal(
      'migrating postgres://postgres:***@127.0.0.1:1/nowhere failed: the database is not reachable (ECONNREFUSED)',
    );
  });
});
