// The OpenAPI document is checked twice: as a document (OpenAPI 3.1, every $ref resolves, every
// schema compiles as JSON Schema 2020-12), and against the running app, whose real answers must
// validate against the schema the document gives for their route and status.
import { expect } from 'chai';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { queueUnavailable } from '../../../src/application/ports/email-queue.js';
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

async function startApp(overrides: Partial<HttpDeps> = {}) {
  const queue = new FillingQueue();
  const emails = new InMemoryEmailLog();
  const keys = new InMemoryIdempotencyStore();
  const ids = sequentialIds();
  const clock = fixedClock('2030-01-02T03:04:05.000Z');
  const log = new RecordingLogger();
  const requestEmail = new RequestEmail(
    queue,
    emails,
    new RecordingEvents(),
    keys,
    ids,
    clock,
    log,
    {
      allowedFromDomains: ['example.com'],
    },
  );
  const requestBatch = new RequestBatch(requestEmail, keys, ids, clock, log);
  const h = await startHttp({ requestEmail, requestBatch, emails, log, ...overrides });
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

    it('/healthz and /readyz', async () => {
      await expectDocumented(await fetch(`${h.url}/healthz`), 'get', '/healthz', 200);
      await expectDocumented(await fetch(`${h.url}/readyz`), 'get', '/readyz', 200);
    });

    it('catches an answer that strays from the document', async () => {
      const res = await fetch(`${h.url}/healthz`);
      const validate = validators(doc).response('get', '/healthz', 200);
      expect(validate({ ...((await res.json()) as object), extra: true })).to.equal(false);
    });

    it('401 without a key when guarded, while the document stays open', async () => {
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
      } finally {
        await guarded.h.close();
      }
    });
  });
});
