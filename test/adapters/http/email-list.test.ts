import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { EMAILS_PAGE_SIZE } from '../../../src/adapters/http/email-list-routes.js';
import type { StatusJson } from '../../../src/adapters/http/status-page.js';
import { InMemoryEmailLog } from '../../../src/adapters/memory/in-memory-stores.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { aRequest, anEvent, at } from '../../support/builders.js';
import { switchable } from '../../support/fakes.js';
import { eventually } from '../../support/waiting.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

/** What Chromium sends when it navigates to a page. */
const BROWSER_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';
const asBrowser = { headers: { accept: BROWSER_ACCEPT } };

interface Page {
  readonly status: number;
  readonly headers: Headers;
  readonly html: string;
}

async function page(h: Harness, query = '', headers: Record<string, string> = {}): Promise<Page> {
  const res = await fetch(`${h.url}/emails${query === '' ? '' : `?${query}`}`, {
    redirect: 'manual',
    headers: { ...asBrowser.headers, ...headers },
  });
  return { status: res.status, headers: res.headers, html: await res.text() };
}

/** The ids of the rows of the table, top to bottom. */
const rows = (html: string): string[] =>
  [...html.matchAll(/<tr data-id="([^"]+)"/g)].map((m) => m[1]!);

/** The text of the count link of `status` ("All" for none), as a number. */
function count(html: string, status: string | undefined): number {
  const pattern =
    status === undefined
      ? /<a href="[^"]*"(?: aria-current="true")?>All <span class="count">(\d+)<\/span>/
      : new RegExp(
          `<span class="badge badge-\\w+">${status}</span> <span class="count">(\\d+)</span>`,
        );
  const match = pattern.exec(html);
  if (match === null) throw new Error(`no count for ${status ?? 'All'}`);
  return Number(match[1]);
}

/** The `href` of the link whose text is `label`, as written in the page (entities and all). */
function hrefOf(html: string, label: string): string | undefined {
  return new RegExp(`<a (?:rel="next" )?href="([^"]*)"[^>]*>${label}</a>`).exec(html)?.[1];
}

const unescape = (href: string): string => href.replaceAll('&amp;', '&');

