import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { EmailProcess } from '../support/process.js';
import { runEmail, startListening, waitForRecord } from '../support/process.js';
import { eventually } from '../support/waiting.js';

const API_KEY = 'key-embedded-test-0123456789';

interface View {
  readonly status: string;
  readonly attempts: readonly { readonly outcome: string; readonly detail: string }[];
  readonly events: readonly { readonly status: string }[];
}

async function post(url: string, subject: string): Promise<string> {
  const response = await fetch(`${url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to: 'ada@example.com', subject, text: 'Hello' }),
  });
  expect(response.status).to.equal(202);
  return ((await response.json()) as { id: string }).id;
}

async function view(url: string, id: string): Promise<View> {
  const response = await fetch(`${url}/emails/${id}`, { headers: { accept: 'application/json' } });
  expect(response.status, `GET /emails/${id}`).to.equal(200);
  return (await response.json()) as View;
}

// `npm start` is `email dev` on an embedded PostgreSQL in DATA_DIR: Ctrl-C loses nothing.
describe('email dev on its embedded database (DATA_DIR)', function () {
  this.timeout(90_000);
  let mailgun: MailgunStandIn;
  let dir: string;
  const running: EmailProcess[] = [];

  before(async () => {
    mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: API_KEY });
    dir = await mkdtemp(join(tmpdir(), 'email-dev-data-'));
  });
  after(async () => {
    await Promise.all(running.map((p) => p.stop('SIGKILL')));
    await mailgun.close();
    await rm(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<{ proc: EmailProcess; url: string; ms: number }> => {
    const began = performance.now();
    const started = await startListening(['dev'], {
      DATA_DIR: join(dir, 'data'),
      MAIL_TRANSPORT: 'mailgun',
      MAIL_FROM: 'Example <noreply@mg.example.com>',
      MAILGUN_API_BASE: mailgun.baseUrl,
      MAILGUN_API_KEY: API_KEY,
      RETRY_DELAYS: '300ms',
      MAX_ATTEMPTS: '50',
    });
    running.push(started.proc);
    return { ...started, ms: Math.round(performance.now() - began) };
  };

  it('keeps a retrying email and one accepted just before Ctrl-C, and sends each once after a restart', async () => {
    // The provider is down: every send answers 503.
    mailgun.scriptDefault({ status: 503 });
    const first = await start();
    const retrying = await post(first.url, 'Accepted while Mailgun is down');
    await eventually(async () => (await view(first.url, retrying)).attempts.length >= 2, {
      what: 'two failed attempts',
    });
    const lastMoment = await post(first.url, 'Accepted a moment before Ctrl-C');

    const stopped = await first.proc.stop('SIGINT');
    expect(stopped.code).to.equal(0);
    const waiting = await waitForRecord(first.proc, (r) => /left waiting/.test(r.msg));
    expect(waiting.msg).to.match(/^2 emails left waiting; they resume on the next start$/);
    const triedBefore = mailgun.messages.length;
    expect(triedBefore).to.equal(0); // a 503 keeps nothing

    // Healthy again; the same DATA_DIR.
    mailgun.scriptDefault(undefined);
    const second = await start();
    for (const id of [retrying, lastMoment]) {
      await eventually(async () => (await view(second.url, id)).status === 'sent', {
        what: `${id} sent after the restart`,
        timeoutMs: 20_000,
      });
    }
    const sends = (id: string) => mailgun.messages.filter((m) => m.variables['email-id'] === id);
    expect(sends(retrying)).to.have.length(1);
    expect(sends(lastMoment)).to.have.length(1);

    // The page still shows what happened before the stop.
    const history = await view(second.url, retrying);
    const failed = history.attempts.filter((a) => a.outcome === 'transient');
    expect(failed.length).to.be.at.least(2);
    expect(failed[0]?.detail).to.match(/503/);
    expect(history.attempts.at(-1)?.outcome).to.equal('sent');
    expect(history.events.map((e) => e.status)[0]).to.equal('queued');
    console.log(
      `      first start on an empty DATA_DIR answered in ${first.ms} ms; the restart in ${second.ms} ms`,
    );
    await second.proc.stop('SIGINT');
  });

  it('refuses a second process on the same DATA_DIR, naming it, with exit 2', async () => {
    const one = await start();
    const two = runEmail(['dev'], { DATA_DIR: join(dir, 'data'), PORT: '0' });
    const { code } = await two.exited;
    await two.closed;
    expect(code).to.equal(2);
    expect(two.stderr.join('')).to.contain(`DATA_DIR=${join(dir, 'data')}`);
    await one.proc.stop('SIGINT');
  });
});
