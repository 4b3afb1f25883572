import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { anEvent } from '../../support/builders.js';
import { collectProblems, launchChromium } from '../../support/browser.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

/**
 * What only a browser can show: that the CSP lets our own script and style through, that the
 * form round-trips, and that the status page follows the event stream without a reload.
 */
describe('HTTP pages in a real browser', function () {
  this.timeout(30_000);
  let browser: Browser;
  let h: Harness;
  let page: Page;
  let problems: string[];

  before(async () => {
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    h = await startHttp();
    page = await browser.newPage();
    problems = collectProblems(page);
  });

  afterEach(async () => {
    await page.close();
    await h.close();
  });

  it('sends the form, lands on the status page and follows it live to sent', async () => {
    await page.goto(`${h.url}/`);
    expect(await page.title()).to.equal('Send an email');
    await page.getByLabel('To').fill('Ada <ada@example.com>');
    await page.getByLabel('Subject').fill('Hello <b>there</b>');
    await page.getByLabel('Text').fill('Hi Ada');
    await Promise.all([
      page.waitForURL(/\/emails\/email-00000001$/),
      page.click('button[type=submit]'),
    ]);
    await page.locator('.status-queued').waitFor();
    expect(await page.locator('#email-status').innerText()).to.contain('Hello <b>there</b>');
    expect(h.queue.published).to.have.length(1);

    const [request] = h.queue.published;
    await h.change(
      anEvent.sent(request!, {
        at: '2030-01-02T03:04:06.000Z',
        providerId: '<p1@x>',
        durationMs: 1234,
      }),
    );
    await page.locator('.status-sent').waitFor({ timeout: 5_000 });
    expect(await page.locator('#email-status').innerText()).to.contain('1.23 s');
    // The inline stylesheet applied: the CSP hash matches it.
    const width = await page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth");
    expect(width).to.equal('640px');
    expect(problems).to.deep.equal([]);
  });

  it('shows field errors next to the fields and keeps what was typed', async () => {
    await page.goto(`${h.url}/`);
    await page.getByLabel('To').fill('not an address');
    await page.getByLabel('Subject').fill('<script>alert(1)</script>');
    await page.getByLabel('Text').fill('Body');
    await page.click('button[type=submit]');
    await page.locator('#to-error').waitFor();
    expect(await page.locator('#to-error').innerText()).to.contain('not an address');
    expect(await page.getByLabel('Subject').inputValue()).to.equal('<script>alert(1)</script>');
    expect(await page.getByLabel('To').getAttribute('aria-invalid')).to.equal('true');
    expect(h.queue.published).to.deep.equal([]);
    expect(problems).to.deep.equal([]);
  });
});
