// An email's page in a real browser: the message as it went out (the html part in its sandboxed
// frame, the text part, the raw message to download), and the actions, each with its
// confirmation step, with a worker sending behind the app. Screenshots in
// artifacts/screenshots/email/.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { expect } from 'chai';
import { simpleParser } from 'mailparser';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { collectProblems, launchChromium, seriousViolations } from '../../support/browser.js';
import type { EmailPageApp } from './email-page-app.js';
import { refusingSender, startEmailPageApp } from './email-page-app.js';

const SHOTS = join(process.cwd(), 'artifacts', 'screenshots', 'email');

/** A 1×1 PNG, the email's inline logo. */
const LOGO = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

describe('An email’s page in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let app: EmailPageApp;
  let problems: string[];
  /** A site the email's remote image points at; it must never be asked. */
  let tracker: Server;
  let trackerHits: string[];
  let trackerUrl: string;

  const shot = async (name: string): Promise<void> => {
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`      screenshot: ${relative(process.cwd(), path)}`);
  };

  /**
   * axe's serious and critical findings, in light and then in dark mode. The html part's frame
   * is left out: its document is the email's author's, not ours, and with scripts off in it axe
   * cannot run there (it waits for it forever). Its title is checked over HTTP.
   */
  const axeBothSchemes = async (what: string): Promise<void> => {
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      const { violations } = await new AxeBuilder({ page })
        .exclude('iframe.message-frame')
        .options({ iframes: false })
        .analyze();
      const serious = seriousViolations(violations);
      expect(serious, `${what}, ${colorScheme}: axe`).to.deep.equal([]);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  };

  /** Posts `body` to the JSON API, as a program would; answers the new email's page path. */
  const send = async (body: object): Promise<string> => {
    const res = await fetch(`${app.url}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.clone().text()).to.equal(202);
    return res.headers.get('location') ?? expect.fail('no Location');
  };

  before(async () => {
    browser = await launchChromium();
    await rm(SHOTS, { recursive: true, force: true });
    await mkdir(SHOTS, { recursive: true });
    trackerHits = [];
    tracker = createServer((req, res) => {
      trackerHits.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'image/gif' }).end();
    });
    await new Promise<void>((resolve) => tracker.listen(0, '127.0.0.1', resolve));
    trackerUrl = `http://127.0.0.1:${(tracker.address() as AddressInfo).port}`;
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => tracker.close(() => resolve()));
  });

  beforeEach(async () => {
    app = await startEmailPageApp({ sender: refusingSender() });
    context = await browser.newContext({ acceptDownloads: true });
    page = await context.newPage();
    problems = collectProblems(page);
  });

  afterEach(async () => {
    await context?.close();
    await app?.close();
  });

  it('shows the html part in its frame, the text part and the files, and downloads the raw message', async () => {
    const path = await send({
      from: 'Shop <shop@example.com>',
      to: ['Ada Lovelace <ada@example.com>'],
      subject: 'Your receipt <#1234>',
      text: 'Thanks for your order, Ada.\nA very long line follows: ' + 'abcdefghij'.repeat(30),
      html: `<!doctype html><html lang="en"><head><title>Receipt</title></head><body style="font-family:sans-serif;color:#1b1b1f;background:#ffffff">
<h1>Thanks for your order</h1>
<p>Total: <strong>12.00</strong></p>
<p><img id="logo" alt="Shop logo" width="40" height="40" src="cid:logo@shop"></p>
<p><img id="pixel" alt="" width="1" height="1" src="${trackerUrl}/pixel.gif"></p>
<script>parent.document.title = 'owned'; document.body.append('script ran');</script>
</body></html>`,
      attachments: [
        {
          filename: 'logo.png',
          content: LOGO.toString('base64'),
          content_type: 'image/png',
          content_id: 'logo@shop',
        },
        {
          filename: 'receipt.csv',
          content: Buffer.from('item,total\nbook,12.00\n').toString('base64'),
          content_type: 'text/csv',
        },
      ],
    });
    await page.goto(`${app.url}${path}`);
    await page.locator('.status-sent').waitFor({ timeout: 10_000 });

    const frame = page.frameLocator('iframe.message-frame');
    await frame.getByRole('heading', { name: 'Thanks for your order' }).waitFor();
    // The inline image came from the attachment; the script never ran, the tracker never heard.
    expect(await frame.locator('#logo').getAttribute('src')).to.match(/^data:image\/png;base64,/);
    const logoLoaded = await frame
      .locator('#logo')
      .evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth);
    expect(logoLoaded).to.equal(1);
    expect(await frame.locator('body').innerText()).not.to.contain('script ran');
    expect(await page.title()).not.to.equal('owned');
    expect(trackerHits).to.deep.equal([]);

    const text = page.locator('pre.message-text');
    expect(await text.innerText()).to.contain('Thanks for your order, Ada.');
    expect(await page.locator('.message-files').innerText()).to.contain('receipt.csv');
    expect(await page.locator('.message-headers').innerText()).to.contain('Your receipt <#1234>');
    await shot('message-light');

    // The raw message: what SMTP and the outbox send, as a download that mail programs read.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the raw message (.eml)' }).click(),
    ]);
    expect(download.suggestedFilename()).to.match(/^email-\d+\.eml$/);
    const mail = await simpleParser(await readFile(await download.path()));
    expect(mail.subject).to.equal('Your receipt <#1234>');
    expect(mail.text).to.contain('Thanks for your order, Ada.');
    expect(mail.html || '').to.contain('Thanks for your order');
    expect(mail.attachments.map((a) => [a.filename, a.contentType])).to.deep.equal([
      ['logo.png', 'image/png'],
      ['receipt.csv', 'text/csv'],
    ]);
    expect(mail.attachments[0]?.content.equals(LOGO)).to.equal(true);

    await axeBothSchemes('the email’s page');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('message-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // At 390 px wide nothing scrolls sideways: the long text line wraps.
    await page.setViewportSize({ width: 390, height: 844 });
    const widths = (await page.evaluate(
      '[document.documentElement.scrollWidth, document.documentElement.clientWidth]',
    )) as [number, number];
    expect(widths[0]).to.be.at.most(widths[1]);
    await shot('message-390');
    expect(trackerHits).to.deep.equal([]);
    // The browser's own reports of what it blocked in the frame are the point, not problems.
    const blocked = /Content Security Policy|frame is sandboxed/;
    expect(problems.filter((p) => !blocked.test(p))).to.deep.equal([]);
  });

  it('cancels a scheduled email after asking, without JavaScript', async () => {
    await context.close();
    context = await browser.newContext({ javaScriptEnabled: false });
    page = await context.newPage();
    const path = await send({
      to: 'ada@example.com',
      subject: 'Tomorrow’s reminder',
      text: 'See you tomorrow.',
      send_at: new Date(Date.now() + 86_400_000).toISOString(),
    });
    await page.goto(`${app.url}${path}`);
    await page.getByRole('link', { name: 'Cancel this email…' }).click();
    await page.getByRole('heading', { name: 'Cancel this email?' }).waitFor();
    await shot('cancel-confirm');
    await Promise.all([
      page.waitForURL(/\?done=cancelled$/),
      page.getByRole('button', { name: 'Yes, cancel the email' }).click(),
    ]);
    expect(await page.locator('#action-done').innerText()).to.equal(
      'Cancelled: this email will never be sent.',
    );
    expect(await page.locator('.status').innerText()).to.contain('Cancelled');
    await shot('cancel-done');
  });

  it('resends a failed email as a new one, and links the two', async () => {
    const path = await send({ to: 'refuse@example.com', subject: 'Refused', text: 'No one here.' });
    await page.goto(`${app.url}${path}`);
    await page.locator('.status-failed').waitFor({ timeout: 10_000 });
    await page.getByRole('link', { name: 'Resend…' }).click();
    await page.getByRole('heading', { name: 'Resend this email?' }).waitFor();
    await axeBothSchemes('the resend confirmation');
    await shot('resend-confirm');
    await Promise.all([
      page.waitForURL(/\?done=resent$/),
      page.getByRole('button', { name: 'Yes, resend it' }).click(),
    ]);
    const fresh = new URL(page.url()).pathname;
    expect(fresh).not.to.equal(path);
    const oldId = path.split('/').pop() ?? '';
    const link = page.getByRole('link', { name: oldId });
    expect(await link.getAttribute('href')).to.equal(path);
    expect(await page.locator('#action-done').innerText()).to.contain('Resent');
    // The focus is on the notice, so that a screen reader reads it first.
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).to.equal(
      'action-done',
    );
    await page.locator('.status-failed').waitFor({ timeout: 10_000 });
    await axeBothSchemes('the new email’s page');
    await shot('resend-new');

    await link.click();
    await page.waitForURL((url) => url.pathname === path);
    const freshId = fresh.split('/').pop() ?? '';
    expect(await page.locator('.email-relation').innerText()).to.equal(`Resent as ${freshId}.`);
    await shot('resend-old');
    expect(problems).to.deep.equal([]);
  });
});
