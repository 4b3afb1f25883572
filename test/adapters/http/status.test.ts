import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailLog } from '../../../src/application/ports/email-log.js';
import { EMAILS_PAGE_SIZE } from '../../../src/adapters/http/email-list-routes.js';
import type { StatusJson } from '../../../src/adapters/http/status-page.js';
import { InMemoryEmailLog } from '../../../src/adapters/memory/in-memory-stores.js';
import { migrateSql } from '../../../src/adapters/postgres/migrate.js';
import { PgliteDatabase } from '../../../src/adapters/postgres/pglite-database.js';
import { SqlEmailLog } from '../../../src/adapters/postgres/sql-email-log.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { aRequest, anEvent } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { eventually } from '../../support/waiting.js';
import type { Harness } from './harness.js';
import { eachHttp, startHttp } from './harness.js';

const email = aRequest({
  id: 'email-00000042',
  to: 'ada@example.com',
  subject: 'Hello <b>Ada</b>',
  requestedAt: new Date('2030-01-02T03:04:05.000Z'),
});
const { id } = email;

const requested = anEvent.requested(email);
const retried = anEvent.retried(email, {
  at: '2030-01-02T03:04:06.000Z',
  reason: 'HTTP 503',
  durationMs: 40,
  delayMs: 5000,
});
const sending = anEvent.sending(email, { at: '2030-01-02T03:04:11.500Z', attempt: 2 });
const sent = anEvent.sent(email, {
  at: '2030-01-02T03:04:12.000Z',
  attempt: 2,
  providerId: '<p1@mailgun>',
  durationMs: 670,
});

const json = { headers: { accept: 'application/json' } };

/** Reads server-sent events until the stream ends or `until` says enough. */
async function readEvents(
  res: Response,
  onEvent: (data: StatusJson, count: number) => Promise<void> | void,
): Promise<{ events: StatusJson[]; ended: boolean }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: StatusJson[] = [];
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, ended: true };
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      if (!block.includes('event: status') || data === undefined) continue;
      const status = JSON.parse(data.slice(6)) as StatusJson;
      events.push(status);
      await onEvent(status, events.length);
    }
  }
}

