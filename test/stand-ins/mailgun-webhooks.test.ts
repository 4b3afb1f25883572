import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type {
  MailgunStandIn,
  MailgunWebhookPayload,
  StandInOptions,
} from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { faultsTaken } from '../support/mail-receivers.js';
import { eventually, sleep } from '../support/waiting.js';

const KEY = 'key-webhooks-test';
const auth = `Basic ${Buffer.from(`api:${KEY}`).toString('base64')}`;

/** What our receiver checks first: Mailgun's signature, recomputed. */
function verifies(payload: MailgunWebhookPayload, signingKey: string): boolean {
  const { timestamp, token, signature } = payload.signature;
  const expected = createHmac('sha256', signingKey)
    .update(timestamp + token)
    .digest();
  const given = Buffer.from(signature, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

interface Answer {
  readonly status: number;
  readonly body?: string;
  /** Answer only once this resolves. */
  readonly after?: Promise<void>;
}

/** A webhook receiver: records every body, answers from a script, then 200 `ok`. */
interface Receiver {
  readonly url: string;
  readonly received: MailgunWebhookPayload[];
  script(...answers: Answer[]): void;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: MailgunWebhookPayload[] = [];
  const answers: Answer[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as MailgunWebhookPayload);
      const answer = answers.shift() ?? { status: 200, body: 'ok' };
      void (answer.after ?? Promise.resolve()).then(() =>
        res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body ?? ''),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks/mailgun`,
    received,
    script: (...list) => answers.push(...list),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const root = (standIn: MailgunStandIn): string => standIn.baseUrl.replace(/\/v3\/.*$/, '');

/** Sends through the stand-in's Messages API, as MailgunEmailSender does. */
async function send(
  standIn: Pick<MailgunStandIn, 'baseUrl'>,
  extra: [string, string][] = [],
): Promise<string> {
  const body = new URLSearchParams([
    ['from', 'Shop <noreply@mg.example.org>'],
    ['to', 'Ann@Example.org'],
    ['subject', 'Your order'],
    ['text', 'Thanks'],
    ['o:tag', 'orders'],
    ['v:email-id', 'em_0001'],
    ['v:order', '42'],
    ...extra,
  ]);
  const res = await fetch(`${standIn.baseUrl}/messages`, {
    method: 'POST',
    headers: { authorization: auth },
    body,
  });
  expect(res.status).to.equal(200);
  return ((await res.json()) as { id: string }).id;
}

const postEvent = (standIn: MailgunStandIn, body: unknown): Promise<Response> =>
  fetch(`${root(standIn)}/__stand-in/events`, { method: 'POST', body: JSON.stringify(body) });

describe('Mailgun stand-in: event webhooks', () => {
  let receiver: Receiver;
  let standIn: MailgunStandIn | undefined;
  const start = async (options: StandInOptions = {}): Promise<MailgunStandIn> =>
    (standIn = await startMailgunStandIn({
      domain: 'mg.example.org',
      apiKey: KEY,
      webhookUrl: receiver.url,
      ...options,
    }));

  beforeEach(async () => (receiver = await startReceiver()));
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
    await receiver.close();
  });

  describe('auto delivered events', () => {
    it('posts one signed delivered event per recipient, to, cc and bcc', async () => {
      const mailgun = await start({ autoEvents: 'delivered' });
      const before = Date.now();
      const id = await send(mailgun, [
        ['to', '"Doe, Bo" <bo@example.org>'],
        ['cc', 'cy@example.org'],
        ['bcc', 'di@example.org, ann@example.org'], // Ann twice: Mailgun drops the duplicate
      ]);
      await eventually(() => receiver.received.length === 4, { what: 'four delivered events' });
      await sleep(100); // and no fifth
      expect(receiver.received).to.have.length(4);

      const events = receiver.received.map((p) => p['event-data']);
      expect(events.map((e) => e.recipient).sort()).to.deep.equal([
        'Ann@Example.org',
        'bo@example.org',
        'cy@example.org',
        'di@example.org',
      ]);
      for (const payload of receiver.received) {
        expect(verifies(payload, mailgun.webhookSigningKey), 'signature').to.equal(true);
        const seconds = Number(payload.signature.timestamp);
        expect(payload.signature.timestamp).to.match(/^\d+$/);
        expect(seconds).to.be.within(Math.floor(before / 1000) - 1, Date.now() / 1000 + 1);
        expect(payload.signature.token).to.match(/^[0-9a-f]{50}$/);
        const data = payload['event-data'];
        expect(data.event).to.equal('delivered');
        expect(data.timestamp).to.be.within(before / 1000 - 1, Date.now() / 1000 + 1);
        expect(data.timestamp % 1, 'float seconds').to.not.equal(0);
        expect(data.message.headers['message-id']).to.equal(id.slice(1, -1));
        expect(data['user-variables']).to.deep.equal({ 'email-id': 'em_0001', order: '42' });
        expect(data.tags).to.deep.equal(['orders']);
        expect(data['delivery-status']?.code).to.equal(250);
        expect(data).to.not.have.property('severity');
      }
      const tokens = new Set(receiver.received.map((p) => p.signature.token));
      const ids = new Set(events.map((e) => e.id));
      expect([tokens.size, ids.size]).to.deep.equal([4, 4]);
      expect(mailgun.webhookDeliveries.map((d) => [d.event, d.status, d.auto])).to.deep.equal(
        Array(4).fill(['delivered', 200, true]),
      );
    });

    it('answers the sender before the receiver has answered', async () => {
      const mailgun = await start({ autoEvents: 'delivered' });
      let release = (): void => undefined;
      receiver.script({ status: 200, after: new Promise((r) => (release = r)) });
      await send(mailgun); // would time out if the 200 waited for the webhook
      await eventually(() => receiver.received.length === 1);
      expect(mailgun.webhookDeliveries).to.have.length(0); // still held by the receiver
      release();
      await eventually(() => mailgun.webhookDeliveries[0]?.status === 200);
    });

    it('retries a non-2xx answer, signing each try anew, and lists every attempt', async () => {
      const mailgun = await start({
        autoEvents: 'delivered',
        webhookRetry: { tries: 3, delayMs: 50 },
      });
      receiver.script({ status: 503 });
      await send(mailgun);
      await eventually(() => mailgun.webhookDeliveries.length === 2);
      const [first, second] = mailgun.webhookDeliveries;
      expect([first?.attempt, first?.status, second?.attempt, second?.status]).to.deep.equal([
        1, 503, 2, 200,
      ]);
      expect(second?.eventId).to.equal(first?.eventId);
      const [a, b] = receiver.received;
      expect(a?.signature.token).to.not.equal(b?.signature.token);
      expect(verifies(b!, mailgun.webhookSigningKey)).to.equal(true);

      const listed = (await (
        await fetch(`${root(mailgun)}/__stand-in/webhook-deliveries`)
      ).json()) as Record<string, unknown>[];
      expect(listed.map((d) => [d.url, d.event, d.recipient, d.status])).to.deep.equal([
        [receiver.url, 'delivered', 'Ann@Example.org', 503],
        [receiver.url, 'delivered', 'Ann@Example.org', 200],
      ]);
      expect(listed.every((d) => typeof d.at === 'string' && !Number.isNaN(Date.parse(d.at)))).to.be
        .true;
    });

    it('by default tries again a second later', async () => {
      const mailgun = await start({ autoEvents: 'delivered' });
      receiver.script({ status: 502 });
      await send(mailgun);
      const [first, second] = await eventually(
        () => mailgun.webhookDeliveries.length === 2 && mailgun.webhookDeliveries,
      );
      const gap = Date.parse(second!.at) - Date.parse(first!.at);
      expect([first?.status, second?.status]).to.deep.equal([502, 200]);
      expect(gap).to.be.within(950, 2_000);
    });

    it('gives up after the last try, and at once on 406 as Mailgun does', async () => {
      const mailgun = await start({
        autoEvents: 'delivered',
        webhookRetry: { tries: 3, delayMs: 20 },
      });
      receiver.script({ status: 500 }, { status: 500 }, { status: 500 });
      await send(mailgun);
      await eventually(() => mailgun.webhookDeliveries.length === 3);
      receiver.script({ status: 406 });
      await send(mailgun, [['v:email-id', 'em_0002']]);
      await eventually(() => mailgun.webhookDeliveries.length === 4);
      await sleep(200);
      expect(mailgun.webhookDeliveries.map((d) => d.status)).to.deep.equal([500, 500, 500, 406]);
    });

    it('stops retrying when the stand-in closes', async () => {
      const mailgun = await start({
        autoEvents: 'delivered',
        webhookRetry: { tries: 3, delayMs: 5_000 },
      });
      receiver.script({ status: 503 });
      await send(mailgun);
      await eventually(() => mailgun.webhookDeliveries.length === 1);
      const started = Date.now();
      await mailgun.close();
      standIn = undefined;
      expect(Date.now() - started).to.be.below(1_000);
      expect(receiver.received).to.have.length(1);
    });
  });

  describe('auto delivered events and close()', () => {
    it('neither posts nor lists an event after close(), for a send still waiting out its latency', async () => {
      const mailgun = await start({ autoEvents: 'delivered' });
      mailgun.script({ latencyMs: 200 });
      const sent = fetch(`${mailgun.baseUrl}/messages`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`api:${KEY}`).toString('base64')}` },
        body: new URLSearchParams([
          ['from', 'Shop <shop@mg.example.org>'],
          ['to', 'ann@example.org'],
          ['subject', 'Hi'],
          ['text', 'Hello'],
        ]),
      }).catch(() => undefined);
      await faultsTaken(mailgun.baseUrl); // it arrived, and waits
      await mailgun.close();
      standIn = undefined;
      expect(await sent).to.equal(undefined); // its socket was destroyed: no answer
      // Real time past its latency: what its wait would have ended in, had close() not come.
      await sleep(300);
      expect(receiver.received).to.have.length(0);
      expect(mailgun.webhookDeliveries).to.deep.equal([]);
    });
  });

  describe('POST /__stand-in/events', () => {
    it('posts a permanent failure built from the message, and answers what the receiver said', async () => {
      const mailgun = await start();
      const id = await send(mailgun, [['o:tag', 'receipts']]);
      receiver.script({ status: 200, body: 'thanks' });
      const res = await postEvent(mailgun, {
        email_id: 'em_0001',
        recipient: 'ann@example.org',
        event: 'failed',
        severity: 'permanent',
        reason: 'bounce',
        code: 550,
      });
      expect([res.status, await res.text()]).to.deep.equal([200, 'thanks']);
      const [payload] = receiver.received;
      expect(verifies(payload!, mailgun.webhookSigningKey)).to.equal(true);
      const data = payload!['event-data'];
      expect(data).to.deep.include({
        event: 'failed',
        severity: 'permanent',
        reason: 'bounce',
        recipient: 'Ann@Example.org',
        'log-level': 'error',
        tags: ['orders', 'receipts'],
        'user-variables': { 'email-id': 'em_0001', order: '42' },
      });
      expect(data['delivery-status']?.code).to.equal(550);
      expect(data.message.headers['message-id']).to.equal(id.slice(1, -1));
      expect(mailgun.webhookDeliveries.map((d) => [d.event, d.status, d.auto])).to.deep.equal([
        ['failed', 200, false],
      ]);
    });

    it('posts a complaint found by Mailgun message id, brackets or not', async () => {
      const mailgun = await start();
      const id = await send(mailgun);
      for (const messageId of [id, id.slice(1, -1)]) {
        const res = await postEvent(mailgun, {
          message_id: messageId,
          recipient: 'Ann@Example.org',
          event: 'complained',
        });
        expect(res.status).to.equal(200);
      }
      const [a, b] = receiver.received.map((p) => p['event-data']);
      expect(a?.event).to.equal('complained');
      expect(a).to.not.have.property('severity');
      expect(a).to.not.have.property('delivery-status');
      expect(a?.['user-variables']['email-id']).to.equal('em_0001');
      expect(a?.id).to.not.equal(b?.id);
      expect(receiver.received[0]?.signature.token).to.not.equal(
        receiver.received[1]?.signature.token,
      );
    });

    it("answers the receiver's refusal as it came, without retrying", async () => {
      const mailgun = await start({ webhookRetry: { tries: 3, delayMs: 10 } });
      await send(mailgun);
      receiver.script({ status: 401, body: 'bad signature' });
      const res = await postEvent(mailgun, {
        email_id: 'em_0001',
        recipient: 'ann@example.org',
        event: 'delivered',
      });
      expect([res.status, await res.text()]).to.deep.equal([401, 'bad signature']);
      await sleep(100);
      expect(mailgun.webhookDeliveries).to.have.length(1);
    });

    it('answers 404 for an unknown message or recipient, 400 for a bad body', async () => {
      const mailgun = await start();
      await send(mailgun);
      const cases: [unknown, number, RegExp][] = [
        [
          { email_id: 'em_nope', recipient: 'ann@example.org', event: 'delivered' },
          404,
          /no such message/,
        ],
        [
          { message_id: '<1.2@mg.example.org>', recipient: 'ann@example.org', event: 'failed' },
          404,
          /no such message/,
        ],
        [
          { email_id: 'em_0001', recipient: 'zed@example.org', event: 'delivered' },
          404,
          /not a recipient/,
        ],
        [{ recipient: 'ann@example.org', event: 'delivered' }, 400, /email_id or message_id/],
        [
          { email_id: 'em_0001', recipient: 'ann@example.org', event: 'opened' },
          400,
          /event must be/,
        ],
        [
          {
            email_id: 'em_0001',
            recipient: 'ann@example.org',
            event: 'complained',
            severity: 'permanent',
          },
          400,
          /failed events only/,
        ],
        [
          { email_id: 'em_0001', recipient: 'ann@example.org', event: 'failed', code: '550' },
          400,
          /code/,
        ],
        [
          { email_id: 'em_0001', recipient: 'ann@example.org', event: 'failed', extra: 1 },
          400,
          /unknown field extra/,
        ],
      ];
      for (const [body, status, message] of cases) {
        const res = await postEvent(mailgun, body);
        const answer = (await res.json()) as { message: string };
        expect([res.status, answer.message], JSON.stringify(body)).to.satisfy(
          ([s, m]: [number, string]) => s === status && message.test(m),
        );
      }
      expect(receiver.received).to.have.length(0);
    });

    it('answers 409 without a webhook URL, and 502 when the receiver is gone', async () => {
      const bare = await startMailgunStandIn({ domain: 'mg.example.org', apiKey: KEY });
      try {
        await send(bare);
        const res = await postEvent(bare, {
          email_id: 'em_0001',
          recipient: 'ann@example.org',
          event: 'delivered',
        });
        expect(res.status).to.equal(409);
        expect(bare.webhookUrl).to.equal(undefined);
      } finally {
        await bare.close();
      }
      const mailgun = await start();
      await send(mailgun);
      await receiver.close();
      const res = await postEvent(mailgun, {
        email_id: 'em_0001',
        recipient: 'ann@example.org',
        event: 'delivered',
      });
      expect(res.status).to.equal(502);
      expect(((await res.json()) as { message: string }).message).to.match(/ECONNREFUSED/);
      expect(mailgun.webhookDeliveries.map((d) => [d.status, d.error])).to.deep.equal([
        [null, 'ECONNREFUSED'],
      ]);
      receiver = await startReceiver(); // for afterEach
    });
  });

  describe('sendEvent, in process', () => {
    it("resolves with the receiver's answer; a temporary failure carries 421 by default", async () => {
      const mailgun = await start();
      await send(mailgun);
      const answer = await mailgun.sendEvent({
        emailId: 'em_0001',
        recipient: 'ann@example.org',
        event: 'failed',
        severity: 'temporary',
      });
      expect([answer.status, answer.body]).to.deep.equal([200, 'ok']);
      const data = receiver.received[0]?.['event-data'];
      expect([data?.severity, data?.reason, data?.['delivery-status']?.code]).to.deep.equal([
        'temporary',
        'generic',
        421,
      ]);
    });

    it('posts an unsubscribe, and rejects an unknown message or a stand-in without a URL', async () => {
      const mailgun = await start();
      await send(mailgun);
      await mailgun.sendEvent({
        emailId: 'em_0001',
        recipient: 'ann@example.org',
        event: 'unsubscribed',
      });
      expect(receiver.received[0]?.['event-data'].event).to.equal('unsubscribed');
      const unknown = await mailgun
        .sendEvent({ emailId: 'em_nope', recipient: 'ann@example.org', event: 'delivered' })
        .catch((e: unknown) => e);
      expect(String(unknown)).to.match(/no such message/);
      const bare = await startMailgunStandIn({ domain: 'mg.example.org', apiKey: KEY });
      try {
        await send(bare);
        const refused = await bare
          .sendEvent({ emailId: 'em_0001', recipient: 'ann@example.org', event: 'delivered' })
          .catch((e: unknown) => e);
        expect(String(refused)).to.match(/no webhook URL/);
      } finally {
        await bare.close();
      }
    });

    it('signs with the given key, or a fresh random one per stand-in', async () => {
      const given = await start({ webhookSigningKey: 'whsk-given' });
      expect(given.webhookSigningKey).to.equal('whsk-given');
      await send(given);
      await given.sendEvent({
        emailId: 'em_0001',
        recipient: 'ann@example.org',
        event: 'delivered',
      });
      expect(verifies(receiver.received[0]!, 'whsk-given')).to.equal(true);
      const [a, b] = await Promise.all([startMailgunStandIn(), startMailgunStandIn()]);
      try {
        expect(a.webhookSigningKey).to.match(/^[0-9a-f]{32}$/);
        expect(a.webhookSigningKey).to.not.equal(b.webhookSigningKey);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('refuses autoEvents without a webhook URL at start', async () => {
      const error = await startMailgunStandIn({ autoEvents: 'delivered' }).catch((e: unknown) => e);
      expect(String(error)).to.match(/needs a webhookUrl/);
    });
  });

  describe('as a process', () => {
    const script = fileURLToPath(
      new URL('../../src/stand-ins/mailgun-stand-in.js', import.meta.url),
    );
    const run = (env: Record<string, string>) => {
      const child = spawn(process.execPath, [script], {
        env: { ...process.env, PORT: '0', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      return { child, exited, out: () => stdout, err: () => stderr };
    };

    it('asks for the signing key when a webhook URL is set', async () => {
      const proc = run({ MAILGUN_STANDIN_WEBHOOK_URL: receiver.url });
      expect(await proc.exited).to.equal(1);
      expect(proc.err()).to.match(/^mailgun stand-in: .*MAILGUN_STANDIN_WEBHOOK_SIGNING_KEY.*\n$/);
      const bad = run({
        MAILGUN_STANDIN_WEBHOOK_URL: receiver.url,
        MAILGUN_STANDIN_WEBHOOK_SIGNING_KEY: 'k',
        MAILGUN_STANDIN_AUTO_EVENTS: 'opened',
      });
      expect(await bad.exited).to.equal(1);
      expect(bad.err()).to.match(/MAILGUN_STANDIN_AUTO_EVENTS must be delivered or none/);
    });

    it('posts delivered events signed with the key from the environment', async () => {
      const proc = run({
        MAILGUN_DOMAIN: 'mg.example.org',
        MAILGUN_API_KEY: KEY,
        MAILGUN_STANDIN_WEBHOOK_URL: receiver.url,
        MAILGUN_STANDIN_WEBHOOK_SIGNING_KEY: 'whsk-from-env',
        MAILGUN_STANDIN_AUTO_EVENTS: 'delivered',
      });
      try {
        const baseUrl = await eventually(() => /^(http:\S+)\n/.exec(proc.out())?.[1]);
        await send({ baseUrl });
        await eventually(() => receiver.received.length === 1);
        expect(verifies(receiver.received[0]!, 'whsk-from-env')).to.equal(true);
        expect(proc.out()).to.not.contain('whsk-from-env');
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
      }
    });

    it('answers a domain that is not valid percent-encoding with a 404, and keeps running', async () => {
      const proc = run({ MAILGUN_DOMAIN: 'mg.example.org', MAILGUN_API_KEY: KEY });
      try {
        const baseUrl = await eventually(() => /^(http:\S+)\n/.exec(proc.out())?.[1]);
        // decodeURIComponent('%E0') throws in the request listener: an uncaught URIError.
        const bad = baseUrl.replace('mg.example.org', '%E0');
        const res = await fetch(`${bad}/messages`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`api:${KEY}`).toString('base64')}` },
          body: new URLSearchParams([['from', 'Shop <shop@mg.example.org>']]),
        }).then(
          (r) => r.status,
          () => 'no answer',
        );
        expect(res, proc.err()).to.equal(404);
        expect(proc.child.exitCode, proc.err()).to.equal(null);
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
      }
    });
  });
});
