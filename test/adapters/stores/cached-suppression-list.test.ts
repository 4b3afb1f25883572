// CachedSuppressionList on PostgreSQL: look-ups answer from a copy in memory that follows the
// table through LISTEN/NOTIFY, and fall back to asking PostgreSQL whenever the copy cannot be
// trusted (not loaded yet, the listening connection lost, the list too long).
import { expect } from 'chai';
import pg from 'pg';
import {
  CachedSuppressionList,
  LISTENER_NAME,
} from '../../../src/adapters/postgres/cached-suppression-list.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';
import { SqlSuppressionList } from '../../../src/adapters/postgres/sql-suppression-list.js';
import type { Suppression } from '../../../src/application/ports/suppression-list.js';
import type { Logger } from '../../../src/application/ports/system.js';
import { suppressionListContract } from '../../contracts/suppression-list.contract.js';
import { right } from '../../contracts/email-log.contract.js';
import { later } from '../../support/builders.js';
import type { TestDatabase } from '../../support/postgres.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import { emptyStoreTables } from '../../support/sql-stores.js';
import { eventually } from '../../support/waiting.js';

const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const entry = (address: string, ms = 0): Suppression => ({
  address,
  reason: 'bounce',
  createdAt: later(ms),
});

/** A SqlClient that counts the look-ups (`= ANY`) sent to PostgreSQL. */
function countingLookUps(inner: SqlClient): { client: SqlClient; lookUps: () => number } {
  let n = 0;
  return {
    lookUps: () => n,
    client: {
      query: (sql, params, options) => {
        if (sql.includes('ANY(')) n += 1;
        return inner.query(sql, params, options);
      },
      transaction: (work) => inner.transaction(work),
    },
  };
}

