import { expect } from 'chai';
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

/** A queue that takes `room` requests and then refuses, as a broker that went away would. */
class FillingQueue extends RecordingQueue {
  room = Infinity;
  override publish(request: EmailRequest) {
    if (this.published.length >= this.room) return TE.left(queueUnavailable('no confirm'));
    return super.publish(request);
  }
}

const email = (n: number) => ({
  to: `person${n}@example.com`,
  subject: `Hello ${n}`,
  text: `Message ${n}`,
});

interface BatchHarness extends Harness {
  readonly sent: FillingQueue;
}

/** The app with `POST /emails/batch`: the real use cases over one queue, log and key store. */
async function startBatchHttp(overrides: Partial<HttpDeps> = {}): Promise<BatchHarness> {
  const sent = new FillingQueue();
  const emails = new InMemoryEmailLog();
  const keys = new InMemoryIdempotencyStore();
  const ids = sequentialIds();
  const clock = fixedClock('2030-01-02T03:04:05.000Z');
  const log = new RecordingLogger();
  const requestEmail = new RequestEmail(sent, emails, new RecordingEvents(), keys, ids, clock, log);
  const requestBatch = new RequestBatch(requestEmail, keys, ids, clock, log);
  const app = await startHttp({ requestEmail, requestBatch, emails, log, ...overrides });
  return { ...app, sent };
}

const postBatch = (h: Harness, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${h.url}/emails/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

interface Answer {
  readonly data?: { id: string; status: string }[];
  readonly error?: {
    code: string;
    message: string;
    fields?: Record<string, string>;
    accepted?: { id: string; status: string }[];
  };
}

const read = async (res: Response): Promise<Answer> => (await res.json()) as Answer;

describe('HTTP batch (POST /emails/batch)', () => {
  let h: BatchHarness;

  beforeEach(async () => {
    h = await startBatchHttp();
  });

  afterEach(async () => {
    await h.close();
  });

  const published = () => h.sent.published.map((r) => r.id);

  it('accepts three emails: 202 with their ids in order, three published', async () => {
    const res = await postBatch(h, [email(1), email(2), email(3)]);
    const body = await read(res);
    expect(res.status).to.equal(202);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(body).to.deep.equal({
      data: [
        { id: 'email-00000001', status: 'queued' },
        { id: 'email-00000002', status: 'queued' },
        { id: 'email-00000003', status: 'queued' },
      ],
    });
    expect(published()).to.deep.equal(body.data?.map((d) => d.id));
    expect(h.sent.published.map((r) => r.subject)).to.deep.equal(['Hello 1', 'Hello 2', 'Hello 3']);
  });

  it('refuses the whole batch when one is invalid: 400 naming its index, nothing published', async () => {
    const res = await postBatch(h, [email(1), { ...email(2), to: 'nope' }, email(3)]);
    const body = await read(res);
    expect(res.status).to.equal(400);
    expect(body.error?.code).to.equal('invalid_request');
    expect(body.error?.message).to.match(/^Email 1 of the batch is not valid/);
    expect(body.error?.fields).to.deep.equal({ '1.to': '"nope" needs the form name@domain' });
    expect(published()).to.deep.equal([]);
  });

  it('answers a repeat with the same Idempotency-Key with the same ids, publishing nothing again', async () => {
    const batch = [email(1), email(2), email(3)];
    const first = await postBatch(h, batch, { 'idempotency-key': 'batch-1' });
    const again = await postBatch(h, batch, { 'idempotency-key': 'batch-1' });
    const ids = (await read(first)).data;
    expect(first.status).to.equal(202);
    expect(again.status).to.equal(202);
    expect(again.headers.get('idempotent-replayed')).to.equal('true');
    expect((await read(again)).data).to.deep.equal(ids);
    expect(ids?.map((d) => d.id)).to.deep.equal([
      'email-00000001-0',
      'email-00000001-1',
      'email-00000001-2',
    ]);
    expect(published()).to.have.length(3);
    const other = await postBatch(h, [email(1)], { 'idempotency-key': 'batch-1' });
    expect(other.status).to.equal(409);
    expect(published()).to.have.length(3);
  });

  it('refuses a body that is not a list of 1 to 100 emails, naming it as body', async () => {
    for (const body of [email(1), [], Array.from({ length: 101 }, (_, i) => email(i))]) {
      const res = await postBatch(h, body);
      expect(res.status).to.equal(400);
      expect((await read(res)).error?.fields?.body).to.match(/^must be a list of 1 to 100 emails/);
    }
    expect(published()).to.deep.equal([]);
  });

  it('answers malformed JSON, another content type and a bad key as the single route does', async () => {
    const malformed = await postBatch(h, '[{');
    expect(malformed.status).to.equal(400);
    expect((await read(malformed)).error?.code).to.equal('malformed_json');
    const form = await fetch(`${h.url}/emails/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'to=a@example.com',
    });
    expect(form.status).to.equal(415);
    const badKey = await postBatch(h, [email(1)], { 'idempotency-key': ' ' });
    expect(badKey.status).to.equal(400);
    expect((await read(badKey)).error?.fields).to.have.property('Idempotency-Key');
    expect(published()).to.deep.equal([]);
  });

  it('says which emails stay accepted when the queue stops mid-batch (503)', async () => {
    h.sent.room = 2;
    const res = await postBatch(h, [email(1), email(2), email(3)]);
    const body = await read(res);
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.equal('5');
    expect(body.error?.code).to.equal('queue_unavailable');
    expect(body.error?.message).to.contain(
      'Emails 0 to 1 were accepted and stay accepted (email-00000001, email-00000002); email 2 and the ones after it were not.',
    );
    expect(body.error?.accepted).to.deep.equal([
      { id: 'email-00000001', status: 'queued' },
      { id: 'email-00000002', status: 'queued' },
    ]);
    expect(published()).to.deep.equal(['email-00000001', 'email-00000002']);
    // They are real: their status pages answer.
    const status = await fetch(`${h.url}/emails/email-00000002`, {
      headers: { accept: 'application/json' },
    });
    expect(status.status).to.equal(200);
  });

  it('does not take batch for an email id', async () => {
    const res = await fetch(`${h.url}/emails/batch`, { headers: { accept: 'application/json' } });
    expect(res.status).to.equal(404);
    expect((await read(res)).error?.code).to.equal('not_found');
  });

  it('needs a key with the send scope when access is guarded', async () => {
    const fx = guardedAccess();
    const guarded = await startBatchHttp(fx.deps);
    try {
      const none = await postBatch(guarded, [email(1)]);
      expect(none.status).to.equal(401);
      const reader = await fx.key('reader', ['read']);
      const readOnly = await postBatch(guarded, [email(1)], { authorization: `Bearer ${reader}` });
      expect(readOnly.status).to.equal(403);
      const sender = await fx.key('sender', ['send']);
      const sent = await postBatch(guarded, [email(1)], { authorization: `Bearer ${sender}` });
      expect(sent.status).to.equal(202);
      expect(guarded.sent.published).to.have.length(1);
    } finally {
      await guarded.close();
    }
  });
});
