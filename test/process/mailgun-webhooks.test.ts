import { expect } from 'chai';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { EmailProcess } from '../support/process.js';
import { startListening } from '../support/process.js';
import { startRelay } from '../support/relay.js';
import { eventually } from '../support/waiting.js';

const API_KEY = 'key-webhooks-process-0123456789';
const SIGNING_KEY = 'whk-process-test-6f0c2a9d8e7b5a41';

interface EmailJson {
  readonly status: string;
  readonly recipients: readonly { readonly address: string; readonly status: string }[];
  readonly events: readonly { readonly status: string; readonly source: string }[];
}

const send = (url: string, to: string): Promise<Response> =>
  fetch(`${url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to, subject: 'Webhooks', text: 'Hello' }),
  });

const statusOf = async (url: string, id: string): Promise<EmailJson> =>
  (await (
    await fetch(`${url}/emails/${id}`, { headers: { accept: 'application/json' } })
  ).json()) as EmailJson;

describe('email dev with Mailgun event webhooks', function () {
  this.timeout(60_000);
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let mailgun: MailgunStandIn;
  let proc: EmailProcess | undefined;
  let url: string;

  before(async () => {
    relay = await startRelay();
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
    });
    proc = started.proc;
    url = started.url;
    relay.target.url = url;
  });
  after(async () => {
    await proc?.stop();
    await mailgun?.close();
    await relay?.close();
  });

  it('turns a sent email delivered when Mailgun reports the delivery', async () => {
    const res = await send(url, 'Ada <ada@example.org>');
    expect(res.status).to.equal(202);
    const { id } = (await res.json()) as { id: string };
    const email = await eventually(
      async () => {
        const s = await statusOf(url, id);
        return s.status === 'delivered' ? s : undefined;
      },
      { timeoutMs: 20_000, what: 'the email to turn delivered' },
    );
    expect(email.recipients).to.deep.equal([
      { address: 'Ada <ada@example.org>', status: 'delivered' },
    ]);
    expect(email.events.map((e) => [e.status, e.source])).to.deep.include.members([
      ['sent', 'worker'],
      ['delivered', 'provider'],
    ]);
    // The stand-in notes our answer once it has read it all, which may be after the page shows it.
    await eventually(
      () =>
        mailgun.webhookDeliveries.some(
          (d) => d.recipient === 'ada@example.org' && d.status === 200,
        ),
      { what: 'the stand-in to note our 200' },
    );
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).to.match(/^email_provider_events_total\{[^}]*event="delivered"[^}]*\} [1-9]/m);
  });

  it('bounces and suppresses an address on a permanent failure, and refuses it after', async () => {
    const res = await send(url, 'gone@example.org');
    expect(res.status).to.equal(202);
    const { id } = (await res.json()) as { id: string };
    await eventually(async () => mailgun.messages.some((m) => m.variables['email-id'] === id), {
      what: 'the stand-in to accept the email',
    });
    const answer = await mailgun.sendEvent({
      emailId: id,
      recipient: 'gone@example.org',
      event: 'failed',
      severity: 'permanent',
      code: 550,
    });
    expect(answer.status).to.equal(200);

    // The automatic `delivered` may come before or after: the bounce wins either way.
    const email = await eventually(
      async () => {
        const s = await statusOf(url, id);
        return s.status === 'bounced' ? s : undefined;
      },
      { timeoutMs: 20_000, what: 'the email to turn bounced' },
    );
    expect(email.recipients).to.deep.equal([{ address: 'gone@example.org', status: 'bounced' }]);

    const listed = (await (
      await fetch(`${url}/suppressions`, { headers: { accept: 'application/json' } })
    ).json()) as { data: { address: string; reason: string }[] };
    expect(listed.data.map(({ address, reason }) => ({ address, reason }))).to.deep.include({
      address: 'gone@example.org',
      reason: 'bounce',
    });
    const again = await send(url, 'gone@example.org');
    expect(again.status).to.equal(422);
  });

  it('refuses an event signed with another key, and records nothing', async () => {
    const res = await send(url, 'eve@example.org');
    const { id } = (await res.json()) as { id: string };
    await eventually(async () => (await statusOf(url, id)).status === 'delivered', {
      timeoutMs: 20_000,
      what: 'the automatic delivery report',
    });
    const forged = await startMailgunStandIn({
      domain: 'mg.example.com',
      apiKey: API_KEY,
      webhookUrl: `${url}/webhooks/mailgun`,
      webhookSigningKey: 'not-the-key-of-this-domain-at-all',
    });
    try {
      // The forger needs the message on record to build the event: send it there too.
      const body = new URLSearchParams({
        from: 'noreply@mg.example.com',
        to: 'eve@example.org',
        subject: 'Webhooks',
        text: 'Hello',
        'v:email-id': id,
      });
      const sent = await fetch(`${forged.baseUrl}/messages`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`api:${API_KEY}`).toString('base64')}` },
        body,
      });
      expect(sent.status).to.equal(200);
      const answer = await forged.sendEvent({
        emailId: id,
        recipient: 'eve@example.org',
        event: 'complained',
      });
      expect(answer.status).to.equal(401);
    } finally {
      await forged.close();
    }
    const email = await statusOf(url, id);
    expect(email.status).to.equal('delivered');
    expect(email.recipients).to.deep.equal([{ address: 'eve@example.org', status: 'delivered' }]);
  });
});