describe('CachedSuppressionList on PostgreSQL', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  let one: PgDatabase;
  let two: PgDatabase;
  const started: CachedSuppressionList[] = [];

  before(async () => {
    await requirePostgres();
    db = await migratedDatabase('suppression_cache');
    one = new PgDatabase({ url: db.url, maxConnections: 5 });
    two = new PgDatabase({ url: db.url, maxConnections: 5 });
  });
  after(async () => {
    await one?.close();
    await two?.close();
    await db?.drop();
  });
  afterEach(async () => {
    for (const list of started.splice(0)) await list.stop();
  });

  /** A started cached list on pool one, its copy loaded. */
  async function cached(
    options: { limit?: number; url?: string; ready?: () => boolean; client?: SqlClient } = {},
  ): Promise<CachedSuppressionList> {
    const list = new CachedSuppressionList(new SqlSuppressionList(options.client ?? one.client), {
      url: options.url ?? db!.url,
      log: silent,
      retryMs: 50,
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      ...(options.ready !== undefined ? { ready: options.ready } : {}),
    });
    started.push(list);
    await list.start();
    return list;
  }
  const loaded = (list: CachedSuppressionList) =>
    eventually(() => list.mode() === 'memory', { what: 'the copy loaded' });
  const suppressed = (list: CachedSuppressionList, addresses: readonly string[]) =>
    right(list.suppressed(addresses)).then((set) => [...set].sort());
  const peer = () => new SqlSuppressionList(two.client);

  suppressionListContract('CachedSuppressionList', async () => {
    await emptyStoreTables(one.client);
    const list = await cached();
    await loaded(list);
    const other = peer();
    return {
      list,
      peer: other,
      settle: async (addresses) => {
        const truth = [...(await right(other.suppressed(addresses)))].sort();
        await eventually(async () => {
          expect(await suppressed(list, addresses)).to.deep.equal(truth);
          return true;
        });
      },
      close: () => list.stop(),
    };
  });

  describe('its copy', () => {
    beforeEach(() => emptyStoreTables(one.client));

    it('starts from the table and follows another process without asking PostgreSQL', async () => {
      await right(peer().add(entry('early@example.org')));
      const { client, lookUps } = countingLookUps(one.client);
      const list = await cached({ client });
      await loaded(list);
      expect(list.size()).to.equal(1);
      expect(await suppressed(list, ['early@example.org', 'x@example.org'])).to.deep.equal([
        'early@example.org',
      ]);

      await right(peer().add(entry('ada@example.org')));
      await eventually(async () =>
        (await suppressed(list, ['ada@example.org'])).includes('ada@example.org'),
      );
      await right(peer().remove('early@example.org'));
      await eventually(async () => (await suppressed(list, ['early@example.org'])).length === 0);
      expect(lookUps(), 'look-ups sent to PostgreSQL').to.equal(0);
    });

    it("sees this process's own adds and removes at once", async () => {
      const list = await cached();
      await loaded(list);
      await right(list.add(entry('ada@example.org')));
      expect(await suppressed(list, ['ada@example.org'])).to.deep.equal(['ada@example.org']);
      await right(list.remove('ada@example.org'));
      expect(await suppressed(list, ['ada@example.org'])).to.deep.equal([]);
    });

    it('loads the list again after a TRUNCATE, which announces no row', async () => {
      const list = await cached();
      await loaded(list);
      await right(peer().add(entry('ada@example.org')));
      await eventually(async () => (await suppressed(list, ['ada@example.org'])).length === 1);
      await two.client.query('TRUNCATE suppressions');
      await eventually(async () => (await suppressed(list, ['ada@example.org'])).length === 0);
      await loaded(list);
    });

    it('asks PostgreSQL while the list is longer than its limit, and answers the same', async () => {
      for (const a of ['a', 'b', 'c']) await right(peer().add(entry(`${a}@example.org`)));
      const { client, lookUps } = countingLookUps(one.client);
      const list = await cached({ limit: 2, client });
      // The load is over once a look-up was answered either way; give it the time to happen.
      await eventually(async () => {
        expect(await suppressed(list, ['a@example.org', 'z@example.org'])).to.deep.equal([
          'a@example.org',
        ]);
        return lookUps() > 0;
      });
      expect(list.mode()).to.equal('database');
    });

    it('gives the copy up when the list grows past its limit', async () => {
      const list = await cached({ limit: 2 });
      await loaded(list);
      for (const a of ['a', 'b', 'c']) await right(peer().add(entry(`${a}@example.org`)));
      await eventually(() => list.mode() === 'database', { what: 'the copy given up' });
      expect(await suppressed(list, ['c@example.org'])).to.deep.equal(['c@example.org']);
    });

    it('copies the list again after its listening connection was lost', async () => {
      const list = await cached();
      await loaded(list);
      const admin = new pg.Client({ connectionString: db!.url });
      await admin.connect();
      try {
        // A change nobody hears (its trigger off): the copy misses it until it is made again.
        await admin.query('ALTER TABLE suppressions DISABLE TRIGGER suppressions_announce_rows');
        await right(peer().add(entry('unheard@example.org')));
        await admin.query('ALTER TABLE suppressions ENABLE TRIGGER suppressions_announce_rows');
        expect(await suppressed(list, ['unheard@example.org'])).to.deep.equal([]);
        const killed = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = $1`,
          [LISTENER_NAME],
        );
        expect(killed.rowCount).to.equal(1);
      } finally {
        await admin.end();
      }
      // Meanwhile look-ups ask PostgreSQL (and find it); then the new copy has it.
      await eventually(async () => {
        expect(list.mode()).to.equal('memory');
        expect(await suppressed(list, ['unheard@example.org'])).to.deep.equal([
          'unheard@example.org',
        ]);
        return true;
      });
    });

    it('waits for the database to be migrated before copying it', async () => {
      let migrated = false;
      const list = await cached({ ready: () => migrated });
      await right(peer().add(entry('ada@example.org')));
      expect(list.mode()).to.equal('database');
      expect(await suppressed(list, ['ada@example.org'])).to.deep.equal(['ada@example.org']);
      migrated = true;
      await loaded(list);
      expect(await suppressed(list, ['ada@example.org'])).to.deep.equal(['ada@example.org']);
    });

    it('answers from PostgreSQL when it cannot listen, and stops cleanly', async () => {
      const unreachable = new URL(db!.url);
      unreachable.port = '1';
      const list = await cached({ url: unreachable.toString() });
      await right(peer().add(entry('ada@example.org')));
      expect(list.mode()).to.equal('database');
      expect(await suppressed(list, ['ada@example.org'])).to.deep.equal(['ada@example.org']);
    });
  });
});
