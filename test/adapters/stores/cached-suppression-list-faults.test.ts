// CachedSuppressionList under faults and load: writes waiting for their mark when the listening
// connection goes or the list stops, bursts of writes on a slow link, bursts of TRUNCATEs, a
// stop while connecting, and updates that keep the address. Each test states what a caller sees.
import { expect } from 'chai';
import { CachedSuppressionList } from '../../../src/adapters/postgres/cached-suppression-list.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';
import { SqlSuppressionList } from '../../../src/adapters/postgres/sql-suppression-list.js';
import type { Suppression } from '../../../src/application/ports/suppression-list.js';
import type { Logger } from '../../../src/application/ports/system.js';
import { right } from '../../contracts/email-log.contract.js';
import { later } from '../../support/builders.js';
import type { TestDatabase } from '../../support/postgres.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import { emptyStoreTables } from '../../support/sql-stores.js';
import type { Door } from '../../support/door.js';
import { door } from '../../support/door.js';
import { eventually } from '../../support/waiting.js';

const entry = (address: string): Suppression => ({
  address,
  reason: 'bounce',
  createdAt: later(0),
});

/** A logger that keeps the warnings. */
function recording(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    warnings,
    info: () => undefined,
    warn: (_fields: unknown, message: string) => {
      warnings.push(message);
    },
    error: () => undefined,
  } as Logger & { warnings: string[] };
}

