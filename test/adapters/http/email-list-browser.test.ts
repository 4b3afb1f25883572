import { mkdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import { anEvent } from '../../support/builders.js';
import { launchChromium, seriousViolations } from '../../support/browser.js';
import { eventually } from '../../support/waiting.js';
import type { Harness } from './harness.js';
import { postJson, startHttp } from './harness.js';

/** Where a reviewer finds what the list looked like (`artifacts/` is git-ignored). */
const SHOTS = resolve('artifacts', 'screenshots', 'list');

/** A phone held upright: the narrowest screen the pages promise to fit (WCAG 1.4.10). */
const PHONE = { width: 390, height: 844 };

/**
 * What only a browser shows about the list of emails: that its filters find each email through
 * the form, that a new email and a change of status appear without a reload, that nothing
 * scrolls sideways on a phone, and that axe finds nothing serious in light or dark mode.
 */
describe('The list of emails in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser;
  let h: Harness;
  let context: BrowserContext;
  let page: Page;
  /** Console errors, uncaught exceptions and failed loads of anything but a page itself. */
  let problems: string[];

  const shot = async (name: string): Promise<void> => {
    const file = join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`      screenshot: ${relative(process.cwd(), file)}`);
  };

  const open = async (options: Parameters<Browser['newContext']>[0] = {}): Promise<void> => {
    await context?.close();
    context = await browser.newContext({ timezoneId: 'UTC', locale: 'en-GB', ...options });
    page = await context.newPage();
    problems = [];
    page.on('console', (m) => {
      // A refused filter answers 400, which the browser logs for the page itself: expected.
      if (m.type() === 'error' && !/status of 400/.test(m.text())) {
        problems.push(`console: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => problems.push(`error: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400 && r.request().resourceType() !== 'document') {
        problems.push(`${r.status()} for ${r.url()}`);
      }
    });
  };

  /** Sends an email through the JSON API, as a program would; answers the request queued. */
  const send = async (email: object): Promise<EmailRequest> => {
    const res = await postJson(h, { text: 'Hello', ...email });
    expect(res.status).to.equal(202);
    const { id } = (await res.json()) as { id: string };
    const request = h.queue.published.find((r) => r.id === id);
    if (request === undefined) throw new Error(`${id} was not queued`);
    return request;
  };

  const rowCount = () => page.locator('#email-results tbody tr').count();
  const subjects = () =>
    page.locator('#email-results tbody td[data-label="Subject"]').allInnerTexts();
  const scrollWidth = () => page.evaluate('document.documentElement.scrollWidth');

  /** Fills the filter form from scratch (every field), sends it, and waits for the new page. */
  const filter = async (values: {
    status?: string;
    to?: string;
    tag?: string;
    since?: string;
    until?: string;
  }): Promise<void> => {
    await page.getByLabel('Status', { exact: true }).selectOption(values.status ?? '');
    await page.getByLabel('Recipient', { exact: true }).fill(values.to ?? '');
    await page.getByLabel('Tag', { exact: true }).fill(values.tag ?? '');
    await page.getByLabel('Since (UTC)', { exact: true }).fill(values.since ?? '');
    await page.getByLabel('Until (UTC)', { exact: true }).fill(values.until ?? '');
    await Promise.all([
      page.waitForEvent('framenavigated'),
      page.getByRole('button', { name: 'Show emails' }).click(),
    ]);
    await page.locator('h1').waitFor();
  };

  /** axe's serious and critical findings, in light and then in dark mode. */
  const checkBothSchemes = async (what: string): Promise<void> => {
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
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

  beforeEach(async () => {
    h = await startHttp();
  });

  afterEach(async () => {
    await context?.close();
    await h.close();
  });

  it('finds each of three emails through the filters', async () => {
    const tagged = await send({
      to: ['ada@example.com'],
      subject: 'Your receipt <#42>',
      tags: ['receipt'],
    });
    const distinct = await send({ to: ['Zed Quill <zed@quill.example.org>'], subject: 'For Zed' });
    const plain = await send({ to: ['ada@example.com'], subject: 'Plain news' });
    await h.change(anEvent.sending(plain, { at: '2030-01-02T03:04:06.000Z' }));
    await h.change(anEvent.sent(plain, { at: '2030-01-02T03:04:07.000Z', transport: 'outbox' }));

    await open();
    await page.goto(`${h.url}/emails`);
    expect(await page.title()).to.equal('Emails');
    // The harness clock stands still: equal times fall back to the id, the newest first.
    expect(await subjects()).to.deep.equal(['Plain news', 'For Zed', 'Your receipt <#42>']);
    await checkBothSchemes('the list');
    await shot('list-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('list-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    await filter({ tag: 'receipt' });
    expect(new URL(page.url()).searchParams.get('tag')).to.equal('receipt');
    expect(await subjects()).to.deep.equal(['Your receipt <#42>']);
    await filter({ to: 'QUILL' });
    expect(await subjects()).to.deep.equal(['For Zed']);
    expect(await page.getByLabel('Recipient', { exact: true }).inputValue()).to.equal('QUILL');
    await filter({ status: 'sent' });
    expect(await subjects()).to.deep.equal(['Plain news']);
    const sentRow = page.locator(`tr[data-id="${plain.id}"]`);
    expect(await sentRow.locator('td[data-label="Transport"]').innerText()).to.equal('outbox');
    expect(await sentRow.locator('td[data-label="Attempts"]').innerText()).to.equal('1');
    // Every email was accepted at 03:04:05 UTC: a range around it finds all three, one that
    // ends at 03:04 none (until is exclusive).
    await filter({ since: '2030-01-02T03:04', until: '2030-01-02T03:05' });
    expect(await rowCount()).to.equal(3);
    await filter({ since: '2030-01-02T03:00', until: '2030-01-02T03:04' });
    expect(await rowCount()).to.equal(0);
    expect(await page.locator('#email-results').innerText()).to.contain(
      'No email matches these filters.',
    );

    // The counts are links: "sent" keeps the other filters and picks that status.
    await filter({ to: 'ada@' });
    expect(await rowCount()).to.equal(2);
    await Promise.all([
      page.waitForURL((url) => url.searchParams.get('status') === 'sent'),
      page.locator('#email-counts a', { hasText: 'sent' }).first().click(),
    ]);
    expect(new URL(page.url()).searchParams.get('to')).to.equal('ada@');
    expect(await subjects()).to.deep.equal(['Plain news']);
    expect(await page.locator('#email-counts a[aria-current="true"]').innerText()).to.match(
      /^sent\s+1$/,
    );

    // The row's subject leads to the email's own page.
    await Promise.all([
      page.waitForURL(`${h.url}/emails/${plain.id}`),
      page.getByRole('link', { name: 'Plain news' }).click(),
    ]);
    expect(distinct.id).not.to.equal(tagged.id);
    expect(problems).to.deep.equal([]);
  });

  it('shows a bad filter next to its field, and fits a phone in light and dark', async () => {
    await send({ to: ['ada@example.com'], subject: 'A subject long enough to wrap on a phone' });
    await open({ viewport: PHONE });
    await page.goto(`${h.url}/emails?since=2030-02-30&tag=not%20a%20tag`);
    expect(await page.locator('#since-error').innerText()).to.contain('day that does not exist');
    expect(await page.getByLabel('Tag', { exact: true }).getAttribute('aria-invalid')).to.equal(
      'true',
    );
    expect(await scrollWidth(), 'the form with its errors').to.be.at.most(PHONE.width);
    await checkBothSchemes('the form with its errors');
    await shot('errors-phone');

    for (let i = 0; i < 4; i += 1) {
      await send({
        to: [`someone.with.a.long.name.${i}@a-rather-long-domain.example.org`, 'bob@example.com'],
        subject: `Number ${i}: ${'word '.repeat(12)}`,
        tags: ['bulk'],
      });
    }
    await page.goto(`${h.url}/emails`);
    expect(await rowCount()).to.equal(5);
    expect(await scrollWidth(), 'the list').to.be.at.most(PHONE.width);
    await checkBothSchemes('the list on a phone');
    await shot('list-phone-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('list-phone-dark');
    expect(problems).to.deep.equal([]);
  });

  it('shows a new email and a change of status without a reload', async () => {
    const first = await send({ to: ['ada@example.com'], subject: 'Already there' });
    await open();
    await page.goto(`${h.url}/emails`);
    expect(await rowCount()).to.equal(1);
    // Lost at a reload: its survival shows that the page was never loaded again.
    await page.evaluate('window.stillTheSamePage = true');
    await eventually(() => h.bus.subscribers >= 1, { what: 'the page follows the changes' });
    // The script says the page is live; without it, the page does not claim to be.
    await page.locator('.list-live-note').waitFor({ state: 'visible' });

    const second = await send({ to: ['bob@example.com'], subject: 'Arrived live' });
    await page.locator(`tr[data-id="${second.id}"]`).waitFor({ timeout: 10_000 });
    expect(await subjects()).to.deep.equal(['Arrived live', 'Already there']);
    expect(await page.locator('#email-counts a', { hasText: 'queued' }).innerText()).to.match(
      /queued\s+2/,
    );
    await eventually(
      async () => (await page.locator('#email-list-announce').textContent()) === '1 email changed',
      { what: 'the announcement' },
    );

    await h.change(anEvent.sending(first, { at: '2030-01-02T03:04:06.000Z' }));
    await h.change(anEvent.sent(first, { at: '2030-01-02T03:04:07.000Z', transport: 'smtp' }));
    const firstRow = page.locator(`tr[data-id="${first.id}"]`);
    await firstRow.locator('.badge', { hasText: 'sent' }).waitFor({ timeout: 10_000 });
    expect(await firstRow.locator('td[data-label="Transport"]').innerText()).to.equal('smtp');
    expect(await page.evaluate('window.stillTheSamePage')).to.equal(true);
    await shot('live-update');
    expect(problems).to.deep.equal([]);
  });
});
