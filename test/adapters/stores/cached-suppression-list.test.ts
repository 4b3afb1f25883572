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
import type { StoreUnavailable } from '../../../src/application/ports/email-log.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import { SqlSuppressionList } from '../../../src/adapters/postgres/sql-suppression-list.js';
import type { Suppression } from '../../../src/application/ports/suppression-list.js';
import type { Logger } from '../../../src/application/ports/system.js';
import { suppressionListContract } from '../../contracts/suppression-list.contract.js';
import { right } from '../../contracts/email-log.contract.js';
import { later } from '../../support/builders.js';
import type { TestDatabase } from '../../support/postgres.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import { emptyStoreTables } from '../../support/sql-stores.js';
import type { Door } from '../../support/door.js';
import { door } from '../../support/door.js';
import { recording } from '../../support/recording-client.js';
import { eventually, sleep } from '../../support/waiting.js';

const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const entry = (address: string, ms = 0): Suppression => ({
  address,
  reason: 'bounce',
  createdAt: later(ms),
});

/** A SqlClient that counts the look-ups (`= ANY`) sent to PostgreSQL. */
function countingLookUps(inner: SqlClient): { client: SqlClient; lookUps: () => number } {
  const { client, statements } = recording(inner);
  return { client, lookUps: () => statements.filter((s) => s.sql.includes('ANY(')).length };
}

