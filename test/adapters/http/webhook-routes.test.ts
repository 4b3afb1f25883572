// The outgoing webhook endpoints over real HTTP: who may manage them, the secret shown once (and
// working with the standardwebhooks library), lists that never carry it, and every refusal with
// a message a person can act on. The real WebhookSubscriptions over the in-memory store.
import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { NodeSecretTokens } from '../../../src/adapters/crypto/node-secret-tokens.js';
import { InMemoryWebhookEndpoints } from '../../../src/adapters/memory/in-memory-webhook-stores.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import { InMemoryWebhookTokens } from '../../../src/adapters/memory/in-memory-webhook-tokens.js';
import type { WebhookEndpoints } from '../../../src/application/ports/webhook-endpoints.js';
import { RecordProviderEvent } from '../../../src/application/record-provider-event.js';
import { WebhookSubscriptions } from '../../../src/application/webhook-subscriptions.js';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../../src/adapters/memory/in-memory-stores.js';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { RecordingEvents, RecordingLogger, fixedClock, switchable } from '../../support/fakes.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly fields?: Record<string, string>;
  };
}

interface Endpoint {
  readonly id: string;
  readonly url: string;
  readonly events: string[];
  readonly created_at: string;
}

interface Created extends Endpoint {
  readonly secret: string;
}

const SECRET = /^whsec_[A-Za-z0-9+/]+=*$/;
const ID = /^we_[A-Za-z0-9_-]{16}$/;

/** The app with the endpoints wired in as `src/main` wires them. */
function withWebhooks() {
  const log = new RecordingLogger();
  const endpoints = switchable<WebhookEndpoints>(new InMemoryWebhookEndpoints());
  const subscriptions = new WebhookSubscriptions(
    endpoints.store,
    new NodeSecretTokens(),
    fixedClock('2030-01-02T03:04:05.000Z'),
  );
  return { log, endpoints, deps: { log, webhookSubscriptions: subscriptions } };
}

