// The operator pages of dead letters, suppressions and webhooks over real HTTP, as a browser
// without JavaScript uses them: content negotiation on the API's addresses, confirmation pages,
// CSRF refusals, escaping, notices after each 303, and the guards of `email server`.
import { expect } from 'chai';
import { NodeSecretTokens } from '../../../src/adapters/crypto/node-secret-tokens.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import {
  InMemoryWebhookDeliveries,
  InMemoryWebhookEndpoints,
} from '../../../src/adapters/memory/in-memory-webhook-stores.js';
import { WebhookSubscriptions } from '../../../src/application/webhook-subscriptions.js';
import type { EmailId } from '../../../src/domain/email-request.js';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { fixedClock } from '../../support/fakes.js';
import type { Answer } from './admin-fixtures.js';
import { FakeDeadLetterBox, PageClient, aDeadLetter, hidden } from './admin-fixtures.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

const OUT_OF_ATTEMPTS = 'out of attempts (8 of 8): Mailgun 503: try again later';
const SECRET = /whsec_[A-Za-z0-9+/]{32}/;

/** The three stores behind the pages, wired as `serveWeb` wires the real ones. */
function adminStores() {
  const box = new FakeDeadLetterBox();
  const suppressions = new InMemorySuppressionList();
  const endpoints = new InMemoryWebhookEndpoints();
  const deliveries = new InMemoryWebhookDeliveries();
  const subscriptions = new WebhookSubscriptions(
    endpoints,
    new NodeSecretTokens(),
    fixedClock('2030-01-02T03:04:05.000Z'),
  );
  const deps: Partial<HttpDeps> = {
    deadLetters: box,
    suppressions,
    webhookSubscriptions: subscriptions,
    recentWebhookDeliveries: deliveries,
  };
  return { box, suppressions, endpoints, deliveries, deps };
}

const isPage = (a: Answer): void => {
  expect(a.headers.get('content-type')).to.match(/^text\/html/);
  expect(a.headers.get('cache-control')).to.equal('no-store');
  expect(a.text).to.match(/^<!doctype html>/);
};

/** The notice a 303 led to, as a screen reader hears it (a status region). */
const noticeOf = (html: string): string | undefined =>
  /<p class="notice" role="status">([^<]*)<\/p>/.exec(html)?.[1];

