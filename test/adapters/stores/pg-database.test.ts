import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { PgDatabase, redactDatabaseUrl } from '../../../src/adapters/postgres/pg-database.js';
import {
  isConnectionError,
  safeReason,
  toStoreUnavailable,
} from '../../../src/adapters/postgres/sql-client.js';
import { recordingLogger } from '../../support/fakes.js';
import type { TestDatabase } from '../../support/postgres.js';
import { freshDatabase, POSTGRES_URL, requirePostgres } from '../../support/postgres.js';
import { eventually } from '../../support/waiting.js';

const rejection = async (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );

describe('Safe reasons for database failures', () => {
  it('names the socket error and nothing else', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), {
      code: 'ECONNREFUSED',
    });
    expect(toStoreUnavailable(refused)).to.deep.equal({
      _tag: 'StoreUnavailable',
      reason: 'the database is not reachable (ECONNREFUSED)',
    });
    expect(isConnectionError(refused)).to.equal(true);
    const happyEyeballs = new AggregateError([refused], 'connect failed');
    expect(safeReason(happyEyeballs)).to.equal('the database is not reachable (ECONNREFUSED)');
  });

  it('never repeats a driver message, which may quote a URL or a name', () => {
    const leaky = Object.assign(
      new Error('could not connect to postgres://app:hunter2@db.internal/prod'),
      { code: '08006' },
    );
    expect(safeReason(leaky)).to.equal('the database connection failed (08006)');
    expect(safeReason(new Error('postgres://app:hunter2@db.internal/prod'))).to.equal(
      'the database failed',
    );
    expect(safeReason(Object.assign(new Error('x'), { code: '57014' }))).to.equal(
      'the database did not answer in time',
    );
    expect(isConnectionError(Object.assign(new Error('x'), { code: '23505' }))).to.equal(false);
  });

  it('masks the password of a database URL, in the authority or the query', () => {
    expect(redactDatabaseUrl('postgres://app:hunter2@db.internal:5432/prod')).to.equal(
      'postgres://app:***@db.internal:5432/prod',
    );
    expect(redactDatabaseUrl('postgres://db.internal/prod?user=app&password=hunter2')).to.equal(
      'postgres://db.internal/prod?user=app&password=***',
    );
    expect(redactDatabaseUrl('not a url')).not.to.include('not a url');
  });
});

describe('PgDatabase', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  const opened: PgDatabase[] = [];
  const open = (options: Partial<ConstructorParameters<typeof PgDatabase>[0]> = {}) => {
    const database = new PgDatabase({ url: db!.url, ...options });
    opened.push(database);
    return database;
  };

  before(async () => {
    await requirePostgres();
    db = await freshDatabase('pgdb');
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((d) => d.close()));
  });
  after(async () => {
    await db?.drop();
  });

  it('is ready once started against a live database, and not after close', async () => {
    const database = open();
    expect(database.isReady()).to.equal(false);
    await database.start();
    expect(database.isReady()).to.equal(true);
    await database.close();
    expect(database.isReady()).to.equal(false);
    await database.close();
  });

  it('starts without throwing when the database is down, and says so in safe words', async () => {
    const logger = recordingLogger();
    const database = new PgDatabase({
      url: 'postgres://postgres:s3cret-pw@127.0.0.1:1/nowhere',
      logger,
      connectTimeoutMs: 500,
    });
    opened.push(database);
    const started = Date.now();
    await database.start();
    expect(Date.now() - started).to.be.below(2000);
    expect(database.isReady()).to.equal(false);
    expect(database.redactedUrl).to.equal('postgres://postgres:***@127.0.0.1:1/nowhere');
    expect(logger.lines.map((l) => l.message)).to.deep.equal(['the database is not reachable']);
    expect(logger.text()).to.include('ECONNREFUSED').and.not.to.include('s3cret-pw');
  });

  it('answers "busy" when every connection is in use, and stays ready: load is not an outage', async () => {
    const database = open({ maxConnections: 2, connectTimeoutMs: 300, pingIntervalMs: 50 });
    await database.start();
    // Two statements hold both connections of the pool for a second.
    const holding = [1, 2].map(() => database.client.query('SELECT pg_sleep(1)'));
    const third = await database.client.query('SELECT 1').then(
      () => 'answered',
      (err: unknown) => safeReason(err),
    );
    expect(third).to.equal('the database is busy: every connection is in use; try again shortly');
    // The pings have a connection of their own: readiness never dropped meanwhile.
    expect(database.isReady()).to.equal(true);
    await Promise.all(holding);
    expect(await database.client.query<{ one: number }>('SELECT 1 AS one')).to.deep.equal([
      { one: 1 },
    ]);
  });

  it('gives up on a statement that runs past the query timeout', async () => {
    const database = open({ queryTimeoutMs: 300 });
    const started = Date.now();
    const err = await rejection(database.client.query('SELECT pg_sleep(5)'));
    expect(Date.now() - started).to.be.below(2000);
    expect(safeReason(err)).to.equal('the database did not answer in time');
    expect(await database.client.query('SELECT 1 AS one')).to.deep.equal([{ one: 1 }]);
  });

  it('survives the server killing an idle connection, and drops readiness at once', async () => {
    const logger = recordingLogger();
    const name = `pgdb-test-${randomBytes(4).toString('hex')}`;
    // A long ping interval: readiness must drop because of the error, not because of a ping.
    const database = open({ logger, applicationName: name, pingIntervalMs: 60_000 });
    await database.start();
    await database.client.query('SELECT 1');
    expect(database.isReady()).to.equal(true);

    const admin = new PgDatabase({ url: POSTGRES_URL });
    opened.push(admin);
    const killed = await admin.client.query<{ killed: boolean }>(
      'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1',
      [name],
    );
    expect(killed.length).to.be.at.least(1);
    await eventually(() => expect(database.isReady()).to.equal(false));
    expect(logger.lines.map((l) => l.message)).to.include('an idle database connection failed');

    // The pool drops the dead client; the next query opens a new one and proves the database.
    expect(await database.client.query('SELECT 2 AS two')).to.deep.equal([{ two: 2 }]);
    expect(database.isReady()).to.equal(true);
  });

  it('commits a transaction that resolves and rolls back one that rejects', async () => {
    const database = open();
    await database.client.query('CREATE TABLE IF NOT EXISTS t (n int)');
    await database.client.query('TRUNCATE t');
    await database.client.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES (1)');
    });
    const boom = new Error('boom');
    const err = await rejection(
      database.client.transaction(async (tx) => {
        await tx.query('INSERT INTO t VALUES (2)');
        throw boom;
      }),
    );
    expect(err).to.equal(boom);
    // A nested transaction is a savepoint: its failure undoes only its own work.
    await database.client.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES (3)');
      await rejection(
        tx.transaction(async (inner) => {
          await inner.query('INSERT INTO t VALUES (4)');
          throw boom;
        }),
      );
    });
    const rows = await database.client.query<{ n: number }>('SELECT n FROM t ORDER BY n');
    expect(rows.map((r) => r.n)).to.deep.equal([1, 3]);
  });
});