describe('CachedSuppressionList on PostgreSQL', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  let one: PgDatabase;
  let two: PgDatabase;
  let admin: pg.Client;
  const started: CachedSuppressionList[] = [];

  before(async () => {
    await requirePostgres();
    db = await migratedDatabase('suppression_cache');
    one = new PgDatabase({ url: db.url, maxConnections: 5 });
    two = new PgDatabase({ url: db.url, maxConnections: 5 });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  after(async () => {
    await admin?.end();
    await one?.close();
    await two?.close();
    await db?.drop();
  });
  afterEach(async () => {
    for (const list of started.splice(0)) await list.stop();
  });

  /** A started cached list on pool one, its copy loaded. */
  async function cached(
    options: {
      limit?: number;
      url?: string;
      ready?: () => boolean;
      client?: SqlClient;
      inner?: SqlSuppressionList;
    } = {},
  ): Promise<CachedSuppressionList> {
    const inner = options.inner ?? new SqlSuppressionList(options.client ?? one.client);
    const list = new CachedSuppressionList(inner, {
      url: options.url ?? db!.url,
      log: silent,
      retryMs: 50,
      recheckMs: 50,
      healthCheckMs: 200,
      checkTimeoutMs: 500,
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
  const table = (addresses: readonly string[]) =>
    right(peer().suppressed(addresses)).then((set) => [...set].sort());
  /** The copy answers for `addresses` from memory as the table does. */
  async function settlesLikeTheTable(list: CachedSuppressionList, addresses: readonly string[]) {
    const truth = await table(addresses);
    await eventually(
      async () => {
        expect(list.mode(), 'answering from the copy').to.equal('memory');
        expect(await suppressed(list, addresses), 'the copy').to.deep.equal(truth);
        return true;
      },
      { what: `the copy to answer ${JSON.stringify(truth)} like the table` },
    );
  }
  /**
   * Returns once every change committed before it was heard by `list`: notifications arrive in
   * commit order, so once a marker added after them is in the copy (and its removal too), so is
   * everything before.
   */
  async function heardEverything(list: CachedSuppressionList): Promise<void> {
    const marker = `marker-${Math.random().toString(36).slice(2)}@example.org`;
    await right(peer().add(entry(marker)));
    await eventually(async () => (await suppressed(list, [marker])).length === 1);
    await right(peer().remove(marker));
    await eventually(async () => (await suppressed(list, [marker])).length === 0);
  }
  const listeners = async () => {
    const { rows } = await admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1`,
      [LISTENER_NAME],
    );
    return Number(rows[0]!.n);
  };

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
      // A change nobody hears (its trigger off): the copy misses it until it is made again.
      await admin.query('ALTER TABLE suppressions DISABLE TRIGGER suppressions_announce_rows');
      try {
        await right(peer().add(entry('unheard@example.org')));
      } finally {
        await admin.query('ALTER TABLE suppressions ENABLE TRIGGER suppressions_announce_rows');
      }
      expect(await suppressed(list, ['unheard@example.org'])).to.deep.equal([]);
      const killed = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = $1`,
        [LISTENER_NAME],
      );
      expect(killed.rowCount).to.equal(1);
      // Meanwhile look-ups ask PostgreSQL (and find it); then the new copy has it.
      await settlesLikeTheTable(list, ['unheard@example.org']);
      expect(await suppressed(list, ['unheard@example.org'])).to.deep.equal([
        'unheard@example.org',
      ]);
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

  describe('changes it must follow', () => {
    beforeEach(() => emptyStoreTables(one.client));

    it('follows an UPDATE of the address, ignores a rollback, and reloads on TRUNCATE then INSERT', async () => {
      await right(peer().add(entry('old@example.org')));
      const list = await cached();
      await loaded(list);
      await two.client.query(
        `UPDATE suppressions SET address = 'new@example.org' WHERE address = 'old@example.org'`,
      );
      await settlesLikeTheTable(list, ['old@example.org', 'new@example.org']);
      await two.client
        .transaction(async (tx: SqlClient) => {
          await tx.query('DELETE FROM suppressions');
          await tx.query(
            `INSERT INTO suppressions (address, reason, created_at) VALUES ('rb@example.org', 'manual', now())`,
          );
          throw new Error('roll back');
        })
        .catch(() => undefined);
      await heardEverything(list);
      await settlesLikeTheTable(list, ['new@example.org', 'rb@example.org']);
      await two.client.transaction(async (tx: SqlClient) => {
        await tx.query('TRUNCATE suppressions');
        await tx.query(
          `INSERT INTO suppressions (address, reason, created_at) VALUES ('t@example.org', 'manual', now())`,
        );
      });
      await settlesLikeTheTable(list, ['new@example.org', 't@example.org']);
    });

    it('ends like the table when changes are committed before, during and after its load', async () => {
      class Racing extends SqlSuppressionList {
        override addressesUpTo(max: number) {
          return async () => {
            await right(peer().add(entry('before@example.org')));
            await right(peer().add(entry('gone@example.org')));
            const result = await super.addressesUpTo(max)();
            await right(peer().remove('gone@example.org'));
            await right(peer().add(entry('after@example.org')));
            return result;
          };
        }
      }
      const list = await cached({ inner: new Racing(one.client) });
      await loaded(list);
      await heardEverything(list);
      await settlesLikeTheTable(list, [
        'before@example.org',
        'gone@example.org',
        'after@example.org',
      ]);
    });

    it('follows 5,000 inserts and then their deletion, each in one transaction', async () => {
      const list = await cached({ limit: 10_000 });
      await loaded(list);
      await two.client.query(
        `INSERT INTO suppressions (address, reason, created_at)
         SELECT 'n' || i || '@example.org', 'manual', now() FROM generate_series(1, 5000) i`,
      );
      await eventually(() => list.size() === 5000, { what: '5,000 in the copy' });
      await two.client.query(`DELETE FROM suppressions WHERE address LIKE 'n%'`);
      await eventually(() => list.size() === 0, { what: 'none in the copy' });
      expect(list.mode()).to.equal('memory');
    });

    // PostgreSQL drops a notification equal to one the same transaction sent already: the
    // payloads carry a sequence number so that none is.
    it('follows a transaction that adds, removes and adds an address again', async () => {
      const list = await cached();
      await loaded(list);
      await two.client.transaction(async (tx: SqlClient) => {
        for (const sql of [
          `INSERT INTO suppressions (address, reason, created_at) VALUES ('x@example.org', 'manual', now())`,
          `DELETE FROM suppressions WHERE address = 'x@example.org'`,
          `INSERT INTO suppressions (address, reason, created_at) VALUES ('x@example.org', 'bounce', now())`,
        ]) {
          await tx.query(sql);
        }
      });
      expect(await table(['x@example.org'])).to.deep.equal(['x@example.org']);
      await heardEverything(list);
      await settlesLikeTheTable(list, ['x@example.org']);
    });

    it('follows a transaction that removes, adds and removes an address again', async () => {
      await right(peer().add(entry('x@example.org')));
      const list = await cached();
      await loaded(list);
      await two.client.transaction(async (tx: SqlClient) => {
        for (const sql of [
          `DELETE FROM suppressions WHERE address = 'x@example.org'`,
          `INSERT INTO suppressions (address, reason, created_at) VALUES ('x@example.org', 'manual', now())`,
          `DELETE FROM suppressions WHERE address = 'x@example.org'`,
        ]) {
          await tx.query(sql);
        }
      });
      expect(await table(['x@example.org'])).to.deep.equal([]);
      await heardEverything(list);
      await settlesLikeTheTable(list, ['x@example.org']);
    });

    it('answers from memory again once the list is back within its limit', async () => {
      const list = await cached({ limit: 2 });
      await loaded(list);
      for (const a of ['a', 'b', 'c']) await right(peer().add(entry(`${a}@example.org`)));
      await eventually(() => list.mode() === 'database', { what: 'the copy given up' });
      for (const a of ['b', 'c']) await right(peer().remove(`${a}@example.org`));
      await settlesLikeTheTable(list, ['a@example.org', 'b@example.org']);
    });
  });

  describe("this process's own writes racing another process's", () => {
    beforeEach(() => emptyStoreTables(one.client));

    /**
     * A SqlSuppressionList whose add and remove, once committed, let `meanwhile` happen before
     * they answer: what an event loop busy for a few milliseconds does, when the notification of
     * a later commit elsewhere is read before the answer to our own statement.
     */
    class AnswersLate extends SqlSuppressionList {
      meanwhile: () => Promise<void> = async () => undefined;
      override add(e: Suppression): TE.TaskEither<StoreUnavailable, boolean> {
        return async () => {
          const result = await super.add(e)();
          await this.meanwhile();
          return result;
        };
      }
      override remove(address: string): TE.TaskEither<StoreUnavailable, boolean> {
        return async () => {
          const result = await super.remove(address)();
          await this.meanwhile();
          return result;
        };
      }
    }

    it('does not keep its add when another process removed the address after it', async () => {
      const inner = new AnswersLate(one.client);
      const list = await cached({ inner });
      await loaded(list);
      inner.meanwhile = async () => {
        await right(peer().remove('x@example.org'));
        await heardEverything(list);
      };
      expect(await right(list.add(entry('x@example.org')))).to.equal(true);
      expect(await table(['x@example.org'])).to.deep.equal([]);
      expect(await suppressed(list, ['x@example.org'])).to.deep.equal([]);
    });

    it('does not keep its remove when another process added the address again after it', async () => {
      await right(peer().add(entry('x@example.org')));
      const inner = new AnswersLate(one.client);
      const list = await cached({ inner });
      await loaded(list);
      inner.meanwhile = async () => {
        await right(peer().add(entry('x@example.org', 1)));
        await heardEverything(list);
      };
      expect(await right(list.remove('x@example.org'))).to.equal(true);
      expect(await table(['x@example.org'])).to.deep.equal(['x@example.org']);
      expect(await suppressed(list, ['x@example.org'])).to.deep.equal(['x@example.org']);
    });
  });

  describe('its listening connection', () => {
    let gate: Door;
    beforeEach(async () => {
      await emptyStoreTables(one.client);
      gate = await door(Number(new URL(db!.url).port || 5432));
    });
    afterEach(() => gate.close());
    const through = () => {
      const url = new URL(db!.url);
      url.port = String(gate.port);
      return url.toString();
    };

    it('leaves no connection behind after first attempts the database end cut, nor after stop', async () => {
      const list = await cached({ url: through() });
      await eventually(() => gate.accepted() >= 4, { what: 'four attempts cut' });
      gate.open();
      await loaded(list);
      expect(await listeners(), 'listening connections while running').to.equal(1);
      await list.stop();
      await eventually(async () => (await listeners()) === 0, {
        what: 'no listening connection after stop()',
      });
    });

    it('hears changes committed right after its first copy was loaded, on a slow link', async () => {
      gate.open();
      gate.slowUp(300);
      const list = await cached({ url: through() });
      await loaded(list);
      await right(peer().add(entry('x@example.org')));
      await heardEverything(list);
      await settlesLikeTheTable(list, ['x@example.org']);
    });

    it('notices a connection that died silently, and asks PostgreSQL meanwhile', async () => {
      gate.open();
      const list = await cached({ url: through() });
      await loaded(list);
      gate.freeze();
      await right(peer().add(entry('x@example.org')));
      // Its check (every 200 ms here, 10 s by default) gets no answer within 500 ms (5 s).
      await eventually(() => list.mode() === 'database', { what: 'the copy given up' });
      expect(await suppressed(list, ['x@example.org'])).to.deep.equal(['x@example.org']);
    });

    it('opens no connection any more once stopped while reconnecting', async () => {
      gate.open();
      const list = await cached({ url: through() });
      await loaded(list);
      gate.shut();
      await eventually(() => list.mode() === 'database', { what: 'the copy given up' });
      await list.stop();
      const attempts = gate.accepted();
      gate.open();
      // Real time must pass to show that nothing happens: ten retry periods.
      await sleep(500);
      expect(gate.accepted(), 'connection attempts after stop()').to.equal(attempts);
      expect(await listeners(), 'listening connections after stop()').to.equal(0);
    });
  });
});
