// Who may do what, over real HTTP: the guarded app with the real ApiKeys and Operators over the
// in-memory stores (test/support/access.ts), asked as a program and as a browser would ask.
import { expect } from 'chai';
import { KEY_CACHE_MS } from '../../../src/application/api-keys.js';
import { OWASP_ARGON2ID } from '../../../src/adapters/crypto/argon2-password-hasher.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import type { AccessFixture, AccessOptions } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { fixedClock } from '../../support/fakes.js';
import type { Harness } from './harness.js';
import { published, startHttp } from './harness.js';

const ENVIRONMENT_KEY = 'env-key-0123456789-abcdefghij-SECRET';
const NAME = 'alice';
const PASSWORD = 'correct horse battery staple';
const WRONG_PASSWORD = 'incorrect horse battery staple';
const valid = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' };

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** Every answer of the test, and the secrets none of them may contain (checked after each). */
let answers: Answer[] = [];
let secrets: string[] = [];

async function ask(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  const answer = { status: res.status, headers: res.headers, text: await res.text() };
  answers.push(answer);
  return answer;
}

const errorOf = (a: Answer): { code: string; message: string } =>
  (JSON.parse(a.text) as { error: { code: string; message: string } }).error;

const hidden = (html: string, name: string): string => {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (match?.[1] === undefined) throw new Error(`no ${name} in the page`);
  return match[1];
};

/**
 * A browser, as far as cookies go: it keeps what the server sets (and forgets what it expires),
 * sends it back, and reads hidden fields from the pages.
 */
class Browser {
  readonly jar = new Map<string, string>();
  constructor(
    private readonly h: Harness,
    private readonly headers: Record<string, string> = {},
  ) {}

  get cookie(): string {
    return [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return this.keep(
      await ask(`${this.h.url}${path}`, {
        headers: { accept: 'text/html', ...this.headers, cookie: this.cookie, ...headers },
      }),
    );
  }

  async post(path: string, fields: Record<string, string>): Promise<Answer> {
    return this.keep(
      await ask(`${this.h.url}${path}`, {
        method: 'POST',
        headers: {
          accept: 'text/html',
          'content-type': 'application/x-www-form-urlencoded',
          ...this.headers,
          cookie: this.cookie,
        },
        body: new URLSearchParams(fields).toString(),
      }),
    );
  }

  /** Opens the sign-in page and sends it filled in, as a person would. */
  async signIn(password = PASSWORD, next?: string, name = NAME): Promise<Answer> {
    const page = await this.get(
      next === undefined ? '/login' : `/login?next=${encodeURIComponent(next)}`,
    );
    expect(page.status, 'the sign-in page').to.equal(200);
    return this.post('/login', {
      _csrf: hidden(page.text, '_csrf'),
      next: hidden(page.text, 'next'),
      username: name,
      password,
    });
  }

  private keep(answer: Answer): Answer {
    for (const line of answer.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const expired = attributes.some((a) => /^\s*expires=.*1970/i.test(a));
      if (expired || pair.slice(at + 1) === '') this.jar.delete(name);
      else this.jar.set(name, pair.slice(at + 1));
    }
    return answer;
  }
}

const sessionCookie = (a: Answer): string | undefined =>
  a.headers.getSetCookie().find((c) => c.startsWith('email_session='));

function postEmail(h: Harness, key?: string, headers: Record<string, string> = {}) {
  return ask(`${h.url}/emails`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
      ...headers,
    },
    body: JSON.stringify(valid),
  });
}

const listEmails = (h: Harness, key: string) =>
  ask(`${h.url}/emails`, { headers: { authorization: `Bearer ${key}` } });