describe('CachedSuppressionList under faults and load', function () {
  this.timeout(60_000);
  let db: TestDatabase | undefined;
  let one: PgDatabase;
  let two: PgDatabase;
  let gate: Door;
  const started: CachedSuppressionList[] = [];

  before(async () => {
    await requirePostgres();
    db = await migratedDatabase('suppression_faults');
    one = new PgDatabase({ url: db.url, maxConnections: 10 });
    two = new PgDatabase({ url: db.url, maxConnections: 5 });
  });
  after(async () => {
    await one?.close();
    await two?.close();
    await db?.drop();
  });
  beforeEach(async () => {
    await emptyStoreTables(one.client);
    gate = await door(Number(new URL(db!.url).port || 5432));
    gate.open();
  });
  afterEach(async () => {
    for (const list of started.splice(0)) await list.stop();
    await gate.close();
  });

  const through = () => {
    const url = new URL(db!.url);
    url.port = String(gate.port);
    return url.toString();
  };
  const table = (addresses: readonly string[]) =>
    right(new SqlSuppressionList(two.client).suppressed(addresses)).then((s) => [...s]);

  async function cached(options: {
    checkTimeoutMs: number;
    healthCheckMs?: number;
    inner?: SqlSuppressionList;
    log?: Logger;
    url?: string;
  }): Promise<CachedSuppressionList> {
    const list = new CachedSuppressionList(options.inner ?? new SqlSuppressionList(one.client), {
      url: options.url ?? through(),
      log: options.log ?? recording(),
      retryMs: 50,
      recheckMs: 50,
      healthCheckMs: options.healthCheckMs ?? 600_000,
      checkTimeoutMs: options.checkTimeoutMs,
    });
    started.push(list);
    await list.start();
    await eventually(() => list.mode() === 'memory', { what: 'the copy loaded' });
    return list;
  }

  /** Resolves with the ms `promise` took, or `limit` if it took longer (it is not awaited further). */
  const within = (promise: Promise<unknown>, limit: number): Promise<number> => {
    const t0 = Date.now();
    return Promise.race([
      promise.then(() => Date.now() - t0),
      new Promise<number>((r) => setTimeout(() => r(limit), limit).unref()),
    ]);
  };

  // A write waits for its mark; a lost connection drops the copy, so the wait buys nothing.
  it("answers a write at once when the listening connection is lost during its mark's wait", async () => {
    const list = await cached({ checkTimeoutMs: 20_000 });
    gate.freeze(); // the listener's path goes silent: the mark is sent and never answered
    const add = right(list.add(entry('x@example.org')));
    await eventually(async () => (await table(['x@example.org'])).length === 1, {
      what: 'the write committed',
    });
    gate.shut(); // the listener's socket is cut: 'end', lost(), the copy dropped
    await eventually(() => list.mode() === 'database', { what: 'the copy dropped' });
    // The write answers now (look-ups ask PostgreSQL, which has it), not after the mark's own
    // timer, checkTimeoutMs (20 s here, 5 s by default).
    const ms = await within(add, 8_000);
    expect(
      ms,
      'ms the add still took after the connection was lost (8000: still pending)',
    ).to.be.below(8_000);
  });

  it("answers a write at once when stop() is called during its mark's wait", async () => {
    const list = await cached({ checkTimeoutMs: 20_000 });
    gate.freeze();
    const add = right(list.add(entry('y@example.org')));
    await eventually(async () => (await table(['y@example.org'])).length === 1, {
      what: 'the write committed',
    });
    await list.stop();
    const ms = await within(add, 8_000);
    expect(ms, 'ms the add still took after stop() (8000: still pending)').to.be.below(8_000);
  });

  // One mark answers every write that called before it was sent.
  it('keeps its copy through a burst of concurrent writes on a link with some latency', async () => {
    const log = recording();
    const list = await cached({ checkTimeoutMs: 2_000, log });
    gate.slowUp(20); // 20 ms from the listener to PostgreSQL; the pool's writes go direct
    const n = 200;
    const adds = Array.from({ length: n }, (_, i) => right(list.add(entry(`b${i}@example.org`))));
    const results = await Promise.all(adds);
    expect(results.every((created) => created)).to.equal(true);
    // The connection was never in doubt (it answers every query within 20 ms): 200 marks one
    // behind the other (200 x 20 ms = 4 s > 2 s) would time out and drop the copy.
    expect(log.warnings, 'warnings').to.deep.equal([]);
  });

  // A reload asked during a load is one more load after it, not one more at once.
  it('does not run one full load per TRUNCATE at the same time', async () => {
    let inFlight = 0;
    let most = 0;
    let loads = 0;
    class Counting extends SqlSuppressionList {
      override addressesUpTo(max: number) {
        const load = super.addressesUpTo(max);
        return async () => {
          loads += 1;
          inFlight += 1;
          most = Math.max(most, inFlight);
          try {
            return await load();
          } finally {
            inFlight -= 1;
          }
        };
      }
    }
    const list = await cached({ checkTimeoutMs: 5_000, inner: new Counting(one.client) });
    loads = 0;
    most = 0;
    await two.client.transaction(async (tx: SqlClient) => {
      for (let i = 0; i < 50; i += 1) await tx.query('TRUNCATE suppressions');
      // a list worth loading, 50 times
      await tx.query(
        `INSERT INTO suppressions (address, reason, created_at)
         SELECT 'n' || i || '@example.org', 'manual', now() FROM generate_series(1, 20000) i`,
      );
    });
    await eventually(() => list.mode() === 'memory' && list.size() === 20_000 && inFlight === 0, {
      what: 'loaded again',
      timeoutMs: 30_000,
    });
    // A load under way is followed by one more, not multiplied on the shared pool.
    expect(most, `loads in flight at once (of ${loads} loads)`).to.be.at.most(2);
  });

  // pg's connect() never settles once end() was called on the client it is connecting.
  it('says once that it cannot copy the list while the copy fails, and copies it once it can', async () => {
    const log = recording();
    let failing = false;
    let failed = 0;
    // The listening connection stays healthy; only the copy's query fails.
    const failable: SqlClient = {
      query: (sql, params, options) =>
        failing && sql.startsWith('SELECT address FROM suppressions LIMIT')
          ? Promise.reject(
              new Error('canceling statement due to statement timeout', { cause: ++failed }),
            )
          : one.client.query(sql, params, options),
      transaction: (work) => one.client.transaction(work),
    };
    const list = await cached({
      checkTimeoutMs: 5_000,
      inner: new SqlSuppressionList(failable),
      log,
    });
    failing = true;
    await two.client.query('TRUNCATE suppressions'); // announced as a reload: a new copy
    await eventually(() => log.warnings.length > 0, { what: 'a warning' });
    expect(list.mode()).to.equal('database');
    // Tried again every retryMs (50 ms here), said once.
    await eventually(() => failed >= 3, { what: 'three failed copies' });
    expect(list.mode()).to.equal('database');
    expect(log.warnings).to.deep.equal([
      'Could not copy the suppression list; look-ups ask PostgreSQL, and it is tried again',
    ]);
    failing = false;
    await eventually(() => list.mode() === 'memory', { what: 'the copy loaded again' });
    expect(log.warnings).to.have.length(1);
  });

  it('settles start() when stop() is called while it connects', async () => {
    gate.slowUp(300); // the connection takes a while to be made
    const list = new CachedSuppressionList(new SqlSuppressionList(one.client), {
      url: through(),
      log: recording(),
      checkTimeoutMs: 5_000,
    });
    const start = list.start();
    await new Promise((r) => setTimeout(r, 50));
    await list.stop();
    const ms = await within(start, 8_000);
    expect(ms, 'ms start() took to settle after stop() (8000: still pending)').to.be.below(8_000);
  });

  // Were an UPDATE that keeps the address announced as a remove then an add, a look-up
  // that runs between the two (they may arrive in two reads of the socket) finds the address
  // not suppressed, though it never left the table.
  it('never answers "not suppressed" for an address that stays on the list through an UPDATE', async () => {
    const n = 5_000;
    await two.client.query(
      `INSERT INTO suppressions (address, reason, created_at)
       SELECT 'u' || i || '@example.org', 'bounce', now() FROM generate_series(1, $1::int) i`,
      [n],
    );
    const list = await cached({ checkTimeoutMs: 5_000, url: db!.url });
    await eventually(() => list.size() === n, { what: 'the copy loaded' });
    const all = Array.from({ length: n }, (_, i) => `u${i + 1}@example.org`);
    let missed = 0;
    let polling = true;
    const poll = async () => {
      while (polling) {
        if (list.mode() === 'memory') {
          const found = await right(list.suppressed(all));
          if (found.size !== n) missed += 1;
        }
        await new Promise((r) => setImmediate(r));
      }
    };
    const poller = poll();
    // An operator reclassifies the entries; no address leaves the list. Time passes between the
    // updates so that the poller runs while their notifications arrive.
    for (const reason of ['manual', 'complaint', 'manual', 'complaint', 'manual']) {
      await two.client.query(`UPDATE suppressions SET reason = $1`, [reason]);
      await new Promise((r) => setTimeout(r, 300));
    }
    polling = false;
    await poller;
    expect(missed, 'look-ups that found fewer than all addresses suppressed').to.equal(0);
  });
});
