// The OpenAPI document is checked twice: as a document (OpenAPI 3.1, every $ref resolves, every
// schema compiles as JSON Schema 2020-12), and against the running app, whose real answers must
// validate against the schema the document gives for their route and status.
import { expect } from 'chai';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { createHmac, randomBytes } from 'node:crypto';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import { InMemoryWebhookTokens } from '../../../src/adapters/memory/in-memory-webhook-tokens.js';
import { InMemoryWebhookEndpoints } from '../../../src/adapters/memory/in-memory-webhook-stores.js';
import { NodeSecretTokens } from '../../../src/adapters/crypto/node-secret-tokens.js';
import { WebhookSubscriptions } from '../../../src/application/webhook-subscriptions.js';
import { queueUnavailable } from '../../../src/application/ports/email-queue.js';
import { RecordProviderEvent } from '../../../src/application/record-provider-event.js';
import { RequestBatch } from '../../../src/application/request-batch.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import { anEvent } from '../../support/builders.js';
import { guardedAccess } from '../../support/access.js';
import {
  RecordingEvents,
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
} from '../../support/fakes.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';
import { FakeDeadLetterBox, aDeadLetter } from './admin-fixtures.js';

type Doc = Record<string, unknown>;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value a local JSON pointer (`#/components/schemas/Email`) names, or undefined. */
function resolve(doc: Doc, pointer: string): unknown {
  if (!pointer.startsWith('#/')) return undefined;
  return pointer
    .slice(2)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((at, part) => (isObject(at) ? at[part] : undefined), doc);
}

/** Every `$ref` anywhere in `value`. */
function refs(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refs);
  if (!isObject(value)) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === '$ref' && typeof v === 'string' ? [v] : refs(v),
  );
}

const deref = (doc: Doc, value: unknown): unknown =>
  isObject(value) && typeof value.$ref === 'string' ? deref(doc, resolve(doc, value.$ref)) : value;

const at = (value: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((v, key) => (isObject(v) ? v[key] : undefined), value);

/** Validates bodies against the document's schemas, its components loaded once under one id. */
function validators(doc: Doc) {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  addFormats.default(ajv);
  const local = (v: unknown): unknown =>
    JSON.parse(
      JSON.stringify(v).replaceAll('"#/components/schemas/', '"https://openapi.test/doc#/$defs/'),
    ) as unknown;
  const local$defs = local(at(doc, 'components', 'schemas'));
  if (!isObject(local$defs)) throw new Error('no components.schemas');
  ajv.addSchema({ $id: 'https://openapi.test/doc', $defs: local$defs });
  const compile = (schema: unknown): ValidateFunction => {
    const s = local(schema);
    if (!isObject(s)) throw new Error(`not a schema: ${JSON.stringify(schema)}`);
    return ajv.compile(s);
  };
  return {
    names: Object.keys(local$defs),
    compile,
    /** The schema of one response: route as the document writes it, status, media type. */
    response(method: string, path: string, status: number, type = 'application/json') {
      const operation = at(doc, 'paths', path, method);
      if (!isObject(operation)) throw new Error(`${method} ${path} is not documented`);
      const answer = deref(doc, at(operation, 'responses', String(status)));
      const schema = at(answer, 'content', type, 'schema');
      if (schema === undefined) {
        throw new Error(`${method} ${path} documents no ${type} answer for ${status}`);
      }
      return compile(schema);
    },
    /** The schema of a request body. */
    request(method: string, path: string) {
      return compile(
        at(doc, 'paths', path, method, 'requestBody', 'content', 'application/json', 'schema'),
      );
    },
    errors: (validate: ValidateFunction) => JSON.stringify(validate.errors),
  };
}

/** A queue that takes `room` requests and then refuses. */
class FillingQueue extends RecordingQueue {
  room = Infinity;
  override publish(request: EmailRequest) {
    if (this.published.length >= this.room) return TE.left(queueUnavailable('no confirm'));
    return super.publish(request);
  }
}

const SIGNING_KEY = 'openapi-test-webhook-signing-key';

/** A Mailgun webhook body, signed now with `key`, as Mailgun posts it. */
function mailgunEvent(emailId: string, recipient: string, key = SIGNING_KEY) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const token = randomBytes(25).toString('hex');
  const signature = createHmac('sha256', key)
    .update(timestamp + token)
    .digest('hex');
  return {
    signature: { timestamp, token, signature },
    'event-data': {
      event: 'failed',
      severity: 'permanent',
      reason: 'bounce',
      id: randomBytes(16).toString('base64url'),
      timestamp: Date.now() / 1000,
      recipient,
      'user-variables': { 'email-id': emailId },
      'delivery-status': { code: 550, message: 'No such user', description: '' },
    },
  };
}

