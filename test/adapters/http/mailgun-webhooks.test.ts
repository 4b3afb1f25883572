import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../../src/adapters/config/config.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { createHttpApp } from '../../../src/adapters/http/app.js';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import {
  InMemoryDeliveryLedger,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { InMemoryWebhookTokens } from '../../../src/adapters/memory/in-memory-webhook-tokens.js';
import { RecordProviderEvent } from '../../../src/application/record-provider-event.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import type { EmailId } from '../../../src/domain/email-request.js';
import { right } from '../../contracts/email-log.contract.js';
import { guardedAccess } from '../../support/access.js';
import { anEvent } from '../../support/builders.js';
import { fixedClock, sequentialIds, switchable } from '../../support/fakes.js';
import type { TestApp } from './harness.js';
import { testApp } from './harness.js';

const SIGNING_KEY = 'key-3ax6xnjp29jd6fds4gc373sgvjxteol0';

interface Signature {
  readonly timestamp: string;
  readonly token: string;
  readonly signature: string;
}

/** Mailgun's signature block: hex HMAC-SHA256 of timestamp + token under the signing key. */
function sign(key = SIGNING_KEY, atMs = Date.now(), token = randomBytes(25).toString('hex')) {
  const timestamp = String(Math.floor(atMs / 1000));
  const signature = createHmac('sha256', key)
    .update(timestamp + token)
    .digest('hex');
  return { timestamp, token, signature };
}

interface EventSpec {
  readonly emailId?: string;
  readonly recipient: string;
  readonly event: string;
  readonly severity?: 'permanent' | 'temporary';
  readonly code?: number;
  readonly message?: string;
  /** `message.headers["message-id"]`; a Mailgun-like one by default. */
  readonly messageId?: string;
  /** `event-data.id`; random by default. */
  readonly eventId?: string;
}

/** `event-data` as Mailgun posts it (the fields we read, and a few we do not). */
const eventData = (spec: EventSpec): Record<string, unknown> => ({
  event: spec.event,
  ...(spec.severity !== undefined ? { severity: spec.severity, reason: 'bounce' } : {}),
  id: spec.eventId ?? randomBytes(16).toString('base64url').slice(0, 22),
  timestamp: Date.now() / 1000,
  'log-level': 'info',
  recipient: spec.recipient,
  'recipient-domain': spec.recipient.slice(spec.recipient.indexOf('@') + 1),
  message: { headers: { 'message-id': spec.messageId ?? '20300102030405.1.abc@mg.example.com' } },
  'user-variables': spec.emailId !== undefined ? { 'email-id': spec.emailId } : {},
  ...(spec.code !== undefined
    ? {
        'delivery-status': {
          'attempt-no': 1,
          code: spec.code,
          message: spec.message ?? '',
          description: '',
        },
      }
    : {}),
});

interface Fixture {
  readonly url: string;
  readonly parts: TestApp;
  readonly list: InMemorySuppressionList;
  /** The delivery ledger the webhook records a send in when the email's log has none. */
  readonly ledger: InMemoryDeliveryLedger;
  /** The email log as the webhook sees it: take it down to see a 503. */
  readonly store: { down: boolean };
  close(): Promise<void>;
}

/**
 * The test app with Mailgun's webhooks (and the accept-time suppression check) wired as the
 * composition roots wire them, over the harness's in-memory log and bus.
 */
async function start(
  options: { readonly key?: string | null; readonly deps?: Partial<HttpDeps> } = {},
): Promise<Fixture> {
  const parts = testApp();
  const list = new InMemorySuppressionList();
  const store = switchable(parts.emails);
  const clock = fixedClock('2030-01-02T03:04:05.000Z');
  const requestEmail = new RequestEmail(
    parts.queue,
    parts.emails,
    parts.bus,
    new InMemoryIdempotencyStore(),
    sequentialIds('webhook'),
    clock,
    parts.log,
    { suppressions: list, domainToAscii },
  );
  const ledger = new InMemoryDeliveryLedger();
  const record = new RecordProviderEvent(store.store, parts.bus, list, ledger, clock, parts.log, {
    domainToAscii,
  });
  const key = options.key === undefined ? SIGNING_KEY : options.key;
  const deps: HttpDeps = {
    ...parts.deps,
    requestEmail,
    ...(key !== null
      ? {
          mailgunWebhooks: {
            signingKey: Buffer.from(key),
            record,
            tokens: new InMemoryWebhookTokens(),
          },
        }
      : {}),
    ...options.deps,
  };
  const server = createServer(createHttpApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    parts,
    list,
    ledger,
    store,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const post = (fx: Fixture, body: unknown, contentType = 'application/json'): Promise<Response> =>
  fetch(`${fx.url}/webhooks/mailgun`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** A signed webhook for `spec`, as Mailgun sends it. */
const webhook = (spec: EventSpec, signature: Signature = sign()) => ({
  signature,
  'event-data': eventData(spec),
});

/** An email accepted through the API and sent by a worker: status `sent`. */
async function sentEmail(fx: Fixture, to: string | string[]): Promise<EmailId> {
  const res = await fetch(`${fx.url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to, subject: 'Hello', text: 'Hi' }),
  });
  expect(res.status).to.equal(202);
  const { id } = (await res.json()) as { id: EmailId };
  const request = await right(fx.parts.emails.request(id));
  if (O.isNone(request)) throw new Error('the email was not recorded');
  await fx.parts.change(anEvent.sent(request.value, { at: '2030-01-02T03:04:06.000Z' }));
  return id;
}

interface EmailJson {
  readonly status: string;
  readonly recipients: readonly { readonly address: string; readonly status: string }[];
  readonly events: readonly { readonly status: string; readonly source: string }[];
}

async function emailJson(fx: Fixture, id: string): Promise<EmailJson> {
  const res = await fetch(`${fx.url}/emails/${id}`, { headers: { accept: 'application/json' } });
  expect(res.status).to.equal(200);
  return (await res.json()) as EmailJson;
}

const listed = async (fx: Fixture) =>
  (await right(fx.list.list(50))).entries.map(({ address, reason, detail }) => ({
    address,
    reason,
    detail,
  }));

describe('POST /webhooks/mailgun', () => {
  let fx: Fixture;
  afterEach(async () => {
    await fx?.close();
  });

  it('marks a recipient and the email delivered on a signed delivered event', async () => {
    fx = await start();
    const id = await sentEmail(fx, ['Ada <ada@example.org>', 'bob@example.com']);
    for (const recipient of ['ada@example.org', 'bob@example.com']) {
      const res = await post(fx, webhook({ emailId: id, recipient, event: 'delivered' }));
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ result: 'recorded' });
    }
    const email = await emailJson(fx, id);
    expect(email.status).to.equal('delivered');
    expect(email.recipients).to.deep.equal([
      { address: 'Ada <ada@example.org>', status: 'delivered' },
      { address: 'bob@example.com', status: 'delivered' },
    ]);
    expect(email.events.filter((e) => e.source === 'provider')).to.have.length(2);
    // Announced on the bus, for live pages, metrics and webhooks out.
    expect(fx.parts.log.errors()).to.deep.equal([]);
  });

  /** An email accepted through the API whose sends all timed out: failed, nothing in the ledger. */
  async function failedEmail(fx: Fixture): Promise<EmailId> {
    const res = await fetch(`${fx.url}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'ada@example.org', subject: 'Hello', text: 'Hi' }),
    });
    const { id } = (await res.json()) as { id: EmailId };
    const request = await right(fx.parts.emails.request(id));
    if (O.isNone(request)) throw new Error('the email was not recorded');
    await fx.parts.change(anEvent.failed(request.value, { at: '2030-01-02T03:04:06.000Z' }));
    expect(await right(fx.ledger.sent(id))).to.equal(undefined);
    return id;
  }

  it('records the send in the ledger under Mailgun’s message id when the email had failed', async () => {
    fx = await start();
    const id = await failedEmail(fx);
    const delivered = webhook({ emailId: id, recipient: 'ada@example.org', event: 'delivered' });
    expect((await post(fx, delivered)).status).to.equal(200);
    expect((await emailJson(fx, id)).status).to.equal('delivered');
    // As Mailgun's send API answered it, brackets included: a retry or a replay finds it sent.
    expect(await right(fx.ledger.sent(id))).to.equal('<20300102030405.1.abc@mg.example.com>');
  });

  it('takes a message id with brackets or spaces around it, and stands the event id in for a bad one', async () => {
    fx = await start();
    const ids = { bracketed: await failedEmail(fx), odd: await failedEmail(fx) };
    const spec = { recipient: 'ada@example.org', event: 'failed', severity: 'temporary' } as const;
    const bracketed = { ...spec, emailId: ids.bracketed, messageId: ' <m1@mg.example.com> ' };
    expect((await post(fx, webhook(bracketed))).status).to.equal(200);
    expect(await right(fx.ledger.sent(ids.bracketed))).to.equal('<m1@mg.example.com>');
    // A deferral proves it too: Mailgun retries only what it accepted.
    expect((await emailJson(fx, ids.bracketed)).status).to.equal('sent');
    const odd = { ...spec, emailId: ids.odd, messageId: '<m2@mg', eventId: 'ev-odd' };
    expect((await post(fx, webhook(odd))).status).to.equal(200);
    expect(await right(fx.ledger.sent(ids.odd))).to.equal('mailgun event ev-odd');
  });

  it('bounces and suppresses the recipient of a permanent failure, and the API refuses it next', async () => {
    fx = await start();
    const id = await sentEmail(fx, 'gone@example.org');
    const res = await post(
      fx,
      webhook({
        emailId: id,
        recipient: 'gone@example.org',
        event: 'failed',
        severity: 'permanent',
        code: 550,
        message: '5.1.1 The email account does not exist at mx.example.org',
      }),
    );
    expect(res.status).to.equal(200);
    const email = await emailJson(fx, id);
    expect(email.status).to.equal('bounced');
    expect(email.recipients).to.deep.equal([{ address: 'gone@example.org', status: 'bounced' }]);
    expect(JSON.stringify(email.events)).to.include('550 5.1.1 The email account does not exist');
    // The receiving server's host is not ours to show on a public page.
    expect(JSON.stringify(email.events)).not.to.include('mx.example.org');
    expect(await listed(fx)).to.deep.equal([
      { address: 'gone@example.org', reason: 'bounce', detail: id },
    ]);

    const again = await fetch(`${fx.url}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'gone@example.org', subject: 'Again', text: 'Hi' }),
    });
    expect(again.status).to.equal(422);
    expect(((await again.json()) as { error: { code: string } }).error.code).to.equal(
      'all_recipients_suppressed',
    );
  });

  it('records a temporary failure as an event only, and suppresses a complaint', async () => {
    fx = await start();
    const id = await sentEmail(fx, ['busy@example.org', 'angry@example.org']);
    const deferred = webhook({
      emailId: id,
      recipient: 'busy@example.org',
      event: 'failed',
      severity: 'temporary',
      code: 421,
      message: '4.2.0 Try again later',
    });
    expect((await post(fx, deferred)).status).to.equal(200);
    let email = await emailJson(fx, id);
    expect(email.status).to.equal('sent');
    expect(email.recipients.map((r) => r.status)).to.deep.equal(['sent', 'sent']);
    expect(JSON.stringify(email.events)).to.include('busy@example.org deferred: 421 4.2.0');
    expect(await listed(fx)).to.deep.equal([]);

    const complaint = webhook({ emailId: id, recipient: 'angry@example.org', event: 'complained' });
    expect((await post(fx, complaint)).status).to.equal(200);
    email = await emailJson(fx, id);
    expect(email.recipients.map((r) => r.status)).to.deep.equal(['sent', 'complained']);
    expect(await listed(fx)).to.deep.equal([
      { address: 'angry@example.org', reason: 'complaint', detail: id },
    ]);
  });

  describe('refuses with 401 and changes nothing', () => {
    const bounceOf = (id: string, signature?: Signature) =>
      webhook(
        { emailId: id, recipient: 'ada@example.org', event: 'failed', severity: 'permanent' },
        signature,
      );

    const unchanged = async (id: string, status = 'sent') => {
      const email = await emailJson(fx, id);
      expect(email.status).to.equal(status);
      expect(email.recipients.map((r) => r.status)).to.deep.equal([status]);
      expect(email.events.filter((e) => e.source === 'provider')).to.have.length(
        status === 'sent' ? 0 : 1,
      );
      expect(await listed(fx)).to.deep.equal([]);
    };

    it('a signature made with another key', async () => {
      fx = await start();
      const id = await sentEmail(fx, 'ada@example.org');
      const res = await post(fx, bounceOf(id, sign('key-of-someone-else-entirely')));
      expect(res.status).to.equal(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).to.equal(
        'invalid_signature',
      );
      await unchanged(id);
    });

    it('a signature over another timestamp than the one sent', async () => {
      fx = await start();
      const id = await sentEmail(fx, 'ada@example.org');
      const good = sign();
      const res = await post(
        fx,
        bounceOf(id, { ...good, timestamp: String(Number(good.timestamp) + 1) }),
      );
      expect(res.status).to.equal(401);
      await unchanged(id);
    });

    it('a timestamp more than five minutes old, or ahead', async () => {
      fx = await start();
      const id = await sentEmail(fx, 'ada@example.org');
      for (const offsetMs of [-6 * 60_000, 6 * 60_000]) {
        const res = await post(fx, bounceOf(id, sign(SIGNING_KEY, Date.now() + offsetMs)));
        expect(res.status).to.equal(401);
        expect(((await res.json()) as { error: { code: string } }).error.code).to.equal(
          'stale_timestamp',
        );
      }
      await unchanged(id);
    });

    it('a token seen before, even with other event data', async () => {
      fx = await start();
      const id = await sentEmail(fx, 'ada@example.org');
      const signature = sign();
      const delivered = webhook(
        { emailId: id, recipient: 'ada@example.org', event: 'delivered' },
        signature,
      );
      expect((await post(fx, delivered)).status).to.equal(200);
      const replay = await post(fx, bounceOf(id, signature));
      expect(replay.status).to.equal(401);
      expect(((await replay.json()) as { error: { code: string } }).error.code).to.equal(
        'replayed_token',
      );
      expect((await post(fx, delivered)).status).to.equal(401);
      await unchanged(id, 'delivered');
    });
  });

  it('answers 200 for an email it does not know, or one sent by something else', async () => {
    fx = await start();
    for (const emailId of ['unknown-email-0001', undefined]) {
      const res = await post(
        fx,
        webhook({
          ...(emailId ? { emailId } : {}),
          recipient: 'ada@example.org',
          event: 'failed',
          severity: 'permanent',
        }),
      );
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ result: 'unknown' });
    }
    expect(await listed(fx)).to.deep.equal([]);
    expect((await right(fx.parts.emails.list({ limit: 10 }))).data).to.deep.equal([]);
  });

  it('answers 200 to the events it does not follow', async () => {
    fx = await start();
    const id = await sentEmail(fx, 'ada@example.org');
    for (const event of ['opened', 'clicked', 'accepted']) {
      const res = await post(fx, webhook({ emailId: id, recipient: 'ada@example.org', event }));
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ result: 'ignored' });
    }
    expect((await emailJson(fx, id)).status).to.equal('sent');
  });

  it('says what is wrong with a malformed webhook (400), and records nothing', async () => {
    fx = await start();
    const id = await sentEmail(fx, 'ada@example.org');
    const cases: [unknown, string][] = [
      [[1, 2], 'body'],
      [
        { 'event-data': eventData({ emailId: id, recipient: 'a@b.org', event: 'delivered' }) },
        'signature',
      ],
      [{ signature: { ...sign(), signature: 'not hex' } }, 'signature.signature'],
      [{ signature: { ...sign(), timestamp: 1_700_000_000 } }, 'signature.timestamp'],
      [{ signature: sign() }, 'event-data'],
      [
        webhook({ emailId: id, recipient: 'not an address', event: 'delivered' }),
        'event-data.recipient',
      ],
      [
        webhook({ emailId: id, recipient: 'ada@example.org', event: 'failed' }),
        'event-data.severity',
      ],
    ];
    for (const [body, field] of cases) {
      const res = await post(fx, body);
      expect(res.status, field).to.equal(400);
      const { error } = (await res.json()) as {
        error: { code: string; message: string; fields: Record<string, string> };
      };
      expect(error.fields, field).to.have.property(field);
      expect(error.message).to.include(field);
    }
    expect((await post(fx, '{"signature":', 'application/json')).status).to.equal(400);
    expect(
      (await post(fx, 'event=delivered', 'application/x-www-form-urlencoded')).status,
    ).to.equal(415);
    expect((await emailJson(fx, id)).status).to.equal('sent');
    expect(await listed(fx)).to.deep.equal([]);
  });

  it('answers 503 while the store is down, and takes the same request when Mailgun sends it again', async () => {
    fx = await start();
    const id = await sentEmail(fx, 'ada@example.org');
    const delivered = webhook({ emailId: id, recipient: 'ada@example.org', event: 'delivered' });
    fx.store.down = true;
    const down = await post(fx, delivered);
    expect(down.status).to.equal(503);
    expect(down.headers.get('retry-after')).to.match(/^\d+$/);
    fx.store.down = false;
    expect((await emailJson(fx, id)).status).to.equal('sent');
    // The same token: its first request changed nothing, so this is no replay.
    expect((await post(fx, delivered)).status).to.equal(200);
    expect((await emailJson(fx, id)).status).to.equal('delivered');
  });

  it('does not exist without a signing key', async () => {
    fx = await start({ key: null });
    const res = await post(fx, webhook({ recipient: 'ada@example.org', event: 'delivered' }));
    expect(res.status).to.equal(404);
  });

  it('needs no API key where the API does, and is counted per address', async () => {
    fx = await start({ deps: guardedAccess().deps });
    const delivered = () =>
      webhook({ emailId: 'unknown-email-0002', recipient: 'ada@example.org', event: 'delivered' });
    expect((await post(fx, delivered())).status).to.equal(200);
    const api = await fetch(`${fx.url}/emails`, { headers: { accept: 'application/json' } });
    expect(api.status).to.equal(401);
    await fx.close();

    fx = await start({ deps: guardedAccess({ limit: 3 }).deps });
    const answers: number[] = [];
    for (let i = 0; i < 4; i += 1) answers.push((await post(fx, delivered())).status);
    expect(answers).to.deep.equal([200, 200, 200, 429]);
  });
});

describe('MAILGUN_WEBHOOK_SIGNING_KEY', () => {
  it('is read as a secret that never shows, and is optional', () => {
    const config = loadConfig({ MAILGUN_WEBHOOK_SIGNING_KEY: SIGNING_KEY }, 'dev');
    expect(E.isRight(config)).to.equal(true);
    if (E.isRight(config)) {
      expect(config.right.mailgunWebhookSigningKey?.reveal()).to.equal(SIGNING_KEY);
      expect(JSON.stringify(config.right)).not.to.include(SIGNING_KEY);
    }
    const without = loadConfig({}, 'dev');
    expect(E.isRight(without) && without.right.mailgunWebhookSigningKey).to.equal(undefined);
    const bad = loadConfig({ MAILGUN_WEBHOOK_SIGNING_KEY: 'short' }, 'dev');
    expect(E.isLeft(bad) && bad.left.map((p) => p.variable)).to.deep.equal([
      'MAILGUN_WEBHOOK_SIGNING_KEY',
    ]);
    expect(JSON.stringify(bad)).not.to.include('"short"');
  });
});
