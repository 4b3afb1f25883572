// An email's message on its page and its html part on its own route, over real HTTP: what is
// shown, how it is escaped, and what the html part's document may load and run.
import { expect } from 'chai';
import { MESSAGE_CONTENT_SECURITY_POLICY } from '../../../src/adapters/http/message-routes.js';
import { guardedAccess } from '../../support/access.js';
import { aRequest, anEvent } from '../../support/builders.js';
import type { EmailPageApp } from './email-page-app.js';
import { Visitor, accept, startEmailPageApp } from './email-page-app.js';

/** A 1×1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

const rich = {
  from: 'Shop <shop@example.com>',
  to: ['Ada <ada@example.com>'],
  cc: ['carol@example.com'],
  bcc: ['audit@example.com'],
  reply_to: 'help@example.com',
  subject: 'Your <b>receipt</b>',
  text: 'Thanks!\n<script>alert("text")</script>\n' + 'x'.repeat(300),
  html: '<h1>Thanks</h1><img alt="logo" src="cid:logo@shop"><img alt="tracker" src="https://tracker.example/p.gif"><script>parent.document.title="owned"</script>',
  headers: { 'X-Campaign': '<autumn>' },
  attachments: [
    {
      filename: 'logo.png',
      content: PNG.toString('base64'),
      content_type: 'image/png',
      content_id: 'logo@shop',
    },
    { filename: 'receipt <1>.txt', content: Buffer.from('total: 12').toString('base64') },
  ],
};

describe('An email’s message over HTTP', () => {
  let app: EmailPageApp;
  let visitor: Visitor;

  beforeEach(async () => {
    app = await startEmailPageApp();
    visitor = new Visitor(app.url);
  });

  afterEach(() => app.close());

  describe('GET /emails/{id}/html', () => {
    it('serves the html part under its own policy: nothing remote, no script, framed only by us', async () => {
      const id = await accept(app, rich);
      const res = await fetch(`${app.url}/emails/${id}/html`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('text/html; charset=utf-8');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).to.equal(MESSAGE_CONTENT_SECURITY_POLICY);
      const directives = csp.split(/;\s*/);
      expect(directives).to.include("default-src 'none'");
      expect(directives).to.include('img-src data: cid:');
      expect(directives).to.include("style-src 'unsafe-inline'");
      expect(directives).to.include("frame-ancestors 'self'");
      // A bare sandbox: no allow-scripts, no allow-same-origin, nothing allowed.
      expect(directives).to.include('sandbox');
      expect(csp).not.to.match(/allow-|script-src|https?:/);
      expect(res.headers.get('x-frame-options')).to.equal('SAMEORIGIN');
      expect(res.headers.get('referrer-policy')).to.equal('no-referrer');
      expect(res.headers.get('cache-control')).to.equal('no-store');
      const body = await res.text();
      // The inline image is inlined from its attachment; the remote one is left to the CSP.
      expect(body).to.contain(`src="data:image/png;base64,${PNG.toString('base64')}"`);
      expect(body).not.to.contain('cid:logo@shop');
      expect(body).to.contain('src="https://tracker.example/p.gif"');
    });

    it('leaves a cid: that names no inline image as it is: a broken image', async () => {
      const id = await accept(app, {
        to: 'ada@example.com',
        subject: 'Hi',
        html: '<img alt="a" src="cid:nothing"><img alt="b" src="cid:file">',
        attachments: [
          { filename: 'a.txt', content: 'aGk=', content_type: 'text/plain', content_id: 'file' },
        ],
      });
      const body = await (await fetch(`${app.url}/emails/${id}/html`)).text();
      expect(body).to.equal('<img alt="a" src="cid:nothing"><img alt="b" src="cid:file">');
    });

    it('is 404 for an unknown email, an email without an html part, and one whose request is gone', async () => {
      const textOnly = await accept(app, { to: 'ada@example.com', subject: 'Hi', text: 'Hi' });
      const gone = aRequest({ html: '<p>hi</p>' });
      await app.change(anEvent.failed(gone));
      for (const path of [
        '/emails/no-such-email/html',
        '/emails/bad%20id/html',
        `/emails/${textOnly}/html`,
        `/emails/${gone.id}/html`,
      ]) {
        const res = await fetch(`${app.url}${path}`, { headers: { accept: 'text/html' } });
        expect(res.status, path).to.equal(404);
        // A problem page is one of ours, with the pages' own policy.
        expect(res.headers.get('x-frame-options'), path).to.equal('DENY');
      }
    });
  });

  describe('on the email’s page', () => {
    it('frames the html part in a bare sandbox, and the page may frame only itself', async () => {
      const id = await accept(app, rich);
      const page = await visitor.get(`/emails/${id}`);
      expect(page.status).to.equal(200);
      const frame = /<iframe[^>]*>/.exec(page.text)?.[0] ?? '';
      expect(frame).to.match(/\ssandbox[\s>]/);
      expect(frame).not.to.match(/allow-/);
      expect(frame).to.contain(`src="/emails/${id}/html"`);
      expect(frame).to.match(/title="[^"]+"/);
      expect(page.headers.get('content-security-policy')).to.contain("frame-src 'self'");
      // The html itself is never part of the page.
      expect(page.text).not.to.contain('parent.document.title');
    });

    it('shows the header fields, the text part, the files and the raw message, every value escaped', async () => {
      const id = await accept(app, rich);
      const { text } = await visitor.get(`/emails/${id}`);
      const section = /<section class="message"[\s\S]*?<\/section>/.exec(text)?.[0] ?? '';
      expect(section).to.contain('<dt>From</dt><dd>Shop &lt;shop@example.com&gt;</dd>');
      expect(section).to.contain('<dt>To</dt><dd>Ada &lt;ada@example.com&gt;</dd>');
      expect(section).to.contain('<dt>Cc</dt><dd>carol@example.com</dd>');
      expect(section).to.match(
        /<dt>Bcc<\/dt><dd>audit@example.com <span[^>]*>\(in the envelope only/,
      );
      expect(section).to.contain('<dt>Reply-To</dt><dd>help@example.com</dd>');
      expect(section).to.contain('<dt>Subject</dt><dd>Your &lt;b&gt;receipt&lt;/b&gt;</dd>');
      expect(section).to.contain('<dt>X-Campaign</dt><dd>&lt;autumn&gt;</dd>');
      expect(section).to.contain('&lt;script&gt;alert(&quot;text&quot;)&lt;/script&gt;');
      expect(section).not.to.contain('<script>');
      expect(section).to.match(/<pre class="message-text"[^>]*>Thanks!\n/);
      expect(section).to.contain(
        '<span class="file-name">logo.png</span>: <code>image/png</code>, 70 bytes, <strong>inline</strong> as <code>cid:logo@shop</code>',
      );
      expect(section).to.contain(
        '<span class="file-name">receipt &lt;1&gt;.txt</span>: type not given',
      );
      expect(section).to.contain(
        `<a href="/emails/${id}/raw" download="${id}.eml">Download the raw message (.eml)</a>`,
      );
    });

    it('names the service’s sender and the text made from the html when the request gives neither', async () => {
      const id = await accept(app, {
        to: 'ada@example.com',
        subject: 'Hi',
        html: '<p>Hello <b>you</b></p>',
      });
      const { text } = await visitor.get(`/emails/${id}`);
      expect(text).to.contain('Email Example &lt;noreply@example.com&gt;');
      expect(text).to.contain("(the service's default sender)");
      expect(text).to.contain('Made from the HTML part');
      expect(text).to.match(/<pre class="message-text"[^>]*>Hello you<\/pre>/);
    });

    it('says so when the message is no longer kept', async () => {
      const gone = aRequest();
      await app.change(anEvent.failed(gone));
      const { text } = await visitor.get(`/emails/${gone.id}`);
      expect(text).to.contain('The message itself is no longer kept');
      expect(text).not.to.contain('<iframe');
      expect(text).not.to.contain('Download the raw message');
    });
  });

  describe('when access is guarded (email server)', () => {
    it('serves the html part only to a signed-in operator, as the page', async () => {
      const access = guardedAccess();
      const guarded = await startEmailPageApp({ deps: access.deps });
      try {
        const id = await accept(guarded, rich);
        const stranger = new Visitor(guarded.url);
        const html = await stranger.get(`/emails/${id}/html`);
        expect(html.status).to.equal(303);
        expect(html.headers.get('location')).to.equal(
          `/login?next=${encodeURIComponent(`/emails/${id}/html`)}`,
        );
        const program = await fetch(`${guarded.url}/emails/${id}/html`, {
          headers: { accept: 'application/json' },
        });
        expect(program.status).to.equal(401);
      } finally {
        await guarded.close();
      }
    });
  });
});
