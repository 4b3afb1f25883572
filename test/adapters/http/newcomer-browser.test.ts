import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { expect } from 'chai';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { WebhookDelivery } from '../../../src/application/ports/webhook-deliveries.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { createHttpApp } from '../../../src/adapters/http/app.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import { guardedAccess } from '../../support/access.js';
import { anEvent } from '../../support/builders.js';
import { launchChromium, seriousViolations } from '../../support/browser.js';
import type { Contrast } from '../../support/contrast.js';
import { CONTRASTS, RATIO_OF } from '../../support/contrast.js';
import { eventually } from '../../support/waiting.js';
import type { TestApp } from './harness.js';
import { testApp } from './harness.js';

/** Where a reviewer finds what the pages looked like (`artifacts/` is git-ignored). */
const SHOTS = resolve('artifacts', 'screenshots', 'newcomer');

/** A phone held upright: the width the newcomer found the attempts table at 858 px. */
const PHONE = { width: 390, height: 844 };

/** The app on a real port that can be stopped and started again on that same port. */
interface App extends Omit<TestApp, 'deps'> {
  readonly url: string;
  /** Closes the server and every connection, as a crash or a restart would. */
  stop(): Promise<void>;
  /** Listens again on the same port, with the same stores: what was recorded is still there. */
  restart(): Promise<void>;
}

const listen = (server: Server, port: number): Promise<void> =>
  new Promise((done) => server.listen(port, '127.0.0.1', done));

async function serve(overrides: Partial<HttpDeps> = {}): Promise<App> {
  const { deps, ...parts } = testApp(overrides);
  let server = createServer(createHttpApp(deps).callback());
  await listen(server, 0);
  const { port } = server.address() as AddressInfo;
  let running = true;
  return {
    ...parts,
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((done) => {
        if (!running) return done();
        running = false;
        server.closeAllConnections();
        server.close(() => done());
      }),
    async restart() {
      server = createServer(createHttpApp(deps).callback());
      await listen(server, port);
      running = true;
    },
  };
}

/**
 * What the newcomer found, each fixed and checked as a person would meet it: on a 390 px phone,
 * with a screen reader's live regions, in dark mode, with the keyboard, with the server gone for
 * a while, in another time zone, and with Back after sending.
 */