describe('webhook endpoints over HTTP', () => {
  let h: Harness;
  let w: ReturnType<typeof withWebhooks>;

  afterEach(async () => h?.close());

  const send = (path: string, method: string, body?: unknown, headers: object = {}) =>
    fetch(`${h.url}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined
        ? { body: typeof body === 'string' ? body : JSON.stringify(body) }
        : {}),
    });
  const add = (body: unknown, headers: object = {}) => send('/webhooks', 'POST', body, headers);
  const remove = (id: string, headers: object = {}) =>
    send(`/webhooks/${encodeURIComponent(id)}`, 'DELETE', undefined, headers);
  const list = async (headers: object = {}): Promise<Endpoint[]> => {
    const res = await send('/webhooks', 'GET', undefined, headers);
    expect(res.status).to.equal(200);
    const text = await res.text();
    expect(text).not.to.contain('whsec_');
    expect(text).not.to.contain('secret');
    return (JSON.parse(text) as { data: Endpoint[] }).data;
  };
  const refused = async (res: Response, status: number): Promise<ErrorBody['error']> => {
    expect(res.status).to.equal(status);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    return ((await res.json()) as ErrorBody).error;
  };

  describe('guarded', () => {
    let fx: AccessFixture;
    let admin: Record<string, string>;
    let sender: Record<string, string>;

    beforeEach(async () => {
      w = withWebhooks();
      fx = guardedAccess();
      h = await startHttp({ ...w.deps, ...fx.deps });
      admin = { authorization: `Bearer ${await fx.key('ops', ['admin'])}` };
      sender = { authorization: `Bearer ${await fx.key('app', ['send', 'read'])}` };
    });

    it('answers only a key with the admin scope: 401 without one, 403 with a send key', async () => {
      const calls = (headers: object) => [
        send('/webhooks', 'GET', undefined, headers),
        add({ url: 'https://example.com/hooks' }, headers),
        remove(`we_${'A'.repeat(16)}`, headers),
      ];
      for (const res of await Promise.all(calls({}))) {
        const error = await refused(res, 401);
        expect(error.code).to.equal('unauthorized');
      }
      for (const res of await Promise.all(calls(sender))) {
        const error = await refused(res, 403);
        expect(error.message).to.match(/\badmin scope\b/);
      }
      expect(await list(admin)).to.deep.equal([]);
      const created = await add({ url: 'https://example.com/hooks' }, admin);
      expect(created.status).to.equal(201);
      expect((await list(admin)).map((e) => e.url)).to.deep.equal(['https://example.com/hooks']);
      expect(w.log.text()).to.contain('webhook-endpoint-added').and.contain('"by":"ops"');
    });
  });

  describe('open (email dev on loopback)', () => {
    beforeEach(async () => {
      w = withWebhooks();
      h = await startHttp(w.deps);
    });

    it('creates an endpoint: 201, Location, and a secret that signs as Standard Webhooks says', async () => {
      const res = await add({
        url: 'https://example.com/hooks?t=1',
        events: ['sent', 'email.bounced'],
      });
      expect(res.status).to.equal(201);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      const body = (await res.json()) as Created;
      expect(Object.keys(body)).to.have.members(['id', 'url', 'events', 'created_at', 'secret']);
      expect(body.id).to.match(ID);
      expect(res.headers.get('location')).to.equal(`/webhooks/${body.id}`);
      expect(body).to.deep.include({
        url: 'https://example.com/hooks?t=1',
        events: ['email.sent', 'email.bounced'],
        created_at: '2030-01-02T03:04:05.000Z',
      });
      expect(body.secret).to.match(SECRET);

      const hook = new Webhook(body.secret);
      const payload = JSON.stringify({ type: 'email.sent', data: { id: 'email-1' } });
      const at = new Date();
      const headers = {
        'webhook-id': 'msg_1',
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': hook.sign('msg_1', at, payload),
      };
      expect(hook.verify(payload, headers)).to.deep.equal(JSON.parse(payload));

      // The secret is in the 201 alone: neither the list nor the log has it.
      const listed = await list();
      expect(listed).to.deep.equal([
        {
          id: body.id,
          url: 'https://example.com/hooks?t=1',
          events: ['email.sent', 'email.bounced'],
          created_at: '2030-01-02T03:04:05.000Z',
        },
      ]);
      expect(w.log.text()).not.to.contain(body.secret.slice('whsec_'.length));
      expect(w.log.text()).not.to.contain('t=1');
    });

    it('takes no events as every event, listed as []', async () => {
      const res = await add({ url: 'http://127.0.0.1:9000/in' });
      expect(res.status).to.equal(201);
      expect(((await res.json()) as Created).events).to.deep.equal([]);
    });

    it('refuses a URL that cannot be an endpoint with 400, saying what to fix', async () => {
      const cases: [unknown, RegExp][] = [
        [{ url: '/hooks' }, /absolute URL with its scheme and host/],
        [{ url: 'ftp://example.com/in' }, /must start with https:\/\/.*not ftp:/],
        [
          { url: 'https://ada:hunter2@example.com/hooks' },
          /must not contain a user name or password.*stored and shown/,
        ],
        [{ url: 'https://example.com/hooks#top' }, /fragment/],
        [{}, /url is required/],
        [{ url: 42 }, /url must be a string/],
      ];
      for (const [body, message] of cases) {
        const error = await refused(await add(body), 400);
        expect(error.code, JSON.stringify(body)).to.equal('invalid_request');
        expect(error.message, JSON.stringify(body)).to.match(message);
        expect(error.fields?.url, JSON.stringify(body)).to.match(message);
        expect(error.message).not.to.contain('hunter2');
      }
      expect(await list()).to.deep.equal([]);
    });

    it('refuses an unknown event name, naming it and the known ones, and every shape problem at once', async () => {
      const unknown = await refused(
        await add({ url: 'https://example.com/', events: ['sent', 'opened'] }),
        400,
      );
      expect(unknown.fields).to.have.keys(['events']);
      expect(unknown.message).to.contain('"opened"').and.contain('delivered, bounced');
      const shape = await refused(await add({ url: 7, events: 'sent', colour: 'red' }), 400);
      expect(Object.keys(shape.fields ?? {}).sort()).to.deep.equal(['colour', 'events', 'url']);
      expect(shape.message)
        .to.contain('url must be a string')
        .and.contain('colour is not a known field');
      const notObject = await refused(await add('["https://example.com/"]'), 400);
      expect(notObject.message).to.contain('JSON object');
      expect(await list()).to.deep.equal([]);
    });

    it('answers 415 for a body that is not JSON, and 400 for JSON that does not parse', async () => {
      const text = await send('/webhooks', 'POST', 'url=https://example.com/', {
        'content-type': 'application/x-www-form-urlencoded',
      });
      const error = await refused(text, 415);
      expect(error.message).to.contain('application/json');
      expect((await refused(await add('{"url":'), 400)).code).to.equal('malformed_json');
    });

    it('deletes by id: 204, then 404; an id of another form is no endpoint either', async () => {
      const one = (await (await add({ url: 'https://one.example/' })).json()) as Created;
      const two = (await (await add({ url: 'https://two.example/' })).json()) as Created;
      const removed = await remove(one.id);
      expect(removed.status).to.equal(204);
      expect(await removed.text()).to.equal('');
      const again = await refused(await remove(one.id), 404);
      expect(again.code).to.equal('not_found');
      expect(again.message).to.contain('GET /webhooks');
      expect((await refused(await remove(`we_${'Z'.repeat(16)}`), 404)).code).to.equal('not_found');
      expect((await remove('nothing-like-an-id')).status).to.equal(404);
      expect((await list()).map((e) => e.id)).to.deep.equal([two.id]);
      expect(w.log.text()).to.contain('webhook-endpoint-removed');
    });

    it('answers 503 with Retry-After while the store does not answer, and changes nothing', async () => {
      w.endpoints.down = true;
      for (const res of [
        await send('/webhooks', 'GET'),
        await add({ url: 'https://example.com/' }),
        await remove(`we_${'A'.repeat(16)}`),
      ]) {
        expect((await refused(res, 503)).code).to.equal('store_unavailable');
        expect(res.headers.get('retry-after')).to.equal('5');
      }
      w.endpoints.down = false;
      expect(await list()).to.deep.equal([]);
    });

    it('refuses a query parameter on the list', async () => {
      const error = await refused(await send('/webhooks?limit=5', 'GET'), 400);
      expect(error.fields).to.have.keys(['limit']);
    });
  });

  describe('beside POST /webhooks/mailgun', () => {
    it('leaves Mailgun’s route to Mailgun, and its 404 a 404 when it is not configured', async () => {
      w = withWebhooks();
      const log = new RecordingLogger();
      const emails = new InMemoryEmailLog();
      const record = new RecordProviderEvent(
        emails,
        new RecordingEvents(),
        new InMemorySuppressionList(),
        new InMemoryDeliveryLedger(),
        fixedClock(),
        log,
        { domainToAscii },
      );
      h = await startHttp({
        ...w.deps,
        mailgunWebhooks: {
          signingKey: Buffer.from('a-signing-key-for-this-test'),
          record,
          tokens: new InMemoryWebhookTokens(),
        },
      });
      // Mailgun's route answered (an unsigned event is its 400 or 401), not ours.
      const mailgun = await send('/webhooks/mailgun', 'POST', { signature: {} });
      expect([400, 401]).to.include(mailgun.status);
      expect(await list()).to.deep.equal([]);
      await h.close();

      h = await startHttp(w.deps);
      const absent = await send('/webhooks/mailgun', 'POST', { signature: {} });
      expect(absent.status).to.equal(404);
    });
  });
});
