import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { InvalidCursor, StoreUnavailable } from '../../../src/application/ports/email-log.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';
import { SqlApiKeyStore } from '../../../src/adapters/postgres/sql-api-key-store.js';
import { SqlAttachmentStore } from '../../../src/adapters/postgres/sql-attachment-store.js';
import { SqlDeliveryLedger } from '../../../src/adapters/postgres/sql-delivery-ledger.js';
import { SqlEmailLog } from '../../../src/adapters/postgres/sql-email-log.js';
import { SqlIdempotencyStore } from '../../../src/adapters/postgres/sql-idempotency-store.js';
import { SqlOperatorStore } from '../../../src/adapters/postgres/sql-operator-store.js';
import { SqlScheduledEmails } from '../../../src/adapters/postgres/sql-scheduled-emails.js';
import { SqlSessionStore } from '../../../src/adapters/postgres/sql-session-store.js';
import { SqlSuppressionList } from '../../../src/adapters/postgres/sql-suppression-list.js';
import { SqlWebhookDeliveries } from '../../../src/adapters/postgres/sql-webhook-deliveries.js';
import { SqlWebhookEndpoints } from '../../../src/adapters/postgres/sql-webhook-endpoints.js';
import { SqlWebhookTokens } from '../../../src/adapters/postgres/sql-webhook-tokens.js';
import { sqlRateLimiter } from '../../../src/adapters/ratelimit/flexible-rate-limiter.js';
import type { KeyNameTaken } from '../../../src/application/ports/api-key-store.js';
import type { OperatorExists } from '../../../src/application/ports/operator-store.js';
import { right } from '../../contracts/email-log.contract.js';
import { anApiKey } from '../../contracts/api-key-store.contract.js';
import { aSession, anOperator } from '../../contracts/operator-store.contract.js';
import { aWebhookDelivery } from '../../contracts/webhook-deliveries.contract.js';
import { aWebhookEndpoint } from '../../contracts/webhook-endpoints.contract.js';
import type { TestDatabase } from '../../support/postgres.js';
import { aRequest, anEvent, anId, at, later } from '../../support/builders.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import { batchedWritesSuite } from '../../support/batched-writes.js';
import { emptyStoreTables, sqlStoreContracts } from '../../support/sql-stores.js';
import { recording } from '../../support/recording-client.js';
import { eventually } from '../../support/waiting.js';

