// SqlWebhookQueue on both engines it runs on: the embedded PGlite of `email dev`, and a real
// PostgreSQL database shared by several processes. The same scenarios run on each.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { migrateSql } from '../../../src/adapters/postgres/migrate.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import { PgliteDatabase } from '../../../src/adapters/postgres/pglite-database.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';
import type { SqlWebhookQueueOptions } from '../../../src/adapters/postgres/sql-webhook-queue.js';
import { SqlWebhookQueue } from '../../../src/adapters/postgres/sql-webhook-queue.js';
import type { WebhookJob, WebhookWork } from '../../../src/application/ports/webhook-queue.js';
import { RecordingLogger } from '../../support/fakes.js';
import type { TestDatabase } from '../../support/postgres.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import { eventually, sleep } from '../../support/waiting.js';

/** A row of `webhook_jobs` as a test reads it: which attempt waits, taken or not, due when. */
interface JobRow {
  readonly delivery_id: string;
  readonly attempt: number;
  readonly leased: boolean;
  readonly due_in_ms: number;
}

/** What the table holds now, ordered by delivery, so tests can compare it whole. */
const jobRows = (client: SqlClient): Promise<readonly JobRow[]> =>
  client.query<JobRow>(
    `SELECT delivery_id, attempt, lease_until IS NOT NULL AS leased,
            (extract(epoch FROM due_at - now()) * 1000)::int AS due_in_ms
       FROM webhook_jobs ORDER BY delivery_id`,
  );

/** A promise with its resolve at hand: a gate a test opens when it chooses. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** `promise`, or a rejection naming `what` after `ms`: waits with a deadline, never forever. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `promise` is still pending after `ms`: for "stop() is still waiting". */
async function stillPendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const pending = Symbol('pending');
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(
      () => 'settled',
      () => 'settled',
    ),
    new Promise<symbol>((resolve) => (timer = setTimeout(() => resolve(pending), ms))),
  ]);
  clearTimeout(timer);
  return outcome === pending;
}

/** A job the handler was given, when, and by which queue instance. */
type Handled = WebhookJob & { readonly at: number; readonly by: string };

/** The two database clients a scenario uses: two processes on one database, where there are. */
interface Engines {
  readonly client: SqlClient;
  readonly peer: SqlClient;
}

/**
 * Registers the scenarios on the clients `engines()` gives when a test runs (after the caller's
 * `before` opened them), so that PGlite and PostgreSQL run exactly the same tests.
 */
