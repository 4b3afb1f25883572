// The server's email log with WRITE_BEHIND_MS, on PostgreSQL: what a client of the API and a
// worker observe when the rows are written after the 202s. (The EmailLog contract runs on it in
// postgres-stores.test.ts and pglite-stores.test.ts.)
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import { SqlEmailLog } from '../../../src/adapters/postgres/sql-email-log.js';
import { WriteBehindEmailLog } from '../../../src/adapters/postgres/write-behind-email-log.js';
import type { EmailLog } from '../../../src/application/ports/email-log.js';
import type { EmailStatus } from '../../../src/domain/email-status.js';
import { InMemoryDeliveryLedger } from '../../../src/adapters/memory/in-memory-stores.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import { DeliverEmail } from '../../../src/application/deliver-email.js';
import { sent } from '../../../src/domain/delivery.js';
import { acceptedEvent } from '../../../src/domain/events.js';
import { right, some } from '../../contracts/email-log.contract.js';
import { aRequest, aTask, anAddress, anEvent, at } from '../../support/builders.js';
import {
  RecordingEvents,
  ScriptedSender,
  fixedClock,
  recordingLogger,
  switchable,
} from '../../support/fakes.js';
import type { TestDatabase } from '../../support/postgres.js';
import { migratedDatabase, requirePostgres } from '../../support/postgres.js';
import { recording } from '../../support/recording-client.js';
import { emptyStoreTables } from '../../support/sql-stores.js';
import { eventually } from '../../support/waiting.js';

