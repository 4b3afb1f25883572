import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';
import type { SqlEmailQueueOptions } from '../../../src/adapters/postgres/sql-email-queue.js';
import type { Disposition, EmailTask } from '../../../src/application/ports/email-task-source.js';
import { emailQueueContract } from '../../contracts/email-queue.contract.js';
import { aRequest, anAttempt } from '../../support/builders.js';
import { RecordingLogger } from '../../support/fakes.js';
import type { TestDatabase } from '../../support/postgres.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import {
  TestSqlEmailQueue,
  emptyQueueTables,
  sqlQueueFixture,
} from '../../support/sql-email-queue.js';
import { eventually, sleep } from '../../support/waiting.js';

interface TaskColumns {
  readonly attempt: number;
  readonly deliveries: number;
  readonly locked_by: string | null;
  readonly due_in_ms: number;
}

const done: Disposition = { _tag: 'Done' };
const never = new Promise<never>(() => undefined);

/** A SqlClient that fails like an unreachable server while `down` is set. */
function switchableClient(inner: SqlClient): { client: SqlClient; down: boolean } {
  const state = { down: false, client: inner };
  const refuse = () =>
    Promise.reject(
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    );
  state.client = {
    query: (sql, params) => (state.down ? refuse() : inner.query(sql, params)),
    transaction: (work) => (state.down ? refuse() : inner.transaction(work)),
  };
  return state;
}

