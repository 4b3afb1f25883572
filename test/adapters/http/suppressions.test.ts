// The suppression list over real HTTP: its admin routes, and what a client sending email sees
// of it. The real RequestEmail and RequestBatch over in-memory stores and the in-memory list.
import { expect } from 'chai';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import { InMemoryDeliveryEvents } from '../../../src/adapters/memory/in-memory-delivery-events.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import type { SuppressionList } from '../../../src/application/ports/suppression-list.js';
import { RequestBatch } from '../../../src/application/request-batch.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import {
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
  switchable,
} from '../../support/fakes.js';
import type { Harness } from './harness.js';
import { openForm, postForm, postJson, startHttp } from './harness.js';

interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly fields?: Record<string, string>;
    readonly suppressed?: string[];
  };
}

interface Entry {
  readonly address: string;
  readonly reason: string;
  readonly detail?: string;
  readonly created_at: string;
}

interface Page {
  readonly data: Entry[];
  readonly next_cursor: string | null;
}

/** The app with the list wired in as `src/main` wires it: the API reads it, so does RequestEmail. */
function suppressing() {
  const clock = fixedClock('2030-01-02T03:04:05.000Z');
  const log = new RecordingLogger();
  const queue = new RecordingQueue();
  const emails = new InMemoryEmailLog();
  const keys = new InMemoryIdempotencyStore();
  const ids = sequentialIds();
  const list = switchable<SuppressionList>(new InMemorySuppressionList());
  const requestEmail = new RequestEmail(
    queue,
    emails,
    new InMemoryDeliveryEvents(log),
    keys,
    ids,
    clock,
    log,
    { suppressions: list.store, domainToAscii, allowedFromDomains: ['example.com'] },
  );
  const requestBatch = new RequestBatch(requestEmail, keys, ids, clock, log);
  const deps: Partial<HttpDeps> = {
    requestEmail,
    requestBatch,
    emails,
    log,
    suppressions: list.store,
  };
  return { queue, list, emails, log, deps };
}