describe('WriteBehindEmailLog on PostgreSQL', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  // Two pools stand for two processes: the server that writes behind, and the rest.
  let one: PgDatabase;
  let two: PgDatabase;
  let others: SqlEmailLog;
  const open: WriteBehindEmailLog[] = [];

  before(async () => {
    await requirePostgres();
    db = await migratedDatabase('write_behind');
    one = new PgDatabase({ url: db.url, maxConnections: 5 });
    two = new PgDatabase({ url: db.url, maxConnections: 5 });
    others = new SqlEmailLog(two.client);
  });
  beforeEach(() => emptyStoreTables(one.client));
  afterEach(async () => {
    await Promise.all(open.splice(0).map((log) => log.close()));
  });
  after(async () => {
    await one?.close();
    await two?.close();
    await db?.drop();
  });

  const behind = (
    inner: EmailLog,
    options: Partial<ConstructorParameters<typeof WriteBehindEmailLog>[1]> = {},
  ) => {
    const logger = recordingLogger();
    const log = new WriteBehindEmailLog(inner, { delayMs: 50, logger, ...options });
    open.push(log);
    return { log, logger };
  };
  /** `log` with its `record` replaced: every other method is its own. */
  const withRecord = (log: EmailLog, record: EmailLog['record']): EmailLog =>
    new Proxy(log, {
      get: (target, property, receiver): unknown =>
        property === 'record' ? record : Reflect.get(target, property, receiver),
    });
  const seen = async (log: EmailLog, id: string) => O.isSome(await right(log.get(id as never)));

  it('answers each record before any statement, then writes the whole span in one INSERT', async () => {
    const { client, statements } = recording(one.client);
    const { log } = behind(new SqlEmailLog(client));
    const requests = Array.from({ length: 30 }, () => aRequest());
    await Promise.all(requests.map((r) => right(log.record(r))));
    expect(statements).to.deep.equal([]);
    expect(await seen(others, requests[0]!.id)).to.equal(false);
    await eventually(async () => {
      for (const r of requests) expect(await seen(others, r.id)).to.equal(true);
      return true;
    });
    expect(statements.map((st) => st.sql.trim().split(/\s+/)[0])).to.deep.equal(['INSERT']);
    expect(some(await right(others.request(requests[7]!.id)))).to.deep.equal(requests[7]);
    expect(log.pending).to.equal(0);
  });

  it('reads its own writes at once: an email it holds, and the list', async () => {
    const { log } = behind(new SqlEmailLog(one.client), { delayMs: 1000 });
    const r = aRequest();
    await right(log.record(r));
    expect(log.pending).to.equal(1);
    expect(some(await right(log.get(r.id))).status).to.equal('queued');
    expect((await right(log.list({ limit: 10 }))).data.map((s) => s.id)).to.deep.equal([r.id]);
    // Written to be read, well before the second was up: the others see it now.
    expect(await seen(others, r.id)).to.equal(true);
  });

  it('writes what it holds when it stops, and from then on writes each record through', async () => {
    const { log } = behind(new SqlEmailLog(one.client), { delayMs: 1000 });
    const held = [aRequest(), aRequest(), aRequest()];
    for (const r of held) await right(log.record(r));
    expect(await log.close()).to.equal(0);
    for (const r of held) expect(await seen(others, r.id)).to.equal(true);
    const late = aRequest();
    await right(log.record(late));
    expect(await seen(others, late.id)).to.equal(true);
  });

  it('writes an email to be sent later before answering: only its row will carry it', async () => {
    const { log } = behind(new SqlEmailLog(one.client), { delayMs: 1000 });
    const later = { ...aRequest(), sendAt: new Date(Date.now() + 3_600_000).toISOString() };
    await right(log.record(later));
    expect(log.pending).to.equal(0);
    expect(some(await right(others.request(later.id)))).to.deep.equal(later);
  });

  it('writes nothing for an email forgotten while it was held (the queue refused it)', async () => {
    const { client, statements } = recording(one.client);
    const { log } = behind(new SqlEmailLog(client), { delayMs: 1000 });
    const refused = aRequest();
    const kept = aRequest();
    await right(log.record(refused));
    await right(log.record(kept));
    await right(log.forget(refused.id));
    await log.close();
    expect(await seen(others, refused.id)).to.equal(false);
    expect(await seen(others, kept.id)).to.equal(true);
    expect(statements.filter((st) => /DELETE/.test(st.sql))).to.deep.equal([]);
  });

  it('keeps what the database refused and writes it once the database is back', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    const { log, logger } = behind(inner.store, { delayMs: 10, retryMs: 30 });
    inner.down = true;
    const requests = [aRequest(), aRequest()];
    for (const r of requests) await right(log.record(r));
    await eventually(() =>
      expect(logger.lines.map((l) => l.message)).to.include(
        'Could not write accepted emails to the email log; trying again',
      ),
    );
    expect(log.pending).to.equal(2);
    expect(await seen(others, requests[0]!.id)).to.equal(false);
    inner.down = false;
    await eventually(async () => {
      for (const r of requests) expect(await seen(others, r.id)).to.equal(true);
      return true;
    });
    expect(logger.errors()).to.deep.equal([]);
  });

  it('does not give a row up sooner for being read while the database is away', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    const { log, logger } = behind(inner.store, { delayMs: 10, retryMs: 40, giveUpAfterMs: 2000 });
    inner.down = true;
    const r = aRequest();
    await right(log.record(r));
    await eventually(() => expect(logger.lines).to.have.length.greaterThan(0));
    // A client polling its status through the outage: each read answers StoreUnavailable, and
    // none of them is a write of its own that would count against the row.
    for (let i = 0; i < 30; i += 1) {
      expect(E.isLeft(await log.get(r.id)())).to.equal(true);
    }
    expect(log.pending).to.equal(1);
    expect(logger.errors()).to.deep.equal([]);
    inner.down = false;
    await eventually(async () => (await seen(others, r.id)) || undefined);
  });

  it('does not write again, for each read, an email whose write has just failed', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    let writes = 0;
    const counted = withRecord(inner.store, (x) => {
      writes += 1;
      return inner.store.record(x);
    });
    const { log, logger } = behind(counted, { delayMs: 5, retryMs: 60_000 });
    inner.down = true;
    const r = aRequest();
    await right(log.record(r));
    await eventually(() => expect(logger.lines).to.have.length(1));
    for (let i = 0; i < 30; i += 1) expect(E.isLeft(await log.get(r.id)())).to.equal(true);
    expect(writes).to.equal(1);
    expect(log.pending).to.equal(1);
    inner.down = false;
    // Written at its next retry, or, as here, when the server stops.
    expect(await log.close()).to.equal(0);
    expect(await seen(others, r.id)).to.equal(true);
  });

  it('reads its own writes at once again when the database is back after a failed write', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    const { log, logger } = behind(inner.store, { delayMs: 5, retryMs: 60_000 });
    inner.down = true;
    await right(log.record(aRequest()));
    await eventually(() => expect(logger.lines).to.have.length(1));
    inner.down = false;
    const later = aRequest();
    await right(log.record(later));
    expect(some(await right(log.get(later.id))).status).to.equal('queued');
  });

  it('does not hold again an email forgotten while its failed write was in flight', async () => {
    const gate = switchable<EmailLog>(new SqlEmailLog(one.client));
    let writing!: () => void;
    const started = new Promise<void>((resolve) => (writing = resolve));
    // Says when the write has begun, and reaches the database a moment later.
    const slow = withRecord(gate.store, (x) => async () => {
      writing();
      await new Promise((resolve) => setTimeout(resolve, 50));
      return gate.store.record(x)();
    });
    const { log } = behind(slow, { delayMs: 5, retryMs: 20 });
    const refused = aRequest();
    await right(log.record(refused));
    await started;
    // The queue refused it meanwhile, and the database is away: the write in flight fails.
    gate.down = true;
    await log.forget(refused.id)();
    gate.down = false;
    expect(log.pending).to.equal(0);
    await log.close();
    expect(await seen(others, refused.id)).to.equal(false);
  });

  it('runs what waits for a row once the row can be read, and nothing for an email it does not hold', async () => {
    const { log } = behind(new SqlEmailLog(one.client), { delayMs: 50 });
    const r = aRequest();
    await right(log.record(r));
    const seenWhenRun = new Promise<boolean>((resolve) => {
      expect(log.afterWritten(r.id, () => void seen(others, r.id).then(resolve))).to.equal(true);
    });
    expect(await seenWhenRun).to.equal(true);
    expect(log.afterWritten(r.id, () => expect.fail('ran for a written row'))).to.equal(false);
    expect(log.afterWritten(aRequest().id, () => expect.fail('ran for an unknown id'))).to.equal(
      false,
    );
  });

  it('answers StoreUnavailable once maxPending emails are held, and accepts again once written', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    const { log } = behind(inner.store, { delayMs: 10, retryMs: 30, maxPending: 2 });
    inner.down = true;
    await right(log.record(aRequest()));
    await right(log.record(aRequest()));
    const refused = await log.record(aRequest())();
    expect(E.isLeft(refused) && refused.left.reason).to.equal(
      '2 accepted emails are waiting to be written to the email log',
    );
    inner.down = false;
    await eventually(() => expect(log.pending).to.equal(0));
    await right(log.record(aRequest()));
  });

  it('gives up after giveUpAfterMs of failures, naming the emails; the worker records each whole', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    const { log, logger } = behind(inner.store, { delayMs: 5, retryMs: 10, giveUpAfterMs: 30 });
    inner.down = true;
    const r = aRequest({ tags: ['lost-row'] });
    await right(log.record(r));
    await eventually(() => expect(logger.errors()).to.have.length(1));
    expect(logger.errors()[0]!.fields).to.deep.include({ count: 1, emailIds: [r.id] });
    expect(log.pending).to.equal(0);
    inner.down = false;
    expect(await seen(others, r.id)).to.equal(false);
    // A worker takes the task: its first change, onto the basis worked out from the task's
    // request, finds no row and writes it whole, as the server would have.
    const worker = new SqlEmailLog(two.client);
    const sending = await right(
      worker.apply(anEvent.sending(r, { attempt: 1, at: at(5) }), worker.recordedBasis(r)),
    );
    expect(sending.status.history.map((c) => [c.status, c.source])).to.deep.equal([
      ['queued', 'api'],
      ['sending', 'worker'],
    ]);
    expect(some(await right(others.request(r.id)))).to.deep.equal(r);
    expect((await right(others.list({ limit: 10, tag: 'lost-row' }))).data).to.have.length(1);
  });

  it('names every email it gives up, a hundred a line', async () => {
    const inner = switchable<EmailLog>(new SqlEmailLog(one.client));
    const { log, logger } = behind(inner.store, { delayMs: 5, retryMs: 10, giveUpAfterMs: 30 });
    inner.down = true;
    const requests = Array.from({ length: 150 }, () => aRequest());
    for (const r of requests) await right(log.record(r));
    await eventually(() => expect(logger.errors()).to.have.length(2));
    const lines = logger
      .errors()
      .map((e) => e.fields as { count: number; part?: string; emailIds: string[] });
    expect(lines.map((f) => [f.count, f.part, f.emailIds.length])).to.deep.equal([
      [150, '1 of 2', 100],
      [150, '2 of 2', 50],
    ]);
    const named = lines.flatMap((f) => f.emailIds);
    expect([...named].sort()).to.deep.equal(requests.map((r) => r.id).sort());
  });

  it('fills in the request of a row an event began: a resend, or recipients suppressed at accept', async () => {
    // The server wrote the accepted event through (it names what the request no longer does)
    // and held the request behind; it died before writing it.
    const r = aRequest({ to: ['ada@example.com'] });
    await right(others.apply(acceptedEvent(r, [anAddress('bob@example.org')])));
    expect(O.isNone(await right(others.request(r.id)))).to.equal(true);
    const worker = new SqlEmailLog(two.client);
    const sending = await right(
      worker.apply(anEvent.sending(r, { attempt: 1, at: at(5) }), worker.recordedBasis(r)),
    );
    expect(some(await right(others.request(r.id)))).to.deep.equal(r);
    expect(sending.status.history.map((c) => c.status)).to.deep.equal(['queued', 'sending']);
    expect(sending.status.recipients.map((x) => [x.address, x.status])).to.deep.include([
      'bob@example.org',
      'suppressed',
    ]);
  });

  it('fills in a row a report began with the queued line its request begins with', async () => {
    // The provider's report reached another server before this server's held row was written
    // (a worker's `sent` write still pending), and the server then died holding the row.
    const r = aRequest({ requestedAt: 1 });
    await right(others.apply(anEvent.reported(r, { at: at(9) })));
    const worker = new SqlEmailLog(two.client);
    const sent = await right(
      worker.applyAll(
        [anEvent.sending(r, { attempt: 1, at: at(5) }), anEvent.sent(r, { attempt: 1, at: at(6) })],
        worker.recordedBasis(r),
      ),
    );
    const history = (s: EmailStatus) => s.history.map((c) => [c.status, c.source]);
    const expected = [
      ['queued', 'api'],
      ['sending', 'worker'],
      ['sent', 'worker'],
      ['delivered', 'provider'],
    ];
    expect(history(sent[1]!.status)).to.deep.equal(expected);
    expect(history(some(await right(others.get(r.id))))).to.deep.equal(expected);
    expect(some(await right(others.request(r.id)))).to.deep.equal(r);
  });

  describe('a worker ahead of the server, the suppression list dropping recipients at send', () => {
    const r = () => aRequest({ to: ['ada@example.com', 'Bob <bob@example.org>'] });
    const deliver = async (request: ReturnType<typeof aRequest>, ...suppressed: string[]) => {
      const list = new InMemorySuppressionList();
      for (const address of suppressed) {
        await list.add({ address, reason: 'bounce', createdAt: new Date(0) })();
      }
      const useCase = new DeliverEmail(
        new ScriptedSender([sent('<p1@mailgun>')]),
        new SqlEmailLog(two.client),
        new RecordingEvents(),
        new InMemoryDeliveryLedger(),
        { maxAttempts: 3, delaysMs: [1000] },
        fixedClock(),
        recordingLogger(),
        { holder: 'worker-a', suppressions: list, domainToAscii },
      );
      expect(await useCase.execute(aTask({ request }))()).to.deep.equal({ _tag: 'Done' });
      return some(await right(others.get(request.id)));
    };

    it('writes the whole request as queued, not the recipients left for this send', async () => {
      const request = r();
      const status = await deliver(request, 'bob@example.org');
      expect(some(await right(others.request(request.id)))).to.deep.equal(request);
      expect(status.to).to.deep.equal(request.to);
      expect(status.history.map((c) => c.status)).to.deep.equal(['queued', 'sending', 'sent']);
    });

    it('writes the whole row of an email with nobody left, settled as suppressed', async () => {
      const request = r();
      const status = await deliver(request, 'ada@example.com', 'bob@example.org');
      expect(some(await right(others.request(request.id)))).to.deep.equal(request);
      expect(status.history.map((c) => c.status)).to.deep.equal(['queued', 'suppressed']);
    });
  });

  it('leaves the row a worker wrote ahead of it as it is: the late write changes nothing', async () => {
    const { log } = behind(new SqlEmailLog(one.client), { delayMs: 1000 });
    const r = aRequest();
    await right(log.record(r));
    const worker = new SqlEmailLog(two.client);
    const sending = await right(
      worker.apply(anEvent.sending(r, { attempt: 1, at: at(5) }), worker.recordedBasis(r)),
    );
    await log.close();
    expect(some(await right(others.get(r.id)))).to.deep.equal(sending.status);
  });
});