describe('HTTP status (GET /emails/:id and its event stream)', () => {
  let h: Harness;
  eachHttp((started) => (h = started));

  const changes = async (...events: DomainEvent[]): Promise<void> => {
    for (const event of events) await h.change(event);
  };

  it('answers JSON with the public fields when Accept prefers it', async () => {
    await changes(requested, retried, sending, sent);
    const res = await fetch(`${h.url}/emails/${id}`, json);
    expect(res.status).to.equal(200);
    expect(res.headers.get('vary')).to.contain('Accept');
    expect(await res.json()).to.deep.equal({
      id,
      status: 'sent',
      to: ['ada@example.com'],
      subject: 'Hello <b>Ada</b>',
      created_at: '2030-01-02T03:04:05.000Z',
      recipients: [{ address: 'ada@example.com', status: 'sent' }],
      attempts: [
        {
          attempt: 1,
          at: '2030-01-02T03:04:06.000Z',
          outcome: 'transient',
          detail: 'HTTP 503',
          duration_ms: 40,
        },
        {
          attempt: 2,
          at: '2030-01-02T03:04:12.000Z',
          outcome: 'sent',
          detail: '<p1@mailgun>',
          duration_ms: 670,
        },
      ],
      events: [
        { at: '2030-01-02T03:04:05.000Z', status: 'queued', source: 'api' },
        {
          at: '2030-01-02T03:04:06.000Z',
          status: 'retrying',
          source: 'worker',
          detail: 'HTTP 503',
        },
        {
          at: '2030-01-02T03:04:11.500Z',
          status: 'sending',
          source: 'worker',
          detail: 'attempt 2',
        },
        {
          at: '2030-01-02T03:04:12.000Z',
          status: 'sent',
          source: 'worker',
          detail: '<p1@mailgun>',
        },
      ],
      provider_id: '<p1@mailgun>',
      sent_at: '2030-01-02T03:04:12.000Z',
      duration_ms: 670,
    });
  });

  it('lists emails newest first, filtered, a page at a time', async () => {
    for (let i = 1; i <= 3; i += 1) {
      const res = await fetch(`${h.url}/emails`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          to: `user${i}@example.com`,
          subject: `S${i}`,
          text: 'T',
          tags: i === 2 ? ['receipt'] : [],
        }),
      });
      expect(res.status).to.equal(202);
    }
    const all = (await (await fetch(`${h.url}/emails`)).json()) as {
      data: StatusJson[];
      next_cursor: string | null;
    };
    // The harness clock stands still: equal times fall back to the id, newest (largest) first.
    expect(all.data.map((e) => e.to[0])).to.deep.equal([
      'user3@example.com',
      'user2@example.com',
      'user1@example.com',
    ]);
    expect(all.next_cursor).to.equal(null);
    const tagged = (await (await fetch(`${h.url}/emails?tag=receipt`)).json()) as {
      data: StatusJson[];
    };
    expect(tagged.data.map((e) => e.subject)).to.deep.equal(['S2']);
    const byTo = (await (await fetch(`${h.url}/emails?to=USER1`)).json()) as { data: StatusJson[] };
    expect(byTo.data.map((e) => e.subject)).to.deep.equal(['S1']);
    const bad = await fetch(`${h.url}/emails?status=lost&since=yesterday`);
    expect(bad.status).to.equal(400);
    expect(await bad.json()).to.have.nested.property('error.fields.status');
  });

  it('renders an escaped HTML page that works without JavaScript', async () => {
    await changes(requested, retried);
    const res = await fetch(`${h.url}/emails/${id}`);
    const html = await res.text();
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/html/);
    expect(html).to.contain('Retrying: attempt 1 failed for now.');
    expect(html).to.contain(
      '<time datetime="2030-01-02T03:04:11.000Z">2030-01-02 03:04:11 UTC</time>',
    );
    expect(html).to.contain('Hello &lt;b&gt;Ada&lt;/b&gt;');
    expect(html).not.to.contain('<b>Ada</b>');
    expect(html).to.contain('<noscript><meta http-equiv="refresh" content="5"></noscript>');
    expect(html).to.contain(`data-events="/emails/${id}/events"`);
    expect(html).to.contain('<script src="/static/status.js" defer></script>');
  });

  it('shows the provider id, time to send and history once sent, and stops updating', async () => {
    await changes(requested, sending, sent);
    const html = await (await fetch(`${h.url}/emails/${id}`)).text();
    expect(html).to.contain('Sent: the provider accepted it.');
    expect(html).to.contain('<strong>sending</strong> (worker): attempt 2');
    expect(html).to.contain('&lt;p1@mailgun&gt;');
    expect(html).to.contain('0.67 s');
    expect(html).not.to.contain('data-events');
    expect(html).not.to.contain('http-equiv="refresh"');
  });

  it('shows each failover, in the page and in the JSON', async () => {
    const failover = {
      at: '2030-01-02T03:04:12.000Z',
      from: 'mailgun',
      to: 'smtp',
      reason: 'Mailgun 503: <busy>',
    };
    await changes(
      requested,
      anEvent.failedOver(email, {
        at: failover.at,
        fromTransport: failover.from,
        toTransport: failover.to,
        reason: failover.reason,
      }),
    );
    const html = await (await fetch(`${h.url}/emails/${id}`)).text();
    expect(html).to.contain('Failovers');
    expect(html).to.contain('mailgun failed for now (Mailgun 503: &lt;busy&gt;); tried smtp.');
    const json = (await (
      await fetch(`${h.url}/emails/${id}`, { headers: { accept: 'application/json' } })
    ).json()) as { failovers: unknown };
    expect(json.failovers).to.deep.equal([failover]);
  });

  it('answers 404 for an unknown or invalid id, in the format asked for', async () => {
    for (const path of ['/emails/email-99999999', '/emails/short', '/emails/bad%20id%3Cx%3E']) {
      const asJson = await fetch(`${h.url}${path}`, json);
      expect(asJson.status, path).to.equal(404);
      expect(await asJson.json()).to.have.nested.property('error.code', 'not_found');
      const asHtml = await fetch(`${h.url}${path}`);
      expect(asHtml.status).to.equal(404);
      expect(await asHtml.text()).to.contain('Email not found');
    }
    expect((await fetch(`${h.url}/emails/email-99999999/events`)).status).to.equal(404);
  });

  it('serves the live-update script with a content type the CSP allows', async () => {
    const res = await fetch(`${h.url}/static/status.js`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/javascript/);
    expect(await res.text()).to.contain('new EventSource');
  });

  it('streams the current status at once, each change, and ends after a final one', async () => {
    await changes(requested);
    const res = await fetch(`${h.url}/emails/${id}/events`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
    const { events, ended } = await readEvents(res, async (_status, count) => {
      if (count === 1) await h.change(retried);
      if (count === 2) await changes(sending, sent);
    });
    // `sending` may be read together with `sent` (one re-read after both): never out of order.
    const seen = events.map((e) => e.status);
    expect(seen[0]).to.equal('queued');
    expect(seen[1]).to.equal('retrying');
    expect(seen.at(-1)).to.equal('sent');
    expect(events.at(-1)).to.include({ provider_id: '<p1@mailgun>', duration_ms: 670 });
    expect(ended).to.equal(true);
    expect(h.bus.subscribers).to.equal(0);
  });

  it('shows on reload what a lost event never told the page', async () => {
    await changes(requested);
    // A change written to the log with no announcement, as when the broker dropped the event.
    await h.emails.apply(sent)();
    const res = await fetch(`${h.url}/emails/${id}`, json);
    expect(await res.json()).to.include({ status: 'sent' });
  });

  it('ends every event stream at once when the server stops, and a late one after its status', async () => {
    const closing = new AbortController();
    const stopping = await startHttp({ closing: closing.signal });
    try {
      await stopping.change(requested);
      const streams = await Promise.all(
        [1, 2].map(() => fetch(`${stopping.url}/emails/${id}/events`)),
      );
      const started = Date.now();
      let heard = 0;
      const reads = streams.map((res) =>
        readEvents(res, () => {
          heard += 1;
          if (heard === 2) closing.abort();
        }),
      );
      for (const { events, ended } of await Promise.all(reads)) {
        expect(ended).to.equal(true);
        expect(events.map((e) => e.status)).to.deep.equal(['queued']);
      }
      expect(Date.now() - started).to.be.below(1000);
      await eventually(() => stopping.bus.subscribers === 0);
      // Asked for while the server stops: the status as it is, then the end (the browser
      // reconnects, to an instance that is still there).
      const late = await readEvents(
        await fetch(`${stopping.url}/emails/${id}/events`),
        () => undefined,
      );
      expect(late).to.deep.include({ ended: true });
      expect(late.events.map((e) => e.status)).to.deep.equal(['queued']);
      expect(stopping.log.errors()).to.deep.equal([]);
    } finally {
      await stopping.close();
    }
  });

  it('stops watching when the client goes away', async () => {
    await changes(requested);
    const abort = new AbortController();
    const res = await fetch(`${h.url}/emails/${id}/events`, { signal: abort.signal });
    const before = h.bus.subscribers;
    expect(before).to.equal(1);
    await readEvents(res, () => abort.abort()).catch(() => undefined);
    await eventually(() => h.bus.subscribers === 0);
  });
});