describe('The PostgreSQL stores', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  // Two pools stand for two processes: each store's `peer` is built on the second one.
  let one: PgDatabase;
  let two: PgDatabase;

  before(async () => {
    await requirePostgres();
    db = await migratedDatabase('stores');
    one = new PgDatabase({ url: db.url, maxConnections: 5 });
    two = new PgDatabase({ url: db.url, maxConnections: 5 });
  });
  after(async () => {
    await one?.close();
    await two?.close();
    await db?.drop();
  });

  const clean = () => emptyStoreTables(one.client);
  sqlStoreContracts('', () => ({ client: one.client, peer: two.client }));
  batchedWritesSuite(' on PostgreSQL', () => one.client);

  describe('SqlEmailLog on PostgreSQL', () => {
    beforeEach(clean);

    it('records a new email in one round trip', async () => {
      const { client, statements } = recording(one.client);
      await right(new SqlEmailLog(client).record(aRequest()));
      expect(statements).to.have.length(1);
    });

    it('folds onto a current basis in one statement, and reads again after a lost race', async () => {
      const { client, statements } = recording(one.client);
      const log = new SqlEmailLog(client);
      const peer = new SqlEmailLog(two.client);
      const r = aRequest();
      await right(log.record(r));
      const sending = await right(log.apply(anEvent.sending(r, { attempt: 1, at: at(1) })));
      statements.length = 0;
      const retrying = await right(
        log.apply(anEvent.retried(r, { attempt: 1, at: at(2) }), sending),
      );
      expect(statements.map((st) => st.sql.trim().split(/\s+/)[0])).to.deep.equal(['UPDATE']);
      // Another process writes in between: the write on the old basis finds nothing, and the
      // fold is made again on what the other process wrote.
      await right(peer.apply(anEvent.sending(r, { attempt: 2, at: at(62) })));
      statements.length = 0;
      const event = anEvent.failed(r, { attempt: 2, at: at(63) });
      const failed = await right(log.apply(event, retrying));
      expect(statements.map((st) => st.sql.trim().split(/\s+/)[0])).to.deep.equal([
        'UPDATE',
        'SELECT',
        'UPDATE',
      ]);
      expect(failed.status.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
        [1, 'transient'],
        [2, 'permanent'],
      ]);
      expect(await right(log.get(r.id))).to.deep.equal(O.some(failed.status));
    });

    it("folds concurrent callers' events in one read and one write", async () => {
      const { client, statements } = recording(one.client);
      const log = new SqlEmailLog(client);
      const requests = [aRequest(), aRequest(), aRequest()];
      for (const r of requests) await right(log.record(r));
      statements.length = 0;
      const applied = await Promise.all(
        requests.map((r) => right(log.apply(anEvent.sending(r, { attempt: 1, at: at(1) })))),
      );
      expect(applied.map((a) => a.status.status)).to.deep.equal(['sending', 'sending', 'sending']);
      expect(statements).to.have.length(2);
      for (const r of requests) {
        const stored = O.toUndefined(await right(log.get(r.id)));
        expect(stored?.status).to.equal('sending');
      }
    });

    it('fails every caller of a batch the database refused, and writes none of it', async () => {
      const refusing: SqlClient = {
        query: async (sql, params) => {
          if (/^\s*UPDATE emails AS e/.test(sql))
            throw Object.assign(new Error('x'), { code: '40P01' });
          return one.client.query(sql, params);
        },
        transaction: (work) => one.client.transaction(work),
      };
      const log = new SqlEmailLog(refusing);
      const requests = [aRequest(), aRequest()];
      for (const r of requests) await right(log.record(r));
      const results = await Promise.all(
        requests.map((r) => log.apply(anEvent.sending(r, { attempt: 1, at: at(1) }))()),
      );
      expect(results.map((x) => x._tag)).to.deep.equal(['Left', 'Left']);
      for (const r of requests) {
        expect(O.toUndefined(await right(log.get(r.id)))?.status).to.equal('queued');
      }
    });

    it('keeps the columns it filters on in step with the folded state', async () => {
      const log = new SqlEmailLog(one.client);
      const r = aRequest({ tags: ['a', 'b'], to: ['Ada <ADA@example.org>', 'bob@example.com'] });
      await right(log.record(r));
      await right(log.apply(anEvent.sending(r, { at: at(1) })));
      const rows = await one.client.query<Record<string, unknown>>(
        'SELECT status, recipients, tags, version, created_at FROM emails WHERE id = $1',
        [r.id],
      );
      expect(rows[0]).to.deep.include({
        status: 'sending',
        recipients: 'Ada <ADA@example.org>\nbob@example.com',
        tags: ['a', 'b'],
        version: 2,
      });
      expect((rows[0]!.created_at as Date).toISOString()).to.equal(r.requestedAt);
    });

    it('answers its list queries from the indexes', async () => {
      const { client, statements } = recording(one.client);
      const log = new SqlEmailLog(client);
      for (let i = 0; i < 5; i += 1) await right(log.record(aRequest({ tags: ['t'] })));
      const cursor = (await right(log.list({ limit: 2 }))).nextCursor;
      statements.length = 0;
      await right(log.list({ limit: 2, ...(cursor !== undefined ? { cursor } : {}) }));
      await right(log.list({ limit: 2, status: 'queued' }));
      await right(log.list({ limit: 2, tag: 't' }));
      await right(log.purgeOlderThan(new Date(at(1)), 2));
      // The purge takes only final emails, oldest first: the status index serves it as it
      // serves the filter, or, with as many final statuses as there are, the time index (which
      // the planner may price lower on a table this small).
      const expected = ['emails_newest', 'emails_status_newest', 'emails_tags', 'emails_'];
      // On five rows a sequential scan is cheapest; forbidding it shows which index can serve.
      // For the tag, plain index scans go too: emails_newest plus a filter could otherwise win.
      const plans: string[] = [];
      for (const [i, s] of statements.entries()) {
        const plan = await one.client.transaction(async (tx) => {
          await tx.query('SET LOCAL enable_seqscan = off');
          if (expected[i] === 'emails_tags') await tx.query('SET LOCAL enable_indexscan = off');
          return tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.sql}`, s.params);
        });
        plans.push(plan.map((line) => line['QUERY PLAN']).join('\n'));
      }
      expect(plans).to.have.length(expected.length);
      plans.forEach((plan, i) => expect(plan).to.include(expected[i]!).and.not.include('Seq Scan'));
      expect(plans[3]).to.match(/Index Scan (using|on) emails_(status_)?newest/);
    });

    it('finds unconfirmed emails in the partial index of emails awaiting a report', async () => {
      const { client, statements } = recording(one.client);
      const log = new SqlEmailLog(client);
      for (let i = 0; i < 5; i += 1) {
        const r = aRequest();
        await right(log.record(r));
        await right(log.apply(anEvent.sent(r, { at: at(i), transport: 'mailgun' })));
      }
      statements.length = 0;
      expect(await right(log.unconfirmed('mailgun', new Date(at(3)), 2))).to.have.length(2);
      expect(statements).to.have.length(1);
      const s = statements[0]!;
      const plan = await one.client.transaction(async (tx) => {
        await tx.query('SET LOCAL enable_seqscan = off');
        return tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.sql}`, s.params);
      });
      const text = plan.map((line) => line['QUERY PLAN']).join('\n');
      expect(text).to.include('emails_awaiting_report').and.not.include('Seq Scan');
    });
  });

  describe('SqlDeliveryLedger on PostgreSQL', () => {
    beforeEach(clean);

    it("claims one turn's emails in one statement, each answered its own outcome", async () => {
      const { client, statements } = recording(one.client);
      const ledger = new SqlDeliveryLedger(client);
      const [fresh, sent, held] = [anId(), anId(), anId()];
      const now = new Date(at(1));
      await right(ledger.record(sent, '<s@mg>', now));
      await right(new SqlDeliveryLedger(two.client).claim(held, 'worker-b', now, 15_000));
      statements.length = 0;
      const claims = await Promise.all(
        [fresh, sent, held].map((id) => right(ledger.claim(id, 'worker-a', now, 15_000))),
      );
      expect(statements).to.have.length(1);
      expect(claims.map((c) => c._tag)).to.deep.equal(['Claimed', 'AlreadySent', 'Busy']);
      expect(claims[2]).to.include({ holder: 'worker-b' });
    });

    it("records one turn's sends in one statement; a second record of an id keeps the first", async () => {
      const { client, statements } = recording(one.client);
      const ledger = new SqlDeliveryLedger(client);
      const [a, b] = [anId(), anId()];
      await Promise.all([
        right(ledger.record(a, '<a-1@mg>', new Date(at(1)))),
        right(ledger.record(b, '<b-1@mg>', new Date(at(1)))),
        right(ledger.record(a, '<a-2@mg>', new Date(at(2)))),
      ]);
      // The same id twice goes into a statement of its own: one statement may not touch a row twice.
      expect(statements).to.have.length(2);
      expect(await right(ledger.sent(a))).to.be.oneOf(['<a-1@mg>', '<a-2@mg>']);
      expect(await right(ledger.sent(b))).to.equal('<b-1@mg>');
    });
  });

  describe('SqlWebhookEndpoints on PostgreSQL', () => {
    beforeEach(clean);

    it("answers one turn's lookups in one statement, each with its own type's endpoints", async () => {
      const { client, statements } = recording(one.client);
      const endpoints = new SqlWebhookEndpoints(client);
      const all = aWebhookEndpoint(1);
      const sent = aWebhookEndpoint(2, { events: ['email.sent'] });
      const failed = aWebhookEndpoint(3, { events: ['email.failed'] });
      for (const e of [all, sent, failed]) await right(endpoints.add(e));
      statements.length = 0;
      const found = await Promise.all(
        (['email.sent', 'email.failed', 'email.sending'] as const).map((type) =>
          right(endpoints.subscribedTo(type)),
        ),
      );
      expect(statements).to.have.length(1);
      expect(found.map((list) => list.map((e) => e.id))).to.deep.equal([
        [all.id, sent.id],
        [all.id, failed.id],
        [all.id],
      ]);
    });
  });

  describe('SqlSuppressionList on PostgreSQL', () => {
    beforeEach(clean);

    it('pages newest first from its index, never a scan of the table', async () => {
      const { client, statements } = recording(one.client);
      const list = new SqlSuppressionList(client);
      for (let i = 0; i < 5; i += 1) {
        await right(
          list.add({ address: `n${i}@example.org`, reason: 'manual', createdAt: later(i) }),
        );
      }
      const { nextCursor } = await right(list.list(2));
      statements.length = 0;
      await right(list.list(2));
      await right(list.list(2, nextCursor));
      expect(statements).to.have.length(2);
      for (const s of statements) {
        const plan = await one.client.transaction(async (tx) => {
          await tx.query('SET LOCAL enable_seqscan = off');
          return tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.sql}`, s.params);
        });
        const text = plan.map((line) => line['QUERY PLAN']).join('\n');
        expect(text).to.include('suppressions_newest').and.not.include('Sort');
      }
    });
  });

  // Two servers really at once, held mid-race by a transaction on the second pool: what the
  // embedded engine (one connection, one statement at a time) cannot show.
  describe('SqlAttachmentStore on PostgreSQL, racing the orphan purge', () => {
    beforeEach(clean);
    // Stored at T0, purged with a cutoff a minute later.
    const store = () => new SqlAttachmentStore(one.client, { now: () => later(0) });
    const cutoff = later(60_000);
    const bytes = Uint8Array.from([7, 7, 7]);
    /** Bytes put by an email that was never recorded: an orphan by the cutoff. */
    const orphan = async (): Promise<string> => (await right(store().put(anId(), bytes))).digest;
    const stored = async (digest: string) =>
      (await one.client.query('SELECT 1 FROM attachments WHERE digest = $1', [digest])).length;

    it('skips bytes a put is linking right now, and keeps them', async () => {
      const digest = await orphan();
      const purged = await two.client.transaction(async (tx) => {
        // What a put does, left uncommitted: its link holds the bytes' row (FOR KEY SHARE).
        await tx.query(
          'INSERT INTO email_attachments (email_id, digest, linked_at) VALUES ($1, $2, $3)',
          [anId(), digest, later(120_000)],
        );
        return right(store().purgeOrphans(cutoff));
      });
      expect(purged).to.equal(0);
      expect(await stored(digest)).to.equal(1);
      expect(await right(store().get(digest))).to.deep.equal(O.some(bytes));
    });

    it('stores the bytes again for a put that waited on a purge deleting them', async () => {
      const digest = await orphan();
      let put: Promise<unknown> | undefined;
      await two.client.transaction(async (tx) => {
        // What a purge does, left uncommitted while a put of the same bytes comes in.
        await tx.query('DELETE FROM email_attachments WHERE digest = $1', [digest]);
        await tx.query('DELETE FROM attachments WHERE digest = $1', [digest]);
        put = right(store().put(anId(), bytes));
        await eventually(
          async () =>
            (
              await one.client.query(
                `SELECT 1 FROM pg_stat_activity
                  WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO attachments%'`,
              )
            ).length > 0,
          { what: 'the put to wait on the purge' },
        );
      });
      expect(await put).to.deep.equal({ digest, size: 3 });
      expect(await right(store().get(digest))).to.deep.equal(O.some(bytes));
    });
  });

  describe('when the database cannot be reached', () => {
    let dead: PgDatabase;
    const url = 'postgres://postgres:s3cret-pw@127.0.0.1:1/nowhere';
    before(() => {
      dead = new PgDatabase({ url, connectTimeoutMs: 500, queryTimeoutMs: 500 });
    });
    after(() => dead.close());

    it('answers StoreUnavailable from every method, never a rejection, never the URL', async () => {
      const request = aRequest();
      const id = request.id;
      const log = new SqlEmailLog(dead.client);
      const keys = new SqlIdempotencyStore(dead.client);
      const ledger = new SqlDeliveryLedger(dead.client);
      const apiKeys = new SqlApiKeyStore(dead.client);
      const operators = new SqlOperatorStore(dead.client);
      const sessions = new SqlSessionStore(dead.client);
      const attachments = new SqlAttachmentStore(dead.client, { now: () => new Date() });
      const schedule = new SqlScheduledEmails(dead.client);
      const suppressions = new SqlSuppressionList(dead.client);
      const webhookTokens = new SqlWebhookTokens(dead.client);
      const webhookEndpoints = new SqlWebhookEndpoints(dead.client);
      const webhookDeliveries = new SqlWebhookDeliveries(dead.client);
      const limiter = sqlRateLimiter(dead.client, { keyPrefix: 'api', limit: 5, windowMs: 1000 });
      const now = new Date();
      const calls: TaskEither<
        StoreUnavailable | InvalidCursor | KeyNameTaken | OperatorExists,
        unknown
      >[] = [
        log.record(aRequest()),
        log.forget(id),
        log.apply(anEvent.sending(request, { at: at(1) })),
        log.get(id),
        log.request(id),
        log.list({ limit: 10 }),
        log.purgeOlderThan(now, 10),
        keys.claim('k', 'p', id, now),
        keys.complete('k'),
        keys.release('k'),
        keys.purgeOlderThan(now),
        ledger.sent(id),
        ledger.claim(id, 'worker-a', now, 1000),
        ledger.record(id, 'p', now),
        ledger.release(id, 'worker-a'),
        ledger.purgeOlderThan(now),
        apiKeys.create(anApiKey()),
        apiKeys.find('k'),
        apiKeys.list(),
        apiKeys.revoke('ci', now),
        apiKeys.touch('k', now),
        apiKeys.noteAddress('k', '203.0.113.7', now),
        operators.add(anOperator()),
        operators.find('ada'),
        operators.list(),
        operators.remove('ada'),
        sessions.create(aSession('ada')),
        sessions.find('d'),
        sessions.touch('d', now),
        sessions.remove('d'),
        sessions.purgeIdleSince(now),
        attachments.put(id, new Uint8Array([1, 2, 3])),
        attachments.get('d'),
        attachments.purgeOrphans(now),
        schedule.hold(id, now),
        schedule.takeDue(now, 1000, 10),
        schedule.released(id),
        schedule.cancel(id, now),
        schedule.nextDue(),
        suppressions.add({ address: 'ada@example.org', reason: 'manual', createdAt: now }),
        suppressions.remove('ada@example.org'),
        suppressions.suppressed(['ada@example.org']),
        suppressions.list(50),
        webhookTokens.remember('token', now),
        webhookTokens.forget('token'),
        webhookEndpoints.add(aWebhookEndpoint()),
        webhookEndpoints.remove('we_x'),
        webhookEndpoints.list(),
        webhookEndpoints.subscribedTo('email.sent'),
        webhookEndpoints.get('we_x'),
        webhookDeliveries.create([aWebhookDelivery()]),
        webhookDeliveries.get('msg_x'),
        webhookDeliveries.recordAttempt(
          'msg_x',
          { attempt: 1, at: now, durationMs: 1, statusCode: 200 },
          { state: 'delivered' },
        ),
        webhookDeliveries.forEmail(id),
        webhookDeliveries.recent(10),
        webhookDeliveries.oldestPending(),
        webhookDeliveries.overdue(now, 10),
        webhookDeliveries.purgeOlderThan(now, 10),
        limiter.consume('client'),
        limiter.peek('client'),
      ];
      const started = Date.now();
      const results = await Promise.all(calls.map((call) => call()));
      expect(Date.now() - started).to.be.below(5000);
      for (const result of results) {
        expect(E.isLeft(result)).to.equal(true);
        if (E.isLeft(result)) {
          expect(result.left).to.deep.equal({
            _tag: 'StoreUnavailable',
            reason: 'the database is not reachable (ECONNREFUSED)',
          });
        }
      }
    });
  });
});