describe('Guarded access over HTTP', () => {
  let fx: AccessFixture;
  let h: Harness;
  const servers: Harness[] = [];

  async function start(options: AccessOptions = {}, deps: Partial<HttpDeps> = {}) {
    fx = guardedAccess({ environmentKeys: [ENVIRONMENT_KEY], ...options });
    h = await startHttp({ ...fx.deps, ...deps });
    servers.push(h);
    await fx.operator(NAME, PASSWORD);
    return h;
  }

  async function key(name: string, scopes?: Parameters<AccessFixture['key']>[1]) {
    const created = await fx.key(name, scopes);
    secrets.push(created, created.slice(16));
    return created;
  }

  beforeEach(() => {
    answers = [];
    secrets = [ENVIRONMENT_KEY, PASSWORD, WRONG_PASSWORD];
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    for (const answer of answers) {
      for (const secret of secrets) {
        expect(answer.text, `an answer (${answer.status})`).not.to.include(secret);
      }
    }
    // The secrets are not in the audit log either.
    for (const secret of secrets) expect(fx.log.text(), 'the log').not.to.include(secret);
  });

  describe('the API', () => {
    it('answers a request without a key 401 with WWW-Authenticate: Bearer, and queues nothing', async () => {
      await start();
      const res = await postEmail(h);
      expect(res.status).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="email"');
      expect(errorOf(res).code).to.equal('unauthorized');
      expect(errorOf(res).message).to.match(/Authorization: Bearer/);
      expect(published(h)).to.deep.equal([]);
    });

    it('answers a key sent under another scheme 401 saying so, without an error code', async () => {
      await start();
      const live = await key('ci', ['send']);
      const basic = `Basic ${Buffer.from(`api:${live}`).toString('base64')}`;
      const res = await postEmail(h, undefined, { authorization: basic });
      expect(res.status).to.equal(401);
      // RFC 6750 §3.1: no error code for a request that used another scheme.
      expect(res.headers.get('www-authenticate')).to.equal('Bearer realm="email"');
      expect(errorOf(res).message).to.match(/not Basic or another scheme/);
      // Bearer without a key (a variable left unset in "Bearer $KEY"): a key that is not valid.
      const empty = await postEmail(h, undefined, { authorization: 'Bearer' });
      expect(errorOf(empty).message).to.match(/^The API key is not valid/);
      expect(published(h)).to.deep.equal([]);
    });

    it('answers an unknown or malformed key 401 with error="invalid_token"', async () => {
      await start();
      const live = await key('ci', ['send']);
      for (const wrong of [
        `em_${'A'.repeat(12)}_${'B'.repeat(43)}`,
        `${live.slice(0, 16)}${'C'.repeat(43)}`,
        'not-a-key',
      ]) {
        const res = await postEmail(h, wrong);
        expect(res.status, wrong).to.equal(401);
        expect(res.headers.get('www-authenticate')).to.equal(
          'Bearer realm="email", error="invalid_token"',
        );
        expect(errorOf(res).code).to.equal('unauthorized');
      }
      expect(published(h)).to.deep.equal([]);
    });

    it('answers a revoked key 401 once the look-up cache has run out', async () => {
      const clock = fixedClock();
      await start({ clock });
      const revoked = await key('leaked', ['send']);
      expect((await postEmail(h, revoked)).status).to.equal(202);
      await fx.apiKeys.revoke('leaked')();
      clock.advance(KEY_CACHE_MS);
      const res = await postEmail(h, revoked);
      expect(res.status).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.contain('error="invalid_token"');
      expect(published(h)).to.have.length(1);
    });

    it('answers a key without the scope 403 forbidden, naming the scope', async () => {
      await start();
      const reader = await key('reporter', ['read']);
      const res = await postEmail(h, reader);
      expect(res.status).to.equal(403);
      expect(errorOf(res).code).to.equal('forbidden');
      expect(errorOf(res).message)
        .to.match(/\bsend scope\b/)
        .and.contain('reporter');
      expect(published(h)).to.deep.equal([]);

      const sender = await key('sender', ['send']);
      const list = await listEmails(h, sender);
      expect(list.status).to.equal(403);
      expect(errorOf(list).message).to.match(/\bread scope\b/);
      expect((await listEmails(h, reader)).status).to.equal(200);
    });

    it('accepts a key from API_KEYS, and a valid send key with RateLimit-* headers', async () => {
      await start();
      expect((await postEmail(h, ENVIRONMENT_KEY)).status).to.equal(202);
      expect((await listEmails(h, ENVIRONMENT_KEY)).status).to.equal(200);

      const res = await postEmail(h, await key('ci', ['send']));
      expect(res.status).to.equal(202);
      expect(res.headers.get('ratelimit-limit')).to.equal('1000000');
      expect(res.headers.get('ratelimit-remaining')).to.equal('999999');
      expect(Number(res.headers.get('ratelimit-reset'))).to.be.within(1, 60);
      expect(res.headers.get('retry-after')).to.equal(null);
      expect(published(h)).to.have.length(2);
    });

    it('keeps the RateLimit-* fields on a request counted and then refused as malformed', async () => {
      await start();
      const ci = await key('ci', ['send']);
      const res = await ask(`${h.url}/emails`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ci}` },
        body: '{"to": ',
      });
      expect(res.status).to.equal(400);
      expect(errorOf(res).code).to.equal('malformed_json');
      expect(res.headers.get('ratelimit-limit')).to.equal('1000000');
      expect(res.headers.get('ratelimit-remaining')).to.equal('999999');
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    });

    it('takes the scheme in any case, as RFC 6750 allows', async () => {
      await start();
      const ci = await key('ci', ['send']);
      expect((await postEmail(h, undefined, { authorization: `bearer ${ci}` })).status).to.equal(
        202,
      );
    });
  });

  describe('the rate limit', () => {
    it('answers the 4th request of a key 429 with Retry-After, and another key still goes', async () => {
      await start({ limit: 3 });
      const busy = await key('busy', ['send']);
      const remaining: (string | null)[] = [];
      for (let i = 0; i < 3; i += 1) {
        const res = await postEmail(h, busy);
        expect(res.status).to.equal(202);
        remaining.push(res.headers.get('ratelimit-remaining'));
      }
      expect(remaining).to.deep.equal(['2', '1', '0']);

      const refused = await postEmail(h, busy);
      expect(refused.status).to.equal(429);
      expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
      expect(refused.headers.get('ratelimit-limit')).to.equal('3');
      expect(refused.headers.get('ratelimit-remaining')).to.equal('0');
      expect(errorOf(refused).code).to.equal('rate_limited');
      expect(published(h)).to.have.length(3);

      expect((await postEmail(h, await key('calm', ['send']))).status).to.equal(202);
    });

    it('counts requests without a valid key per client address', async () => {
      await start({ limit: 3 }, { trustProxy: true });
      const from = (address: string) => ({ 'x-forwarded-for': address });
      for (let i = 0; i < 3; i += 1) {
        expect((await postEmail(h, undefined, from('203.0.113.5'))).status).to.equal(401);
      }
      const refused = await postEmail(h, 'not-a-key', from('203.0.113.5'));
      expect(refused.status).to.equal(429);
      expect(refused.headers.get('retry-after')).to.match(/^\d+$/);
      // The same address is also counted where nobody needs a key.
      expect((await ask(`${h.url}/login`, { headers: from('203.0.113.5') })).status).to.equal(429);

      // Another address, and a key from the first one, are counted apart.
      expect((await postEmail(h, undefined, from('203.0.113.6'))).status).to.equal(401);
      const ci = await key('ci', ['send']);
      expect((await postEmail(h, ci, from('203.0.113.5'))).status).to.equal(202);
    });
    it('counts a client behind the proxy by the address the proxy saw, not the one it wrote', async () => {
      await start({ limit: 3 }, { trustProxy: true });
      // What nginx's $proxy_add_x_forwarded_for sends on: the client's header, then its address.
      const via = (claimed: string) => ({ 'x-forwarded-for': `${claimed}, 203.0.113.5` });
      for (let i = 0; i < 3; i += 1) {
        expect((await postEmail(h, undefined, via(`10.0.0.${i}`))).status).to.equal(401);
      }
      expect((await postEmail(h, undefined, via('10.0.0.99'))).status).to.equal(429);
    });
  });

  describe('pages', () => {
    it('sends a signed-out browser from the form to the sign-in page, and back after it', async () => {
      await start();
      const browser = new Browser(h);
      const form = await browser.get('/');
      expect(form.status).to.equal(303);
      expect(form.headers.get('location')).to.equal('/login?next=%2F');
      const post = await browser.post('/', { ...valid, _csrf: 'x', _nonce: 'y' });
      expect(post.status).to.equal(303);
      expect(post.headers.get('location')).to.equal('/login?next=%2F');
      expect(published(h)).to.deep.equal([]);

      const signedIn = await browser.signIn(PASSWORD, '/');
      expect(signedIn.status).to.equal(303);
      expect(signedIn.headers.get('location')).to.equal('/');
      const again = await browser.get('/');
      expect(again.status).to.equal(200);
      expect(again.text).to.contain(`Signed in as ${NAME}`);
    });

    it("takes a signed-out browser from an email's page to sign-in and back; JSON needs a key", async () => {
      await start();
      const accepted = await postEmail(h, ENVIRONMENT_KEY);
      const path = accepted.headers.get('location') ?? '';
      expect(path).to.match(/^\/emails\/email-\d+$/);

      const browser = new Browser(h);
      const page = await browser.get(path);
      expect(page.status).to.equal(303);
      expect(page.headers.get('location')).to.equal(`/login?next=${encodeURIComponent(path)}`);
      // An event stream cannot follow a redirect to a form: it is told to authenticate.
      expect(
        (await browser.get(`${path}/events`, { accept: 'text/event-stream' })).status,
      ).to.equal(401);

      const signedIn = await browser.signIn(PASSWORD, path);
      expect(signedIn.headers.get('location')).to.equal(path);
      const shown = await browser.get(path);
      expect(shown.status).to.equal(200);
      expect(shown.text).to.contain('ada@example.com');

      // JSON is the API's: a session is not enough, a read key is.
      const json = await browser.get(path, { accept: 'application/json' });
      expect(json.status).to.equal(401);
      expect(errorOf(json).code).to.equal('unauthorized');
      const reader = await key('reporter', ['read']);
      const withKey = await ask(`${h.url}${path}`, {
        headers: { accept: 'application/json', authorization: `Bearer ${reader}` },
      });
      expect(withKey.status).to.equal(200);
      expect(JSON.parse(withKey.text)).to.have.property('status', 'queued');
    });
  });

  describe('signing in', () => {
    it('answers a wrong password 401 with the error tied to the password field', async () => {
      await start();
      const browser = new Browser(h);
      const res = await browser.signIn(WRONG_PASSWORD);
      expect(res.status).to.equal(401);
      expect(res.headers.get('content-type')).to.match(/^text\/html/);
      expect(sessionCookie(res)).to.equal(undefined);
      const input = /<input id="password"[^>]*>/.exec(res.text)?.[0] ?? '';
      expect(input).to.contain('aria-invalid="true"');
      const describedBy = /aria-describedby="([^"]+)"/.exec(input)?.[1];
      expect(describedBy).to.be.a('string');
      expect(res.text).to.match(
        new RegExp(
          `<p class="error" id="${describedBy}">The user name or password is not right.</p>`,
        ),
      );
      // The name is kept for the next try; the password never comes back.
      expect(res.text).to.contain(`value="${NAME}"`);
      expect((await browser.get('/')).status).to.equal(303);
    });

    it('sets an HttpOnly, SameSite=Lax session cookie for the whole site, not Secure over http', async () => {
      await start();
      const browser = new Browser(h);
      const res = await browser.signIn();
      expect(res.status).to.equal(303);
      const cookie = sessionCookie(res)?.toLowerCase() ?? '';
      expect(cookie).to.match(/^email_session=[a-z0-9_-]{43};/);
      const attributes = cookie.split(';').map((a) => a.trim());
      expect(attributes).to.include.members(['httponly', 'samesite=lax', 'path=/']);
      expect(attributes).not.to.include('secure');
      // No expiry of its own: the server ends it after 12 hours idle.
      expect(cookie).not.to.match(/expires|max-age/);
    });

    it('marks the cookie Secure behind a trusted proxy that says https, and only then', async () => {
      await start({}, { trustProxy: true });
      const https = new Browser(h, { 'x-forwarded-proto': 'https' });
      expect(sessionCookie(await https.signIn())?.toLowerCase()).to.match(/;\s*secure\b/);
      const plain = new Browser(h);
      expect(sessionCookie(await plain.signIn())?.toLowerCase()).not.to.match(/;\s*secure\b/);

      const untrusted = await start();
      const claims = new Browser(untrusted, { 'x-forwarded-proto': 'https' });
      expect(sessionCookie(await claims.signIn())?.toLowerCase()).not.to.match(/;\s*secure\b/);
    });

    it('never follows next to another site', async () => {
      await start();
      for (const next of [
        '//evil.example',
        '/\\evil.example',
        'https://evil.example/',
        '/\t/evil.example',
      ]) {
        const browser = new Browser(h);
        const page = await browser.get(`/login?next=${encodeURIComponent(next)}`);
        const res = await browser.post('/login', {
          _csrf: hidden(page.text, '_csrf'),
          next,
          username: NAME,
          password: PASSWORD,
        });
        expect(res.status, next).to.equal(303);
        expect(res.headers.get('location'), next).to.match(/^\/(?![/\\])/);
        expect(res.headers.get('location'), next).not.to.contain('evil');
      }
      const signedIn = new Browser(h);
      await signedIn.signIn();
      // Already signed in, /login sends the browser on, and still not away.
      const bookmark = await signedIn.get(`/login?next=${encodeURIComponent('//evil.example')}`);
      expect(bookmark.status).to.equal(303);
      expect(bookmark.headers.get('location')).to.equal('/');
    });

    it('refuses a sign-in without the CSRF token', async () => {
      await start();
      const browser = new Browser(h);
      await browser.get('/login');
      const res = await browser.post('/login', { username: NAME, password: PASSWORD });
      expect(res.status).to.equal(403);
      expect(sessionCookie(res)).to.equal(undefined);
    });

    it('takes no forged, unsigned or re-signed cookie for a session', async () => {
      await start();
      const real = new Browser(h);
      await real.signIn();
      const token = real.jar.get('email_session') ?? '';
      const signature = real.jar.get('email_session.sig') ?? '';
      expect(token).to.have.length(43);
      const other = new Browser(h);
      await other.signIn();

      for (const cookie of [
        `email_session=${'A'.repeat(43)}`,
        `email_session=${token}`,
        `email_session=${'A'.repeat(43)}; email_session.sig=${signature}`,
        `email_session=${token}; email_session.sig=${other.jar.get('email_session.sig') ?? ''}`,
      ]) {
        const res = await ask(`${h.url}/`, { headers: { accept: 'text/html', cookie } });
        expect(res.status, cookie).to.equal(303);
        expect(res.text).not.to.contain('Signed in as');
      }
      expect((await real.get('/')).status).to.equal(200);
    });

    it('answers the sixth failed sign-in in a minute 429 with Retry-After, right password or not', async () => {
      await start();
      const browser = new Browser(h);
      for (let i = 0; i < 5; i += 1) {
        expect((await browser.signIn(WRONG_PASSWORD)).status, `failure ${i + 1}`).to.equal(401);
      }
      for (const password of [WRONG_PASSWORD, PASSWORD]) {
        const res = await browser.signIn(password);
        expect(res.status).to.equal(429);
        expect(Number(res.headers.get('retry-after'))).to.be.within(1, 60);
        expect(res.text).to.contain('Too many failed sign-ins');
        expect(sessionCookie(res)).to.equal(undefined);
      }
    });
    it('checks at most five passwords of a burst of wrong sign-ins sent at once', async () => {
      // Production's cost: each check takes long enough for the burst to arrive meanwhile.
      await start({ argon2Cost: OWASP_ARGON2ID });
      const browser = new Browser(h);
      const page = await browser.get('/login');
      const fields = {
        _csrf: hidden(page.text, '_csrf'),
        next: '/',
        username: NAME,
        password: WRONG_PASSWORD,
      };
      const burst = await Promise.all(
        Array.from({ length: 12 }, () => browser.post('/login', fields)),
      );
      const statuses = burst.map((a) => a.status).sort();
      expect(statuses).to.deep.equal([
        ...Array<number>(5).fill(401),
        ...Array<number>(7).fill(429),
      ]);
    });
  });

  describe('signing out', () => {
    it('refuses a sign-out without the CSRF token, and keeps the browser signed in', async () => {
      await start();
      const browser = new Browser(h);
      await browser.signIn();
      const res = await browser.post('/logout', {});
      expect(res.status).to.equal(403);
      expect(res.text).to.contain('still signed in');
      const form = await browser.get('/');
      expect(form.status).to.equal(200);
      expect(form.text).to.contain(`Signed in as ${NAME}`);
    });

    it('ends the session with the CSRF token: the old cookie no longer signs anyone in', async () => {
      await start();
      const browser = new Browser(h);
      await browser.signIn();
      const kept = browser.cookie;
      const form = await browser.get('/');
      const logoutForm = /<form method="post" action="\/logout">[\s\S]*?<\/form>/.exec(form.text);
      const res = await browser.post('/logout', { _csrf: hidden(logoutForm?.[0] ?? '', '_csrf') });
      expect(res.status).to.equal(303);
      expect(res.headers.get('location')).to.equal('/login');
      expect(browser.jar.has('email_session')).to.equal(false);

      const replayed = await ask(`${h.url}/`, { headers: { accept: 'text/html', cookie: kept } });
      expect(replayed.status).to.equal(303);
      expect(replayed.headers.get('location')).to.equal('/login?next=%2F');
    });
  });

  it('lets everything through in the open mode (no access policy)', async () => {
    fx = guardedAccess();
    const open = await startHttp();
    servers.push(open);
    expect((await postEmail(open)).status).to.equal(202);
    expect((await ask(`${open.url}/`)).status).to.equal(200);
    expect((await ask(`${open.url}/login`)).status).to.equal(404);
  });
});
