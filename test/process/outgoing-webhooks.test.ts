// Outgoing webhooks as a user of `email server` + `email worker` (RabbitMQ, PostgreSQL, the
// Mailgun stand-in posting its event webhooks) and of `email dev` sees them: every change of
// status reaches the endpoints subscribed to it, signed per Standard Webhooks, retried until the
// receiver takes it, recorded on the email; a receiver that never answers holds up no email.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { EmailProcess } from '../support/process.js';
import { startListening } from '../support/process.js';
import { requirePostgres } from '../support/postgres.js';
import { boundKeys, requireRabbitMq } from '../support/rabbitmq.js';
import { WEBHOOK_EVENT_KEYS } from '../../src/adapters/rabbitmq/topology.js';
import { startRelay } from '../support/relay.js';
import type { StatusView } from '../support/roles.js';
import {
  AUTHORIZED,
  MAILGUN_KEY,
  Roles,
  queueEmail,
  startOutboxRoles,
  statusOf,
  stopOutboxRoles,
  waitForStatus,
} from '../support/roles.js';
import type { ReceivedWebhook, WebhookReceiver } from '../support/webhook-receiver.js';
import { startWebhookReceiver } from '../support/webhook-receiver.js';
import { eventually } from '../support/waiting.js';

const SIGNING_KEY = 'whk-outgoing-test-2b7e151628aed2a6';

interface Endpoint {
  readonly id: string;
  readonly secret: string;
}

interface WebhookBody {
  readonly type: string;
  readonly timestamp: string;
  readonly data: {
    readonly id: string;
    readonly status: string;
    readonly to: readonly string[];
    readonly subject: string;
    readonly tags: readonly string[];
    readonly metadata: Record<string, string>;
    readonly recipient?: string;
    readonly reason?: string;
  };
}

type WithWebhooks = StatusView & {
  readonly webhooks?: readonly {
    readonly id: string;
    readonly type: string;
    readonly state: string;
    readonly attempts: readonly { readonly status_code?: number; readonly error?: string }[];
  }[];
};

