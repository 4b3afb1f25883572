import { mkdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { NodeSecretTokens } from '../../../src/adapters/crypto/node-secret-tokens.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import {
  InMemoryWebhookDeliveries,
  InMemoryWebhookEndpoints,
} from '../../../src/adapters/memory/in-memory-webhook-stores.js';
import { WebhookSubscriptions } from '../../../src/application/webhook-subscriptions.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { aRequest, anEvent } from '../../support/builders.js';
import { collectProblems, launchChromium, seriousViolations } from '../../support/browser.js';
import { fixedClock } from '../../support/fakes.js';
import { FakeDeadLetterBox, aDeadLetter } from './admin-fixtures.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

/** Where a reviewer finds what the pages looked like (`artifacts/` is git-ignored). */
const SHOTS = resolve('artifacts', 'screenshots', 'admin');

const NAME = 'ada';
const PASSWORD = 'correct horse battery staple';
const PHONE = { width: 390, height: 844 };

/**
 * What only a browser shows about the operator pages: that a person can do each thing with the
 * buttons and forms alone (confirmation pages, no JavaScript needed), that a replayed email is
 * followed live until it is sent, that nothing scrolls sideways on a phone, and that axe finds
 * nothing serious or critical in light or dark mode.
 */
describe('The operator pages (dead letters, suppressions, webhooks) in a real browser', function () {
  this.timeout(120_000);
  let browser: Browser;
  let fx: AccessFixture;
  let h: Harness;
  let box: FakeDeadLetterBox;
  let deliveries: InMemoryWebhookDeliveries;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  const shot = async (name: string): Promise<void> => {
    const file = join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`      screenshot: ${relative(process.cwd(), file)}`);
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

  const sideways = async (): Promise<number> =>
    Number(
      await page.evaluate(
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      ),
    );

  /** Clicks what navigates, and waits for the next page to be there. */
  const navigate = async (click: () => Promise<void>): Promise<void> => {
    await Promise.all([page.waitForEvent('framenavigated'), click()]);
    await page.locator('h1').waitFor();
  };

  const signIn = async (path: string): Promise<void> => {
    await page.goto(`${h.url}${path}`);
    await page.getByLabel('User name', { exact: true }).fill(NAME);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await navigate(() => page.getByRole('button', { name: 'Sign in' }).click());
    expect(new URL(page.url()).pathname).to.equal(path);
  };

  /** An email the worker gave up on: in the log as failed, and its dead letter in the box. */
  const failedEmail = async (subject: string): Promise<EmailRequest> => {
    const request = aRequest({ to: 'Ada Lovelace <ada@example.com>', subject });
    await h.change(anEvent.requested(request, { at: '2030-01-02T03:04:05.000Z' }));
    await h.change(
      anEvent.failed(request, {
        at: '2030-01-02T03:04:06.000Z',
        reason: 'Mailgun 400: the domain is not verified',
      }),
    );
    box.letters.push(
      aDeadLetter({
        id: request.id,
        to: ['Ada Lovelace <ada@example.com>'],
        subject,
        reason: 'permanent: Mailgun 400: the domain is not verified',
        failedAt: '2030-01-02T03:04:06.000Z',
      }),
    );
    return request;
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
    fx = guardedAccess();
    await fx.operator(NAME, PASSWORD);
    box = new FakeDeadLetterBox();
    deliveries = new InMemoryWebhookDeliveries();
    h = await startHttp({
      ...fx.deps,
      deadLetters: box,
      suppressions: new InMemorySuppressionList(),
      webhookSubscriptions: new WebhookSubscriptions(
        new InMemoryWebhookEndpoints(),
        new NodeSecretTokens(),
        fixedClock('2030-01-02T03:04:05.000Z'),
      ),
      recentWebhookDeliveries: deliveries,
    });
    context = await browser.newContext();
    page = await context.newPage();
    problems = collectProblems(page);
  });

  afterEach(async () => {
    await context.close();
    await h.close();
  });

  it('replays a dead letter after its confirmation, and follows the email to sent without a reload', async () => {
    const request = await failedEmail('Welcome aboard');
    await failedEmail('Your receipt');
    await signIn('/dead-letters');
    await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
    await page.getByText('Signed in as ada').waitFor();
    expect(await page.locator('table tbody tr').count()).to.equal(2);
    await shot('01-dead-letters');
    await checkBothSchemes('the dead letters');

    await navigate(() =>
      page.getByRole('button', { name: `Replay ${request.id}`, exact: true }).click(),
    );
    await page.getByRole('heading', { name: 'Replay a dead letter' }).waitFor();
    await shot('02-dead-letter-replay-confirmation');
    await checkBothSchemes('the replay confirmation');
    expect(box.replays, 'nothing replayed before the confirmation').to.deep.equal([]);

    await navigate(() => page.getByRole('button', { name: 'Replay this email' }).click());
    expect(await page.getByRole('status').innerText()).to.equal(
      'Replayed 1 dead letter: its email is being tried again.',
    );
    expect(box.replays).to.deep.equal([{ id: request.id }]);
    const followed = page.locator(`[data-email="${request.id}"]`);
    await followed.filter({ hasText: 'waiting for the worker' }).waitFor();
    // A mark on this document: it is gone if the page reloads instead of updating itself.
    await page.evaluate('window.notReloaded = true');
    // The worker takes it again, and the provider accepts it this time.
    await h.change(anEvent.sending(request, { at: '2030-01-02T03:05:00.000Z' }));
    await h.change(anEvent.sent(request, { at: '2030-01-02T03:05:01.000Z' }));
    await page.locator(`.follow-status.status-sent[data-email="${request.id}"]`).waitFor({
      timeout: 10_000,
    });
    expect(await followed.innerText()).to.equal('sent');
    expect(await page.evaluate('window.notReloaded')).to.equal(true);
    await shot('03-dead-letter-replayed-and-sent');
    await checkBothSchemes('the dead letters after a replay');

    await navigate(() => page.getByRole('button', { name: 'Purge all…' }).click());
    expect(await page.locator('.question').innerText()).to.contain(
      'Delete 1 dead letter for good?',
    );
    await shot('04-dead-letters-purge-confirmation');
    await checkBothSchemes('the purge confirmation');
    await navigate(() => page.getByRole('button', { name: 'Purge 1 dead letter' }).click());
    expect(await page.getByRole('status').innerText()).to.equal('Purged 1 dead letter.');
    expect(problems).to.deep.equal([]);
  });

  it('adds an address to the suppression list and removes it again', async () => {
    await signIn('/suppressions');
    const address = page.getByLabel('Address', { exact: true });
    // A refusal first: the API's words, on the field, which keeps what was typed.
    await address.fill('not an address');
    await navigate(() => page.getByRole('button', { name: 'Add to the list' }).click());
    expect(await address.getAttribute('aria-invalid')).to.equal('true');
    expect(await address.inputValue()).to.equal('not an address');
    const describedBy = await address.getAttribute('aria-describedby');
    expect(await page.locator(`#${describedBy}`).innerText()).to.match(/^Address /);
    await page.getByRole('alert').waitFor();
    await shot('05-suppressions-refused');
    await checkBothSchemes('the suppression form with an error');

    await address.fill('Bob <bob@example.com>');
    await page.getByLabel('Reason', { exact: true }).selectOption('complaint');
    await page.getByLabel('Note (optional)').fill('Asked by phone on Monday');
    await navigate(() => page.getByRole('button', { name: 'Add to the list' }).click());
    expect(await page.getByRole('status').innerText()).to.equal(
      'Added bob@example.com to the suppression list: no email is sent to it any more.',
    );
    await page.getByRole('cell', { name: 'Asked by phone on Monday' }).waitFor();
    await shot('06-suppressions-added');
    await checkBothSchemes('the suppression list');

    await navigate(() =>
      page.getByRole('button', { name: 'Remove bob@example.com', exact: true }).click(),
    );
    await page.getByText('off the suppression list?').waitFor();
    await shot('07-suppressions-remove-confirmation');
    await checkBothSchemes('the removal confirmation');
    await navigate(() => page.getByRole('button', { name: 'Remove from the list' }).click());
    expect(await page.getByRole('status').innerText()).to.equal(
      'Removed bob@example.com from the suppression list: email may be sent to it again.',
    );
    expect(await page.getByText('No address is on the list.').count()).to.equal(1);
    expect(problems).to.deep.equal([]);
  });

  it('adds a webhook endpoint, shows its secret once, and removes it', async () => {
    await signIn('/webhooks');
    await page.getByLabel('URL', { exact: true }).fill('https://example.com/hooks/email');
    await page.getByLabel('email.sent').check();
    await page.getByLabel('email.bounced').check();
    await navigate(() => page.getByRole('button', { name: 'Add endpoint' }).click());
    await page.getByRole('heading', { name: 'Webhook endpoint added' }).waitFor();
    const secret = await page.getByLabel('Signing secret', { exact: true }).inputValue();
    expect(secret).to.match(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(await page.getByText('Copy it now.').count()).to.equal(1);
    await shot('08-webhook-secret-once');
    await checkBothSchemes('the new endpoint and its secret');

    await navigate(() => page.getByRole('link', { name: 'Done: back to the webhooks' }).click());
    expect(await page.content()).not.to.contain(secret);
    await page.getByRole('cell', { name: 'https://example.com/hooks/email' }).waitFor();
    await shot('09-webhooks-endpoint-listed');
    await checkBothSchemes('the webhooks');

    await navigate(() => page.getByRole('button', { name: /^Remove we_/ }).click());
    await page.getByRole('heading', { name: 'Remove a webhook endpoint' }).waitFor();
    await checkBothSchemes('the endpoint removal confirmation');
    await navigate(() => page.getByRole('button', { name: 'Remove this endpoint' }).click());
    expect(await page.getByRole('status').innerText()).to.match(/^Removed the endpoint we_/);
    expect(await page.getByText('No endpoint yet').count()).to.equal(1);
    expect(problems).to.deep.equal([]);
  });

  it('scrolls no page sideways at 390 px, full of long words, in light and dark mode', async () => {
    await context.close();
    context = await browser.newContext({ viewport: PHONE });
    page = await context.newPage();
    problems = collectProblems(page);
    const request = await failedEmail(
      'A subject long enough to wrap on a phone screen, and then some',
    );
    box.letters.push(
      aDeadLetter({
        reason: `out of attempts (8 of 8): ${'Mailgun answered 503 Service Unavailable '.repeat(3)}`,
        to: ['a-very-long-local-part-that-never-ends@a-very-long-domain-name.example.com'],
      }),
    );
    await deliveries.create([
      {
        id: 'msg_AAAAAAAAAAAAAAAAAAAAAA',
        endpointId: 'we_AAAAAAAAAAAAAAAA',
        url: `https://receiver.example.com/${'path-segment/'.repeat(8)}webhooks`,
        emailId: request.id,
        type: 'email.failed',
        noticeKey: 'failed',
        payload: '{}',
        createdAt: new Date('2030-01-02T03:04:07.000Z'),
      },
    ])();
    await deliveries.recordAttempt(
      'msg_AAAAAAAAAAAAAAAAAAAAAA',
      {
        attempt: 1,
        at: new Date('2030-01-02T03:04:08.000Z'),
        durationMs: 10_000,
        error: 'timed out after 10 s',
      },
      { state: 'pending', nextAttemptAt: new Date('2030-01-02T03:04:13.000Z') },
    )();
    await signIn('/dead-letters');

    await page.goto(`${h.url}/suppressions`);
    await page
      .getByLabel('Address', { exact: true })
      .fill('someone-with-a-really-long-address@subdomain.of.a.long.example.org');
    await page.getByLabel('Note (optional)').fill('x'.repeat(120));
    await navigate(() => page.getByRole('button', { name: 'Add to the list' }).click());
    await page.goto(`${h.url}/webhooks`);
    await page.getByLabel('URL', { exact: true }).fill(`https://example.com/${'long/'.repeat(30)}`);
    await navigate(() => page.getByRole('button', { name: 'Add endpoint' }).click());
    await shot('10-phone-webhook-secret');
    expect(await sideways(), 'the secret page').to.be.at.most(0);

    for (const [path, name] of [
      ['/dead-letters', '11-phone-dead-letters'],
      [`/dead-letters/replay?id=${request.id}`, '12-phone-replay-confirmation'],
      ['/suppressions', '13-phone-suppressions'],
      ['/webhooks', '14-phone-webhooks'],
    ] as const) {
      await page.goto(`${h.url}${path}`);
      await page.locator('h1').waitFor();
      expect(await sideways(), `${path} scrolls sideways at 390 px`).to.be.at.most(0);
      await shot(name);
      await page.emulateMedia({ colorScheme: 'dark' });
      expect(await sideways(), `${path} in dark mode`).to.be.at.most(0);
      await shot(`${name}-dark`);
      await checkBothSchemes(`${path} at 390 px`);
    }
    expect(problems).to.deep.equal([]);
  });
});