describe('The list of emails (GET /emails)', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await startHttp();
  });

  afterEach(async () => {
    expect(h.log.errors()).to.deep.equal([]);
    await h.close();
  });

  const record = async (request: EmailRequest): Promise<EmailRequest> => {
    const done = await h.emails.record(request)();
    if (E.isLeft(done)) throw new Error(done.left.reason);
    return request;
  };

  /** Three emails: one queued to ada, one sent by smtp to bob with a tag, one failed to carol. */
  async function threeEmails(): Promise<Record<'queued' | 'sent' | 'failed', EmailRequest>> {
    const queued = await record(aRequest({ to: 'ada@example.org', requestedAt: 1 }));
    const sent = await record(
      aRequest({ to: 'bob@example.com', tags: ['receipt'], requestedAt: 2 }),
    );
    const failed = await record(aRequest({ to: 'carol@example.net', requestedAt: 3 }));
    await h.change(anEvent.sending(sent, { at: at(4) }));
    await h.change(anEvent.sent(sent, { at: at(5), transport: 'smtp' }));
    await h.change(anEvent.sending(failed, { at: at(4) }));
    await h.change(anEvent.failed(failed, { at: at(5) }));
    return { queued, sent, failed };
  }

  describe('content negotiation', () => {
    it('answers JSON, exactly as before, to a program that names no type or any type', async () => {
      const { sent } = await threeEmails();
      for (const accept of [undefined, '*/*', 'application/json']) {
        const res = await fetch(`${h.url}/emails?tag=receipt`, {
          headers: accept === undefined ? {} : { accept },
        });
        expect(res.status, accept).to.equal(200);
        expect(res.headers.get('content-type'), accept).to.match(/^application\/json/);
        expect(res.headers.get('vary'), accept).to.match(/\bAccept\b/);
        const body = (await res.json()) as { data: StatusJson[]; next_cursor: string | null };
        expect(Object.keys(body)).to.deep.equal(['data', 'next_cursor']);
        expect(body.data.map((e) => [e.id, e.status, e.subject])).to.deep.equal([
          [sent.id, 'sent', sent.subject],
        ]);
        expect(body.next_cursor).to.equal(null);
      }
    });

    it('answers a page to a browser, with Vary: Accept and the dashboard navigation', async () => {
      await threeEmails();
      for (const accept of [BROWSER_ACCEPT, 'text/html']) {
        const { status, headers, html } = await page(h, '', { accept });
        expect(status, accept).to.equal(200);
        expect(headers.get('content-type')).to.match(/^text\/html/);
        expect(headers.get('vary')).to.match(/\bAccept\b/);
        expect(headers.get('cache-control')).to.equal('no-store');
        expect(html).to.contain('<h1>Emails</h1>');
        expect(html).to.match(/<a href="\/emails" aria-current="page">Emails<\/a>/);
      }
    });

    it('keeps JSON errors JSON, and shows a page its errors in the form', async () => {
      const json = await fetch(`${h.url}/emails?status=lost`);
      expect(json.status).to.equal(400);
      expect(((await json.json()) as { error: { fields: object } }).error.fields).to.deep.equal({
        status:
          'must be one of scheduled, queued, sending, sent, retrying, failed, cancelled, suppressed, delivered, bounced, complained',
      });
      const { status, html } = await page(h, 'status=lost');
      expect(status).to.equal(400);
      expect(html).to.contain('<p class="error" id="status-error">Status must be one of scheduled');
    });
  });

  describe('the page', () => {
    it('lists newest first, a row per email with its time, recipients, subject, status, attempts and transport', async () => {
      const { queued, sent, failed } = await threeEmails();
      const { html } = await page(h);
      expect(rows(html)).to.deep.equal([failed.id, sent.id, queued.id]);
      const row = (id: string): string => {
        const start = html.indexOf(`<tr data-id="${id}"`);
        return html.slice(start, html.indexOf('</tr>', start));
      };
      const sentRow = row(sent.id);
      expect(sentRow).to.contain(`<time datetime="${at(2)}">2026-11-28 10:00:02 UTC</time>`);
      expect(sentRow).to.contain('<td data-label="Recipients" class="wrap">bob@example.com</td>');
      expect(sentRow).to.contain(`<a href="/emails/${sent.id}">${sent.subject}</a>`);
      expect(sentRow).to.contain('<span class="badge badge-ok">sent</span>');
      expect(sentRow).to.contain('<td data-label="Attempts" class="number">1</td>');
      expect(sentRow).to.contain('<td data-label="Transport">smtp</td>');
      // Not known: a dash to the eye, a word to a screen reader.
      const queuedRow = row(queued.id);
      expect(queuedRow).to.contain('<td data-label="Attempts" class="number">0</td>');
      expect(queuedRow).to.contain(
        '<td data-label="Transport"><span aria-hidden="true">—</span><span class="visually-hidden">unknown</span></td>',
      );
      expect(row(failed.id)).to.contain('<span class="badge badge-bad">failed</span>');
    });

    it('escapes what a sender wrote: a subject with a script is text', async () => {
      const evil = await record(
        aRequest({ subject: '<script>alert("x")</script> & <b>bold</b>', to: 'eve@example.org' }),
      );
      const { html } = await page(h);
      expect(html).to.contain(
        `<a href="/emails/${evil.id}">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;</a>`,
      );
      expect(html).not.to.contain('<script>alert');
      expect(html).not.to.contain('<b>bold</b>');
      // The filters are written back into the form, escaped as well.
      const { html: filtered } = await page(h, `to=${encodeURIComponent('"><script>x')}`);
      expect(filtered).to.contain('value="&quot;&gt;&lt;script&gt;x"');
      expect(filtered).not.to.contain('"><script>x');
    });

    it('counts every status for the other filters, each count a link that keeps them', async () => {
      await threeEmails();
      await record(aRequest({ to: 'bob@example.com', tags: ['receipt'], requestedAt: 6 }));
      const all = (await page(h)).html;
      expect(count(all, undefined)).to.equal(4);
      expect([count(all, 'queued'), count(all, 'sent'), count(all, 'failed')]).to.deep.equal([
        2, 1, 1,
      ]);
      expect(count(all, 'bounced')).to.equal(0);

      // The status filter narrows the rows, not the counts: each count says where its link goes.
      const bob = (await page(h, 'to=bob&status=sent')).html;
      expect(rows(bob)).to.have.length(1);
      expect([count(bob, undefined), count(bob, 'queued'), count(bob, 'sent')]).to.deep.equal([
        2, 1, 1,
      ]);
      expect(count(bob, 'failed')).to.equal(0);
      expect(bob).to.contain(
        '<a href="/emails?status=queued&amp;to=bob"><span class="badge badge-wait">queued</span>',
      );
      expect(bob).to.contain(
        '<a href="/emails?status=sent&amp;to=bob" aria-current="true"><span class="badge badge-ok">sent</span>',
      );
      expect(bob).to.contain('<a href="/emails?to=bob">All <span class="count">2</span>');
    });

    it('filters by status, recipient, tag and time, and shows the filters in the form', async () => {
      const { queued, sent, failed } = await threeEmails();
      expect(rows((await page(h, 'status=failed')).html)).to.deep.equal([failed.id]);
      expect(rows((await page(h, 'to=ADA%40example')).html)).to.deep.equal([queued.id]);
      expect(rows((await page(h, 'tag=receipt')).html)).to.deep.equal([sent.id]);
      // A form's datetime-local sends minutes, no offset: UTC, as the labels say.
      const timed = (await page(h, 'since=2026-11-28T10:00:02&until=2026-11-28T10:00:03')).html;
      expect(rows(timed)).to.deep.equal([sent.id]);
      expect(timed).to.contain('value="2026-11-28T10:00:02"');
      // An API-style time with an offset is shown converted to UTC, which the control can hold.
      const offset = (await page(h, 'since=2026-11-28T11:00:02%2B01:00&status=sent')).html;
      expect(rows(offset)).to.deep.equal([sent.id]);
      expect(offset).to.contain(
        '<input id="since" name="since" type="datetime-local" step="1" value="2026-11-28T10:00:02"',
      );
      expect(offset).to.contain('<option value="sent" selected>sent</option>');
      const none = (await page(h, 'to=nobody')).html;
      expect(rows(none)).to.deep.equal([]);
      expect(none).to.contain('No email matches these filters.');
      expect(none).to.contain('value="nobody"');
    });

    it('shows each bad filter next to its field, with the same rules as the JSON, and answers 400', async () => {
      const { status, html } = await page(h, 'since=yesterday&tag=no%20spaces&to=a%00b');
      expect(status).to.equal(400);
      expect(html).to.contain('<title>Emails: check the filters</title>');
      expect(html).to.contain(
        '<p class="error" id="since-error">Since must be a date and time in UTC such as 2026-11-30T12:00, or a date such as 2026-11-30 (given: yesterday)</p>',
      );
      expect(html).to.contain(
        '<p class="error" id="tag-error">Tag must be 1 to 64 of A-Z, a-z, 0-9, _ and -</p>',
      );
      expect(html).to.contain(
        '<p class="error" id="to-error">Recipient must not contain NUL characters</p>',
      );
      expect(html).to.match(
        /<input id="tag"[^>]* aria-invalid="true" aria-describedby="tag-error"/,
      );
      // A summary at the top links to each field.
      expect(html).to.contain('<div class="banner" role="alert" id="problems">');
      expect(html).to.contain('<a href="#since">Since must be');
      expect(html).not.to.contain('<table');
      const day = await page(h, 'until=2026-02-30');
      expect(day.html).to.contain(
        '<p class="error" id="until-error">Until names a day that does not exist (2026-02-30)</p>',
      );
    });

    it('names a parameter the form does not have, and a cursor it never gave', async () => {
      const unknown = await page(h, 'limit=5');
      expect(unknown.status).to.equal(400);
      expect(unknown.html).to.contain(
        'The address has a parameter the list does not take: &quot;limit&quot; is not a known filter',
      );
      const twice = await page(h, 'status=sent&status=failed');
      expect(twice.status).to.equal(400);
      expect(twice.html).to.contain('Status is given more than once; give it once');
      const forged = Buffer.from(JSON.stringify([-1, 'email-00000001'])).toString('base64url');
      for (const cursor of ['garbage!', forged]) {
        const stale = await page(h, `cursor=${cursor}`);
        expect(stale.status, cursor).to.equal(400);
        expect(stale.html).to.contain('The link to this page is out of date or damaged');
      }
    });

    it('pages through older emails with the filters kept, and back to the newest', async () => {
      const tagged: EmailRequest[] = [];
      for (let i = 0; i <= EMAILS_PAGE_SIZE; i += 1) {
        tagged.push(await record(aRequest({ tags: ['bulk'], requestedAt: i })));
      }
      await record(aRequest({ requestedAt: 100 })); // not tagged: on no page
      const first = (await page(h, 'tag=bulk')).html;
      expect(rows(first)).to.have.length(EMAILS_PAGE_SIZE);
      expect(rows(first)[0]).to.equal(tagged.at(-1)!.id);
      expect(first).to.contain(`${EMAILS_PAGE_SIZE} emails on the newest page, newest first.`);
      expect(first).to.contain('data-list-events="/emails/events"');
      expect(hrefOf(first, 'Newest')).to.equal(undefined);
      const older = hrefOf(first, 'Older');
      expect(older).to.match(/^\/emails\?tag=bulk&amp;cursor=[A-Za-z0-9_-]+$/);

      const res = await fetch(`${h.url}${unescape(older!)}`, asBrowser);
      const second = await res.text();
      expect(res.status).to.equal(200);
      expect(rows(second)).to.deep.equal([tagged[0]!.id]);
      expect(second).to.contain('1 email on this older page, newest first.');
      expect(hrefOf(second, 'Newest')).to.equal('/emails?tag=bulk');
      expect(hrefOf(second, 'Older')).to.equal(undefined);
      // An older page stays still: no live stream, and "Refresh" reloads that very page.
      expect(second).not.to.contain('data-list-events');
      expect(second).not.to.contain('email-list.js');
      expect(hrefOf(second, 'Refresh')).to.equal(older);
    });

    it('says so when the email log does not answer: 503 with Retry-After', async () => {
      await h.close();
      const store = switchable(new InMemoryEmailLog());
      h = await startHttp({ emails: store.store });
      store.down = true;
      const { status, headers, html } = await page(h);
      expect(status).to.equal(503);
      expect(headers.get('retry-after')).to.equal('5');
      expect(html).to.contain('<title>The email log is not available</title>');
      expect(html).to.contain('The email log did not answer');
      expect(html).to.contain('<form class="email-filters"');
      const json = await fetch(`${h.url}/emails`);
      expect(json.status).to.equal(503);
      expect(((await json.json()) as { error: { code: string } }).error.code).to.equal(
        'store_unavailable',
      );
    });

    it('serves its live script, and works without it: a Refresh link and plain links', async () => {
      const { html } = await page(h, 'status=queued');
      expect(html).to.contain('<script src="/static/email-list.js" defer></script>');
      expect(hrefOf(html, 'Refresh')).to.equal('/emails?status=queued');
      expect(html).to.contain('<span class="list-live-note" hidden>');
      expect(html).to.contain('<form class="email-filters" method="get" action="/emails"');
      expect(html).to.contain(
        '<p id="email-list-announce" class="visually-hidden" aria-live="polite"',
      );
      const script = await fetch(`${h.url}/static/email-list.js`);
      expect(script.status).to.equal(200);
      expect(script.headers.get('content-type')).to.equal('application/javascript; charset=utf-8');
      expect(await script.text()).to.contain('new EventSource(main.dataset.listEvents)');
    });
  });

  describe('the event stream (GET /emails/events)', () => {
    /** Reads `change` events off the stream until `enough` says so; answers their ids. */
    async function changes(res: Response, enough: (ids: string[]) => boolean): Promise<string[]> {
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const ids: string[] = [];
      let buffer = '';
      while (!enough(ids)) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').find((line) => line.startsWith('data: '));
          if (block.startsWith('event: change') && data !== undefined) {
            ids.push((JSON.parse(data.slice(6)) as { id: string }).id);
          }
        }
      }
      await reader.cancel();
      return ids;
    }

    it('sends the id of every email that changes, and stops watching when the client leaves', async () => {
      const abort = new AbortController();
      const res = await fetch(`${h.url}/emails/events`, {
        headers: { accept: 'text/event-stream' },
        signal: abort.signal,
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      await eventually(() => h.bus.subscribers === 1);
      const one = aRequest();
      const two = aRequest();
      const seen = changes(res, (ids) => ids.length >= 3);
      await h.change(anEvent.requested(one));
      await h.change(anEvent.requested(two));
      await h.change(anEvent.sending(one, { at: at(1) }));
      expect(await seen).to.deep.equal([one.id, two.id, one.id]);
      abort.abort();
      await eventually(() => h.bus.subscribers === 0);
    });

    it('ends every stream when the server stops', async () => {
      await h.close();
      const closing = new AbortController();
      h = await startHttp({ closing: closing.signal });
      const res = await fetch(`${h.url}/emails/events`, {
        headers: { accept: 'text/event-stream' },
      });
      await eventually(() => h.bus.subscribers === 1);
      closing.abort();
      expect(await changes(res, () => false)).to.deep.equal([]);
      expect(h.bus.subscribers).to.equal(0);
    });
  });
});