async function subscribe(
  url: string,
  target: string,
  events: readonly string[],
  headers: Record<string, string> = AUTHORIZED,
): Promise<Endpoint> {
  const res = await fetch(`${url}/webhooks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ url: target, events }),
  });
  const body = (await res.json()) as Endpoint;
  expect(res.status, JSON.stringify(body)).to.equal(201);
  return body;
}

/** Verifies a request as a receiver would, with the standardwebhooks package; throws if bad. */
function verified(secret: string, request: ReceivedWebhook): WebhookBody {
  const headers = {
    'webhook-id': String(request.headers['webhook-id']),
    'webhook-timestamp': String(request.headers['webhook-timestamp']),
    'webhook-signature': String(request.headers['webhook-signature']),
  };
  return new Webhook(secret).verify(request.body, headers) as WebhookBody;
}

const ofEmail = (receiver: WebhookReceiver, id: string, type?: string): ReceivedWebhook[] =>
  receiver.received.filter((r) => {
    const body = JSON.parse(r.body) as WebhookBody;
    return body.data.id === id && (type === undefined || body.type === type);
  });

describe('outgoing webhooks with email server and email worker', function () {
  this.timeout(90_000);
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let mailgun: MailgunStandIn;
  let roles: Roles;
  let server: { proc: EmailProcess; url: string };

  before(async function () {
    await requireRabbitMq();
    await requirePostgres();
    relay = await startRelay();
    mailgun = await startMailgunStandIn({
      domain: 'mg.example.com',
      apiKey: MAILGUN_KEY,
      webhookUrl: `${relay.url}/webhooks/mailgun`,
      webhookSigningKey: SIGNING_KEY,
      autoEvents: 'delivered',
      // Five seconds of retries, as Mailgun's eight hours compressed: under a loaded CI run one
      // second of them was not always enough for the report to reach the server.
      webhookRetry: { tries: 20, delayMs: 250 },
    });
    roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mailgun.baseUrl,
      MAILGUN_API_KEY: MAILGUN_KEY,
      MAILGUN_WEBHOOK_SIGNING_KEY: SIGNING_KEY,
    });
    server = await roles.startReady('server');
    relay.target.url = server.url;
    await roles.startReady('worker');
  });
  after(async () => {
    await roles?.cleanup();
    await mailgun?.close();
    await relay?.close();
  });

  it('retries a receiver that answers 500 twice, with one webhook-id and valid signatures', async () => {
    const receiver = await startWebhookReceiver((r) =>
      r.earlier < 2 ? { status: 500 } : { status: 200 },
    );
    try {
      const endpoint = await subscribe(server.url, receiver.url, ['delivered']);
      expect(endpoint.secret).to.match(/^whsec_[A-Za-z0-9+/]+=*$/);
      const id = await queueEmail(server.url, {
        to: 'Ada <ada@example.org>',
        tags: ['welcome'],
        metadata: { user: '42' },
      });
      const calls = await eventually(
        () => {
          const got = ofEmail(receiver, id);
          return got.length >= 3 ? got : undefined;
        },
        { timeoutMs: 30_000, what: 'three posts of the delivered event' },
      ).catch((error: unknown) => {
        // What the stand-in's reports met, and what the receiver got: a failure says where it
        // stopped (the report refused or not sent, or the webhook not retried).
        const reports = mailgun.webhookDeliveries.map((d) => [d.event, d.attempt, d.status]);
        const got = ofEmail(receiver, id).length;
        throw new Error(`${String(error)}; reports ${JSON.stringify(reports)}; received ${got}`);
      });
      expect(calls).to.have.length(3);
      expect(new Set(calls.map((c) => c.headers['webhook-id'])).size).to.equal(1);
      expect(String(calls[0]?.headers['webhook-id'])).to.match(/^msg_/);
      const bodies = calls.map((c) => verified(endpoint.secret, c));
      expect(new Set(calls.map((c) => c.body)).size, 'the same bytes each time').to.equal(1);
      expect(bodies[0]).to.deep.include({ type: 'email.delivered' });
      expect(bodies[0]?.data).to.deep.equal({
        id,
        status: 'delivered',
        to: ['Ada <ada@example.org>'],
        subject: bodies[0]?.data.subject,
        tags: ['welcome'],
        metadata: { user: '42' },
        recipient: 'ada@example.org',
      });
      // Someone else's secret does not verify it: the check above is not a formality.
      const other = await subscribe(server.url, `${receiver.url}/other`, ['failed']);
      expect(() => verified(other.secret, calls[0] as ReceivedWebhook)).to.throw();

      const view = await eventually(
        async () => {
          const s = (await statusOf(server.url, id)) as WithWebhooks | undefined;
          return s?.webhooks?.[0]?.state === 'delivered' ? s : undefined;
        },
        { what: 'the delivery recorded as delivered' },
      );
      expect(view.webhooks?.[0]?.attempts.map((a) => a.status_code)).to.deep.equal([500, 500, 200]);
      const page = await (
        await fetch(`${server.url}/emails/${id}`, { headers: AUTHORIZED })
      ).text();
      expect(page)
        .to.match(/<h2[^>]*>Webhooks<\/h2>/)
        .and.include('HTTP 500')
        .and.include(receiver.url);
    } finally {
      await receiver.close();
    }
  });

  it('suppresses an address the stand-in reports bounced and tells a subscribed endpoint, signed', async () => {
    const receiver = await startWebhookReceiver();
    try {
      const endpoint = await subscribe(server.url, receiver.url, ['email.bounced']);
      const id = await queueEmail(server.url, { to: 'gone@example.org' });
      await eventually(async () => mailgun.messages.some((m) => m.variables['email-id'] === id), {
        what: 'the stand-in to accept the email',
      });
      const answer = await mailgun.sendEvent({
        emailId: id,
        recipient: 'gone@example.org',
        event: 'failed',
        severity: 'permanent',
        code: 550,
        reason: 'mailbox does not exist',
      });
      expect(answer.status).to.equal(200);

      const [call] = await eventually(
        () => {
          const got = ofEmail(receiver, id);
          return got.length > 0 ? got : undefined;
        },
        { timeoutMs: 20_000, what: 'the bounced event at the endpoint' },
      );
      const body = verified(endpoint.secret, call as ReceivedWebhook);
      expect(body.type).to.equal('email.bounced');
      expect(body.data).to.include({ id, status: 'bounced', recipient: 'gone@example.org' });
      expect(body.data.reason).to.be.a('string').and.not.equal('');
      // Only the subscribed type: the delivered and sent changes of this email went elsewhere.
      expect(
        ofEmail(receiver, id).every(
          (r) => (JSON.parse(r.body) as WebhookBody).type === 'email.bounced',
        ),
      ).to.equal(true);

      const listed = (await (
        await fetch(`${server.url}/suppressions`, { headers: AUTHORIZED })
      ).json()) as { data: { address: string; reason: string }[] };
      expect(listed.data).to.deep.include.members([
        {
          ...listed.data.find((e) => e.address === 'gone@example.org'),
          address: 'gone@example.org',
          reason: 'bounce',
        },
      ]);
      const again = await fetch(`${server.url}/emails`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...AUTHORIZED },
        body: JSON.stringify({ to: 'gone@example.org', subject: 'Again', text: 'Hello' }),
      });
      expect(again.status).to.equal(422);
    } finally {
      await receiver.close();
    }
  });

  it('sends every email while a receiver holds every webhook open without answering', async () => {
    const receiver = await startWebhookReceiver(() => 'hang');
    try {
      await subscribe(server.url, receiver.url, []);
      const ids = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          queueEmail(server.url, { to: `slow${i}@example.org` }),
        ),
      );
      for (const id of ids) await waitForStatus(server.url, id, 'delivered', 30_000);
      // Every email went all the way while the receiver had answered nothing at all.
      expect(receiver.received.length).to.be.greaterThan(0);
      expect(receiver.hanging).to.equal(receiver.received.length);
    } finally {
      await receiver.close();
    }
  });
});

describe('the webhooks queue hears only what some endpoint wants (email server, email worker)', function () {
  this.timeout(90_000);
  let roles: Roles;
  let outbox: string;
  let server: { proc: EmailProcess; url: string };

  before(async function () {
    await requireRabbitMq();
    await requirePostgres();
    ({ roles, outbox } = await startOutboxRoles());
    server = await roles.startReady('server');
    await roles.startReady('worker');
  });
  after(async () => {
    await stopOutboxRoles(roles, outbox);
  });

  const remove = async (id: string): Promise<void> => {
    const res = await fetch(`${server.url}/webhooks/${id}`, {
      method: 'DELETE',
      headers: AUTHORIZED,
    });
    expect(res.status).to.equal(204);
  };

  it('binds the keys of an endpoint added through the API before answering, and unbinds them when it goes', async () => {
    // No endpoint: nothing is bound, so no event is written to the quorum queue.
    expect(await boundKeys(roles.prefix)).to.deep.equal([]);
    const bounced = await subscribe(server.url, 'https://example.com/hooks/a', ['bounced']);
    expect(await boundKeys(roles.prefix)).to.deep.equal(['provider']);
    const queued = await subscribe(server.url, 'https://example.com/hooks/b', ['queued', 'sent']);
    expect(await boundKeys(roles.prefix)).to.deep.equal(['provider', 'requested', 'sent']);
    const everything = await subscribe(server.url, 'https://example.com/hooks/c', []);
    expect(await boundKeys(roles.prefix)).to.deep.equal([...WEBHOOK_EVENT_KEYS].sort());
    await remove(everything.id);
    expect(await boundKeys(roles.prefix)).to.deep.equal(['provider', 'requested', 'sent']);
    await remove(queued.id);
    await remove(bounced.id);
    expect(await boundKeys(roles.prefix)).to.deep.equal([]);
  });

  it('announces `requested` once an endpoint wants email.queued, and delivers its webhook', async () => {
    // With no endpoint wanting it, the server does not publish `requested` at all; the endpoint
    // added here through this server is wanted from its 201 on.
    const receiver = await startWebhookReceiver();
    try {
      const endpoint = await subscribe(server.url, receiver.url, ['queued']);
      const id = await queueEmail(server.url, { to: 'queued@example.org' });
      const [call] = await eventually(() => {
        const got = ofEmail(receiver, id, 'email.queued');
        return got.length > 0 ? got : undefined;
      });
      expect(verified(endpoint.secret, call as ReceivedWebhook).type).to.equal('email.queued');
      await remove(endpoint.id);
    } finally {
      await receiver.close();
    }
  });

  it("binds for an endpoint added by `email webhooks add` (no broker) at the worker's next routing", async () => {
    const added = await roles.cli([
      'webhooks',
      'add',
      'https://example.com/hooks/cli',
      '--events',
      'failed',
    ]);
    expect(added.code, added.stderr).to.equal(0);
    // The worker routes every WEBHOOK_ROUTING_EVERY_MS (10 s).
    await eventually(async () => expect(await boundKeys(roles.prefix)).to.deep.equal(['failed']), {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'the worker to bind the key of the new endpoint',
    });
  });
});

describe('outgoing webhooks in email dev (embedded queue)', function () {
  this.timeout(60_000);
  let proc: EmailProcess | undefined;
  let url: string;
  let outbox: string | undefined;

  before(async () => {
    // Its own outbox: the default, ./outbox, would leave a file in the checkout at every run.
    outbox = await mkdtemp(join(tmpdir(), 'webhooks-dev-outbox-'));
    const started = await startListening(['dev'], {
      DATA_DIR: 'memory',
      MAIL_TRANSPORT: 'outbox',
      OUTBOX_DIR: outbox,
      // Retry-After (1 s) is longer than the first step and shorter than the longest.
      WEBHOOK_RETRY_DELAYS: '300ms,2s',
    });
    proc = started.proc;
    url = started.url;
  });
  after(async () => {
    await proc?.stop();
    if (outbox !== undefined) await rm(outbox, { recursive: true, force: true });
  });

  it('delivers each change to the endpoint, retrying a 503 that says Retry-After', async () => {
    const receiver = await startWebhookReceiver((r) =>
      r.earlier === 0 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 204 },
    );
    try {
      const endpoint = await subscribe(url, receiver.url, ['queued', 'sent'], {});
      const id = await queueEmail(url, { to: 'dev@example.org' });
      const calls = await eventually(
        () => {
          const got = ofEmail(receiver, id);
          return got.length >= 4 ? got : undefined;
        },
        { timeoutMs: 20_000, what: 'queued and sent, each twice' },
      );
      const types = calls.map((c) => verified(endpoint.secret, c).type).sort();
      expect(types).to.deep.equal(['email.queued', 'email.queued', 'email.sent', 'email.sent']);
      for (const type of ['email.queued', 'email.sent']) {
        const [first, second] = calls.filter(
          (c) => (JSON.parse(c.body) as WebhookBody).type === type,
        );
        expect(second?.headers['webhook-id']).to.equal(first?.headers['webhook-id']);
        // The receiver's Retry-After, not the 300 ms step, set the wait.
        expect((second?.receivedAt ?? 0) - (first?.receivedAt ?? 0)).to.be.at.least(950);
      }
    } finally {
      await receiver.close();
    }
  });
});