describe('the suppression list over HTTP', () => {
  let h: Harness;
  let s: ReturnType<typeof suppressing>;

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
  const add = (body: unknown, headers: object = {}) => send('/suppressions', 'POST', body, headers);
  const remove = (address: string, headers: object = {}) =>
    send(`/suppressions/${encodeURIComponent(address)}`, 'DELETE', undefined, headers);
  const list = async (query = '', headers: object = {}): Promise<Page> => {
    const res = await send(`/suppressions${query}`, 'GET', undefined, headers);
    expect(res.status).to.equal(200);
    return (await res.json()) as Page;
  };

  describe('guarded', () => {
    let fx: AccessFixture;
    let admin: Record<string, string>;
    let sender: Record<string, string>;

    beforeEach(async () => {
      s = suppressing();
      fx = guardedAccess();
      h = await startHttp({ ...s.deps, ...fx.deps });
      admin = { authorization: `Bearer ${await fx.key('ops', ['admin'])}` };
      sender = { authorization: `Bearer ${await fx.key('app', ['send', 'read'])}` };
    });

    it('answers only a key with the admin scope: 401 without one, 403 with a send key', async () => {
      const calls = (headers: object) => [
        send('/suppressions', 'GET', undefined, headers),
        add({ address: 'bob@example.com' }, headers),
        remove('bob@example.com', headers),
      ];
      for (const res of await Promise.all(calls({}))) expect(res.status).to.equal(401);
      for (const res of await Promise.all(calls(sender))) {
        expect(res.status).to.equal(403);
        expect(((await res.json()) as ErrorBody).error.message).to.match(/\badmin scope\b/);
      }
      // Nothing of it reached the list.
      expect((await list('', admin)).data).to.deep.equal([]);
      expect((await add({ address: 'bob@example.com' }, admin)).status).to.equal(201);
      expect((await list('', admin)).data.map((e) => e.address)).to.deep.equal(['bob@example.com']);
      expect(s.log.text()).to.contain('suppression-added').and.contain('"by":"ops"');
    });

    it('keeps a send key from sending to a suppressed address, but not to the others', async () => {
      await add({ address: 'bob@example.com', reason: 'complaint' }, admin);
      const both = await postJson(
        h,
        { to: ['ada@example.com', 'bob@example.com'], subject: 'Hi', text: 'Hello' },
        sender,
      );
      expect(both.status).to.equal(202);
      expect(await both.json()).to.deep.include({ suppressed: ['bob@example.com'] });
      expect(s.queue.published.map((r) => r.to)).to.deep.equal([['ada@example.com']]);
    });
  });

  describe('open (email dev on loopback)', () => {
    beforeEach(async () => {
      s = suppressing();
      h = await startHttp(s.deps);
    });

    it('adds an address as its mailbox key, with reason manual unless told, once', async () => {
      const res = await add({ address: 'Info Desk <info@BÜCHER.de>', detail: 'asked by phone' });
      expect(res.status).to.equal(201);
      const entry = (await res.json()) as Entry;
      expect(entry).to.deep.include({
        address: 'info@xn--bcher-kva.de',
        reason: 'manual',
        detail: 'asked by phone',
      });
      expect(Date.parse(entry.created_at)).to.be.closeTo(Date.now(), 60_000);
      // The other form of the same mailbox is the same entry: there already, the first stands.
      const again = await add({ address: 'info@xn--bcher-kva.DE', reason: 'bounce' });
      expect(again.status).to.equal(200);
      expect(await again.json()).to.deep.equal({ address: 'info@xn--bcher-kva.de' });
      expect((await list()).data).to.deep.equal([entry]);
    });

    it('refuses what is not an address, a reason or a known field, with every problem named', async () => {
      const res = await add({
        address: 'not an address',
        reason: 'spite',
        colour: 'red',
        detail: 7,
      });
      expect(res.status).to.equal(400);
      const { error } = (await res.json()) as ErrorBody;
      expect(error.code).to.equal('invalid_request');
      expect(Object.keys(error.fields ?? {}).sort()).to.deep.equal([
        'address',
        'colour',
        'detail',
        'reason',
      ]);
      expect(error.fields?.reason).to.contain('bounce, complaint, unsubscribe, manual');
      expect((await add({})).status).to.equal(400);
      expect((await add('"bob@example.com"')).status).to.equal(400);
      expect(
        (await send('/suppressions', 'POST', 'address=bob', { 'content-type': 'text/plain' }))
          .status,
      ).to.equal(415);
      expect((await list()).data).to.deep.equal([]);
    });

    it('removes an address by either form of its domain: 200, then 404', async () => {
      await add({ address: 'info@bücher.de' });
      await add({ address: 'ada@example.com' });
      const removed = await remove('info@XN--BCHER-KVA.de');
      expect(removed.status).to.equal(200);
      expect(await removed.json()).to.deep.equal({ address: 'info@xn--bcher-kva.de' });
      const gone = await remove('info@bücher.de');
      expect(gone.status).to.equal(404);
      expect(((await gone.json()) as ErrorBody).error.code).to.equal('not_found');
      expect((await remove('no address')).status).to.equal(400);
      expect((await list()).data.map((e) => e.address)).to.deep.equal(['ada@example.com']);
    });

    it('lists 50 a page, newest first, with a cursor to the next page and null after the last', async () => {
      for (let i = 0; i < 51; i += 1) {
        await s.list.store.add({
          address: `n${String(i).padStart(2, '0')}@example.com`,
          reason: 'bounce',
          createdAt: new Date(Date.UTC(2030, 0, 1, 0, 0, i)),
        })();
      }
      const first = await list();
      expect(first.data).to.have.length(50);
      expect(first.data[0]).to.deep.equal({
        address: 'n50@example.com',
        reason: 'bounce',
        created_at: '2030-01-01T00:00:50.000Z',
      });
      expect(first.next_cursor).to.be.a('string');
      const second = await list(`?cursor=${first.next_cursor ?? ''}`);
      expect(second).to.deep.equal({
        data: [
          { address: 'n00@example.com', reason: 'bounce', created_at: '2030-01-01T00:00:00.000Z' },
        ],
        next_cursor: null,
      });
      const wrong = await send('/suppressions?page=2', 'GET');
      expect(wrong.status).to.equal(400);
      // A cursor the list never gave is a mistake to fix, not an empty last page.
      for (const cursor of ['zzz', '', 'AAAA']) {
        const res = await send(`/suppressions?cursor=${cursor}`, 'GET');
        expect(res.status, cursor).to.equal(400);
        const { error } = (await res.json()) as ErrorBody;
        expect(error.fields).to.deep.equal({
          cursor: 'must be a next_cursor from an earlier page',
        });
      }
      const page = await send('/suppressions?cursor=zzz', 'GET', undefined, {
        accept: 'text/html',
      });
      expect(page.status).to.equal(400);
      expect(await page.text()).to.include('The cursor is not one this list gave');
    });

    it('answers 503 while the list does not answer, and changes nothing', async () => {
      s.list.down = true;
      for (const res of [
        await send('/suppressions', 'GET'),
        await add({ address: 'a@example.com' }),
        await remove('a@example.com'),
      ]) {
        expect(res.status).to.equal(503);
        expect(res.headers.get('retry-after')).to.equal('5');
        expect(((await res.json()) as ErrorBody).error.code).to.equal('store_unavailable');
      }
      const posted = await postJson(h, { to: 'ada@example.com', subject: 'Hi', text: 'Hello' });
      expect(posted.status).to.equal(503);
      expect(s.queue.published).to.have.length(0);
    });

    it('answers 202 naming the dropped recipients, and 422 when nobody is left', async () => {
      await add({ address: 'bob@example.com' });
      const some = await postJson(h, {
        to: 'ada@example.com',
        cc: 'Bob <BOB@example.com>',
        bcc: 'bob@Example.com',
        subject: 'Hi',
        text: 'Hello',
      });
      expect(some.status).to.equal(202);
      // BOB@ is another mailbox (the local part is the receiving host's to compare).
      expect(await some.json()).to.deep.equal({
        id: 'email-00000001',
        status: 'queued',
        suppressed: ['bob@Example.com'],
      });
      const status = await fetch(`${h.url}/emails/email-00000001`, {
        headers: { accept: 'application/json' },
      });
      expect(((await status.json()) as { recipients: unknown[] }).recipients).to.deep.equal([
        { address: 'ada@example.com', status: 'queued' },
        { address: 'Bob <BOB@example.com>', status: 'queued' },
        { address: 'bob@Example.com', status: 'suppressed' },
      ]);

      const none = await postJson(h, { to: 'Bob <bob@EXAMPLE.com>', subject: 'Hi', text: 'Hello' });
      expect(none.status).to.equal(422);
      const { error } = (await none.json()) as ErrorBody;
      expect(error.code).to.equal('all_recipients_suppressed');
      expect(error.suppressed).to.deep.equal(['Bob <bob@EXAMPLE.com>']);
      expect(error.message).to.contain('suppression list');
      expect(s.queue.published).to.have.length(1);

      // Nobody left in To: refused too (an email needs a To), though its Cc is not on the list.
      const noTo = await postJson(h, {
        to: 'bob@example.com',
        cc: 'carol@example.com',
        subject: 'Hi',
        text: 'Hello',
      });
      expect(noTo.status).to.equal(422);
      const refused = ((await noTo.json()) as ErrorBody).error;
      expect(refused.code).to.equal('all_recipients_suppressed');
      expect(refused.suppressed).to.deep.equal(['bob@example.com']);
      expect(refused.message).to.contain('an email needs a To');
      expect(s.queue.published).to.have.length(1);

      const plain = await postJson(h, { to: 'ada@example.com', subject: 'Hi', text: 'Hello' });
      expect(await plain.json()).not.to.have.property('suppressed');
    });

    it('answers a batch item by item: dropped recipients named, an email with nobody left suppressed', async () => {
      await add({ address: 'bob@example.com' });
      const res = await send('/emails/batch', 'POST', [
        { to: ['ada@example.com', 'bob@example.com'], subject: 'One', text: 'Hello' },
        { to: 'bob@example.com', subject: 'Two', text: 'Hello' },
        { to: 'carol@example.com', subject: 'Three', text: 'Hello' },
      ]);
      expect(res.status).to.equal(202);
      const { data } = (await res.json()) as { data: { id: string }[] };
      expect(data.map(({ id: _id, ...rest }) => rest)).to.deep.equal([
        { status: 'queued', suppressed: ['bob@example.com'] },
        { status: 'suppressed', suppressed: ['bob@example.com'] },
        { status: 'queued' },
      ]);
      expect(s.queue.published.map((r) => r.subject)).to.deep.equal(['One', 'Three']);
      const second = await fetch(`${h.url}/emails/${data[1]?.id ?? ''}`, {
        headers: { accept: 'application/json' },
      });
      expect(await second.json()).to.deep.include({ status: 'suppressed' });
    });

    it('shows the form a banner when nobody is left, keeping what was typed', async () => {
      await add({ address: 'bob@example.com' });
      const form = await openForm(h);
      const res = await postForm(
        h,
        {
          to: 'bob@example.com',
          subject: 'Hello',
          text: 'Hi Bob',
          _csrf: form.token,
          _nonce: form.nonce,
        },
        form.cookie,
      );
      expect(res.status).to.equal(422);
      const html = await res.text();
      expect(html).to.match(/class="banner"[^>]*>[\s\S]*suppression list/);
      expect(html).to.contain('value="Hello"');
      expect(s.queue.published).to.have.length(0);
    });
  });
});