/** The app as the composition roots wire it, with the suppression list and Mailgun's webhooks. */
async function startApp(overrides: Partial<HttpDeps> = {}) {
  const queue = new FillingQueue();
  const emails = new InMemoryEmailLog();
  const keys = new InMemoryIdempotencyStore();
  const ids = sequentialIds();
  const clock = fixedClock('2030-01-02T03:04:05.000Z');
  const log = new RecordingLogger();
  const suppressions = new InMemorySuppressionList();
  const requestEmail = new RequestEmail(
    queue,
    emails,
    new RecordingEvents(),
    keys,
    ids,
    clock,
    log,
    { allowedFromDomains: ['example.com'], suppressions, domainToAscii },
  );
  const requestBatch = new RequestBatch(requestEmail, keys, ids, clock, log);
  const record = new RecordProviderEvent(
    emails,
    new RecordingEvents(),
    suppressions,
    new InMemoryDeliveryLedger(),
    clock,
    log,
    { domainToAscii },
  );
  const h = await startHttp({
    requestEmail,
    requestBatch,
    emails,
    log,
    suppressions,
    webhookSubscriptions: new WebhookSubscriptions(
      new InMemoryWebhookEndpoints(),
      new NodeSecretTokens(),
      clock,
    ),
    mailgunWebhooks: {
      signingKey: Buffer.from(SIGNING_KEY),
      record,
      tokens: new InMemoryWebhookTokens(),
    },
    ...overrides,
  });
  return { h, queue, emails };
}

const valid = {
  from: 'News <news@example.com>',
  to: ['Ada <ada@example.com>', 'bob@example.org'],
  cc: 'carol@example.org',
  reply_to: 'help@example.com',
  subject: 'Hello',
  text: 'Hi',
  html: '<p>Hi</p>',
  headers: { 'X-Campaign': 'spring' },
  tags: ['welcome'],
  metadata: { user: '42' },
};

const documentedPaths = [
  ['post', '/emails'],
  ['get', '/emails'],
  ['post', '/emails/batch'],
  ['get', '/emails/{id}'],
  ['delete', '/emails/{id}'],
  ['get', '/emails/{id}/raw'],
  ['get', '/suppressions'],
  ['post', '/suppressions'],
  ['delete', '/suppressions/{address}'],
  ['get', '/webhooks'],
  ['post', '/webhooks'],
  ['delete', '/webhooks/{id}'],
  ['post', '/webhooks/mailgun'],
  ['get', '/dead-letters'],
  ['post', '/dead-letters/replay'],
  ['post', '/dead-letters/purge'],
  ['get', '/healthz'],
  ['get', '/readyz'],
] as const;