function webhookQueueScenarios(engine: string, engines: () => Engines): void {
  describe(`SqlWebhookQueue on ${engine}`, function () {
    this.timeout(30_000);
    const started: SqlWebhookQueue[] = [];
    let client: SqlClient;
    let peer: SqlClient;

    /** A queue polled fast, stopped after the test; `name` tells instances apart in `handled`. */
    const open = (on: SqlClient, options: Partial<SqlWebhookQueueOptions> = {}) => {
      const queue = new SqlWebhookQueue(on, {
        concurrency: 2,
        pollIntervalMs: 50,
        logger: new RecordingLogger(),
        ...options,
      });
      started.push(queue);
      return queue;
    };

    /** Consumes jobs with `decide`, recording each in the order the handler saw them. */
    const consume = async (
      queue: SqlWebhookQueue,
      decide: (job: WebhookJob, handled: readonly Handled[]) => Promise<WebhookWork> | WebhookWork,
      by = 'a',
      handled: Handled[] = [],
    ): Promise<Handled[]> => {
      await queue.consume({
        job: async (job) => {
          handled.push({ ...job, at: Date.now(), by });
          return decide(job, handled);
        },
        event: () => Promise.reject(new Error('SqlWebhookQueue hands over no events')),
      });
      return handled;
    };

    /** Publishes and fails the test unless the queue holds the job (Right). */
    const publishOk = async (queue: SqlWebhookQueue, job: WebhookJob, delayMs = 0) =>
      expect(await queue.publish(job, delayMs)()).to.deep.equal(E.right(undefined));

    beforeEach(async () => {
      ({ client, peer } = engines());
      await client.query('DELETE FROM webhook_jobs');
    });
    afterEach(async () => {
      await Promise.all(started.splice(0).map((q) => q.stop(0)));
      await client.query('DELETE FROM webhook_jobs');
    });

    it('hands a job published with delay 0 to the handler, and removes it once done', async () => {
      const a = open(client);
      const handled = await consume(a, () => 'done');
      await publishOk(a, { deliveryId: 'wd_now', attempt: 1 });
      await eventually(() => expect(handled).to.have.length(1));
      expect(handled[0]).to.deep.include({ deliveryId: 'wd_now', attempt: 1 });
      await eventually(async () => expect(await jobRows(client)).to.deep.equal([]));
    });

    it('holds a job published with delay 300 ms in the table until it is due', async () => {
      const a = open(client);
      const handled = await consume(a, () => 'done');
      const published = Date.now();
      await publishOk(a, { deliveryId: 'wd_later', attempt: 2 }, 300);
      const [row] = await jobRows(client);
      expect(row).to.deep.include({ delivery_id: 'wd_later', attempt: 2, leased: false });
      await eventually(() => expect(handled).to.have.length(1), { timeoutMs: 5_000 });
      expect(handled[0]).to.deep.include({ deliveryId: 'wd_later', attempt: 2 });
      expect(handled[0]!.at - published).to.be.at.least(300);
    });

    it("keeps the next attempt queued from inside the handler, and drops the handled attempt's row", async () => {
      const a = open(client);
      // What DeliverWebhook does on a failed attempt: queue the next one, then answer done.
      const handled = await consume(a, async (job): Promise<WebhookWork> => {
        await publishOk(a, { deliveryId: job.deliveryId, attempt: job.attempt + 1 }, 60_000);
        return 'done';
      });
      await publishOk(a, { deliveryId: 'wd_retry', attempt: 1 });
      await eventually(() => expect(handled).to.have.length(1));
      await a.stop(5_000); // waits for the run, its removal of attempt 1 included
      const rows = await jobRows(client);
      expect(rows.map(({ due_in_ms: _, ...row }) => row)).to.deep.equal([
        { delivery_id: 'wd_retry', attempt: 2, leased: false },
      ]);
      expect(rows[0]!.due_in_ms).to.be.within(50_000, 60_000);
      expect(handled.map((j) => j.attempt)).to.deep.equal([1]);
    });

    it('hands over the next attempt queued from the handler when it falls due', async () => {
      const a = open(client);
      const handled = await consume(a, async (job): Promise<WebhookWork> => {
        if (job.attempt === 1) await publishOk(a, { deliveryId: job.deliveryId, attempt: 2 }, 0);
        return 'done';
      });
      await publishOk(a, { deliveryId: 'wd_chain', attempt: 1 });
      await eventually(() => expect(handled).to.have.length(2));
      expect(handled.map((j) => [j.deliveryId, j.attempt])).to.deep.equal([
        ['wd_chain', 1],
        ['wd_chain', 2],
      ]);
      await eventually(async () => expect(await jobRows(client)).to.deep.equal([]));
    });

    it('does not let an older attempt replace a newer one', async () => {
      const a = open(client);
      await publishOk(a, { deliveryId: 'wd_order', attempt: 3 }, 60_000);
      await publishOk(a, { deliveryId: 'wd_order', attempt: 2 }, 0);
      const rows = await jobRows(client);
      expect(rows.map((r) => [r.delivery_id, r.attempt])).to.deep.equal([['wd_order', 3]]);
      expect(rows[0]!.due_in_ms).to.be.above(50_000);
    });

    it("calls the handler again after a 'redeliver', then removes the job", async () => {
      const a = open(client);
      const handled = await consume(a, (_job, seen) => (seen.length === 1 ? 'redeliver' : 'done'));
      await publishOk(a, { deliveryId: 'wd_again', attempt: 1 });
      await eventually(() => expect(handled).to.have.length(2));
      expect(handled.map((j) => [j.deliveryId, j.attempt])).to.deep.equal([
        ['wd_again', 1],
        ['wd_again', 1],
      ]);
      await eventually(async () => expect(await jobRows(client)).to.deep.equal([]));
      await a.stop(5_000);
      expect(handled).to.have.length(2);
    });

    it("keeps a job in hand through 'redeliver' pauses longer than its lease", async () => {
      // Two instances polling fast: a lease run out while the job waits for its next try
      // would let one of them take it a second time, at the same time.
      const a = open(client, { leaseMs: 250 });
      const b = open(peer, { leaseMs: 250 });
      let active = 0;
      let overlaps = 0;
      const decide = async (_job: WebhookJob, seen: readonly Handled[]): Promise<WebhookWork> => {
        active += 1;
        if (active > 1) overlaps += 1;
        await sleep(20);
        active -= 1;
        // Pauses of 100 and 200 ms, then 400: about 700 ms in hand, well past the lease.
        return seen.length < 4 ? 'redeliver' : 'done';
      };
      const handled: Handled[] = [];
      await consume(a, decide, 'a', handled);
      await consume(b, decide, 'b', handled);
      await publishOk(a, { deliveryId: 'wd_held', attempt: 1 });
      await eventually(() => expect(handled).to.have.length(4), { timeoutMs: 5_000 });
      await eventually(async () => expect(await jobRows(client)).to.deep.equal([]));
      await Promise.all([a.stop(5_000), b.stop(5_000)]);
      expect(overlaps, 'handled twice at the same time').to.equal(0);
      expect(handled).to.have.length(4);
      expect(new Set(handled.map((h) => h.by)).size, 'taken by a second instance').to.equal(1);
    });

    it('shares jobs between two instances without handling one twice at once', async () => {
      const a = open(client, { concurrency: 4 });
      const b = open(peer, { concurrency: 4 });
      const jobs = Array.from({ length: 60 }, (_, i) => ({ deliveryId: `wd_${i}`, attempt: 1 }));
      for (const job of jobs) await publishOk(a, job);
      const active = new Set<string>();
      const twiceAtOnce: string[] = [];
      const decide = async (job: WebhookJob): Promise<WebhookWork> => {
        if (active.has(job.deliveryId)) twiceAtOnce.push(job.deliveryId);
        active.add(job.deliveryId);
        await sleep(10); // stands for the POST
        active.delete(job.deliveryId);
        return 'done';
      };
      const handled: Handled[] = [];
      await Promise.all([consume(a, decide, 'a', handled), consume(b, decide, 'b', handled)]);
      await eventually(() => expect(handled).to.have.length(60), { timeoutMs: 15_000 });
      await eventually(async () => expect(await jobRows(client)).to.deep.equal([]));
      await Promise.all([a.stop(5_000), b.stop(5_000)]);
      expect(twiceAtOnce).to.deep.equal([]);
      expect(handled).to.have.length(60);
      expect(new Set(handled.map((h) => h.deliveryId)).size).to.equal(60);
      expect(handled.filter((h) => h.by === 'a')).to.have.length.above(0);
      expect(handled.filter((h) => h.by === 'b')).to.have.length.above(0);
    });

    it('waits at stop() for a job in flight, and removes it once done', async () => {
      const a = open(client);
      const release = gate<WebhookWork>();
      const order: string[] = [];
      const handled = await consume(a, async () => {
        const work = await release.promise;
        order.push('handler done');
        return work;
      });
      await publishOk(a, { deliveryId: 'wd_slow', attempt: 1 });
      await eventually(() => expect(handled).to.have.length(1));
      const stopping = a.stop(10_000).then(() => order.push('stopped'));
      expect(await stillPendingAfter(stopping, 200), 'stop() returned before the job').to.equal(
        true,
      );
      release.open('done');
      await within(stopping, 5_000, 'stop() after the handler finished');
      expect(order).to.deep.equal(['handler done', 'stopped']);
      expect(await jobRows(client)).to.deep.equal([]);
    });

    it('takes nothing new after stop()', async () => {
      const a = open(client);
      const handled = await consume(a, () => 'done');
      await a.stop(0);
      await publishOk(a, { deliveryId: 'wd_after_stop', attempt: 1 });
      // Another instance takes it: by then the stopped one would have had every chance to.
      const b = open(peer);
      const byB = await consume(b, () => 'done', 'b');
      await eventually(() => expect(byB).to.have.length(1));
      expect(handled).to.deep.equal([]);
    });

    it('gives the job of a crashed instance to another once its lease has run out', async () => {
      // The crashed instance: its handler never returns, and it takes nothing else.
      const crashed = open(client, { concurrency: 1, leaseMs: 300 });
      const hang = gate<WebhookWork>();
      const byCrashed = await consume(crashed, () => hang.promise, 'crashed');
      await publishOk(crashed, { deliveryId: 'wd_orphan', attempt: 5 });
      await eventually(() => expect(byCrashed).to.have.length(1));
      expect(await jobRows(client)).to.have.nested.property('[0].leased', true);
      const b = open(peer);
      const byB = await consume(b, () => 'done', 'b');
      await eventually(() => expect(byB).to.have.length(1), { timeoutMs: 5_000 });
      expect(byB[0]).to.deep.include({ deliveryId: 'wd_orphan', attempt: 5 });
      expect(byB[0]!.at - byCrashed[0]!.at, 'taken while the lease still ran').to.be.at.least(250);
      await eventually(async () => expect(await jobRows(client)).to.deep.equal([]));
    });

    it('refuses a second consume() on one queue: that would be a wiring bug', async () => {
      const a = open(client);
      await consume(a, () => 'done');
      expect(() => a.consume({ job: async () => 'done', event: async () => 'done' })).to.throw(
        /already consuming/,
      );
    });
  });
}

describe('SqlWebhookQueue', () => {
  describe('on PGlite', function () {
    // One engine for the file: a new in-memory PGlite runs initdb (seconds).
    this.timeout(60_000);
    let db: PgliteDatabase | undefined;
    before(async () => {
      db = await PgliteDatabase.open({ dataDir: 'memory' });
      await migrateSql(db, new RecordingLogger());
    });
    after(() => db?.close());
    // One engine is one process: the second instance runs over the same client.
    webhookQueueScenarios('PGlite', () => ({ client: db!.client, peer: db!.client }));
  });

  describe('on PostgreSQL', function () {
    this.timeout(60_000);
    let db: TestDatabase | undefined;
    // Two pools stand for two processes on one database.
    let one: PgDatabase | undefined;
    let two: PgDatabase | undefined;
    before(async () => {
      await requirePostgres();
      db = await migratedDatabase('webhook_queue');
      one = new PgDatabase({ url: db.url, maxConnections: 5 });
      two = new PgDatabase({ url: db.url, maxConnections: 5 });
    });
    after(async () => {
      await one?.close();
      await two?.close();
      await db?.drop();
    });
    webhookQueueScenarios('PostgreSQL', () => ({ client: one!.client, peer: two!.client }));
  });
});