interface ListError {
  error: { code: string; fields?: Record<string, string> };
}

/** `GET /emails` with a raw query string, as a client might type it. */
async function listWith(h: Harness, query: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${h.url}/emails?${query}`);
  return { status: res.status, body: await res.json() };
}

/**
 * The filters' edges, against a log on the embedded PostgreSQL as well as in memory: each bad
 * query must be a 400 naming its parameter there too, never a statement PostgreSQL refuses (503).
 */
function queryEdges(
  name: string,
  emails: () => Promise<{ log: EmailLog; close(): Promise<void> }>,
) {
  describe(`GET /emails refuses bad filters by name (${name})`, function () {
    this.timeout(60_000);
    let h: Harness;
    let store: { log: EmailLog; close(): Promise<void> };

    before(async () => {
      store = await emails();
    });
    after(() => store?.close());
    beforeEach(async () => {
      h = await startHttp({ emails: store.log });
    });
    afterEach(async () => {
      expect(h.log.errors()).to.deep.equal([]);
      await h.close();
    });

    const refused = async (query: string, field: string, message?: string | RegExp) => {
      const { status, body } = await listWith(h, query);
      expect(status, query).to.equal(400);
      const fields = (body as ListError).error.fields ?? {};
      expect(Object.keys(fields), query).to.deep.equal([field]);
      if (typeof message === 'string') expect(fields[field], query).to.equal(message);
      if (message instanceof RegExp) expect(fields[field], query).to.match(message);
    };

    it('refuses a recipient filter with NUL or other control characters', async () => {
      await refused('to=%00', 'to', 'must not contain NUL characters');
      await refused('to=ada%00', 'to', 'must not contain NUL characters');
      await refused('to=a%0Ab', 'to', /control characters/);
      await refused('to=a%7Fb', 'to', /control characters/);
    });

    it('takes times from 1970 to 9999 only, and only days that exist', async () => {
      for (const since of ['0000-01-01', '1969-12-31T23:59:59Z', '10000-01-01', '+275760-09-13']) {
        await refused(`since=${encodeURIComponent(since)}`, 'since');
      }
      await refused('until=9999-12-31T23:30:00-01:00', 'until', 'must be a time from 1970 to 9999');
      await refused(
        'since=1970-01-01T00:30:00%2B01:00',
        'since',
        'must be a time from 1970 to 9999',
      );
      await refused('since=2026-02-30', 'since', 'names a day that does not exist (2026-02-30)');
      await refused('until=2025-02-29T10:00:00Z', 'until', /day that does not exist/);
      await refused('since=2026-13-01', 'since', /day that does not exist/);
      await refused('since=2026-11-30T24:00:00Z', 'since', /time of day that does not exist/);
      await refused('since=2026-11-30T12:00:00%2B24:00', 'since', /time of day/);
      await refused('since=yesterday', 'since', /RFC 3339/);
      await refused('since=2026-11-30T12:00:00Zjunk', 'since', /RFC 3339/);
      for (const ok of [
        '1970-01-01',
        '2024-02-29',
        '9999-12-31T23:59:59.999Z',
        '2026-11-30T12:00:00%2B01:00',
        '2026-11-30T12:00Z',
        '2026-11-30t12:00:00.123456789z',
      ]) {
        const { status } = await listWith(h, `since=${ok}&until=${ok}`);
        expect(status, ok).to.equal(200);
      }
    });

    it('refuses a cursor it never gave, however it was made', async () => {
      const cursors = [
        forged([1e300, 'a']),
        forged([Date.UTC(0, 0, 1), 'email-00000001']),
        forged([-1, 'email-00000001']),
        forged([Date.parse('2026-01-01'), 'a\u0000bcdefghi']),
        forged({ a: 1 }),
        'bm90IGpzb24',
        'garbage',
        'x'.repeat(501),
        'not%20base64url',
      ];
      for (const cursor of cursors) {
        await refused(`cursor=${cursor}`, 'cursor', 'must be a next_cursor from an earlier page');
      }
    });

    it('refuses a parameter given twice, in array form, or unknown, naming it', async () => {
      await refused('status=sent&status=failed', 'status', 'is given more than once; give it once');
      await refused('status[]=sent', 'status[]', /is not a known filter \(use status, to,/);
      await refused('limit=5', 'limit', /is not a known filter/);
      await refused('__proto__=x', '__proto__', /is not a known filter/);
      await refused('to=a&to=b', 'to', /more than once/);
      const { status, body } = await listWith(h, 'status=sent&tag=x&tag=y&page=2');
      expect(status).to.equal(400);
      expect(Object.keys((body as ListError).error.fields ?? {}).sort()).to.deep.equal([
        'page',
        'tag',
      ]);
    });

    it('still answers good filters, and an empty one as absent', async () => {
      const { status, body } = await listWith(h, 'status=&to=nobody&since=2026-01-01&tag=');
      expect(status).to.equal(200);
      expect(body).to.deep.equal({ data: [], next_cursor: null });
    });

    it('pages on with the next_cursor it gave', async () => {
      for (let i = 0; i <= EMAILS_PAGE_SIZE; i += 1) {
        expect(E.isRight(await store.log.record(aRequest({ requestedAt: i }))())).to.equal(true);
      }
      const first = (await listWith(h, '')).body as { data: unknown[]; next_cursor: string };
      expect(first.data).to.have.length(EMAILS_PAGE_SIZE);
      const second = await listWith(h, `cursor=${first.next_cursor}`);
      expect(second.status).to.equal(200);
      expect(second.body).to.have.property('data').with.length(1);
    });
  });
}

const forged = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

queryEdges('in memory', async () => ({
  log: new InMemoryEmailLog(),
  close: async () => undefined,
}));

queryEdges('SqlEmailLog on PGlite', async () => {
  const db = await PgliteDatabase.open({ dataDir: 'memory' });
  await migrateSql(db, recordingLogger());
  return { log: new SqlEmailLog(db.client), close: () => db.close() };
});