describe('OpenAPI document (GET /openapi.json)', () => {
  let h: Harness;
  let doc: Doc;
  let queue: FillingQueue;
  let emails: InMemoryEmailLog;

  beforeEach(async () => {
    ({ h, queue, emails } = await startApp());
    const res = await fetch(`${h.url}/openapi.json`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    const body: unknown = await res.json();
    if (!isObject(body)) expect.fail('not an object');
    doc = body;
  });

  afterEach(async () => {
    await h.close();
  });

  describe('as a document', () => {
    it('is OpenAPI 3.1 with its info, paths and the bearer scheme with scopes', () => {
      expect(doc.openapi).to.match(/^3\.1\.\d+$/);
      expect(at(doc, 'info', 'title')).to.be.a('string');
      expect(at(doc, 'info', 'version')).to.be.a('string');
      expect(at(doc, 'components', 'securitySchemes', 'apiKey')).to.deep.include({
        type: 'http',
        scheme: 'bearer',
      });
      for (const [method, path] of documentedPaths) {
        const operation = at(doc, 'paths', path, method);
        expect(operation, `${method} ${path}`).to.be.an('object');
        expect(at(operation, 'responses'), `${method} ${path} responses`).to.be.an('object');
      }
      expect(at(doc, 'paths', '/emails', 'post', 'security')).to.deep.equal([{ apiKey: ['send'] }]);
      expect(at(doc, 'paths', '/emails', 'get', 'security')).to.deep.equal([{ apiKey: ['read'] }]);
      expect(at(doc, 'paths', '/healthz', 'get', 'security')).to.deep.equal([]);
      for (const method of ['get', 'post']) {
        expect(at(doc, 'paths', '/suppressions', method, 'security')).to.deep.equal([
          { apiKey: ['admin'] },
        ]);
      }
      for (const [path, method] of [
        ['/webhooks', 'get'],
        ['/webhooks', 'post'],
        ['/webhooks/{id}', 'delete'],
        ['/dead-letters', 'get'],
        ['/dead-letters/replay', 'post'],
        ['/dead-letters/purge', 'post'],
      ] as const) {
        expect(at(doc, 'paths', path, method, 'security')).to.deep.equal([{ apiKey: ['admin'] }]);
      }
      expect(at(doc, 'paths', '/webhooks/mailgun', 'post', 'security')).to.deep.equal([]);
    });

    it('resolves every $ref, and every schema compiles as JSON Schema 2020-12', () => {
      const all = refs(doc);
      expect(all.length).to.be.greaterThan(20);
      for (const ref of all) expect(resolve(doc, ref), ref).not.to.equal(undefined);
      const v = validators(doc);
      for (const name of v.names) v.compile({ $ref: `#/components/schemas/${name}` });
    });

    it('declares every path parameter and unique operation ids', () => {
      const ids: string[] = [];
      for (const [path, item] of Object.entries(at(doc, 'paths') as object)) {
        const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        for (const [method, operation] of Object.entries(item as object)) {
          if (method === 'parameters') continue;
          const declared = [
            ...((at(item, 'parameters') as unknown[] | undefined) ?? []),
            ...((at(operation, 'parameters') as unknown[] | undefined) ?? []),
          ]
            .map((p) => deref(doc, p))
            .filter((p) => at(p, 'in') === 'path')
            .map((p) => at(p, 'name'));
          expect(declared, `${method} ${path}`).to.have.members(names);
          ids.push(String(at(operation, 'operationId')));
        }
      }
      expect(new Set(ids).size).to.equal(ids.length);
    });

    it('takes the limits from the domain: what the app accepts, the schema accepts, and no more', () => {
      const v = validators(doc);
      const email = v.request('post', '/emails');
      expect(email(valid), v.errors(email)).to.equal(true);
      expect(email({ ...valid, subject: 'x'.repeat(999) })).to.equal(false);
      expect(email({ ...valid, tags: Array.from({ length: 11 }, (_, i) => `t${i}`) })).to.equal(
        false,
      );
      expect(email({ ...valid, unknown: 1 })).to.equal(false);
      expect(email({ to: 'a@example.com', subject: 'No body' })).to.equal(false);
      const batch = v.request('post', '/emails/batch');
      expect(batch([valid, valid]), v.errors(batch)).to.equal(true);
      expect(batch([])).to.equal(false);
      expect(batch(Array.from({ length: 101 }, () => valid))).to.equal(false);
    });
  });

  describe('against the running app', () => {
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${h.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });

    async function expectDocumented(
      res: Response,
      method: string,
      path: string,
      status: number,
    ): Promise<unknown> {
      expect(res.status, `${method} ${path}`).to.equal(status);
      const body: unknown = await res.json();
      const validate = validators(doc).response(method, path, status);
      expect(validate(body), `${method} ${path} ${status}: ${JSON.stringify(validate.errors)}`).to
        .be.true;
      return body;
    }

    it('POST /emails: 202 accepted and 400 invalid', async () => {
      await expectDocumented(await post('/emails', valid), 'post', '/emails', 202);
      const bad = await post('/emails', { to: 'nope', subject: '', attachments: [{}] });
      await expectDocumented(bad, 'post', '/emails', 400);
      expect(queue.published).to.have.length(1);
    });

    it('POST /emails/batch: 202, 400 by index, and 503 with the accepted ones', async () => {
      await expectDocumented(
        await post('/emails/batch', [valid, valid]),
        'post',
        '/emails/batch',
        202,
      );
      const invalid = await post('/emails/batch', [valid, { to: 'nope' }]);
      const body = await expectDocumented(invalid, 'post', '/emails/batch', 400);
      expect(Object.keys(at(body, 'error', 'fields') as object)).to.include('1.to');
      queue.room = 3;
      const cut = await post('/emails/batch', [valid, valid]);
      await expectDocumented(cut, 'post', '/emails/batch', 503);
    });

    it('GET /emails/{id} and GET /emails: the status JSON and the list', async () => {
      await post('/emails', valid);
      const [request] = queue.published;
      // A retry, then the send: attempts, events and the provider's id in the JSON.
      await emails.apply(anEvent.retried(request!, { at: '2030-01-02T03:04:06.000Z' }))();
      await emails.apply(anEvent.sent(request!, { at: '2030-01-02T03:05:06.000Z', attempt: 2 }))();
      const one = await fetch(`${h.url}/emails/${request!.id}`, {
        headers: { accept: 'application/json' },
      });
      const status = await expectDocumented(one, 'get', '/emails/{id}', 200);
      expect(at(status, 'status')).to.equal('sent');
      const list = await fetch(`${h.url}/emails?tag=welcome`);
      const page = await expectDocumented(list, 'get', '/emails', 200);
      expect(at(page, 'data')).to.have.length(1);
      await expectDocumented(await fetch(`${h.url}/emails?status=lost`), 'get', '/emails', 400);
      const missing = await fetch(`${h.url}/emails/unknown-id-1`, {
        headers: { accept: 'application/json' },
      });
      await expectDocumented(missing, 'get', '/emails/{id}', 404);
    });

    it('suppressed recipients: dropped and listed in the 202, and 422 when none is left', async () => {
      const add = await post('/suppressions', { address: 'bob@example.org', reason: 'bounce' });
      await expectDocumented(add, 'post', '/suppressions', 201);
      const one = await post('/emails', valid);
      const accepted = await expectDocumented(one, 'post', '/emails', 202);
      expect(at(accepted, 'suppressed')).to.deep.equal(['bob@example.org']);
      const nobody = await post('/emails', { ...valid, to: 'bob@example.org', cc: [] });
      const refused = await expectDocumented(nobody, 'post', '/emails', 422);
      expect(at(refused, 'error', 'suppressed')).to.deep.equal(['bob@example.org']);
      const batch = await post('/emails/batch', [
        valid,
        { ...valid, to: 'bob@example.org', cc: [] },
      ]);
      const data = at(await expectDocumented(batch, 'post', '/emails/batch', 202), 'data');
      expect((data as unknown[]).map((item) => at(item, 'status'))).to.deep.equal([
        'queued',
        'suppressed',
      ]);
    });

    it('/suppressions: add, list, remove, and their refusals', async () => {
      const entry = { address: 'Ada <ada@Bücher.de>', detail: 'asked by phone' };
      const added = await expectDocumented(
        await post('/suppressions', entry),
        'post',
        '/suppressions',
        201,
      );
      expect(at(added, 'address')).to.equal('ada@xn--bcher-kva.de');
      await expectDocumented(await post('/suppressions', entry), 'post', '/suppressions', 200);
      await expectDocumented(
        await post('/suppressions', { address: 'nope', reason: 'whim' }),
        'post',
        '/suppressions',
        400,
      );
      const page = await expectDocumented(
        await fetch(`${h.url}/suppressions`),
        'get',
        '/suppressions',
        200,
      );
      expect(at(page, 'data')).to.have.length(1);
      await expectDocumented(
        await fetch(`${h.url}/suppressions?limit=5`),
        'get',
        '/suppressions',
        400,
      );
      const remove = (address: string) =>
        fetch(`${h.url}/suppressions/${encodeURIComponent(address)}`, { method: 'DELETE' });
      await expectDocumented(
        await remove('ada@bücher.de'),
        'delete',
        '/suppressions/{address}',
        200,
      );
      await expectDocumented(
        await remove('ada@bücher.de'),
        'delete',
        '/suppressions/{address}',
        404,
      );
    });

    it('/webhooks: add, list, remove, and their refusals', async () => {
      const added = await expectDocumented(
        await post('/webhooks', { url: 'https://example.com/hooks', events: ['sent'] }),
        'post',
        '/webhooks',
        201,
      );
      const id = String(at(added, 'id'));
      for (const bad of [{ url: 'ftp://example.com/' }, { url: '/relative' }, { events: 'x' }]) {
        await expectDocumented(await post('/webhooks', bad), 'post', '/webhooks', 400);
      }
      const notJson = await fetch(`${h.url}/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'https://example.com/',
      });
      await expectDocumented(notJson, 'post', '/webhooks', 415);
      const list = await expectDocumented(
        await fetch(`${h.url}/webhooks`),
        'get',
        '/webhooks',
        200,
      );
      expect((at(list, 'data') as unknown[]).map((e) => at(e, 'id'))).to.deep.equal([id]);
      const remove = () => fetch(`${h.url}/webhooks/${id}`, { method: 'DELETE' });
      const removed = await remove();
      expect(removed.status).to.equal(204);
      expect(at(doc, 'paths', '/webhooks/{id}', 'delete', 'responses', '204')).to.be.an('object');
      await expectDocumented(await remove(), 'delete', '/webhooks/{id}', 404);
    });

    it('POST /webhooks/mailgun: 200 recorded, 401 unsigned, 400 malformed', async () => {
      await post('/emails', valid);
      const [request] = queue.published;
      await emails.apply(anEvent.sent(request!, { at: '2030-01-02T03:05:06.000Z' }))();
      const event = mailgunEvent(request!.id, 'bob@example.org');
      const taken = await expectDocumented(
        await post('/webhooks/mailgun', event),
        'post',
        '/webhooks/mailgun',
        200,
      );
      expect(at(taken, 'result')).to.equal('recorded');
      const replayed = await post('/webhooks/mailgun', event);
      expect(replayed.headers.get('www-authenticate')).to.match(/^Mailgun-Signature/);
      await expectDocumented(replayed, 'post', '/webhooks/mailgun', 401);
      const forged = mailgunEvent(request!.id, 'bob@example.org', 'another-signing-key');
      await expectDocumented(
        await post('/webhooks/mailgun', forged),
        'post',
        '/webhooks/mailgun',
        401,
      );
      const { signature } = mailgunEvent(request!.id, 'bob@example.org');
      await expectDocumented(
        await post('/webhooks/mailgun', { signature, 'event-data': 'delivered' }),
        'post',
        '/webhooks/mailgun',
        400,
      );
      // The bounce is in the email's history, with its source, and the address is suppressed.
      const status = await fetch(`${h.url}/emails/${request!.id}`, {
        headers: { accept: 'application/json' },
      });
      const body = await expectDocumented(status, 'get', '/emails/{id}', 200);
      expect((at(body, 'events') as unknown[]).map((e) => at(e, 'source'))).to.include('provider');
      const page = await fetch(`${h.url}/suppressions`);
      const list = await expectDocumented(page, 'get', '/suppressions', 200);
      expect((at(list, 'data') as unknown[]).map((e) => at(e, 'reason'))).to.deep.equal(['bounce']);
    });

    it('/dead-letters: list, replay, purge, and their refusals', async () => {
      const box = new FakeDeadLetterBox([
        aDeadLetter(),
        aDeadLetter({ reason: 'out of attempts (8 of 8): a 503' }),
      ]);
      const app = await startApp({ deadLetters: box });
      const url = (path: string) => `${app.h.url}${path}`;
      const postTo = (path: string, body: unknown) =>
        fetch(url(path), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      try {
        const listed = await fetch(url('/dead-letters'));
        const body = await expectDocumented(listed, 'get', '/dead-letters', 200);
        expect(at(body, 'counts', 'total')).to.equal(2);
        await expectDocumented(await fetch(url('/dead-letters?x=1')), 'get', '/dead-letters', 400);
        const [first] = box.letters;
        const replay = '/dead-letters/replay';
        await expectDocumented(await postTo(replay, { id: first!.id }), 'post', replay, 200);
        await expectDocumented(await postTo(replay, { id: first!.id }), 'post', replay, 404);
        await expectDocumented(
          await postTo(replay, { all: true, reason: 'out_of_attempts' }),
          'post',
          replay,
          200,
        );
        await expectDocumented(await postTo(replay, { all: 'yes' }), 'post', replay, 400);
        const notJson = await fetch(url(replay), {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body: 'all',
        });
        await expectDocumented(notJson, 'post', replay, 415);
        const purge = '/dead-letters/purge';
        await expectDocumented(await postTo(purge, {}), 'post', purge, 400);
        await expectDocumented(await postTo(purge, { confirm: true }), 'post', purge, 200);
        box.down = 'not connected to RabbitMQ';
        await expectDocumented(await fetch(url('/dead-letters')), 'get', '/dead-letters', 503);
        await expectDocumented(await postTo(replay, { all: true }), 'post', replay, 503);
        await expectDocumented(await postTo(purge, { confirm: true }), 'post', purge, 503);
        const v = validators(doc);
        const replayBody = v.request('post', replay);
        expect(replayBody({ id: 'abc' })).to.equal(true);
        expect(replayBody({ all: true, reason: 'permanent' })).to.equal(true);
        expect(replayBody({ id: 'abc', all: true })).to.equal(false);
        expect(v.request('post', purge)({})).to.equal(false);
      } finally {
        await app.h.close();
      }
    });

    it('/healthz and /readyz', async () => {
      await expectDocumented(await fetch(`${h.url}/healthz`), 'get', '/healthz', 200);
      await expectDocumented(await fetch(`${h.url}/readyz`), 'get', '/readyz', 200);
    });

    it('catches an answer that strays from the document', async () => {
      const res = await fetch(`${h.url}/healthz`);
      const validate = validators(doc).response('get', '/healthz', 200);
      expect(validate({ ...((await res.json()) as object), extra: true })).to.equal(false);
    });

    it('401 without a key and 403 without the scope when guarded; the document and the webhook stay open', async () => {
      const fx = guardedAccess();
      const guarded = await startApp(fx.deps);
      try {
        expect((await fetch(`${guarded.h.url}/openapi.json`)).status).to.equal(200);
        const unsigned = await fetch(`${guarded.h.url}/emails`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(valid),
        });
        expect(unsigned.headers.get('www-authenticate')).to.match(/^Bearer/);
        await expectDocumented(unsigned, 'post', '/emails', 401);
        const list = await fetch(`${guarded.h.url}/emails`);
        await expectDocumented(list, 'get', '/emails', 401);
        // The suppression list is for admin keys; Mailgun's webhook needs its signature alone.
        const sender = await fx.key('sender', ['send', 'read']);
        const notAdmin = await fetch(`${guarded.h.url}/suppressions`, {
          headers: { authorization: `Bearer ${sender}` },
        });
        await expectDocumented(notAdmin, 'get', '/suppressions', 403);
        const hooks = await fetch(`${guarded.h.url}/webhooks`, {
          headers: { authorization: `Bearer ${sender}` },
        });
        await expectDocumented(hooks, 'get', '/webhooks', 403);
        await expectDocumented(await fetch(`${guarded.h.url}/webhooks`), 'get', '/webhooks', 401);
        const unsignedWebhook = await fetch(`${guarded.h.url}/webhooks/mailgun`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(mailgunEvent('unknown-email-1', 'ada@example.com')),
        });
        const answer = await expectDocumented(unsignedWebhook, 'post', '/webhooks/mailgun', 200);
        expect(at(answer, 'result')).to.equal('unknown');
      } finally {
        await guarded.h.close();
      }
    });
  });
});