describe('SqlEmailQueue on PostgreSQL', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  // Two pools stand for two processes on one database.
  let one: PgDatabase;
  let two: PgDatabase;

  before(async () => {
    await requirePostgres();
    db = await migratedDatabase('sql_queue');
    one = new PgDatabase({ url: db.url, maxConnections: 5 });
    two = new PgDatabase({ url: db.url, maxConnections: 5 });
  });
  after(async () => {
    await one?.close();
    await two?.close();
    await db?.drop();
  });

  emailQueueContract('SqlEmailQueue', async () => {
    const logger = new RecordingLogger();
    return { ...(await sqlQueueFixture(one.client, { logger })), logger };
  });

  describe('beyond the contract', () => {
    const started: TestSqlEmailQueue[] = [];
    const open = (client: SqlClient, options: Partial<SqlEmailQueueOptions> = {}) => {
      const queue = new TestSqlEmailQueue(client, {
        concurrency: 2,
        pollIntervalMs: 50,
        ...options,
      });
      started.push(queue);
      return queue;
    };
    /** Consumes with `decide`, recording each task in the order the handler saw them. */
    const consume = async (
      queue: TestSqlEmailQueue,
      decide: (task: EmailTask, seen: readonly EmailTask[]) => Promise<Disposition> | Disposition,
    ): Promise<EmailTask[]> => {
      const seen: EmailTask[] = [];
      await queue.consume(async (task) => {
        seen.push(task);
        return decide(task, seen);
      });
      return seen;
    };
    const columns = async (): Promise<TaskColumns[]> =>
      one.client.query<TaskColumns>(
        `SELECT attempt, deliveries, locked_by,
                (extract(epoch FROM available_at - now()) * 1000)::int AS due_in_ms
           FROM email_tasks ORDER BY seq`,
      ) as Promise<TaskColumns[]>;

    beforeEach(() => emptyQueueTables(one.client));
    afterEach(async () => {
      await Promise.all(started.splice(0).map((q) => q.stop(0)));
    });

    it('hands each of 200 tasks to exactly one of two workers on two pools', async () => {
      const a = open(one.client, { concurrency: 4 });
      const b = open(two.client, { concurrency: 4 });
      const requests = Array.from({ length: 200 }, () => aRequest());
      for (const result of await Promise.all(requests.map((r) => a.publish(r)()))) {
        expect(result).to.deep.equal(E.right(undefined));
      }
      const handled: Array<{ id: string; by: string }> = [];
      const handler = (by: string) => async (task: EmailTask) => {
        handled.push({ id: task.request.id, by });
        await sleep(5);
        return done;
      };
      await Promise.all([a.consume(handler('a')), b.consume(handler('b'))]);
      await eventually(() => expect(handled).to.have.length(200), { timeoutMs: 15_000 });
      await sleep(300);
      expect(handled).to.have.length(200);
      expect(new Set(handled.map((h) => h.id)).size).to.equal(200);
      expect(handled.filter((h) => h.by === 'a')).to.have.length.above(0);
      expect(handled.filter((h) => h.by === 'b')).to.have.length.above(0);
      expect(await columns()).to.deep.equal([]);
    });

    it('renews the lease while a handler runs longer than it', async () => {
      const a = open(one.client, { leaseMs: 600 });
      const b = open(two.client);
      await a.publish(aRequest())();
      const byA = await consume(a, async () => {
        await sleep(1_500);
        return done;
      });
      await eventually(() => expect(byA).to.have.length(1));
      const byB = await consume(b, () => done);
      await eventually(async () => expect(await columns()).to.deep.equal([]));
      expect(byB).to.deep.equal([]);
    });

    it('gives the task of a crashed worker to another once its lease runs out', async () => {
      const crashing = new PgDatabase({ url: db!.url, maxConnections: 2 });
      const logger = new RecordingLogger();
      const a = open(crashing.client, { leaseMs: 800, logger });
      const b = open(two.client);
      const request = aRequest();
      await a.publish(request)();
      const byA = await consume(a, () => never);
      await eventually(() => expect(byA).to.have.length(1));
      // The process is gone as far as the database can tell: no connection, no renewal.
      await crashing.close();
      const byB = await consume(b, () => done);
      await sleep(250);
      expect(byB, 'taken while the lease still ran').to.deep.equal([]);
      await eventually(() => expect(byB).to.have.length(1), { timeoutMs: 3_000 });
      expect(byB[0]).to.deep.equal({ request, attempt: 1, history: [] });
      await eventually(async () => expect(await columns()).to.deep.equal([]));
      await a.stop(0);
      expect(logger.text()).to.include('Could not release the leases');
    });

    it('releases the leases of unfinished tasks at stop(), so another worker takes them at once', async () => {
      const a = open(one.client, { leaseMs: 30_000 });
      const b = open(two.client);
      const request = aRequest();
      await a.publish(request)();
      const byA = await consume(a, () => never);
      await eventually(() => expect(byA).to.have.length(1));
      expect((await columns())[0]).to.deep.include({
        attempt: 1,
        deliveries: 1,
        locked_by: a.workerName,
      });
      const stopping = Date.now();
      await a.stop(50);
      expect(await columns()).to.have.nested.property('[0].locked_by', null);
      const byB = await consume(b, () => done);
      await eventually(() => expect(byB).to.have.length(1));
      expect(Date.now() - stopping).to.be.below(2_000);
      expect(byB[0]).to.deep.equal({ request, attempt: 1, history: [] });
    });

    it('holds a retry in the table until its due time, for whichever worker runs then', async () => {
      const a = open(one.client, { random: () => 0 });
      const request = aRequest();
      await a.publish(request)();
      let retriedAt = 0;
      const byA = await consume(a, (task) => {
        retriedAt = Date.now();
        return task.attempt === 1
          ? { _tag: 'Retry', attempt: 2, delayMs: 1_500, history: [anAttempt(1)] }
          : done;
      });
      await eventually(async () =>
        expect(await columns()).to.have.nested.property('[0].attempt', 2),
      );
      const [row] = await columns();
      expect(row).to.deep.include({ attempt: 2, locked_by: null });
      expect(row!.due_in_ms).to.be.within(1_000, 1_500);
      expect(await a.pending()()).to.deep.equal(E.right({ ready: 0, scheduled: 1, leased: 0 }));
      await a.stop(1_000);
      expect(byA).to.have.length(1);
      const b = open(two.client);
      const byB = await consume(b, () => done);
      await eventually(() => expect(byB).to.have.length(1), { timeoutMs: 5_000 });
      expect(Date.now() - retriedAt).to.be.at.least(1_450);
      expect(byB[0]).to.deep.equal({ request, attempt: 2, history: [anAttempt(1)] });
    });

    it('keeps a Redeliver in hand, leased, and asks again without spending an attempt', async () => {
      const a = open(one.client, { redeliveryDelayMs: 50 });
      const b = open(two.client);
      await a.publish(aRequest())();
      const rows: TaskColumns[] = [];
      const byA = await consume(a, async (_task, seen): Promise<Disposition> => {
        rows.push(...(await columns()));
        return seen.length < 3 ? { _tag: 'Redeliver', reason: 'the ledger is down' } : done;
      });
      await eventually(() => expect(byA).to.have.length.above(0));
      const byB = await consume(b, () => done);
      await eventually(() => expect(rows).to.have.length(3));
      expect(byA.map((t) => t.attempt)).to.deep.equal([1, 1, 1]);
      expect(rows.map((r) => [r.attempt, r.deliveries, r.locked_by])).to.deep.equal(
        Array.from({ length: 3 }, () => [1, 1, a.workerName]),
      );
      await eventually(async () => expect(await columns()).to.deep.equal([]));
      expect(byB).to.deep.equal([]);
    });

    it('ends a Redeliver pause at stop() and gives the task back due now', async () => {
      const a = open(one.client, { redeliveryDelayMs: 10_000 });
      await a.publish(aRequest())();
      const byA = await consume(a, () => ({ _tag: 'Redeliver', reason: 'the ledger is down' }));
      await eventually(() => expect(byA).to.have.length(1));
      const stopping = Date.now();
      await a.stop(20_000);
      expect(Date.now() - stopping).to.be.below(1_000);
      expect(await a.pending()()).to.deep.equal(E.right({ ready: 1, scheduled: 0, leased: 0 }));
      expect(await columns()).to.have.nested.property('[0].attempt', 1);
    });

    it('counts ready, scheduled and leased tasks with pending()', async () => {
      const a = open(one.client, { concurrency: 1 });
      for (let i = 0; i < 3; i += 1) await a.publish(aRequest())();
      expect(await a.pending()()).to.deep.equal(E.right({ ready: 3, scheduled: 0, leased: 0 }));
      const byA = await consume(a, (_task, seen) =>
        seen.length === 1 ? { _tag: 'Retry', attempt: 2, delayMs: 60_000, history: [] } : never,
      );
      await eventually(() => expect(byA).to.have.length(2));
      expect(await a.pending()()).to.deep.equal(E.right({ ready: 1, scheduled: 1, leased: 1 }));
      await a.stop(0);
      expect(await a.pending()()).to.deep.equal(E.right({ ready: 2, scheduled: 1, leased: 0 }));
    });

    it('answers QueueUnavailable while the database is away, and resumes by itself', async () => {
      const db = switchableClient(one.client);
      const logger = new RecordingLogger();
      const a = open(db.client, { logger, pollIntervalMs: 50, maxBackoffMs: 200 });
      const before = aRequest();
      await a.publish(before)();
      db.down = true;
      const seen = await consume(a, () => done);
      const refused = await a.publish(aRequest())();
      expect(refused).to.deep.equal(
        E.left({
          _tag: 'QueueUnavailable',
          reason: 'the database is not reachable (ECONNREFUSED)',
        }),
      );
      expect(E.isLeft(await a.list()())).to.equal(true);
      expect(E.isLeft(await a.pending()())).to.equal(true);
      await sleep(800);
      const warnings = logger.lines.filter((l) => l.message.includes('cannot reach its database'));
      expect(warnings).to.have.length(1);
      expect(seen).to.deep.equal([]);
      db.down = false;
      await eventually(() => expect(seen.map((t) => t.request.id)).to.deep.equal([before.id]));
      expect(logger.text()).to.include('reaches its database again');
    });

    it('keeps an outcome it could not write and writes it when the database is back', async () => {
      const db = switchableClient(one.client);
      const a = open(db.client, { pollIntervalMs: 50, maxBackoffMs: 100 });
      await a.publish(aRequest())();
      const seen = await consume(a, () => {
        db.down = true;
        setTimeout(() => (db.down = false), 500);
        return done;
      });
      await eventually(() => expect(seen).to.have.length(1));
      await eventually(async () => expect(await columns()).to.deep.equal([]));
      await sleep(200);
      expect(seen).to.have.length(1);
    });

    it('refuses a second consumer at once: that would be a wiring bug', async () => {
      const a = open(one.client);
      await a.consume(async () => done);
      const second = await a
        .consume(async () => done)
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(second)
        .to.be.an('error')
        .with.property('message')
        .that.matches(/already consuming/);
    });
  });
});