describe('The pages after a newcomer tried them, in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser;
  let app: App;
  let context: BrowserContext;
  let page: Page;
  /** Console errors, uncaught exceptions and failed loads of anything but the page itself. */
  let problems: string[];

  const shot = async (name: string): Promise<void> => {
    const file = join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`      screenshot: ${relative(process.cwd(), file)}`);
  };

  /** A fresh browser context (Europe/Paris, British English unless told) and its one page. */
  const open = async (options: Parameters<Browser['newContext']>[0] = {}): Promise<void> => {
    await context?.close();
    context = await browser.newContext({ timezoneId: 'Europe/Paris', locale: 'en-GB', ...options });
    page = await context.newPage();
    problems = [];
    page.on('console', (m) => {
      // A refused form answers 400 or 409, which the browser logs for the page itself: expected.
      const own = /status of (400|409)/.test(m.text());
      if (m.type() === 'error' && !own) problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`error: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400 && r.request().resourceType() !== 'document') {
        problems.push(`${r.status()} for ${r.url()}`);
      }
    });
  };

  /** Fills the form and sends it; answers the email's path. */
  const sendForm = async (subject = 'Hello'): Promise<string> => {
    await page.getByLabel('To').fill('Ada <ada@example.com>');
    await page.getByLabel('Subject').fill(subject);
    await page.getByLabel('Text').fill('Hi Ada');
    await Promise.all([
      page.waitForURL((url) => /^\/emails\/[^/]+$/.test(url.pathname)),
      page.getByRole('button', { name: 'Send' }).click(),
    ]);
    return new URL(page.url()).pathname;
  };

  const requestOf = (path: string): EmailRequest => {
    const request = app.queue.published.find((r) => path.endsWith(`/${r.id}`));
    if (request === undefined) throw new Error(`no email published for ${path}`);
    return request;
  };

  const scrollWidth = () => page.evaluate('document.documentElement.scrollWidth');

  const lowContrast = async (): Promise<Contrast[]> => {
    const all = (await page.evaluate(CONTRASTS)) as Contrast[];
    expect(all.length, 'some text was measured').to.be.greaterThan(3);
    return all.filter((c) => c.ratio < 4.5);
  };

  /** Contrast of every text and axe's serious or critical findings, in light and then dark. */
  const checkBothSchemes = async (what: string): Promise<void> => {
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      expect(await lowContrast(), `${what}, ${colorScheme}: text under 4.5:1`).to.deep.equal([]);
      const { violations } = await new AxeBuilder({ page }).analyze();
      const serious = seriousViolations(violations);
      expect(serious, `${what}, ${colorScheme}: axe`).to.deep.equal([]);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  };

  before(async () => {
    browser = await launchChromium();
    // Only this run's pictures: a stale one from an earlier run would mislead a reviewer.
    await rm(SHOTS, { recursive: true, force: true });
    await mkdir(SHOTS, { recursive: true });
    console.log(`      screenshots in ${relative(process.cwd(), SHOTS)}/`);
  });

  after(async () => {
    await browser?.close();
  });

  afterEach(async () => {
    await context?.close();
    await app?.stop();
  });

  describe('every page', () => {
    beforeEach(async () => {
      app = await serve();
      await open();
    });

    it('has a skip link, a header with the navigation, a main landmark and a favicon', async () => {
      const answer = await page.goto(`${app.url}/`);
      expect(answer?.headers()['cache-control'], 'Back reloads a fresh form').to.equal('no-store');
      await page.keyboard.press('Tab');
      const skip = page.getByRole('link', { name: 'Skip to main content' });
      expect(await skip.evaluate((a) => a === a.ownerDocument.activeElement)).to.equal(true);
      expect(await skip.isVisible(), 'the skip link shows when it has the focus').to.equal(true);
      await page.keyboard.press('Enter');
      expect(new URL(page.url()).hash).to.equal('#main');

      await page.getByRole('banner').getByRole('navigation', { name: 'Dashboard' }).waitFor();
      const current = page.getByRole('navigation').locator('[aria-current="page"]');
      expect(await current.innerText()).to.equal('Send');
      expect(await page.getByRole('main').count()).to.equal(1);
      // The form leads to the list of emails, in the navigation and in its own words.
      const toList = page.getByRole('main').getByRole('link', { name: 'the list of emails' });
      expect(await toList.getAttribute('href')).to.equal('/emails');

      expect(await page.locator('link[rel="icon"]').getAttribute('href')).to.equal('/favicon.svg');
      for (const path of ['/favicon.svg', '/favicon.ico']) {
        const icon = await page.request.get(`${app.url}${path}`);
        expect(icon.status(), path).to.equal(200);
        expect(icon.headers()['content-type'], path).to.match(/^image\/svg\+xml/);
      }

      const path = await sendForm();
      const emails = page.getByRole('navigation').locator('[aria-current="page"]');
      expect(await emails.innerText(), 'an email belongs to Emails').to.equal('Emails');
      await page.getByRole('main').waitFor();
      expect(path).to.match(/^\/emails\//);
      expect(problems).to.deep.equal([]);
    });

    it('never scrolls sideways at 390 px: the form, its errors, and an email with many attempts', async () => {
      const long = 'Mailgun 503: <Service Unavailable> ' + 'x'.repeat(120);
      const deliveries = (id: string): readonly WebhookDelivery[] => [
        {
          id: 'msg_0000000000000000000000',
          endpointId: 'ep_1',
          url: `https://hooks.example.org/${'very-long-path-segment/'.repeat(6)}receive`,
          emailId: id as WebhookDelivery['emailId'],
          type: 'email.sent',
          noticeKey: 'sent',
          payload: '{}',
          createdAt: new Date('2030-01-02T03:05:00.000Z'),
          state: 'failed',
          attempts: [1, 2, 3].map((attempt) => ({
            attempt,
            at: new Date(`2030-01-02T03:0${5 + attempt}:00.000Z`),
            durationMs: 10_000,
            error: 'timed out after 10 s',
          })),
        },
      ];
      await app.stop();
      app = await serve({ webhookDeliveries: { forEmail: (id) => TE.right(deliveries(id)) } });
      await page.setViewportSize(PHONE);

      await page.goto(`${app.url}/`);
      expect(await scrollWidth(), 'the form').to.be.at.most(PHONE.width);
      await page.getByLabel('To').fill('not an address, neither-is-this-one-with-a-long-name');
      await page.getByLabel('Subject').fill('S');
      await page.getByLabel('Text').fill('T');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('#to-error').waitFor();
      expect(await scrollWidth(), 'the form with its errors').to.be.at.most(PHONE.width);

      await page.goto(`${app.url}/`);
      const path = await sendForm(`A subject without spaces ${'y'.repeat(80)}`);
      const request = requestOf(path);
      for (let attempt = 1; attempt <= 6; attempt++) {
        await app.change(
          anEvent.retried(request, {
            attempt,
            at: `2030-01-02T03:1${attempt}:00.000Z`,
            reason: long,
            durationMs: 1234,
            nextAttemptAt: `2030-01-02T03:2${attempt}:00.000Z`,
          }),
        );
      }
      await page.reload();
      await page
        .getByRole('cell', { name: /failed for now/ })
        .first()
        .waitFor();
      expect(await page.locator('tbody tr').count()).to.be.greaterThan(6);
      expect(await scrollWidth(), 'the email with six attempts').to.be.at.most(PHONE.width);
      await shot('email-page-390px');
      expect(problems).to.deep.equal([]);
    });

    it('meets 4.5:1 for every text, in light and dark, with a visible focus ring on Send', async () => {
      await page.goto(`${app.url}/`);
      await checkBothSchemes('the form');
      await shot('form-light');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot('form-dark');

      // The newcomer's 2.87:1: the error text, now in dark mode too.
      await page.getByLabel('To').fill('not an address');
      await page.getByLabel('Subject').fill('Hello');
      await page.getByLabel('Text').fill('Hi');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('#to-error').waitFor();
      await checkBothSchemes('the form with errors');

      for (const colorScheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme });
        await page.goto(`${app.url}/`);
        const send = page.getByRole('button', { name: 'Send' });
        // By keyboard, as a person reaches it: Tab until Send has the focus.
        for (let i = 0; i < 20; i++) {
          if (await send.evaluate((b) => b === b.ownerDocument.activeElement)) break;
          await page.keyboard.press('Tab');
        }
        expect(await send.evaluate((b) => b === b.ownerDocument.activeElement)).to.equal(true);
        const ring = (await page.evaluate(
          `(() => { const s = getComputedStyle(document.activeElement); return { style: s.outlineStyle,
            width: parseFloat(s.outlineWidth), offset: parseFloat(s.outlineOffset), color: s.outlineColor,
            page: getComputedStyle(document.body).backgroundColor }; })()`,
        )) as { style: string; width: number; offset: number; color: string; page: string };
        expect(ring.style, colorScheme).to.not.equal('none');
        expect(ring.width, colorScheme).to.be.at.least(2);
        expect(ring.offset, `${colorScheme}: the ring stands apart from the button`).to.be.above(0);
        const ratio = (await page.evaluate(RATIO_OF(ring.color, ring.page))) as number;
        expect(ratio, `${colorScheme}: the ring against the page (SC 1.4.11)`).to.be.at.least(3);
        if (colorScheme === 'dark') await shot('send-focused-dark');
      }
      expect(problems).to.deep.equal([]);
    });

    it('moves the focus to the error summary after a refused submit, each item linking its field', async () => {
      await page.goto(`${app.url}/`);
      await page.getByLabel('To').fill('not an address');
      await page.getByLabel('Subject').fill('Hello');
      await page.getByLabel('Text').fill('Hi');
      await page.getByRole('button', { name: 'Send' }).click();
      const summary = page.locator('#problems');
      await summary.waitFor();
      await eventually(async () =>
        expect(await page.evaluate('document.activeElement && document.activeElement.id')).to.equal(
          'problems',
        ),
      );
      expect(await summary.innerText()).to.contain('not an address');
      await shot('error-summary-focused');
      const link = summary.getByRole('link', { name: /not an address/ });
      expect(await link.getAttribute('href')).to.equal('#to');
      await link.click();
      await eventually(async () =>
        expect(await page.evaluate('document.activeElement && document.activeElement.id')).to.equal(
          'to',
        ),
      );
      expect(problems).to.deep.equal([]);
    });

    it('shows the sign-in page and the email page in 390 px, with 4.5:1 text in light and dark', async () => {
      await page.setViewportSize(PHONE);
      await page.goto(`${app.url}/`);
      const path = await sendForm();
      await app.change(
        anEvent.failed(requestOf(path), {
          at: '2030-01-02T03:05:00.000Z',
          outcome: 'permanent',
          reason: '550 5.1.1 <ada@example.com>: no such user here',
        }),
      );
      await page.reload();
      await page.locator('.status-failed').waitFor();
      expect(await scrollWidth()).to.be.at.most(PHONE.width);
      await checkBothSchemes('the email page');
      expect(problems).to.deep.equal([]);
    });
  });

  describe('the sign-in page', () => {
    it('fits 390 px and meets 4.5:1 in light and dark, with and without its error', async () => {
      const fx = guardedAccess();
      await fx.operator('ada', 'correct horse battery staple');
      app = await serve(fx.deps);
      await open({ viewport: PHONE });
      await page.goto(`${app.url}/login`);
      expect(await scrollWidth()).to.be.at.most(PHONE.width);
      await checkBothSchemes('the sign-in page');
      await page.getByLabel('User name', { exact: true }).fill('ada');
      await page.getByLabel('Password', { exact: true }).fill('not it');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#password-error').waitFor();
      expect(await scrollWidth()).to.be.at.most(PHONE.width);
      await checkBothSchemes('the sign-in page with its error');
      expect(problems.filter((p) => !/status of 401/.test(p))).to.deep.equal([]);
    });
  });

  describe("an email's page, live", () => {
    beforeEach(async () => {
      app = await serve();
      await open();
    });

    it('changes the title, and says the new status in a polite status region', async () => {
      await page.goto(`${app.url}/`);
      const path = await sendForm();
      await page.locator('.status-queued').waitFor();
      expect(await page.title()).to.equal('Email queued');
      // The swapped section is no live region: a region replaced whole is not reliably read out.
      expect(await page.locator('#email-status').getAttribute('aria-live')).to.equal(null);
      const announcer = page.locator('#status-announcer');
      expect(await announcer.getAttribute('role')).to.equal('status');
      expect(await announcer.innerText()).to.equal('');

      await app.change(anEvent.sent(requestOf(path), { at: '2030-01-02T03:04:06.000Z' }));
      await page.locator('.status-sent').waitFor();
      await eventually(async () => expect(await page.title()).to.equal('Email sent'));
      expect(await announcer.textContent()).to.equal('Status: sent');
      await checkBothSchemes('the email page, sent');
      expect(problems).to.deep.equal([]);
    });

    it('says "Sending now (attempt N)…" while a worker sends, and how the last attempt ended', async () => {
      await page.goto(`${app.url}/`);
      const path = await sendForm();
      const request = requestOf(path);
      await page.locator('.status-queued').waitFor();
      await app.change(anEvent.sending(request, { at: '2030-01-02T03:04:06.000Z', attempt: 1 }));
      await page.locator('.status-sending').waitFor();
      const status = page.locator('#email-status');
      expect(await page.locator('.status-sending').innerText()).to.contain(
        'Sending now (attempt 1)…',
      );
      expect(await status.innerText()).not.to.contain('No attempt yet');
      expect(await page.locator('.in-flight').innerText()).to.equal('Sending now (attempt 1)…');

      await app.change(
        anEvent.retried(request, {
          at: '2030-01-02T03:04:07.000Z',
          attempt: 1,
          reason: '421 busy',
        }),
      );
      await app.change(anEvent.sending(request, { at: '2030-01-02T03:05:07.000Z', attempt: 2 }));
      await eventually(async () =>
        expect(await page.locator('.in-flight').innerText()).to.equal('Sending now (attempt 2)…'),
      );
      await app.change(
        anEvent.failed(request, {
          at: '2030-01-02T03:05:08.000Z',
          attempt: 2,
          outcome: 'transient',
          reason: '421 still busy',
        }),
      );
      await page.locator('.status-failed').waitFor();
      const rows = page.locator('#email-status tbody tr');
      expect(await rows.nth(0).innerText()).to.contain('failed for now');
      expect(await rows.nth(1).innerText()).to.contain('failed: out of attempts');
      expect(await page.locator('.status-failed').innerText()).to.contain('out of attempts');
      expect(await page.title()).to.equal('Email failed');

      // Refused outright: said so, not "failed for now".
      await page.goto(`${app.url}/`);
      const refused = requestOf(await sendForm('Refused'));
      await app.change(anEvent.failed(refused, { at: '2030-01-02T03:04:09.000Z' }));
      await page.locator('.status-failed').waitFor();
      expect(await page.locator('#email-status tbody tr').innerText()).to.contain('refused');
      expect(await page.locator('.status-failed').innerText()).to.contain('refused');
      expect(problems).to.deep.equal([]);
    });

    it('says when the server went away, keeps trying, and clears it when the server is back', async () => {
      await page.setViewportSize(PHONE);
      await page.goto(`${app.url}/`);
      const path = await sendForm();
      await page.locator('.status-queued').waitFor();
      const connection = page.locator('#connection');
      expect(await connection.getAttribute('role')).to.equal('status');
      expect(await connection.innerText()).to.equal('');

      await app.stop();
      await eventually(
        async () =>
          expect(await connection.innerText()).to.equal('Lost connection to the server; retrying…'),
        { timeoutMs: 15_000 },
      );
      await checkBothSchemes('the lost-connection notice');
      await shot('lost-connection');

      // Sent while the page could not hear of it: the page catches up once it is back.
      await app.change(anEvent.sent(requestOf(path), { at: '2030-01-02T03:04:06.000Z' }));
      await app.restart();
      await eventually(async () => expect(await connection.innerText()).to.equal(''), {
        timeoutMs: 20_000,
      });
      await page.locator('.status-sent').waitFor({ timeout: 10_000 });
      expect(await page.title()).to.equal('Email sent');
      // The browser's own reports of the cut stream and the refused reconnections are what a
      // dead server looks like; nothing else may have gone wrong.
      const dead = /ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING|EventSource/;
      expect(problems.filter((p) => !dead.test(p))).to.deep.equal([]);
    });

    it("shows times in the reader's time zone, with the UTC time on hover", async () => {
      await open({ timezoneId: 'Asia/Tokyo', locale: 'en-GB' });
      await page.goto(`${app.url}/`);
      const path = await sendForm();
      // Requested at 03:04:05 UTC, the harness's clock: 12:04:05 in Tokyo (UTC+9).
      const requested = page.locator('time[datetime="2030-01-02T03:04:05.000Z"]').first();
      await eventually(async () => expect(await requested.innerText()).to.contain('12:04:05'));
      expect(await requested.innerText()).not.to.contain('UTC');
      expect(await requested.getAttribute('title')).to.equal('2030-01-02 03:04:05 UTC');

      // A section swapped in by the live update is shown in local time too.
      await app.change(anEvent.sent(requestOf(path), { at: '2030-01-02T03:04:06.000Z' }));
      await page.locator('.status-sent').waitFor();
      const sent = page.locator('dd time[datetime="2030-01-02T03:04:06.000Z"]');
      await eventually(async () => expect(await sent.innerText()).to.contain('12:04:06'));
      expect(await sent.getAttribute('title')).to.equal('2030-01-02 03:04:06 UTC');
      expect(problems).to.deep.equal([]);
    });

    it('keeps the UTC text without JavaScript', async () => {
      await open({ javaScriptEnabled: false, timezoneId: 'Asia/Tokyo' });
      await page.goto(`${app.url}/`);
      await sendForm();
      const requested = page.locator('time[datetime="2030-01-02T03:04:05.000Z"]').first();
      expect(await requested.innerText()).to.equal('2030-01-02 03:04:05 UTC');
    });
  });

  describe('Back after sending', () => {
    beforeEach(async () => {
      app = await serve();
      await open();
    });

    it('says the email was sent already and links to it, and sends a second only when asked again', async () => {
      await page.goto(`${app.url}/`);
      const first = await sendForm();
      expect(app.queue.published).to.have.length(1);

      await Promise.all([page.waitForURL(`${app.url}/`), page.goBack()]);
      // The browser fills the fields in again as they were typed: the newcomer's Back.
      expect(await page.getByLabel('Subject').inputValue()).to.equal('Hello');
      await page.getByRole('button', { name: 'Send' }).click();
      const summary = page.locator('#problems');
      await summary.getByRole('heading', { name: 'This email was already sent' }).waitFor();
      expect(await page.evaluate('document.activeElement && document.activeElement.id')).to.equal(
        'problems',
      );
      expect(app.queue.published, 'nothing was sent again').to.have.length(1);
      const link = summary.getByRole('link', { name: /see that email/ });
      expect(await link.getAttribute('href')).to.equal(first);
      await shot('already-sent');

      // Send once more, now knowing: a second email, on purpose.
      const second = await Promise.all([
        page.waitForURL((url) => url.pathname.startsWith('/emails/')),
        page.getByRole('button', { name: 'Send' }).click(),
      ]).then(() => new URL(page.url()).pathname);
      expect(second).to.not.equal(first);
      expect(app.queue.published).to.have.length(2);
      expect(problems).to.deep.equal([]);
    });

    it('answers a rendering sent twice with the email it sent and a notice, not a second email', async () => {
      await page.goto(`${app.url}/`);
      await page.getByLabel('To').fill('Ada <ada@example.com>');
      await page.getByLabel('Subject').fill('Lost answer');
      await page.getByLabel('Text').fill('Hi Ada');
      // The first post went through but its answer never came back (the connection dropped).
      const fields = Object.fromEntries(
        await page.locator('form[action="/"] [name]').evaluateAll((els) =>
          els.map((e) => {
            const field = e as unknown as { name: string; value: string };
            return [field.name, field.value];
          }),
        ),
      ) as Record<string, string>;
      const sid = (await context.cookies(app.url)).find((c) => c.name === 'sid');
      const lost = await fetch(`${app.url}/`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `sid=${sid?.value ?? ''}`,
        },
        body: new URLSearchParams(fields).toString(),
      });
      expect(lost.status).to.equal(303);
      expect(app.queue.published).to.have.length(1);

      // So the person presses Send again, on the same page.
      await Promise.all([
        page.waitForURL(`${app.url}${lost.headers.get('location') ?? ''}`),
        page.getByRole('button', { name: 'Send' }).click(),
      ]);
      expect(await page.locator('.notice').innerText()).to.contain('nothing was sent again');
      expect(app.queue.published, 'still one email').to.have.length(1);
      // Once: the notice is not shown again on the next visit.
      await page.reload();
      expect(await page.locator('.notice').count()).to.equal(0);
      expect(problems).to.deep.equal([]);
    });
  });
});
