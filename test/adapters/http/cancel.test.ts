// DELETE /emails/:id over real HTTP: the real CancelEmail and RequestEmail over in-memory stores.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailLog } from '../../../src/application/ports/email-log.js';
import type { ScheduledEmails } from '../../../src/application/ports/scheduled-emails.js';
import { CancelEmail } from '../../../src/application/cancel-email.js';
import { ReleaseScheduled } from '../../../src/application/release-scheduled.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { InMemoryDeliveryEvents } from '../../../src/adapters/memory/in-memory-delivery-events.js';
import { InMemoryScheduledEmails } from '../../../src/adapters/memory/in-memory-scheduled-emails.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { guardedAccess } from '../../support/access.js';
import {
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
  switchable,
} from '../../support/fakes.js';
import type { Harness } from './harness.js';
import { postJson, startHttp } from './harness.js';

interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** The app with scheduling: a request with `send_at` is held, DELETE cancels it. */
function scheduling() {
  const clock = fixedClock('2030-01-02T03:04:05.000Z');
  const log = new RecordingLogger();
  const bus = new InMemoryDeliveryEvents(log);
  const queue = new RecordingQueue();
  const emails = switchable<EmailLog>(new InMemoryEmailLog());
  const scheduled = switchable<ScheduledEmails>(new InMemoryScheduledEmails());
  const requestEmail = new RequestEmail(
    queue,
    emails.store,
    bus,
    new InMemoryIdempotencyStore(),
    sequentialIds('http'),
    clock,
    log,
    { scheduled: scheduled.store },
  );
  const cancelEmail = new CancelEmail(scheduled.store, emails.store, bus, clock, log);
  const release = new ReleaseScheduled(scheduled.store, emails.store, queue, bus, clock, log);
  const deps: Partial<HttpDeps> = { requestEmail, cancelEmail, emails: emails.store };
  return { clock, queue, emails, scheduled, release, deps };
}

describe('DELETE /emails/:id (cancel a scheduled email)', () => {
  let h: Harness;
  let s: ReturnType<typeof scheduling>;

  beforeEach(async () => {
    s = scheduling();
    h = await startHttp(s.deps);
  });
  afterEach(async () => h.close());

  const later = (ms: number): string => new Date(s.clock.now().getTime() + ms).toISOString();

  async function accept(body: object): Promise<{ id: string; status: string }> {
    const response = await postJson(h, {
      to: 'ada@example.com',
      subject: 'Hi',
      text: 'Hello',
      ...body,
    });
    expect(response.status).to.equal(202);
    return (await response.json()) as { id: string; status: string };
  }

  const cancel = (id: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${h.url}/emails/${id}`, { method: 'DELETE', headers });

  const getJson = async (id: string): Promise<Record<string, unknown>> => {
    const response = await fetch(`${h.url}/emails/${id}`, {
      headers: { accept: 'application/json' },
    });
    expect(response.status).to.equal(200);
    return (await response.json()) as Record<string, unknown>;
  };

  it('cancels a scheduled email: 200 cancelled, and its status says so', async () => {
    const { id, status } = await accept({ send_at: later(60_000) });
    expect(status).to.equal('scheduled');
    expect(await getJson(id)).to.deep.include({
      status: 'scheduled',
      send_at: '2030-01-02T03:05:05.000Z',
    });

    const response = await cancel(id);
    expect(response.status).to.equal(200);
    expect(response.headers.get('cache-control')).to.equal('no-store');
    expect(await response.json()).to.deep.equal({ id, status: 'cancelled' });
    expect(await getJson(id)).to.deep.include({ status: 'cancelled' });

    s.clock.advance(60_000);
    expect(await s.release.execute()()).to.deep.equal(E.right(0));
    expect(s.queue.published).to.deep.equal([]);
  });

  it('answers 200 cancelled again for a cancelled email', async () => {
    const { id } = await accept({ send_at: later(60_000) });
    expect((await cancel(id)).status).to.equal(200);
    const again = await cancel(id);
    expect(again.status).to.equal(200);
    expect(await again.json()).to.deep.equal({ id, status: 'cancelled' });
  });

  it('answers 404 not_found in JSON for an unknown id and for one that cannot be an id', async () => {
    for (const id of ['no-such-email-0001', 'not%20an%20id']) {
      const response = await cancel(id, { accept: 'text/html' });
      expect(response.status, id).to.equal(404);
      expect(((await response.json()) as ErrorBody).error.code).to.equal('not_found');
    }
  });

  it('answers 409 not_cancellable for an email that was never scheduled', async () => {
    const { id } = await accept({});
    const response = await cancel(id);
    expect(response.status).to.equal(409);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.code).to.equal('not_cancellable');
    expect(error.message).to.match(/not scheduled/);
    expect(s.queue.published.map((r) => r.id)).to.deep.equal([id]);
  });

  it('answers 409 not_cancellable once sending began', async () => {
    const { id } = await accept({ send_at: later(1_000) });
    s.clock.advance(1_000);
    expect(await s.release.execute()()).to.deep.equal(E.right(1));
    const response = await cancel(id);
    expect(response.status).to.equal(409);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.code).to.equal('not_cancellable');
    expect(error.message).to.match(/sending began/);
  });

  it('answers 503 with Retry-After when the store is down, and cancels nothing', async () => {
    const { id } = await accept({ send_at: later(60_000) });
    s.scheduled.down = true;
    const response = await cancel(id);
    expect(response.status).to.equal(503);
    expect(response.headers.get('retry-after')).to.equal('5');
    expect(((await response.json()) as ErrorBody).error.code).to.equal('store_unavailable');
    s.scheduled.down = false;
    expect(await getJson(id)).to.deep.include({ status: 'scheduled' });
  });

  it('shows a scheduled email on its page with its send time, and a cancelled one', async () => {
    const { id } = await accept({ send_at: later(60_000) });
    const page = await (await fetch(`${h.url}/emails/${id}`)).text();
    expect(page).to.contain('Scheduled: held until');
    expect(page).to.match(/<dt>Send at<\/dt><dd><time datetime="2030-01-02T03:05:05.000Z">/);
    await cancel(id);
    const cancelled = await (await fetch(`${h.url}/emails/${id}`)).text();
    expect(cancelled).to.contain('Cancelled: it was never sent.');
  });
});

describe('DELETE /emails/:id with access guarded', () => {
  let h: Harness;

  afterEach(async () => h?.close());

  it('needs a key with the send scope', async () => {
    const s = scheduling();
    const fx = guardedAccess();
    h = await startHttp({ ...s.deps, ...fx.deps });
    const sender = await fx.key('sender', ['send']);
    const reader = await fx.key('reader', ['read']);
    const posted = await postJson(
      h,
      {
        to: 'ada@example.com',
        subject: 'Hi',
        text: 'Hello',
        send_at: new Date(s.clock.now().getTime() + 60_000).toISOString(),
      },
      { authorization: `Bearer ${sender}` },
    );
    expect(posted.status).to.equal(202);
    const { id } = (await posted.json()) as { id: string };
    const as = (key?: string) =>
      fetch(`${h.url}/emails/${id}`, {
        method: 'DELETE',
        headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
      });

    expect((await as()).status).to.equal(401);
    const forbidden = await as(reader);
    expect(forbidden.status).to.equal(403);
    expect(((await forbidden.json()) as ErrorBody).error.message).to.match(/\bsend scope\b/);
    expect((await as(sender)).status).to.equal(200);
  });
});