describe('the operator pages over HTTP', () => {
  let h: Harness;
  let s: ReturnType<typeof adminStores>;
  let browser: PageClient;

  afterEach(async () => h?.close());

  /** GET `path` as a browser: it must be a 200 page. */
  const page = async (path: string): Promise<string> => {
    const answer = await browser.get(path);
    expect(answer.status, `GET ${path}: ${answer.text.slice(0, 300)}`).to.equal(200);
    isPage(answer);
    return answer.text;
  };

  /** Follows a 303 and answers the page it leads to. */
  const follow = async (answer: Answer): Promise<string> => {
    expect(answer.status, answer.text.slice(0, 300)).to.equal(303);
    return page(answer.headers.get('location') ?? '');
  };

  /** Opens `path`, then sends its form that posts to `action` with `fields` and its token. */
  const submit = async (
    path: string,
    action: string,
    fields: Record<string, string | readonly string[]> = {},
  ): Promise<Answer> => {
    const html = await page(path);
    const form = new RegExp(`<form method="post" action="${action}"[\\s\\S]*?</form>`).exec(html);
    expect(form, `a form posting to ${action} on ${path}`).not.to.equal(null);
    const inForm = [...(form?.[0] ?? '').matchAll(/type="hidden" name="([^"]+)" value="([^"]*)"/g)];
    const hiddenFields = Object.fromEntries(inForm.map((m) => [m[1], hidden(m[0], m[1] ?? '')]));
    return browser.post(action, { ...hiddenFields, ...fields });
  };

  describe('open (email dev on loopback)', () => {
    beforeEach(async () => {
      s = adminStores();
      h = await startHttp(s.deps);
      browser = new PageClient(h.url);
    });

    it('serves a page to a browser and JSON to every other client, at the same three addresses', async () => {
      for (const [path, title] of [
        ['/dead-letters', 'Dead letters'],
        ['/suppressions', 'Suppression list'],
        ['/webhooks', 'Webhooks'],
      ] as const) {
        const answer = await browser.get(path);
        expect(answer.status).to.equal(200);
        isPage(answer);
        expect(answer.headers.get('vary')).to.match(/\bAccept\b/i);
        expect(answer.text).to.contain(`<title>${title}</title>`);
        expect(answer.text).to.contain(`<h1>${title}</h1>`);
        // The dashboard's navigation marks this page as the current one.
        expect(answer.text).to.match(new RegExp(`<a href="${path}" aria-current="page">`));
        for (const accept of [undefined, '*/*', 'application/json']) {
          const json = await fetch(`${h.url}${path}`, {
            headers: accept === undefined ? {} : { accept },
          });
          expect(json.status, `${path} with Accept ${accept}`).to.equal(200);
          expect(json.headers.get('content-type')).to.match(/^application\/json/);
          expect(await json.json()).to.have.property('data');
        }
      }
    });

    it('dead letters: lists them with their counts by reason, every string escaped', async () => {
      const hostile = aDeadLetter({
        subject: '<script>alert("subject")</script>',
        to: ['"Eve <3" <eve@example.com>'],
        reason: 'permanent: <img src=x onerror=alert(1)> & more',
      });
      s.box.letters = [hostile, aDeadLetter(), aDeadLetter({ reason: OUT_OF_ATTEMPTS })];
      const html = await page('/dead-letters');
      expect(html).not.to.contain('<script>alert');
      expect(html).not.to.contain('<img src=x');
      expect(html).to.contain('&lt;script&gt;alert(&quot;subject&quot;)&lt;/script&gt;');
      expect(html).to.contain('permanent: &lt;img src=x onerror=alert(1)&gt; &amp; more');
      expect(html).to.contain('&quot;Eve &lt;3&quot; &lt;eve@example.com&gt;');
      expect(html).to.match(/<dt>Total<\/dt><dd>3<\/dd>/);
      expect(html).to.match(/<dt>refused by the provider<\/dt><dd>2<\/dd>/);
      expect(html).to.match(/<dt>out of attempts<\/dt><dd>1<\/dd>/);
      // Each id links to its email; each row has its own replay button.
      expect(html).to.contain(`<a href="/emails/${hostile.id}"><code>${hostile.id}</code></a>`);
      expect(html.match(/>Replay<span class="visually-hidden">/g)).to.have.length(3);
      // No live script unless the page follows a replay.
      expect(html).not.to.contain('/static/dead-letters.js');
    });

    it('dead letters: replays one after its confirmation, then says so and follows its email', async () => {
      const [letter, other] = [aDeadLetter(), aDeadLetter()];
      s.box.letters = [letter, other];
      const confirm = await page(`/dead-letters/replay?id=${letter.id}`);
      expect(confirm).to.contain('Put this email back on the queue?');
      expect(confirm).to.contain(letter.subject);
      expect(s.box.replays, 'a confirmation changes nothing').to.deep.equal([]);

      const done = await submit(`/dead-letters/replay?id=${letter.id}`, '/dead-letters/replay');
      expect(done.headers.get('location')).to.equal(`/dead-letters?replayed=1&follow=${letter.id}`);
      expect(s.box.replays).to.deep.equal([{ id: letter.id }]);
      const after = await follow(done);
      expect(noticeOf(after)).to.equal('Replayed 1 dead letter: its email is being tried again.');
      expect(after).to.contain(`data-email="${letter.id}"`);
      expect(after).to.contain('<script src="/static/dead-letters.js" defer></script>');
      expect(after).to.contain(other.id);
      expect(after).not.to.contain(
        `<td data-label="Email" class="id"><a href="/emails/${letter.id}"`,
      );

      const script = await fetch(`${h.url}/static/dead-letters.js`);
      expect(script.headers.get('content-type')).to.match(/^application\/javascript/);
      expect(await script.text()).to.contain('EventSource');

      // A second replay of the same letter: it is gone, and the page says so.
      const token = hidden(await page(`/dead-letters/replay?id=${other.id}`), '_csrf');
      const again = await browser.post('/dead-letters/replay', {
        _csrf: token,
        id: letter.id,
        confirm: 'yes',
      });
      expect(noticeOf(await follow(again))).to.equal(
        `No dead letter has the id ${letter.id} any more: it may have been replayed or purged already.`,
      );
    });

    it('dead letters: a form naming one letter and all of them replays nothing', async () => {
      const letter = aDeadLetter();
      s.box.letters = [letter, aDeadLetter()];
      const token = hidden(await page(`/dead-letters/replay?id=${letter.id}`), '_csrf');
      const both = await browser.post('/dead-letters/replay', {
        _csrf: token,
        id: letter.id,
        all: 'yes',
        confirm: 'yes',
      });
      expect(both.status).to.equal(400);
      expect(both.text).to.contain('named one dead letter and all of them');
      expect(s.box.replays).to.deep.equal([]);
    });

    it('dead letters: a replay of one reason names how many in its confirmation', async () => {
      const refused = [aDeadLetter(), aDeadLetter()];
      const exhausted = aDeadLetter({ reason: OUT_OF_ATTEMPTS });
      s.box.letters = [refused[0]!, exhausted, refused[1]!];
      const list = await page('/dead-letters');
      expect(list).to.contain('<option value="permanent">refused by the provider (2)</option>');
      const confirm = await page('/dead-letters/replay?reason=permanent');
      expect(confirm).to.contain('Put 2 dead letters (refused by the provider) back on the queue?');
      expect(confirm).to.contain('>Replay 2 dead letters</button>');
      const done = await submit('/dead-letters/replay?reason=permanent', '/dead-letters/replay');
      expect(s.box.letters).to.deep.equal([exhausted]);
      expect(noticeOf(await follow(done))).to.equal(
        'Replayed 2 dead letters: their emails are being tried again.',
      );
    });

    it('dead letters: a purge names how many, and happens only once confirmed', async () => {
      s.box.letters = [aDeadLetter(), aDeadLetter(), aDeadLetter()];
      const confirm = await page('/dead-letters/purge');
      expect(confirm).to.contain('Delete 3 dead letters for good?');
      expect(confirm).to.contain('>Purge 3 dead letters</button>');
      // A post without confirm=yes (a hand-made one) goes to the confirmation instead.
      const unconfirmed = await browser.post('/dead-letters/purge', {
        _csrf: hidden(confirm, '_csrf'),
      });
      expect(unconfirmed.status).to.equal(303);
      expect(unconfirmed.headers.get('location')).to.equal('/dead-letters/purge');
      expect(s.box.purges).to.equal(0);
      const done = await submit('/dead-letters/purge', '/dead-letters/purge');
      expect(s.box.purges).to.equal(1);
      const after = await follow(done);
      expect(noticeOf(after)).to.equal('Purged 3 dead letters.');
      expect(after).to.contain('No dead letters');
    });

    it('answers a 503 page, navigation kept, while the dead-letter queue does not answer', async () => {
      s.box.letters = [aDeadLetter()];
      s.box.down = 'not connected to RabbitMQ';
      for (const path of ['/dead-letters', '/dead-letters/purge', '/dead-letters/replay']) {
        const answer = await browser.get(path);
        expect(answer.status, path).to.equal(503);
        isPage(answer);
        expect(answer.headers.get('retry-after')).to.equal('5');
        expect(answer.text).to.contain('The dead letters are not available');
        expect(answer.text).to.contain('did not answer (not connected to RabbitMQ)');
        expect(answer.text).to.contain('<a href="/dead-letters" aria-current="page">');
      }
    });

    it('refuses every form without its CSRF token, or with another browser’s, and changes nothing', async () => {
      s.box.letters = [aDeadLetter()];
      await s.suppressions.add({
        address: 'bob@example.com',
        reason: 'manual',
        createdAt: new Date(),
      })();
      const added = await s.deps.webhookSubscriptions!.add('https://example.com/hooks', [])();
      const endpointId = added._tag === 'Right' ? added.right.endpoint.id : '';
      await page('/dead-letters'); // this browser's session cookie
      const stranger = new PageClient(h.url);
      const foreignToken = hidden(await stranger.get('/suppressions').then((a) => a.text), '_csrf');
      const posts: [string, Record<string, string>][] = [
        ['/dead-letters/replay', { all: 'yes', confirm: 'yes' }],
        ['/dead-letters/purge', { confirm: 'yes' }],
        ['/suppressions/add', { address: 'eve@example.com', reason: 'manual' }],
        ['/suppressions/remove', { address: 'bob@example.com', confirm: 'yes' }],
        ['/webhooks/add', { url: 'https://example.org/', _nonce: 'A'.repeat(22) }],
        ['/webhooks/remove', { id: endpointId, confirm: 'yes' }],
      ];
      for (const [path, fields] of posts) {
        for (const token of [undefined, foreignToken, 'not-a-token']) {
          const answer = await browser.post(path, {
            ...fields,
            ...(token !== undefined ? { _csrf: token } : {}),
          });
          expect(answer.status, `${path} with ${token ?? 'no token'}`).to.equal(403);
          isPage(answer);
          expect(answer.text).to.contain('Nothing was changed.');
        }
      }
      expect(s.box.replays).to.deep.equal([]);
      expect(s.box.purges).to.equal(0);
      const listed = await s.suppressions.list(10)();
      expect(listed._tag === 'Right' && listed.right.entries.map((e) => e.address)).to.deep.equal([
        'bob@example.com',
      ]);
      const endpoints = await s.endpoints.list()();
      expect(endpoints._tag === 'Right' && endpoints.right.map((e) => e.id)).to.deep.equal([
        endpointId,
      ]);
    });

    it('suppressions: adds from the form, refusing with the messages the API gives', async () => {
      const api = await fetch(`${h.url}/suppressions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ address: 'not an address', detail: 'x'.repeat(1001) }),
      });
      const { fields } = ((await api.json()) as { error: { fields: Record<string, string> } })
        .error;
      const refused = await submit('/suppressions', '/suppressions/add', {
        address: 'not an address',
        reason: 'bounce',
        detail: 'x'.repeat(1001),
      });
      expect(refused.status).to.equal(400);
      isPage(refused);
      expect(refused.text).to.contain('<div class="banner" role="alert">');
      for (const [name, label] of [
        ['address', 'Address'],
        ['detail', 'Note'],
      ] as const) {
        expect(refused.text).to.contain(
          `<p class="error" id="suppression-${name}-error">${label} ${fields[name]}.</p>`,
        );
        expect(refused.text).to.match(
          new RegExp(
            `name="${name}"[^>]*aria-invalid="true" aria-describedby="suppression-${name}-error"`,
          ),
        );
      }
      // What was typed stays, the reason chosen too.
      expect(refused.text).to.contain('value="not an address"');
      expect(refused.text).to.contain('<option value="bounce" selected>');

      const done = await submit('/suppressions', '/suppressions/add', {
        address: 'Ada <ada@Bücher.de>',
        reason: 'complaint',
        detail: 'asked by <b>phone</b>',
      });
      expect(done.headers.get('location')).to.equal('/suppressions?added=ada%40xn--bcher-kva.de');
      const after = await follow(done);
      expect(noticeOf(after)).to.equal(
        'Added ada@xn--bcher-kva.de to the suppression list: no email is sent to it any more.',
      );
      expect(after).to.contain('<code>ada@xn--bcher-kva.de</code>');
      expect(after).to.contain('asked by &lt;b&gt;phone&lt;/b&gt;');
      expect(after).not.to.contain('<b>phone');
      const twice = await submit('/suppressions', '/suppressions/add', {
        address: 'ada@bücher.de',
        reason: 'manual',
      });
      expect(noticeOf(await follow(twice))).to.equal(
        'ada@xn--bcher-kva.de was on the suppression list already; its first entry stands.',
      );
    });

    it('suppressions: removes an address after a confirmation', async () => {
      await s.suppressions.add({
        address: 'bob@example.com',
        reason: 'bounce',
        createdAt: new Date(),
      })();
      const list = await page('/suppressions');
      expect(list).to.contain('action="/suppressions/remove"');
      const confirm = await page('/suppressions/remove?address=bob%40example.com');
      expect(confirm).to.contain('Take <code>bob@example.com</code> off the suppression list?');
      const done = await submit(
        '/suppressions/remove?address=bob%40example.com',
        '/suppressions/remove',
      );
      expect(noticeOf(await follow(done))).to.equal(
        'Removed bob@example.com from the suppression list: email may be sent to it again.',
      );
      const again = await submit(
        '/suppressions/remove?address=bob%40example.com',
        '/suppressions/remove',
      );
      expect(noticeOf(await follow(again))).to.equal(
        'bob@example.com was not on the suppression list (it may have been removed already).',
      );
      const bad = await browser.get('/suppressions/remove?address=nobody');
      expect(bad.status).to.equal(400);
      isPage(bad);
    });

    it('suppressions: pages through the list with the cursor, newest first', async () => {
      for (let i = 0; i < 51; i += 1) {
        await s.suppressions.add({
          address: `n${String(i).padStart(2, '0')}@example.com`,
          reason: 'bounce',
          createdAt: new Date(Date.UTC(2030, 0, 1, 0, 0, i)),
        })();
      }
      const first = await page('/suppressions');
      expect(first.match(/<tr>/g)).to.have.length(51); // the header row and 50 entries
      expect(first.indexOf('n50@example.com')).to.be.lessThan(first.indexOf('n49@example.com'));
      expect(first).not.to.contain('n00@example.com');
      const next = /<a href="(\/suppressions\?cursor=[^"]+)" rel="next">Older entries<\/a>/.exec(
        first,
      );
      expect(next).not.to.equal(null);
      const second = await page(next![1]!.replace(/&amp;/g, '&'));
      expect(second).to.contain('n00@example.com');
      expect(second).to.contain('<a href="/suppressions">Newest entries</a>');
      expect(second).not.to.contain('rel="next"');
    });

    it('webhooks: shows a new endpoint’s secret once, and never again', async () => {
      const created = await submit('/webhooks', '/webhooks/add', {
        url: 'https://example.com/hooks?a=1&b=2',
        events: ['sent', 'bounced'],
      });
      expect(created.status).to.equal(201);
      isPage(created);
      const secret = SECRET.exec(created.text)?.[0];
      expect(secret, 'the secret on the answer').to.be.a('string');
      expect(created.text).to.contain('Copy it now.');
      expect(created.text).to.contain('https://example.com/hooks?a=1&amp;b=2');
      expect(created.text).to.contain('<code>email.sent</code>');
      const list = await page('/webhooks');
      expect(list).to.contain('https://example.com/hooks?a=1&amp;b=2');
      expect(list).not.to.contain('whsec_');
      const json = await fetch(`${h.url}/webhooks`);
      expect(await json.text()).not.to.contain('whsec_');

      // A reload of the answer posts the same form again: no second endpoint, no secret.
      const form = await page('/webhooks');
      const fields = {
        _csrf: hidden(form, '_csrf'),
        _nonce: hidden(form, '_nonce'),
        url: 'https://example.com/other',
      };
      expect((await browser.post('/webhooks/add', fields)).status).to.equal(201);
      const repeated = await browser.post('/webhooks/add', fields);
      expect(repeated.status).to.equal(409);
      expect(repeated.text).to.contain('This form was sent already');
      expect(repeated.text).not.to.contain('whsec_');
      const endpoints = await s.endpoints.list()();
      expect(endpoints._tag === 'Right' && endpoints.right.map((e) => e.url)).to.have.members([
        'https://example.com/hooks?a=1&b=2',
        'https://example.com/other',
      ]);
    });

    it('webhooks: refuses a bad endpoint with the API’s words, keeping what was typed', async () => {
      const api = await fetch(`${h.url}/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'ftp://example.com/' }),
      });
      const { message } = ((await api.json()) as { error: { message: string } }).error;
      const refused = await submit('/webhooks', '/webhooks/add', {
        url: 'ftp://example.com/',
        events: ['sent'],
      });
      expect(refused.status).to.equal(400);
      isPage(refused);
      expect(refused.text).to.contain(`<p class="error" id="webhook-url-error">${message}</p>`);
      expect(refused.text).to.contain('value="ftp://example.com/"');
      expect(refused.text).to.match(/id="event-sent" name="events" value="sent" checked>/);
      expect(refused.text).to.match(/id="event-bounced" name="events" value="bounced">/);
      // The corrected form goes through with the same one-time key.
      const fixed = await browser.post('/webhooks/add', {
        _csrf: hidden(refused.text, '_csrf'),
        _nonce: hidden(refused.text, '_nonce'),
        url: 'https://example.com/',
      });
      expect(fixed.status).to.equal(201);
    });

    it('webhooks: removes an endpoint after a confirmation that shows its URL', async () => {
      const added = await s.deps.webhookSubscriptions!.add('https://example.com/bye', ['sent'])();
      const id = added._tag === 'Right' ? added.right.endpoint.id : '';
      const confirm = await page(`/webhooks/remove?id=${id}`);
      expect(confirm).to.contain('https://example.com/bye');
      const done = await submit(`/webhooks/remove?id=${id}`, '/webhooks/remove');
      expect(noticeOf(await follow(done))).to.equal(
        `Removed the endpoint ${id}: nothing more is sent to it.`,
      );
      expect((await browser.get(`/webhooks/remove?id=${id}`)).status).to.equal(404);
    });

    it('webhooks: lists the recent deliveries of every endpoint with their attempts', async () => {
      const delivery = {
        id: 'msg_AAAAAAAAAAAAAAAAAAAAAA',
        endpointId: 'we_AAAAAAAAAAAAAAAA',
        url: 'https://example.com/receiver',
        emailId: 'email-00000042' as EmailId,
        type: 'email.sent' as const,
        noticeKey: 'sent',
        payload: '{}',
        createdAt: new Date('2030-01-02T03:04:05.000Z'),
      };
      await s.deliveries.create([delivery])();
      const at = new Date('2030-01-02T03:04:06.000Z');
      await s.deliveries.recordAttempt(
        delivery.id,
        { attempt: 1, at, durationMs: 120, statusCode: 500 },
        { state: 'pending', nextAttemptAt: new Date('2030-01-02T03:04:11.000Z') },
      )();
      await s.deliveries.recordAttempt(
        delivery.id,
        { attempt: 2, at, durationMs: 80, statusCode: 200 },
        { state: 'delivered' },
      )();
      const html = await page('/webhooks');
      expect(html).to.contain('<h2 id="deliveries-heading">Recent deliveries</h2>');
      expect(html).to.contain('<a href="/emails/email-00000042"><code>email-00000042</code></a>');
      expect(html).to.contain('https://example.com/receiver');
      expect(html).to.match(/<li>HTTP 500 at <time[^>]*>[^<]*<\/time> \(0\.12 s\)<\/li>/);
      expect(html).to.match(/<li>HTTP 200 at /);
      expect(html).to.contain('>delivered</td>');
    });
  });

  describe('guarded (email server)', () => {
    let fx: AccessFixture;

    beforeEach(async () => {
      s = adminStores();
      fx = guardedAccess();
      await fx.operator('ada', 'correct horse battery staple');
      h = await startHttp({ ...s.deps, ...fx.deps });
      browser = new PageClient(h.url);
    });

    it('sends a browser to sign in first, and shows the pages to a signed-in operator', async () => {
      for (const path of ['/dead-letters', '/suppressions', '/webhooks', '/dead-letters/purge']) {
        const answer = await browser.get(path);
        expect(answer.status, path).to.equal(303);
        expect(answer.headers.get('location')).to.equal(`/login?next=${encodeURIComponent(path)}`);
      }
      s.box.letters = [aDeadLetter()];
      await browser.signIn('ada', 'correct horse battery staple');
      for (const path of ['/dead-letters', '/suppressions', '/webhooks', '/dead-letters/purge']) {
        expect(await page(path)).to.contain('Signed in as ada');
      }
    });

    it('keeps JSON for API keys: a session does not open it', async () => {
      await browser.signIn('ada', 'correct horse battery staple');
      for (const path of ['/dead-letters', '/suppressions', '/webhooks']) {
        for (const accept of ['*/*', 'application/json']) {
          const answer = await browser.get(path, { accept });
          expect(answer.status, `${path} ${accept}`).to.equal(401);
          expect(answer.headers.get('content-type')).to.match(/^application\/json/);
        }
      }
      const admin = await fx.key('ops', ['admin']);
      const json = await fetch(`${h.url}/dead-letters`, {
        headers: { authorization: `Bearer ${admin}`, accept: 'text/html' },
      });
      expect(json.headers.get('content-type')).to.match(/^application\/json/);
    });

    it('takes a form only from a signed-in operator', async () => {
      s.box.letters = [aDeadLetter()];
      const stranger = await browser.post('/dead-letters/purge', { confirm: 'yes' });
      expect(stranger.status).to.equal(303);
      expect(stranger.headers.get('location')).to.match(/^\/login\?next=/);
      expect(s.box.purges).to.equal(0);
      await browser.signIn('ada', 'correct horse battery staple');
      const done = await submit('/dead-letters/purge', '/dead-letters/purge');
      expect(noticeOf(await follow(done))).to.equal('Purged 1 dead letter.');
      expect(h.log.text()).to.contain('dead-letters-purged').and.contain('"by":"ada"');
    });
  });
});
