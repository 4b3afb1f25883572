// `email server` and `email worker` as separate processes on a real RabbitMQ and PostgreSQL: what
// a user of the API sees (202s, sends, GET /emails/:id) when the roles run as in production.
import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { SmtpReceiver } from '../support/mail-receivers.js';
import { startSmtpReceiver } from '../support/mail-receivers.js';
import { requirePostgres } from '../support/postgres.js';
import { waitForRecord } from '../support/process.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import {
  MAILGUN_KEY,
  startOutboxRoles,
  stopOutboxRoles,
  startMailgunRoles,
  stopMailgunRoles,
  Roles,
  closed,
  mapLimit,
  postEmail,
  queueEmail,
  tally,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

describe('email server + email worker on RabbitMQ', function () {
  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
  });

  describe('many emails in, all out (outbox)', function () {
    this.timeout(60_000);
    const COUNT = 200;
    let roles: Roles;
    let outbox: string;

    before(async () => ({ roles, outbox } = await startOutboxRoles()));
    after(() => stopOutboxRoles(roles, outbox));

    it(`accepts ${COUNT} emails with 202 and sends each exactly once`, async () => {
      const server = await roles.start('server');
      const worker = await roles.start('worker');

      const posted = await mapLimit(Array.from({ length: COUNT }), 20, (_, i) =>
        postEmail(server.url, { to: `user${i}@example.com`, subject: `Bulk ${i}` }),
      );
      const refused = posted.filter((p) => p.status !== 202);
      expect(refused, JSON.stringify(refused.slice(0, 3))).to.deep.equal([]);
      const ids = posted.map((p) => String(p.body.id));
      expect(new Set(ids).size).to.equal(COUNT);
      for (const p of posted) {
        expect(p.body.status).to.equal('queued');
        expect(p.location).to.equal(`/emails/${p.body.id}`);
      }

      const files = await eventually(
        async () => {
          const emls = (await readdir(outbox)).filter((f) => f.endsWith('.eml'));
          return emls.length >= COUNT ? emls : undefined;
        },
        { timeoutMs: 30_000, what: `${COUNT} .eml files in the outbox` },
      );
      expect([...files].sort()).to.deep.equal(ids.map((id) => `${id}.eml`).sort());

      // One file per id could hide a second send of the same id (it replaces the file): the
      // worker's log says how many sends each id really had.
      const sentLines = () =>
        worker.proc.records.filter((r) => r.outcome === 'Sent' && typeof r.emailId === 'string');
      await eventually(async () => (sentLines().length >= COUNT ? true : undefined), {
        timeoutMs: 10_000,
        what: `${COUNT} "Time to send" lines in the worker's log`,
      });
      const sends = tally(sentLines().map((r) => String(r.emailId)));
      expect(sends.size).to.equal(COUNT);
      expect(
        [...sends.values()].every((n) => n === 1),
        'one send per id',
      ).to.equal(true);

      // The server reads each status from the email log the worker wrote to.
      const views = await mapLimit(ids, 20, (id) => waitForStatus(server.url, id, 'sent'));
      for (const [i, view] of views.entries()) {
        expect(view).to.include({ id: ids[i], subject: `Bulk ${i}` });
        expect(view.attempts.map((a) => a.outcome)).to.deep.equal(['sent']);
        expect(view.events.map((e) => [e.status, e.source])).to.deep.equal([
          ['queued', 'api'],
          ['sending', 'worker'],
          ['sent', 'worker'],
        ]);
        expect(view.recipients).to.deep.equal([
          { address: `user${i}@example.com`, status: 'sent' },
        ]);
      }
    });
  });

  describe('transports chosen by MAIL_TRANSPORT', function () {
    this.timeout(40_000);
    let roles: Roles;
    let mailgun: MailgunStandIn;
    let smtp: SmtpReceiver;
    let serverUrl: string;

    before(async () => {
      mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: MAILGUN_KEY });
      smtp = await startSmtpReceiver();
      roles = new Roles({
        MAILGUN_API_BASE: mailgun.baseUrl,
        MAILGUN_API_KEY: MAILGUN_KEY,
        SMTP_URL: smtp.url(),
      });
      serverUrl = (await roles.start('server')).url;
    });
    after(async () => {
      await roles?.cleanup();
      await mailgun?.close();
      await smtp?.close();
    });

    it('MAIL_TRANSPORT=mailgun: the worker sends through the Messages API', async () => {
      const worker = await roles.start('worker', { MAIL_TRANSPORT: 'mailgun' });
      const id = await queueEmail(serverUrl, { subject: 'Via Mailgun', text: 'Hello' });
      const message = await eventually(
        async () => mailgun.messages.find((m) => m.variables['email-id'] === id),
        { timeoutMs: 10_000, what: 'the Mailgun stand-in to receive it' },
      );
      expect(message).to.include({
        subject: 'Via Mailgun',
        text: 'Hello',
        from: 'Example <noreply@mg.example.com>',
      });
      const view = await waitForStatus(serverUrl, id, 'sent');
      expect(view.provider_id).to.equal(message.id);
      const { code } = await worker.proc.stop('SIGTERM');
      expect(code).to.equal(0);
      // All it printed, to the last line: nowhere the key.
      await closed(worker.proc);
      expect(worker.proc.output()).not.to.contain(MAILGUN_KEY);
    });

    it('MAIL_TRANSPORT=smtp: the worker sends to an SMTP server', async () => {
      const worker = await roles.start('worker', { MAIL_TRANSPORT: 'smtp' });
      const id = await queueEmail(serverUrl, {
        to: ['Bob <bob@example.org>', 'carol@example.net'],
        subject: 'Via SMTP',
        text: 'Hi',
      });
      const received = await eventually(
        async () => (await smtp.received()).find((m) => m.emailId === id),
        { timeoutMs: 10_000, what: 'the SMTP server to receive it' },
      );
      expect(received.subject).to.equal('Via SMTP');
      expect(received.recipients).to.have.members(['bob@example.org', 'carol@example.net']);
      await waitForStatus(serverUrl, id, 'sent');
      expect(worker.proc.records.find((r) => r.msg === 'Starting Queue Worker')).to.include({
        transport: 'smtp',
      });
      const { code } = await worker.proc.stop('SIGTERM');
      expect(code).to.equal(0);
    });
  });

  describe('a transient failure goes through a retry queue and comes back', function () {
    this.timeout(30_000);
    let roles: Roles;
    let mailgun: MailgunStandIn;

    before(async () => ({ roles, mailgun } = await startMailgunRoles()));
    after(() => stopMailgunRoles(roles, mailgun));

    it('a 503 is retried after the first RETRY_DELAYS step and sent on attempt 2', async () => {
      const server = await roles.start('server');
      const worker = await roles.start('worker');
      mailgun.script({ status: 503 });
      const id = await queueEmail(server.url, { subject: 'Retry me' });

      const view = await waitForStatus(server.url, id, 'sent');
      expect(view.events.map((e) => e.status)).to.deep.equal([
        'queued',
        'sending',
        'retrying',
        'sending',
        'sent',
      ]);
      expect(view.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
        [1, 'transient'],
        [2, 'sent'],
      ]);
      expect(view.attempts[0]?.detail).to.contain('503');
      expect(mailgun.messages.filter((m) => m.variables['email-id'] === id)).to.have.length(1);

      // Everything the worker logged about this email comes before its last "Time to send".
      await waitForRecord(worker.proc, (r) => r.emailId === id && r.outcome === 'Sent');
      const retried = worker.proc.records.find(
        (r) => r.emailId === id && r.msg.startsWith('Send failed for now'),
      );
      expect(retried, 'a "Send failed for now" log line').to.include({ attempt: 1, delayMs: 200 });
      const attempts = worker.proc.records
        .filter((r) => r.emailId === id && r.msg.startsWith('Initiating email send'))
        .map((r) => r.attempt);
      expect(attempts).to.deep.equal([1, 2]);
    });
  });
});
