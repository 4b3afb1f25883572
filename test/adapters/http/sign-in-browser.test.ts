import { mkdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { OPERATOR_COOKIE } from '../../../src/adapters/http/access.js';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { anEvent } from '../../support/builders.js';
import { collectProblems, launchChromium } from '../../support/browser.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

/** Where a reviewer finds what the pages looked like (`artifacts/` is git-ignored). */
const SHOTS = resolve('artifacts', 'screenshots', 'sign-in');

const NAME = 'ada';
const PASSWORD = 'correct horse battery staple';

/** The page is at `path` with exactly `search` (`''` for none): a predicate for waitForURL. */
const at =
  (path: string, search = '') =>
  (url: URL): boolean =>
    url.pathname === path && url.search === search;

/**
 * What only a browser shows about signing in: the redirect to the sign-in page and back, the
 * error tied to its field for assistive technology, the cookie's flags as the browser stored
 * them, the live status page for a signed-in operator, and that signing out really ends it.
 */
describe('Signing in to the pages in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser;
  let fx: AccessFixture;
  let h: Harness;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  const shot = async (name: string): Promise<void> => {
    const file = join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`      screenshot: ${relative(process.cwd(), file)}`);
  };

  /** Signs in through the form, from wherever the browser was sent to sign in. */
  const signIn = async (password = PASSWORD): Promise<void> => {
    await page.getByLabel('User name', { exact: true }).fill(NAME);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };

  /** Fills and sends the form; answers the status page's path. */
  const sendForm = async (): Promise<string> => {
    await page.getByLabel('To').fill('Bob <bob@example.com>');
    await page.getByLabel('Subject').fill('Signed and sent');
    await page.getByLabel('Text').fill('Hi Bob');
    await Promise.all([
      page.waitForURL((url) => /^\/emails\/[^/]+$/.test(url.pathname)),
      page.getByRole('button', { name: 'Send' }).click(),
    ]);
    return new URL(page.url()).pathname;
  };

  const sessionCookies = async () =>
    (await context.cookies(h.url)).filter((c) => c.name.startsWith(OPERATOR_COOKIE));

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

  beforeEach(async () => {
    fx = guardedAccess();
    await fx.operator(NAME, PASSWORD);
    h = await startHttp(fx.deps);
    context = await browser.newContext();
    page = await context.newPage();
    problems = collectProblems(page);
  });

  afterEach(async () => {
    await context.close();
    await h.close();
  });

  it('sends a signed-out visitor to sign in, says what was wrong, then goes back', async () => {
    await page.goto(`${h.url}/`);
    expect(page.url()).to.equal(`${h.url}/login?next=%2F`);
    expect(await page.title()).to.equal('Sign in');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot('01-login-page');

    await Promise.all([page.waitForURL(at('/login')), signIn('not the password at all')]);
    const password = page.getByLabel('Password', { exact: true });
    const describedBy = await password.getAttribute('aria-describedby');
    expect(describedBy, 'the password field names its error').to.be.a('string').and.not.empty;
    // The error sits in the password's own field, visible, and says what went wrong.
    const error = page.locator('.field', { has: password }).locator(`#${describedBy}`);
    await error.waitFor();
    expect(await error.innerText()).to.equal('The user name or password is not right.');
    expect(await password.getAttribute('aria-invalid')).to.equal('true');
    expect(await page.getByRole('alert').innerText()).to.contain('not right');
    expect(await page.getByLabel('User name', { exact: true }).inputValue()).to.equal(NAME);
    expect(await password.inputValue(), 'a refused password is not sent back').to.equal('');
    expect(await page.title()).to.equal('Sign in');
    await shot('02-login-error');

    // The name is kept: only the password needs typing again.
    await password.fill(PASSWORD);
    await Promise.all([
      page.waitForURL(at('/')),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    expect(await page.title()).to.equal('Send an email');
    await page.getByText(`Signed in as ${NAME}`).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await shot('03-form-signed-in');
    expect(problems).to.deep.equal([]);
  });

  it('lets a signed-in operator send the form and follow the email live to sent', async () => {
    await page.goto(`${h.url}/`);
    await Promise.all([page.waitForURL(at('/')), signIn()]);
    const statusPath = await sendForm();
    await page.locator('.status-queued').waitFor();
    await page.getByText(`Signed in as ${NAME}`).waitFor();
    expect(h.queue.published.map((r) => `/emails/${r.id}`)).to.deep.equal([statusPath]);

    // A mark on this document: it is gone if the page reloads instead of updating itself.
    await page.evaluate('window.notReloaded = true');
    const [request] = h.queue.published;
    await h.change(anEvent.sent(request!, { at: '2030-01-02T03:04:06.000Z', durationMs: 1500 }));
    await page.locator('.status-sent').waitFor({ timeout: 10_000 });
    expect(await page.locator('#email-status').innerText()).to.contain('Sent: the provider');
    expect(await page.evaluate('window.notReloaded === true'), 'updated without a reload').to.equal(
      true,
    );
    expect(page.url()).to.equal(`${h.url}${statusPath}`);
    await shot('04-status-page');
    expect(problems).to.deep.equal([]);
  });

  it('keeps the session in an HttpOnly, SameSite=Lax cookie for the whole site', async () => {
    await page.goto(`${h.url}/`);
    await Promise.all([page.waitForURL(at('/')), signIn()]);
    const cookie = (await sessionCookies()).find((c) => c.name === OPERATOR_COOKIE);
    expect(cookie, `a ${OPERATOR_COOKIE} cookie`).to.not.equal(undefined);
    expect({
      httpOnly: cookie!.httpOnly,
      sameSite: cookie!.sameSite,
      secure: cookie!.secure,
      path: cookie!.path,
      // No expiry of its own: the browser forgets it when it closes.
      expires: cookie!.expires,
    }).to.deep.equal({ httpOnly: true, sameSite: 'Lax', secure: false, path: '/', expires: -1 });
    // Scripts on the page cannot read it.
    expect(await page.evaluate('document.cookie')).to.not.contain(OPERATOR_COOKIE);
    expect(problems).to.deep.equal([]);
  });

  it('signs out from the status page, and the old cookie opens nothing afterwards', async () => {
    await page.goto(`${h.url}/`);
    await Promise.all([page.waitForURL(at('/')), signIn()]);
    const statusPath = await sendForm();
    await page.getByText(`Signed in as ${NAME}`).waitFor();
    const old = await sessionCookies();
    expect(old.map((c) => c.name)).to.include(OPERATOR_COOKIE);

    await Promise.all([
      page.waitForURL(at('/login')),
      page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    expect(await page.title()).to.equal('Sign in');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await page.getByText('Signed in as').count()).to.equal(0);
    expect(await sessionCookies(), 'the browser dropped the session cookie').to.deep.equal([]);
    await shot('05-signed-out');

    await page.goto(`${h.url}/`);
    expect(page.url()).to.equal(`${h.url}/login?next=%2F`);

    // The server ended the session: the very same cookie, put back by hand, is refused too.
    await context.addCookies(old);
    expect((await sessionCookies()).map((c) => c.value)).to.deep.equal(old.map((c) => c.value));
    await page.goto(`${h.url}/`);
    expect(page.url()).to.equal(`${h.url}/login?next=%2F`);
    await page.goto(`${h.url}${statusPath}`);
    expect(page.url()).to.equal(`${h.url}/login?next=${encodeURIComponent(statusPath)}`);
    expect(await page.title()).to.equal('Sign in');
    expect(problems).to.deep.equal([]);
  });

  it('signs in with the keyboard alone', async () => {
    await page.goto(`${h.url}/login`);
    const focused = () => page.evaluate('document.activeElement && document.activeElement.id');

    await page.keyboard.press('Tab');
    expect(await focused(), 'the first Tab reaches the user name').to.equal('username');
    await page.keyboard.type(NAME);
    await page.keyboard.press('Tab');
    expect(await focused(), 'the next Tab reaches the password').to.equal('password');
    await page.keyboard.type(PASSWORD);
    await Promise.all([page.waitForURL(at('/')), page.keyboard.press('Enter')]);

    expect(await page.title()).to.equal('Send an email');
    await page.getByText(`Signed in as ${NAME}`).waitFor();
    expect(problems).to.deep.equal([]);
  });
});
