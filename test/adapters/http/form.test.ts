import { expect } from 'chai';
import type { Harness } from './harness.js';
import { eachHttp, openForm, postForm, published } from './harness.js';

const valid = { to: 'Ada <ada@example.com>', subject: 'Hello', text: 'Hi Ada' };

describe('HTTP form (GET / and POST /)', () => {
  let h: Harness;
  eachHttp((started) => (h = started), { allowErrors: true });

  it('serves the form with a CSRF token, a nonce and a strict session cookie', async () => {
    const res = await fetch(`${h.url}/`);
    const html = await res.text();
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/html/);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(html).to.contain('<title>Send an email</title>');
    expect(html).to.match(/<label for="to">To<\/label>/);
    expect(html).to.match(/<label for="subject">Subject<\/label>/);
    expect(html).to.match(/<textarea id="text" name="text"/);
    expect(html).to.match(/name="_csrf" value="[A-Za-z0-9_-]{40,}"/);
    expect(html).to.match(/name="_nonce" value="[A-Za-z0-9_-]{22}"/);
    const cookie = res.headers.getSetCookie()[0] ?? '';
    expect(cookie).to.match(/^sid=[A-Za-z0-9_-]{43};/);
    expect(cookie.toLowerCase()).to.contain('httponly');
    expect(cookie.toLowerCase()).to.contain('samesite=strict');
    expect(cookie.toLowerCase()).to.contain('path=/');
  });

  it('keeps the session cookie it already set, and gives each rendering a new nonce', async () => {
    const first = await openForm(h);
    const again = await fetch(`${h.url}/`, { headers: { cookie: first.cookie } });
    expect(again.headers.getSetCookie()).to.deep.equal([]);
    expect(await again.text()).not.to.contain(first.nonce);
  });

  it('queues a valid submit once and answers 303 to the status page', async () => {
    const form = await openForm(h);
    const res = await postForm(h, { ...valid, _csrf: form.token, _nonce: form.nonce }, form.cookie);
    expect(res.status).to.equal(303);
    expect(res.headers.get('location')).to.equal('/emails/email-00000001');
    expect(published(h)).to.deep.equal(['email-00000001']);
    const request = h.queue.published[0]!;
    expect(request).to.include({ subject: 'Hello', text: 'Hi Ada' });
    expect(request.to).to.deep.equal(['Ada <ada@example.com>']);
    expect(request.html).to.equal(undefined);
  });

  it('answers a double submit of one rendering with the same 303, publishing once', async () => {
    const form = await openForm(h);
    const fields = { ...valid, _csrf: form.token, _nonce: form.nonce };
    const first = await postForm(h, fields, form.cookie);
    const second = await postForm(h, fields, form.cookie);
    expect(first.status).to.equal(303);
    expect(second.status).to.equal(303);
    expect(second.headers.get('location')).to.equal(first.headers.get('location'));
    expect(published(h)).to.have.length(1);
  });

  it('answers concurrent double clicks with one email', async () => {
    const form = await openForm(h);
    const fields = { ...valid, _csrf: form.token, _nonce: form.nonce };
    const answers = await Promise.all([1, 2, 3].map(() => postForm(h, fields, form.cookie)));
    expect(published(h)).to.have.length(1);
    for (const res of answers) expect([303, 409]).to.include(res.status);
  });

  it('shows each error next to its field and keeps the values, escaped', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      {
        to: 'not-an-address',
        subject: '<script>alert(1)</script>',
        text: '',
        _csrf: form.token,
        _nonce: form.nonce,
      },
      form.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(400);
    expect(published(h)).to.deep.equal([]);
    expect(html).to.match(
      /<p class="error" id="to-error">To &quot;not-an-address&quot; needs the form name@domain<\/p>/,
    );
    expect(html).to.match(/<p class="error" id="text-error">Text is required/);
    expect(html).to.match(
      /id="to"[^>]*value="not-an-address"[^>]*aria-invalid="true" aria-describedby="to-error to-hint"/,
    );
    expect(html).to.contain('value="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(html).not.to.contain('<script>alert(1)</script>');
    expect(html).to.contain('<a href="#to">');
    // The person can correct the form and send it: a fresh token, the same nonce.
    expect(html).to.contain(`name="_nonce" value="${form.nonce}"`);
  });

  it('sends to several recipients separated by commas, a quoted name keeping its comma', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      {
        ...valid,
        to: 'ada@example.com, "Lovelace, Ada" <ada@example.org>; bob@example.org,',
        _csrf: form.token,
        _nonce: form.nonce,
      },
      form.cookie,
    );
    expect(res.status).to.equal(303);
    expect(h.queue.published[0]!.to).to.deep.equal([
      'ada@example.com',
      '"Lovelace, Ada" <ada@example.org>',
      'bob@example.org',
    ]);
  });

  it('names the bad recipient by its place, with the other fields checked too', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      {
        to: 'ada@example.com, bob@, carol@example.org',
        subject: '',
        text: 'Hi',
        _csrf: form.token,
        _nonce: form.nonce,
      },
      form.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(400);
    expect(html).to.contain(
      '<p class="error" id="to-error">To: the 2nd address &quot;bob@&quot; needs the form name@domain</p>',
    );
    expect(html).not.to.contain('To is required');
    expect(html).to.contain('<p class="error" id="subject-error">Subject is required</p>');
    expect(html).to.contain('value="ada@example.com, bob@, carol@example.org"');
    expect(published(h)).to.deep.equal([]);
  });

  it('speaks of the form fields only: no html, no field the form does not have', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      { ...valid, text: '   ', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(400);
    expect(html).to.contain(
      '<p class="error" id="text-error">Text is required: write the message.</p>',
    );
    expect(html).not.to.match(/give html|html\)/);
  });

  it('refuses a subject over 998 characters with a message, never cutting it', async () => {
    const page = await openForm(h);
    expect(page.html).not.to.contain('maxlength');
    const long = 'x'.repeat(1000);
    const res = await postForm(
      h,
      { ...valid, subject: long, _csrf: page.token, _nonce: page.nonce },
      page.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(400);
    expect(html).to.contain(
      'Subject is 1000 characters long; at most 998 are allowed: shorten it.',
    );
    // Given back whole, for the person to shorten where they choose.
    expect(html).to.contain(`value="${long}"`);
    expect(published(h)).to.deep.equal([]);
  });

  it('gives the text back exactly, leading newline included', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      { to: '', subject: 'S', text: '\n  indented\nline', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    // A browser drops the first newline after <textarea>, so the page must carry one extra.
    expect(await res.text()).to.match(/<textarea[^>]*>\n\n {2}indented\nline<\/textarea>/);
  });

  it('refuses a subject with CRLF as a field error, not a header', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      { ...valid, subject: 'Hi\r\nBcc: victim@example.com', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(400);
    expect(html).to.contain('Subject must be one line (no CR or LF)');
    expect(published(h)).to.deep.equal([]);
  });

  it('refuses NUL in the fields as field errors, never as "try again"', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      {
        to: 'ada@example.com\u0000',
        subject: 'Hi\u0000',
        text: 'Hello\u0000',
        _csrf: form.token,
        _nonce: form.nonce,
      },
      form.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(400);
    expect(res.headers.get('retry-after')).to.equal(null);
    expect(html).to.contain('To &quot;ada@example.com\\u0000&quot; contains a NUL character');
    expect(html).to.contain('Subject must not contain NUL characters');
    expect(html).to.contain('Text must not contain NUL characters');
    expect(published(h)).to.deep.equal([]);
  });

  it('answers a corrupt gzip form with 400 and an unknown encoding with 415', async () => {
    const form = await openForm(h);
    const body = new URLSearchParams({ ...valid, _csrf: form.token, _nonce: form.nonce });
    const send = (encoding: string) =>
      fetch(`${h.url}/`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-encoding': encoding,
          cookie: form.cookie,
        },
        body: body.toString(),
      });
    const corrupt = await send('gzip');
    expect(corrupt.status).to.equal(400);
    expect(await corrupt.text()).to.contain('could not be decompressed');
    const unknown = await send('compress');
    expect(unknown.status).to.equal(415);
    expect(await unknown.text()).to.contain('Content-Encoding is not supported');
    expect(published(h)).to.deep.equal([]);
    expect(h.log.errors()).to.deep.equal([]);
  });

  it('lets the corrected form through after an invalid submit', async () => {
    const form = await openForm(h);
    const bad = await postForm(
      h,
      { ...valid, to: '', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    const page = await bad.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    const good = await postForm(h, { ...valid, _csrf: token, _nonce: form.nonce }, form.cookie);
    expect(bad.status).to.equal(400);
    expect(good.status).to.equal(303);
    expect(published(h)).to.have.length(1);
  });

  it('passes only to, subject and text to the core (no token, nonce or extra field)', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      { ...valid, html: '<b>x</b>', admin: '1', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    expect(res.status).to.equal(303);
    expect(h.queue.published[0]!.html).to.equal(undefined);
  });

  it('refuses a post without the session cookie: 403, nothing published', async () => {
    const form = await openForm(h);
    const res = await postForm(h, { ...valid, _csrf: form.token, _nonce: form.nonce });
    const html = await res.text();
    expect(res.status).to.equal(403);
    expect(html).to.contain('did not send the session cookie');
    expect(html).to.contain('<a href="/">');
    expect(published(h)).to.deep.equal([]);
  });

  it('refuses a missing, forged or foreign token: 403, nothing published', async () => {
    const form = await openForm(h);
    const other = await openForm(h);
    const cases: Array<[Record<string, string>, string]> = [
      [{ ...valid, _nonce: form.nonce }, 'sent without its security token'],
      [{ ...valid, _csrf: 'forged', _nonce: form.nonce }, 'damaged'],
      [{ ...valid, _csrf: withOtherMac(form.token), _nonce: form.nonce }, 'does not belong'],
      [
        { ...valid, _csrf: other.token, _nonce: form.nonce },
        'does not belong to this browser session',
      ],
    ];
    for (const [fields, says] of cases) {
      const res = await postForm(h, fields, form.cookie);
      expect(res.status).to.equal(403);
      expect(await res.text()).to.contain(says);
    }
    expect(published(h)).to.deep.equal([]);
  });

  it('answers 503 with Retry-After and the values kept when the queue is down', async () => {
    const form = await openForm(h);
    h.queue.down = true;
    const fields = { ...valid, _csrf: form.token, _nonce: form.nonce };
    const res = await postForm(h, fields, form.cookie);
    const html = await res.text();
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.equal('5');
    expect(html).to.contain('the email was not accepted');
    expect(html).to.contain('value="Hello"');
    h.queue.down = false;
    const retry = await postForm(h, fields, form.cookie);
    expect(retry.status).to.equal(303);
    expect(published(h)).to.have.length(1);
  });

  it('says so when one rendering is sent again with other values (409)', async () => {
    const form = await openForm(h);
    await postForm(h, { ...valid, _csrf: form.token, _nonce: form.nonce }, form.cookie);
    const res = await postForm(
      h,
      { ...valid, subject: 'Changed', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    const html = await res.text();
    expect(res.status).to.equal(409);
    expect(html).to.contain('already sent with other values');
    expect(html).to.contain('value="Changed"');
    expect(html).not.to.contain(`name="_nonce" value="${form.nonce}"`);
    expect(published(h)).to.have.length(1);
  });

  it('refuses a multipart form with 415 and does not parse it', async () => {
    const form = await openForm(h);
    const body = new FormData();
    body.set('to', valid.to);
    const res = await fetch(`${h.url}/`, {
      method: 'POST',
      headers: { cookie: form.cookie },
      body,
    });
    expect(res.status).to.equal(415);
    expect(published(h)).to.deep.equal([]);
  });

  it('answers 413 to a form over the body limit', async () => {
    const form = await openForm(h);
    const res = await postForm(
      h,
      { ...valid, text: 'x'.repeat(1_100_000), _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    expect(res.status).to.equal(413);
    expect(await res.text()).to.contain('larger than the limit');
    expect(published(h)).to.deep.equal([]);
  });
});

/** The same token with a signature of the right length that was never issued. */
function withOtherMac(token: string): string {
  const [issuedAt, nonce, mac] = Buffer.from(token, 'base64url').toString('utf8').split('.');
  const bytes = Buffer.from(mac ?? '', 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 0xff;
  return Buffer.from(`${issuedAt}.${nonce}.${bytes.toString('base64url')}`).toString('base64url');
}
