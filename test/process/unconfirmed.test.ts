// The watchdog for silence (CONFIRM_DEADLINE) in real processes, with the Mailgun stand-in: an
// email Mailgun accepted and never reported on is flagged `unconfirmed` and counted; one it
// reported on is left alone.
import { expect } from 'chai';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { EmailProcess } from '../support/process.js';
import { startListening, waitForRecord } from '../support/process.js';
import type { Roles, StatusView } from '../support/roles.js';
import {
  queueEmail,
  startMailgunRoles,
  statusOf,
  stopMailgunRoles,
  waitForStatus,
} from '../support/roles.js';
import { startRelay } from '../support/relay.js';
import { eventually } from '../support/waiting.js';

const API_KEY = 'key-unconfirmed-process-0123456789';
const SIGNING_KEY = 'whk-unconfirmed-test-3b9d1e7c5a2f8064';
/** The recipient whose events the relay turns away, as Mailgun's receiver may (406: no retry). */
const SILENT = 'silent@example.org';

const DEADLINE = '2s';
const DETAIL = 'no report from mailgun on any recipient within 2s';

/** The lines of an email's history the watchdog wrote. */
const unconfirmedLines = (view: StatusView | undefined) =>
  (view?.events ?? []).filter((e) => e.status === 'unconfirmed');

/** `email_unconfirmed_total` on a /metrics page (its role label aside), or undefined. */
const unconfirmedTotal = (metrics: string): number | undefined => {
  const m = /^email_unconfirmed_total(?:\{[^}]*\})? (\d+)$/m.exec(metrics);
  return m ? Number(m[1]) : undefined;
};

describe('the confirmation watchdog (CONFIRM_DEADLINE)', function () {
  this.timeout(60_000);

  describe('email server + email worker, Mailgun reporting nothing', () => {
    let roles: Roles | undefined;
    let mailgun: MailgunStandIn | undefined;
    after(() => stopMailgunRoles(roles, mailgun));

    it('flags the email unconfirmed, and the worker counts it in /metrics', async () => {
      ({ roles, mailgun } = await startMailgunRoles({ CONFIRM_DEADLINE: DEADLINE }));
      const server = await roles.startReady('server');
      const worker = await roles.startReady('worker');
      const id = await queueEmail(server.url);
      await waitForStatus(server.url, id, 'sent');

      const view = await eventually(
        async () => {
          const v = await statusOf(server.url, id);
          return unconfirmedLines(v).length > 0 ? v : undefined;
        },
        { timeoutMs: 20_000, what: `GET /emails/${id} to show an unconfirmed line` },
      );
      expect(view.status).to.equal('sent');
      expect(unconfirmedLines(view)).to.have.length(1);
      expect(unconfirmedLines(view)[0]).to.include({ source: 'worker', detail: DETAIL });
      expect(view.events.map((e) => e.status)).to.deep.equal([
        'queued',
        'sending',
        'sent',
        'unconfirmed',
      ]);
      // The worker that flagged it counted it, once; the count is read after the note was
      // written, and the bus hands it to the metrics right after.
      await eventually(
        async () =>
          unconfirmedTotal(await (await fetch(`${worker.url}/metrics`)).text()) === 1 || undefined,
        { what: "the worker's /metrics to say email_unconfirmed_total 1" },
      );
      const line = await waitForRecord(worker.proc, (r) => r.unconfirmed === 1, 'the warning');
      expect(line.msg).to.equal('1 email sent with no provider report on any recipient within 2s');
    });
  });

  describe('email dev, Mailgun reporting deliveries', () => {
    let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
    let mailgun: MailgunStandIn | undefined;
    let proc: EmailProcess | undefined;
    after(async () => {
      await proc?.stop();
      await mailgun?.close();
      await relay?.close();
    });

    it('leaves a delivered email alone, while it flags one with no report', async () => {
      // Events about SILENT are refused with 406, which makes the stand-in give up on them, as
      // Mailgun does.
      relay = await startRelay((body) => (recipientOf(body) === SILENT ? 406 : undefined));
      mailgun = await startMailgunStandIn({
        domain: 'mg.example.com',
        apiKey: API_KEY,
        webhookUrl: `${relay.url}/webhooks/mailgun`,
        webhookSigningKey: SIGNING_KEY,
        autoEvents: 'delivered',
        webhookRetry: { tries: 5, delayMs: 200 },
      });
      const started = await startListening(['dev'], {
        MAIL_TRANSPORT: 'mailgun',
        MAIL_FROM: 'Example <noreply@mg.example.com>',
        MAILGUN_API_BASE: mailgun.baseUrl,
        MAILGUN_API_KEY: API_KEY,
        MAILGUN_WEBHOOK_SIGNING_KEY: SIGNING_KEY,
        CONFIRM_DEADLINE: DEADLINE,
      });
      proc = started.proc;
      const url = started.url;
      relay.target.url = url;

      const delivered = await send(url, 'ada@example.org');
      await waitForStatus(url, delivered, 'delivered', 20_000);
      // Sent after the first was delivered, and never reported on (the relay turns its events
      // away): once it is flagged, a sweep has looked past the first one's deadline too.
      const silent = await send(url, SILENT);
      await eventually(
        async () => unconfirmedLines(await statusOf(url, silent)).length === 1 || undefined,
        { timeoutMs: 20_000, what: 'the unreported email to be flagged' },
      );

      const view = await statusOf(url, delivered);
      expect(view?.status).to.equal('delivered');
      expect(unconfirmedLines(view)).to.deep.equal([]);
      expect(unconfirmedTotal(await (await fetch(`${url}/metrics`)).text())).to.equal(1);
    });
  });
});

const send = async (url: string, to: string): Promise<string> => {
  const res = await fetch(`${url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to, subject: 'Watchdog', text: 'Hello' }),
  });
  const body = (await res.json()) as { id?: string };
  if (res.status !== 202 || body.id === undefined) {
    throw new Error(`expected 202 with an id, got ${res.status} ${JSON.stringify(body)}`);
  }
  return body.id;
};

/** The recipient of a Mailgun event body (`event-data.recipient`), if it is one. */
function recipientOf(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { 'event-data'?: { recipient?: unknown } };
    const recipient = parsed['event-data']?.recipient;
    return typeof recipient === 'string' ? recipient : undefined;
  } catch {
    return undefined;
  }
}
