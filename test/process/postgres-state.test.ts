// What PostgreSQL, as the one place every server and worker keeps its state, gives a user of
// `email server` and `email worker`, each run as a child process on the real broker and a real
// database: statuses that outlive a server, idempotency keys shared by servers, a ledger shared
// by workers, and a database that may go away and come back under running roles.
import { expect } from 'chai';
import { connect } from 'amqplib';
import type { GetMessage } from 'amqplib';
import { execFile, execFileSync } from 'node:child_process';
import { chown, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { topologyNames } from '../../src/adapters/rabbitmq/topology.js';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { TestDatabase } from '../support/postgres.js';
import { freshDatabase, requirePostgres } from '../support/postgres.js';
import type { EmailProcess } from '../support/process.js';
import { startListening, waitForRecord } from '../support/process.js';
import { AMQP_URL, requireRabbitMq } from '../support/rabbitmq.js';
import type { Posted, StatusView } from '../support/roles.js';
import {
  AUTHORIZED,
  MAILGUN_KEY,
  Roles,
  closed,
  httpStatus,
  mapLimit,
  metricValue,
  postEmail,
  queueDepth,
  queueEmail,
  readyzIs,
  startMailgunRoles,
  startOutboxRoles,
  statusOf,
  stopMailgunRoles,
  stopOutboxRoles,
  tally,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';
import { startWebhookReceiver } from '../support/webhook-receiver.js';

/** The part of an outgoing webhook's body these tests read. */
interface QueuedWebhook {
  readonly type: string;
  readonly data: { readonly id: string };
}
import { taskHandlers } from '../../src/main/modules.js';

const run = promisify(execFile);

const emlIds = async (dir: string): Promise<string[]> =>
  (await readdir(dir))
    .filter((name) => name.endsWith('.eml'))
    .map((name) => name.slice(0, -'.eml'.length))
    .sort();

const inOutbox = (dir: string, ids: readonly string[], timeoutMs = 20_000) =>
  eventually(
    async () => {
      const present = new Set(await emlIds(dir));
      return ids.every((id) => present.has(id)) ? true : undefined;
    },
    { timeoutMs, what: `${ids.length} .eml file(s) in ${dir}` },
  );

/** The history of a sent email that went through once: accepted by the API, sent by a worker. */
const ONE_SEND = [
  ['queued', 'api'],
  ['sending', 'worker'],
  ['sent', 'worker'],
];
const story = (view: StatusView) => view.events.map((e) => [e.status, e.source]);

/** A 503 that says the store is away, with Retry-After: never a 202, never a 404. */
function expectStoreUnavailable(answer: Posted): void {
  expect(answer.status, JSON.stringify(answer.body)).to.equal(503);
  expect(answer.retryAfter, 'Retry-After').to.match(/^\d+$/);
  expect(answer.body.error?.code).to.equal('store_unavailable');
}

const sendLines = (proc: EmailProcess, id: string) =>
  proc.records.filter((r) => r.emailId === id && r.msg.startsWith('Initiating email send'));

describe('email server + email worker with their state in PostgreSQL', function () {
  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
  });

  describe('a server restarted after its emails were sent', function () {
    this.timeout(40_000);
    const COUNT = 20;
    let roles: Roles;
    let outbox: string;

    before(async () => ({ roles, outbox } = await startOutboxRoles()));
    after(() => stopOutboxRoles(roles, outbox));

    it(`answers all ${COUNT} old ids with their status and history`, async () => {
      const first = await roles.startReady('server');
      await roles.startReady('worker');
      const ids = await mapLimit(Array.from({ length: COUNT }), 10, (_, i) =>
        queueEmail(first.url, { to: `user${i}@example.com`, subject: `Before the restart ${i}` }),
      );
      const before = await mapLimit(ids, 10, (id) => waitForStatus(first.url, id, 'sent'));
      await inOutbox(outbox, ids);

      first.proc.child.kill('SIGTERM');
      expect(await first.proc.exited).to.deep.equal({ code: 0, signal: null });
      const second = await roles.startReady('server');

      const after = await mapLimit(ids, 10, (id) => statusOf(second.url, id));
      for (const [i, view] of after.entries()) {
        expect(view, `GET /emails/${ids[i]} on the new server`).not.to.equal(undefined);
        expect(view).to.include({ id: ids[i], status: 'sent', subject: `Before the restart ${i}` });
        expect(story(view!)).to.deep.equal(ONE_SEND);
        expect(view!.attempts.map((a) => a.outcome)).to.deep.equal(['sent']);
        expect(view!.provider_id).to.be.a('string').and.not.empty;
        // Exactly what the first server showed: nothing was kept in its memory.
        expect(view).to.deep.equal(before[i]);
      }
      const list = await fetch(`${second.url}/emails?status=sent`, {
        headers: { accept: 'application/json', ...AUTHORIZED },
      });
      const listed = (await list.json()) as {
        data: StatusView[];
        next_cursor: string | null;
      };
      expect(listed.data.map((v) => v.id).sort()).to.deep.equal([...ids].sort());
      expect(listed.next_cursor).to.equal(null);
    });
  });

  describe('a server killed and restarted under load', function () {
    this.timeout(60_000);
    const PER_SERVER = 60;
    const LANES = 8;
    let roles: Roles;
    let outbox: string;

    before(async () => ({ roles, outbox } = await startOutboxRoles()));
    after(() => stopOutboxRoles(roles, outbox));

    it('answers every id it gave a 202 for, and sends each one', async () => {
      await roles.startReady('worker');
      const firstServer = await roles.startReady('server');
      let target = firstServer.url;
      // Requests that found no server wait here for the next one instead of spinning.
      let serverBack!: () => void;
      let nextServer = new Promise<void>((resolve) => (serverBack = resolve));
      const answers: { url: string; posted: Posted }[] = [];
      let failed = 0;
      let posting = true;
      const lane = async () => {
        while (posting) {
          const url = target;
          try {
            answers.push({ url, posted: await postEmail(url, { subject: 'Under load' }) });
          } catch {
            failed += 1; // no server there (killed, or the next one not up yet)
            if (url === target) await nextServer;
          }
        }
      };
      const accepted = (url: string) =>
        answers.filter((a) => a.url === url && a.posted.status === 202).length;
      const lanes = Array.from({ length: LANES }, lane);
      try {
        const firstUrl = target;
        await eventually(async () => (accepted(firstUrl) >= PER_SERVER ? true : undefined), {
          timeoutMs: 20_000,
          what: `${PER_SERVER} emails accepted by the first server`,
        });
        firstServer.proc.child.kill('SIGKILL');
        expect((await firstServer.proc.exited).signal).to.equal('SIGKILL');
        const second = await roles.startReady('server');
        target = second.url;
        serverBack();
        nextServer = new Promise<void>(() => undefined);
        await eventually(async () => (accepted(second.url) >= PER_SERVER ? true : undefined), {
          timeoutMs: 20_000,
          what: `${PER_SERVER} emails accepted by the second server`,
        });
      } finally {
        posting = false;
        serverBack();
        await Promise.all(lanes);
      }

      // Each HTTP answer was a 202 or an honest 503; requests cut by the kill got no answer.
      for (const { posted } of answers.filter((a) => a.posted.status !== 202)) {
        expect(posted.status, JSON.stringify(posted.body)).to.equal(503);
      }
      const ids = answers
        .filter((a) => a.posted.status === 202)
        .map((a) => String(a.posted.body.id));
      expect(new Set(ids).size).to.equal(ids.length);
      const last = target;
      const found = await mapLimit(ids, 20, async (id) => ({ id, view: await statusOf(last, id) }));
      const missing = found.filter((f) => f.view === undefined).map((f) => f.id);
      expect(missing, 'ids answered 404 by the new server').to.deep.equal([]);
      await mapLimit(ids, 20, (id) => waitForStatus(last, id, 'sent', 30_000));
      await inOutbox(outbox, ids);
      console.log(
        `      ${ids.length} accepted (${accepted(last)} by the second server), ` +
          `${answers.length - ids.length} answered 503, ${failed} requests found no server; ` +
          'every accepted id found and sent',
      );
    });
  });

  describe('a server that writes behind (WRITE_BEHIND_MS)', function () {
    this.timeout(60_000);
    let roles: Roles;
    let outbox: string;

    beforeEach(async () => ({ roles, outbox } = await startOutboxRoles()));
    afterEach(() => stopOutboxRoles(roles, outbox));

    /** Posts until the server says it holds a row unwritten (its timer may fire in between). */
    const postHeld = async (url: string, subject: string): Promise<string[]> => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        ids.push(await queueEmail(url, { subject }));
        if (((await metricValue(url, 'email_log_write_behind_pending')) ?? 0) > 0) return ids;
      }
      return expect.fail('the server never held a row: is WRITE_BEHIND_MS set?');
    };

    it('shows an email at once on the server that took it, and writes what it holds when it stops', async () => {
      const server = await roles.startReady('server', { WRITE_BEHIND_MS: '1000' });
      const shown = await queueEmail(server.url, { subject: 'Held, then written' });
      // Read on the server that accepted it, well within the second it may hold the row.
      expect((await statusOf(server.url, shown))?.status).to.equal('queued');
      // Then more, not read: held when the stop comes.
      const held = await postHeld(server.url, 'Held, then written');
      const stopped = await server.proc.stop('SIGTERM');
      expect(stopped.code, server.proc.output()).to.equal(0);
      // No worker ran: every row there was written by the stopping server.
      const reader = await roles.startReady('server');
      for (const id of [shown, ...held]) {
        const view = await statusOf(reader.url, id);
        expect(view?.status, id).to.equal('queued');
        expect(view?.subject).to.equal('Held, then written');
      }
    });

    it('loses no email when killed holding rows: the worker records each from its task', async () => {
      await roles.startReady('worker');
      const server = await roles.startReady('server', { WRITE_BEHIND_MS: '1000' });
      const ids = await mapLimit(Array.from({ length: 40 }), 8, () =>
        queueEmail(server.url, { subject: 'Accepted, then killed' }),
      );
      ids.push(...(await postHeld(server.url, 'Accepted, then killed')));
      server.proc.child.kill('SIGKILL');
      expect((await server.proc.exited).signal).to.equal('SIGKILL');
      const reader = await roles.startReady('server');
      const sent = await mapLimit(ids, 10, (id) => waitForStatus(reader.url, id, 'sent', 30_000));
      for (const view of sent) {
        expect(story(view), view.id).to.deep.equal(ONE_SEND);
        expect(view.subject).to.equal('Accepted, then killed');
      }
      await inOutbox(outbox, ids);
    });

    it("tells a subscribed endpoint of each email it accepted: the webhook waits for the email's row", async () => {
      await roles.startReady('worker');
      const server = await roles.startReady('server', { WRITE_BEHIND_MS: '1000' });
      const receiver = await startWebhookReceiver();
      try {
        const subscribed = await fetch(`${server.url}/webhooks`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...AUTHORIZED },
          body: JSON.stringify({ url: receiver.url, events: ['queued'] }),
        });
        expect(subscribed.status).to.equal(201);
        const ids = await mapLimit(Array.from({ length: 10 }), 5, () =>
          queueEmail(server.url, { subject: 'Announced once written' }),
        );
        const told = await eventually(
          () => {
            const bodies = receiver.received.map((r) => JSON.parse(r.body) as QueuedWebhook);
            const of = new Set(
              bodies.filter((b) => b.type === 'email.queued').map((b) => b.data.id),
            );
            return ids.every((id) => of.has(id)) ? of : undefined;
          },
          { timeoutMs: 20_000, what: 'an email.queued webhook for each of the 10 emails' },
        );
        expect([...told].sort()).to.deep.equal([...ids].sort());
      } finally {
        await receiver.close();
      }
    });
  });

  describe('two servers on one database and one broker', function () {
    this.timeout(40_000);
    let a: Roles;
    let b: Roles;
    let outbox: string;
    let serverA: string;
    let serverB: string;
    let worker: EmailProcess;

    before(async () => {
      ({ roles: a, outbox } = await startOutboxRoles());
      // Its own fixture, as another replica would be configured: same database, same prefix.
      b = new Roles({ MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: outbox }, { shareWith: a });
      const [startedA, startedB] = await Promise.all([
        a.startReady('server'),
        b.startReady('server'),
      ]);
      serverA = startedA.url;
      serverB = startedB.url;
      worker = (await a.startReady('worker')).proc;
    });
    after(async () => {
      await b?.cleanup(false); // its processes; the prefix and database are a's to delete
      await stopOutboxRoles(a, outbox);
    });

    const email = { to: 'ada@example.com', subject: 'Once only', text: 'One key, one email.' };

    it('a key used on one server and repeated on the other gives the same id, sent once', async () => {
      const key = { 'idempotency-key': `shared-${Date.now()}` };
      const first = await postEmail(serverA, email, key);
      expect(first.status, JSON.stringify(first.body)).to.equal(202);
      expect(first.replayed).to.equal(null);
      const again = await postEmail(serverB, email, key);
      expect(again.status, JSON.stringify(again.body)).to.equal(202);
      expect(again.replayed).to.equal('true');
      expect(again.body.id).to.equal(first.body.id);
      const id = String(first.body.id);

      // The same key with another body is refused on either server.
      const other = await postEmail(serverB, { ...email, subject: 'Something else' }, key);
      expect(other.status).to.equal(409);
      expect(other.body.error?.code).to.equal('idempotency_conflict');

      await waitForStatus(serverB, id, 'sent');
      await inOutbox(outbox, [id]);
      expect((await emlIds(outbox)).filter((f) => f === id)).to.have.length(1);
      await waitForRecord(worker, (r) => r.emailId === id && r.outcome === 'Sent');
      expect(sendLines(worker, id)).to.have.length(1);
    });

    it('the same key sent to both at once is accepted once, published once, sent once', async () => {
      const key = { 'idempotency-key': `race-${Date.now()}` };
      const body = { ...email, subject: 'Raced' };
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => postEmail(i % 2 === 0 ? serverA : serverB, body, key)),
      );
      const ok = answers.filter((p) => p.status === 202);
      expect(ok.length, JSON.stringify(answers.map((p) => p.status))).to.be.at.least(1);
      const ids = new Set(ok.map((p) => p.body.id));
      expect(ids.size, 'one id in every 202').to.equal(1);
      // The others were told to come back: the first request still held the key.
      for (const p of answers.filter((x) => x.status !== 202)) {
        expect(p.status, JSON.stringify(p.body)).to.equal(409);
        expect(p.body.error?.code).to.equal('idempotency_conflict');
      }
      const id = String(ok[0]?.body.id);
      for (const url of [serverA, serverB]) {
        const later = await postEmail(url, body, key);
        expect(later).to.deep.include({ status: 202, replayed: 'true' });
        expect(later.body.id).to.equal(id);
      }
      await waitForStatus(serverA, id, 'sent');

      // Drain the worker: SIGTERM finishes what it holds; then nothing may be left in the queue,
      // so every task ever published for this id has been through it.
      worker.child.kill('SIGTERM');
      expect(await worker.exited).to.deep.equal({ code: 0, signal: null });
      await closed(worker);
      expect(await queueDepth(a.prefix, 'send')).to.deep.include({ messageCount: 0 });
      expect(sendLines(worker, id), 'sends of the raced email').to.have.length(1);
      expect(
        worker.records.filter(
          (r) => r.emailId === id && r.msg === 'Already sent; not sending again',
        ),
        'a second task for it',
      ).to.deep.equal([]);
      expect(await emlIds(outbox)).to.include(id);
      const view = await statusOf(serverB, id);
      expect(story(view!)).to.deep.equal(ONE_SEND);
      console.log(
        `      10 requests with one key, alternating two servers: ${ok.length} answered 202 ` +
          `(${ok.filter((p) => p.replayed === 'true').length} of them replayed), ` +
          `${answers.length - ok.length} answered 409 in progress; 1 task, 1 send`,
      );
    });
  });

  describe('a task redelivered to another worker after its email was sent', function () {
    this.timeout(40_000);
    let roles: Roles;
    let outbox: string;

    before(async () => ({ roles, outbox } = await startOutboxRoles()));
    after(() => stopOutboxRoles(roles, outbox));

    it('is not sent again: the ledger in the database is shared', async () => {
      const server = await roles.startReady('server');
      const first = await roles.startReady('worker');
      const names = topologyNames(roles.prefix);

      // A copy of every task, bound beside the send queue: the very message the server published.
      const model = await connect(AMQP_URL);
      model.on('error', () => undefined);
      try {
        const channel = await model.createConfirmChannel();
        const { queue: tap } = await channel.assertQueue('', { exclusive: true });
        await channel.bindQueue(tap, names.tasksExchange, 'send');

        const id = await queueEmail(server.url, { subject: 'Sent once, delivered twice' });
        await waitForStatus(server.url, id, 'sent');
        await inOutbox(outbox, [id]);
        const file = join(outbox, `${id}.eml`);
        const written = await stat(file);
        const copy = await eventually(
          async () => (await channel.get(tap, { noAck: true })) || undefined,
          { timeoutMs: 5000, what: 'the copy of the task' },
        );
        expect((copy as GetMessage).properties.messageId).to.equal(id);

        first.proc.child.kill('SIGTERM');
        expect(await first.proc.exited).to.deep.equal({ code: 0, signal: null });

        // The same task again, as the broker would redeliver it.
        const { content, properties } = copy as GetMessage;
        channel.publish(names.tasksExchange, 'send', content, {
          messageId: properties.messageId as string,
          headers: properties.headers,
          persistent: true,
          contentType: properties.contentType as string,
          mandatory: true,
        });
        await channel.waitForConfirms();
        await eventually(
          async () => {
            const depth = await queueDepth(roles.prefix, 'send');
            return depth.messageCount === 1 && depth.consumerCount === 0 ? true : undefined;
          },
          { timeoutMs: 5000, what: 'the republished task to wait in the send queue' },
        );

        const second = await roles.startReady('worker');
        await waitForRecord(
          second.proc,
          (r) => r.emailId === id && r.msg === 'Already sent; not sending again',
          'the second worker to find the email in the ledger',
        );
        // Stopped gracefully, it hands back whatever it did not ack: nothing may be left.
        second.proc.child.kill('SIGTERM');
        expect(await second.proc.exited).to.deep.equal({ code: 0, signal: null });
        await closed(second.proc);
        expect(await queueDepth(roles.prefix, 'send')).to.deep.equal({
          messageCount: 0,
          consumerCount: 0,
        });
        expect(sendLines(second.proc, id)).to.deep.equal([]);
        expect(await emlIds(outbox)).to.deep.equal([id]);
        const now = await stat(file);
        expect({ ino: now.ino, mtimeMs: now.mtimeMs }).to.deep.equal({
          ino: written.ino,
          mtimeMs: written.mtimeMs,
        });
        const view = await statusOf(server.url, id);
        expect(view?.status).to.equal('sent');
        expect(story(view!)).to.deep.equal(ONE_SEND);
      } finally {
        await model.close().catch(() => undefined);
      }
    });
  });

  describe('the database stopped and started under a running server and worker', function () {
    this.timeout(90_000);
    let cluster: PrivatePostgres | undefined;
    let roles: Roles | undefined;
    let mailgun: MailgunStandIn | undefined;
    let gate: Gate | undefined;

    before(async () => {
      cluster = await startPrivatePostgres();
      mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: MAILGUN_KEY });
      // The worker reaches the stand-in through a gate, to hold sends in flight while the
      // database goes away, for as long as it takes, rather than for a latency and a hope.
      gate = await startGate(mailgun.baseUrl);
      // An empty database: the roles migrate it themselves as they start.
      roles = new Roles(
        { MAIL_TRANSPORT: 'mailgun', MAILGUN_API_BASE: gate.baseUrl, MAILGUN_API_KEY: MAILGUN_KEY },
        { databaseUrl: cluster.url },
      );
    });
    after(async () => {
      try {
        await stopMailgunRoles(roles, mailgun);
        await gate?.close();
      } finally {
        await cluster?.destroy();
      }
    });

    it('answers 503 meanwhile, loses nothing, sends each email once, and needs no restart', async () => {
      if (!roles || !mailgun || !cluster || !gate) throw new Error('before() did not finish');
      const server = await roles.startReady('server');
      const worker = await roles.startReady('worker');
      const warmUp = await queueEmail(server.url, { subject: 'Before the outage' });
      await waitForStatus(server.url, warmUp, 'sent');

      // Five sends on their way to the provider when the database goes away.
      gate.hold();
      const inFlight = await mapLimit([0, 1, 2, 3, 4], 5, (i) =>
        queueEmail(server.url, { subject: `In flight ${i}` }),
      );
      await eventually(async () => (gate!.waiting() === inFlight.length ? true : undefined), {
        timeoutMs: 10_000,
        what: `${inFlight.length} sends held at the gate`,
      });
      await cluster.stop();

      // Every answer now is an honest 503; a known id is not "not found".
      const refused: Posted[] = [];
      await eventually(
        async () => {
          refused.push(await postEmail(server.url, { subject: 'While the database is down' }));
          return refused.length >= 3 ? true : undefined;
        },
        { timeoutMs: 15_000, what: 'three POSTs while the database is down' },
      );
      for (const answer of refused) expectStoreUnavailable(answer);
      const lookup = await fetch(`${server.url}/emails/${warmUp}`, {
        headers: { accept: 'application/json', ...AUTHORIZED },
      });
      expect(lookup.status, 'GET of a known id while the database is down').to.equal(503);
      await lookup.arrayBuffer();
      for (const url of [server.url, worker.url]) await readyzIs(url, 503, 10_000);

      // The provider accepts the five; the worker cannot write that down yet and holds them.
      gate.release();
      for (const id of inFlight) {
        await waitForRecord(
          worker.proc,
          (r) =>
            r.emailId === id &&
            r.msg === 'A store did not answer; the task waits and is tried again',
          `the worker to hold ${id}`,
        );
      }
      await cluster.start();

      for (const url of [server.url, worker.url]) await readyzIs(url, 200, 30_000);
      for (const proc of [server.proc, worker.proc]) {
        expect(proc.child.exitCode, 'still the same process').to.equal(null);
      }
      const after = await postEmail(server.url, { subject: 'After the outage' });
      expect(after.status, JSON.stringify(after.body)).to.equal(202);

      const accepted = [warmUp, ...inFlight, String(after.body.id)];
      await mapLimit(accepted, 7, (id) => waitForStatus(server.url, id, 'sent', 30_000));
      const sends = tally(
        mailgun.messages.map((m) => m.variables['email-id'] ?? '').filter((id) => id !== ''),
      );
      expect(Object.fromEntries(sends)).to.deep.equal(
        Object.fromEntries(accepted.map((id) => [id, 1])),
      );
      for (const id of inFlight) {
        const view = await statusOf(server.url, id);
        expect(story(view!)).to.deep.equal(ONE_SEND);
      }
      console.log(
        `      ${refused.length} POSTs answered 503 while the database was down; ` +
          `${inFlight.length} sends in flight held and recorded after; ${accepted.length} sent once each`,
      );
    });
  });

  describe('duplicates when a worker is killed under load', function () {
    this.timeout(60_000);
    const COUNT = 300;
    const CONCURRENCY = 10;
    let roles: Roles;
    let mailgun: MailgunStandIn;

    before(
      async () =>
        ({ roles, mailgun } = await startMailgunRoles({
          WORKER_CONCURRENCY: String(CONCURRENCY),
        })),
    );
    after(() => stopMailgunRoles(roles, mailgun));

    it(`sends each of ${COUNT} at least once, and repeats at most the sends in flight`, async () => {
      mailgun.scriptDefault({ latencyMs: 50 });
      const server = await roles.startReady('server');
      const ids = await mapLimit(Array.from({ length: COUNT }), 20, (_, i) =>
        queueEmail(server.url, { subject: `Load ${i}` }),
      );
      const ours = new Set(ids);
      const sent = () =>
        mailgun.messages.map((m) => m.variables['email-id'] ?? '').filter((id) => ours.has(id));

      const first = await roles.startReady('worker');
      await eventually(async () => (new Set(sent()).size >= COUNT / 3 ? true : undefined), {
        timeoutMs: 20_000,
        what: `${COUNT / 3} emails at the stand-in`,
      });
      first.proc.child.kill('SIGKILL');
      await first.proc.exited;
      await closed(first.proc);
      const sentAtKill = new Set(sent()).size;

      const second = await roles.startReady('worker');
      await eventually(async () => (new Set(sent()).size === COUNT ? true : undefined), {
        timeoutMs: 30_000,
        what: `all ${COUNT} at the stand-in`,
      });
      await mapLimit(ids, 20, (id) => waitForStatus(server.url, id, 'sent'));

      const perId = tally(sent());
      const twice = [...perId].filter(([, n]) => n > 1).map(([id]) => id);
      // What the killed worker had started to send and had no answer for, by its log (whose
      // last lines a SIGKILL may cut: pino writes asynchronously).
      const answered = new Set(
        first.proc.records.filter((r) => r.outcome !== undefined).map((r) => r.emailId),
      );
      const unanswered = first.proc.records.filter(
        (r) => r.msg.startsWith('Initiating email send') && !answered.has(r.emailId),
      ).length;
      expect(
        [...perId.values()].every((n) => n <= 2),
        'no id sent three times',
      ).to.equal(true);
      console.log(
        `      SIGKILL after ${sentAtKill}/${COUNT} sent (WORKER_CONCURRENCY=${CONCURRENCY}, ` +
          `~${unanswered} sends unanswered in the killed worker): ` +
          `${twice.length} sent twice, ${COUNT - twice.length} once`,
      );
      // At least once: only what the killed worker had in flight (not yet in the ledger) can
      // go out again, once more, from the worker that took its tasks over: its sends at the
      // provider and those answered but not recorded yet, at most the tasks it holds at once.
      expect(twice.length).to.be.at.most(taskHandlers(CONCURRENCY));
      for (const id of twice) {
        await waitForRecord(
          second.proc,
          (r) => r.emailId === id && r.msg.startsWith('Initiating email send'),
          `the second worker to have sent ${id} again`,
        );
      }
    });
  });

  describe('email dev with DATABASE_URL', function () {
    this.timeout(30_000);
    let db: TestDatabase | undefined;
    let outbox: string | undefined;
    let proc: EmailProcess | undefined;

    before(async () => {
      db = await freshDatabase('dev');
      outbox = await mkdtemp(join(tmpdir(), 'email-dev-pg-'));
    });
    after(async () => {
      await proc?.stop('SIGKILL');
      await db?.drop();
      if (outbox) await rm(outbox, { recursive: true, force: true });
    });

    it('migrates the database itself and keeps statuses across a restart', async () => {
      const env = {
        DATABASE_URL: db!.url,
        OUTBOX_DIR: outbox!,
        MAIL_FROM: 'Dev <dev@example.com>',
      };
      const started = await startListening(['dev'], env);
      proc = started.proc;
      await readyzIs(started.url, 200, 15_000);
      const id = await queueEmail(started.url, { subject: 'Kept in PostgreSQL' });
      await waitForStatus(started.url, id, 'sent');
      expect((await proc.stop('SIGTERM')).code).to.equal(0);

      const again = await startListening(['dev'], env);
      proc = again.proc;
      const view = await statusOf(again.url, id);
      expect(view).to.include({ id, status: 'sent', subject: 'Kept in PostgreSQL' });
      expect(story(view!)).to.deep.equal(ONE_SEND);
      expect(await httpStatus(`${again.url}/healthz`)).to.equal(200);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// An HTTP gate in front of the Mailgun stand-in: requests wait in it while it is held.

interface Gate {
  /** The stand-in's base URL, through the gate. */
  readonly baseUrl: string;
  /** Requests from now on wait (their bodies read) until `release`. */
  hold(): void;
  release(): void;
  /** How many requests are waiting. */
  waiting(): number;
  close(): Promise<void>;
}

async function startGate(targetBase: string): Promise<Gate> {
  const target = new URL(targetBase);
  let opened: Promise<void> = Promise.resolve();
  let open: () => void = () => undefined;
  let waiting = 0;
  const server = createHttpServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      waiting += 1;
      await opened;
      waiting -= 1;
      const upstream = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = new URL(targetBase);
  base.host = `127.0.0.1:${port}`;
  return {
    baseUrl: base.toString().replace(/\/$/, ''),
    hold() {
      opened = new Promise<void>((resolve) => (open = resolve));
    },
    release() {
      open();
      opened = Promise.resolve();
    },
    waiting: () => waiting,
    close: () =>
      new Promise<void>((resolve) => {
        open();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// A PostgreSQL cluster of this file's own, to stop and start without touching the shared one.

const PG_BIN = '/usr/lib/postgresql/15/bin';

interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` */
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops it if running and deletes its files; never throws. */
  destroy(): Promise<void>;
}

/** Running as root, PostgreSQL must be run as its own user; otherwise as whoever we are. */
const asPostgres = (command: string, args: string[]): [string, string[]] =>
  process.getuid?.() === 0
    ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
    : [command, args];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Clusters still running: the `exit` hook stops them if `after` never ran. */
const runningClusters = new Set<string>();
process.once('exit', () => {
  for (const data of runningClusters) {
    try {
      const [cmd, args] = asPostgres(`${PG_BIN}/pg_ctl`, ['-D', data, '-m', 'immediate', 'stop']);
      execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // Nothing more to do on the way out.
    }
  }
});

async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const home = await mkdtemp(join(tmpdir(), 'email-pg-'));
  const data = join(home, 'data');
  const pgctl = async (...args: string[]) => {
    const [cmd, argv] = asPostgres(`${PG_BIN}/pg_ctl`, ['-D', data, ...args]);
    await run(cmd, argv, { timeout: 60_000 });
  };
  try {
    if (process.getuid?.() === 0) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: gid } = await run('id', ['-g', 'postgres']);
      await chown(home, Number(stdout.trim()), Number(gid.trim()));
    }
    const [initdb, initArgs] = asPostgres(`${PG_BIN}/initdb`, [
      '-D',
      data,
      '-U',
      'postgres',
      '-A',
      'trust',
      '--no-sync',
      '-E',
      'UTF8',
    ]);
    await run(initdb, initArgs, { timeout: 60_000 });
  } catch (err) {
    await rm(home, { recursive: true, force: true });
    throw new Error(
      `could not create a private PostgreSQL cluster with ${PG_BIN}/initdb (${String(err)})`,
      { cause: err },
    );
  }
  const port = await freePort();
  const options = `-p ${port} -k ${home} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async () => {
    runningClusters.add(data);
    await pgctl('-o', options, '-l', join(home, 'log'), '-w', 'start');
  };
  const stop = async () => {
    await pgctl('-m', 'fast', '-w', 'stop');
    runningClusters.delete(data);
  };
  await start().catch(async (err: unknown) => {
    await stop().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
    throw err;
  });
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    async destroy() {
      if (runningClusters.has(data)) await stop().catch(() => undefined);
      await rm(home, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}
