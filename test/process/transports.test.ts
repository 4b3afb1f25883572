import { expect } from 'chai';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { SmtpReceiver } from '../support/mail-receivers.js';
import { startSmtpReceiver } from '../support/mail-receivers.js';
import type { EmailProcess } from '../support/process.js';
import { startListening } from '../support/process.js';
import { eventually } from '../support/waiting.js';

const API_KEY = 'key-process-test-0123456789';

async function post(url: string, body: object): Promise<string> {
  const response = await fetch(`${url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).to.equal(202);
  return ((await response.json()) as { id: string }).id;
}

const statusOf = async (url: string, id: string) =>
  (await (
    await fetch(`${url}/emails/${id}`, { headers: { accept: 'application/json' } })
  ).json()) as {
    status: string;
    provider_id?: string;
    reason?: string;
    attempts: { outcome: string; detail: string }[];
    failovers?: { from: string; to: string; reason: string }[];
  };

describe('email dev with MAIL_TRANSPORT set to a real transport', function () {
  this.timeout(30_000);
  let mailgun: MailgunStandIn;
  let smtp: SmtpReceiver;
  let proc: EmailProcess | undefined;

  before(async () => {
    mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: API_KEY });
    smtp = await startSmtpReceiver();
  });
  afterEach(async () => {
    await proc?.stop();
    proc = undefined;
    mailgun.clear();
    mailgun.scriptDefault(undefined);
  });
  after(async () => {
    await mailgun.close();
    await smtp.close();
  });

  const start = async (env: Record<string, string>) => {
    const started = await startListening(['dev'], {
      MAIL_FROM: 'Example <noreply@mg.example.com>',
      MAILGUN_API_BASE: mailgun.baseUrl,
      MAILGUN_API_KEY: API_KEY,
      SMTP_URL: smtp.url(),
      RETRY_DELAYS: '200ms,400ms',
      ...env,
    });
    proc = started.proc;
    return started.url;
  };

  it('mailgun: sends through the Messages API, with our id attached and the key never logged', async () => {
    const url = await start({ MAIL_TRANSPORT: 'mailgun' });
    const id = await post(url, { to: 'ada@example.com', subject: 'Via Mailgun', text: 'Hello' });
    const message = await eventually(
      async () => mailgun.messages.find((m) => m.variables['email-id'] === id),
      { timeoutMs: 10_000, what: 'the stand-in to receive it' },
    );
    expect(message).to.include({
      subject: 'Via Mailgun',
      text: 'Hello',
      from: 'Example <noreply@mg.example.com>',
    });
    expect(message.to).to.deep.equal(['ada@example.com']);
    const status = await eventually(async () => {
      const s = await statusOf(url, id);
      return s.status === 'sent' ? s : undefined;
    });
    expect(status.provider_id).to.equal(message.id);
    // Logged before the status changed, but possibly not read from the pipe yet.
    await proc!.waitForLog((r) => r.msg === 'API Response Status: 200.');
    expect(proc!.output()).not.to.contain(API_KEY);
  });

  it('mailgun: retries a 503 after the first delay step, then sends', async () => {
    const url = await start({ MAIL_TRANSPORT: 'mailgun' });
    mailgun.script({ status: 503 });
    const id = await post(url, { to: 'ada@example.com', subject: 'Retry me', text: 'Hello' });
    const status = await eventually(async () => {
      const s = await statusOf(url, id);
      return s.status === 'sent' ? s : undefined;
    });
    expect(status.attempts.map((a) => a.outcome)).to.deep.equal(['transient', 'sent']);
    expect(mailgun.messages.filter((m) => m.variables['email-id'] === id)).to.have.length(1);
  });

  it('mailgun: a 401 fails the email at once, says why, and does not print the key', async () => {
    const url = await start({ MAIL_TRANSPORT: 'mailgun', MAILGUN_API_KEY: 'key-wrong-9876543210' });
    const id = await post(url, { to: 'ada@example.com', subject: 'Bad key', text: 'Hello' });
    const status = await eventually(async () => {
      const s = await statusOf(url, id);
      return s.status === 'failed' ? s : undefined;
    });
    expect(status.attempts).to.have.length(1);
    // The page says what happened; what to check is the operator's, in the log.
    expect(status.attempts[0]?.detail).to.equal(
      'permanent: Mailgun refused our API credentials (401)',
    );
    expect(JSON.stringify(status)).not.to.match(/MAILGUN_|127\.0\.0\.1/);
    await eventually(async () => (proc!.output().includes('MAILGUN_API_KEY') ? true : undefined), {
      timeoutMs: 10_000,
      what: 'the log to name MAILGUN_API_KEY',
    });
    expect(proc!.output()).not.to.contain('key-wrong-9876543210');
  });

  it('smtp: sends to a real SMTP server', async () => {
    const url = await start({ MAIL_TRANSPORT: 'smtp' });
    const id = await post(url, {
      to: ['Bob <bob@example.org>', 'carol@example.net'],
      subject: 'Via SMTP',
      text: 'Hi',
    });
    const received = await eventually(
      async () => (await smtp.received()).find((m) => m.subject === 'Via SMTP'),
      { timeoutMs: 10_000, what: 'the SMTP server to receive it' },
    );
    expect(received.recipients).to.have.members(['bob@example.org', 'carol@example.net']);
    expect(received.emailId).to.equal(id);
    await eventually(async () => ((await statusOf(url, id)).status === 'sent' ? true : undefined));
  });

  it('mailgun,smtp: fails over to SMTP while Mailgun is down, and says so', async () => {
    const url = await start({ MAIL_TRANSPORT: 'mailgun,smtp' });
    mailgun.scriptDefault({ status: 503 });
    const id = await post(url, { to: 'dave@example.com', subject: 'Failover', text: 'Hi' });
    await eventually(async () => (await smtp.received()).find((m) => m.subject === 'Failover'), {
      timeoutMs: 10_000,
      what: 'SMTP to receive it',
    });
    const status = await eventually(async () => {
      const s = await statusOf(url, id);
      return s.status === 'sent' ? s : undefined;
    });
    expect(status.attempts.map((a) => a.outcome)).to.deep.equal(['sent']);
    await proc!.waitForLog((r) => r.level >= 40 && /fail(ing|ed)? over/i.test(r.msg));
    // Shown on the status page and counted, not only logged.
    expect(status.failovers?.map((f) => [f.from, f.to])).to.deep.equal([['mailgun', 'smtp']]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).to.match(/email_failover_total\{[^}]*from="mailgun"[^}]*to="smtp"[^}]*\} 1/);
  });
});