describe('The list of emails where access is guarded', () => {
  let fx: AccessFixture;
  let h: Harness;

  beforeEach(async () => {
    fx = guardedAccess();
    h = await startHttp(fx.deps);
  });

  afterEach(async () => {
    await h.close();
  });

  it('keeps a program on API keys: 401 without one, never a sign-in page', async () => {
    for (const accept of [undefined, '*/*', 'application/json']) {
      const res = await fetch(`${h.url}/emails`, {
        redirect: 'manual',
        headers: accept === undefined ? {} : { accept },
      });
      expect(res.status, accept).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="email"');
    }
  });

  it('sends a browser to sign in and back to the same list', async () => {
    const { status, headers } = await page(h, 'status=sent&tag=receipt');
    expect(status).to.equal(303);
    expect(headers.get('location')).to.equal(
      `/login?next=${encodeURIComponent('/emails?status=sent&tag=receipt')}`,
    );
  });

  it('shows the page, and the JSON, to a key with the read scope only', async () => {
    const reader = await fx.key('reader', ['read']);
    const sender = await fx.key('sender', ['send']);
    const withKey = (key: string) => ({ authorization: `Bearer ${key}` });
    expect((await page(h, '', withKey(reader))).status).to.equal(200);
    expect((await page(h, '', withKey(sender))).status).to.equal(403);
    const json = await fetch(`${h.url}/emails`, { headers: withKey(reader) });
    expect(json.status).to.equal(200);
    expect(await json.json()).to.deep.equal({ data: [], next_cursor: null });
  });

  it('refuses the event stream without a session or a key', async () => {
    const res = await fetch(`${h.url}/emails/events`, {
      redirect: 'manual',
      headers: { accept: 'text/event-stream' },
    });
    expect(res.status).to.equal(401);
    expect(h.bus.subscribers).to.equal(0);
  });
});
