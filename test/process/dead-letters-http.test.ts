// The dead letters over HTTP against real processes: `email dev` (its embedded queue) and
// `email server` + `email worker` (RabbitMQ's dead queue). An email the provider refuses becomes
// a dead letter that GET /dead-letters lists; once the provider recovers, a replay sends it.
import { expect } from 'chai';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { EmailProcess } from '../support/process.js';
import { startListening } from '../support/process.js';
import { requirePostgres } from '../support/postgres.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { Started } from '../support/roles.js';
import {
  AUTHORIZED,
  MAILGUN_KEY,
  MAIL_FROM,
  Roles,
  queueDepth,
  queueEmail,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

interface Letter {
  readonly id: string;
  readonly to: string[];
  readonly subject: string;
  readonly reason: string;
  readonly reason_kind: string;
  readonly attempts: number;
  readonly failed_at: string;
}

interface Listed {
  readonly data: Letter[];
  readonly counts: { total: number; by_reason: Record<string, number> };
}

const BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const REFUSED = 'Mailgun refuses this sender domain until it is verified';

async function listLetters(url: string, headers: Record<string, string> = {}): Promise<Listed> {
  const res = await fetch(`${url}/dead-letters`, { headers });
  expect(res.status, 'GET /dead-letters').to.equal(200);
  return (await res.json()) as Listed;
}

/** Polls GET /dead-letters until the letter of `id` is there. */
const letterOf = (url: string, id: string, headers: Record<string, string> = {}) =>
  eventually(async () => (await listLetters(url, headers)).data.find((l) => l.id === id), {
    timeoutMs: 15_000,
    what: `the dead letter of ${id} in GET /dead-letters`,
  });

async function postJson(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('dead letters over HTTP, end to end', function () {
  this.timeout(120_000);
  let mailgun: MailgunStandIn;

  before(async () => {
    mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: MAILGUN_KEY });
  });
  after(async () => {
    await mailgun?.close();
  });
  afterEach(() => {
    mailgun.scriptDefault(undefined);
  });

  const sendsOf = (id: string) => mailgun.messages.filter((m) => m.variables['email-id'] === id);

  describe('email dev (the embedded queue)', () => {
    let proc: EmailProcess;
    let url: string;

    before(async () => {
      ({ proc, url } = await startListening(['dev'], {
        MAIL_TRANSPORT: 'mailgun',
        MAIL_FROM,
        MAILGUN_API_BASE: mailgun.baseUrl,
        MAILGUN_API_KEY: MAILGUN_KEY,
        RETRY_DELAYS: '200ms',
      }));
    });
    after(async () => {
      await proc?.stop();
    });

    it('lists an email the provider refused, and sends it once replayed after the provider recovers', async () => {
      // The provider is broken: every send is refused for good (a 400).
      mailgun.scriptDefault({ status: 400, json: true, message: REFUSED });
      const id = await queueEmail(url, {
        to: ['Ada <ada@example.com>', 'bob@example.org'],
        subject: 'Welcome aboard',
      });
      await waitForStatus(url, id, 'failed');
      const letter = await letterOf(url, id);
      expect(letter).to.include({
        subject: 'Welcome aboard',
        reason_kind: 'permanent',
        attempts: 1,
      });
      expect(letter.to).to.deep.equal(['Ada <ada@example.com>', 'bob@example.org']);
      expect(letter.reason)
        .to.match(/^permanent: /)
        .and.contain(REFUSED);
      expect(Number.isNaN(Date.parse(letter.failed_at))).to.equal(false);
      // A browser gets the page of the same letters (dev on loopback: no sign-in).
      const page = await fetch(`${url}/dead-letters`, { headers: { accept: BROWSER } });
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-type')).to.match(/^text\/html/);
      expect(await page.text()).to.contain(`<a href="/emails/${id}">`);

      // The provider recovers; the operator replays the letter.
      mailgun.scriptDefault(undefined);
      const replayed = await postJson(url, '/dead-letters/replay', { id });
      expect(replayed).to.deep.equal({ status: 200, body: { replayed: 1 } });
      const view = await waitForStatus(url, id, 'sent');
      expect(view.attempts.map((a) => a.outcome)).to.deep.equal(['permanent', 'sent']);
      expect(view.events.map((e) => e.status)).to.deep.equal([
        'queued',
        'sending',
        'failed',
        'sending',
        'sent',
      ]);
      expect(sendsOf(id)).to.have.length(1);
      expect((await listLetters(url)).data.map((l) => l.id)).not.to.include(id);
      // Replayed once: a second replay of the id finds nothing.
      const again = await postJson(url, '/dead-letters/replay', { id });
      expect(again.status).to.equal(404);
    });

    it('replays every letter of a reason from the page, with its confirmation and CSRF token', async () => {
      mailgun.scriptDefault({ status: 400, json: true, message: REFUSED });
      const ids = [
        await queueEmail(url, { subject: 'First of two' }),
        await queueEmail(url, { subject: 'Second of two' }),
      ];
      for (const id of ids) await letterOf(url, id);
      mailgun.scriptDefault(undefined);

      // What a browser without JavaScript does: the confirmation page, then its form.
      const confirm = await fetch(`${url}/dead-letters/replay?reason=permanent`, {
        headers: { accept: BROWSER },
      });
      const html = await confirm.text();
      expect(confirm.status, html).to.equal(200);
      const total = (await listLetters(url)).counts.by_reason.permanent ?? 0;
      expect(html).to.contain(`>Replay ${total} dead letter${total === 1 ? '' : 's'}</button>`);
      const cookie = (confirm.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
      const done = await fetch(`${url}/dead-letters/replay`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          accept: BROWSER,
          'content-type': 'application/x-www-form-urlencoded',
          cookie,
        },
        body: new URLSearchParams({
          _csrf: token,
          all: 'yes',
          reason: 'permanent',
          confirm: 'yes',
        }).toString(),
      });
      expect(done.status).to.equal(303);
      expect(done.headers.get('location')).to.match(
        new RegExp(`^/dead-letters\\?replayed=${total}`),
      );
      for (const id of ids) {
        await waitForStatus(url, id, 'sent');
        expect(sendsOf(id)).to.have.length(1);
      }
    });

    it('purges only with {"confirm": true}', async () => {
      mailgun.scriptDefault({ status: 400, json: true, message: REFUSED });
      const id = await queueEmail(url, { subject: 'Purge me' });
      await letterOf(url, id);
      const stray = await postJson(url, '/dead-letters/purge', {});
      expect(stray.status).to.equal(400);
      expect((await listLetters(url)).data.map((l) => l.id)).to.include(id);
      const purged = await postJson(url, '/dead-letters/purge', { confirm: true });
      expect(purged.status).to.equal(200);
      expect((purged.body as { purged: number }).purged).to.be.at.least(1);
      expect((await listLetters(url)).counts.total).to.equal(0);
      // Purged, not replayed: the email stays failed.
      expect((await waitForStatus(url, id, 'failed')).status).to.equal('failed');
    });
  });

  describe('email server + email worker (RabbitMQ)', () => {
    let roles: Roles;
    let server: Started;

    before(async () => {
      await requireRabbitMq();
      await requirePostgres();
      roles = new Roles({
        MAIL_TRANSPORT: 'mailgun',
        MAILGUN_API_BASE: mailgun.baseUrl,
        MAILGUN_API_KEY: MAILGUN_KEY,
      });
      server = await roles.startReady('server');
      await roles.start('worker');
    });
    after(async () => {
      await roles?.cleanup();
    });

    it('lists what the worker dead-lettered, for an admin key, and sends it once replayed', async () => {
      mailgun.scriptDefault({ status: 400, json: true, message: REFUSED });
      const id = await queueEmail(server.url, { subject: 'Through RabbitMQ' });
      await waitForStatus(server.url, id, 'failed');
      const letter = await letterOf(server.url, id, AUTHORIZED);
      expect(letter).to.include({ subject: 'Through RabbitMQ', reason_kind: 'permanent' });
      // Listing leaves it where it is.
      expect((await queueDepth(roles.prefix, 'dead')).messageCount).to.equal(1);
      const noKey = await fetch(`${server.url}/dead-letters`);
      expect(noKey.status).to.equal(401);

      mailgun.scriptDefault(undefined);
      const replayed = await postJson(server.url, '/dead-letters/replay', { id }, AUTHORIZED);
      expect(replayed).to.deep.equal({ status: 200, body: { replayed: 1 } });
      const view = await waitForStatus(server.url, id, 'sent');
      expect(view.attempts.map((a) => a.outcome)).to.deep.equal(['permanent', 'sent']);
      expect(sendsOf(id)).to.have.length(1);
      expect((await queueDepth(roles.prefix, 'dead')).messageCount).to.equal(0);
    });

    it('answers 503 while its broker is not reachable, and says so', async () => {
      const cut = await roles.start('server', { AMQP_URL: 'amqp://guest:guest@127.0.0.1:1' });
      const res = await fetch(`${cut.url}/dead-letters`, { headers: AUTHORIZED });
      expect(res.status).to.equal(503);
      expect(res.headers.get('retry-after')).to.equal('5');
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      expect(error.code).to.equal('queue_unavailable');
      expect(error.message).to.contain('not connected to RabbitMQ');
      const replay = await postJson(cut.url, '/dead-letters/replay', { all: true }, AUTHORIZED);
      expect(replay.status).to.equal(503);
    });
  });
});
