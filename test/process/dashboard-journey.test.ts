// The operator's journey through the dashboard (issue 13, "An operator's view", its "Done when"),
// in Debian's chromium against real processes and the Mailgun stand-in as the provider, twice:
// `email dev` on loopback (open, no sign-in) and `email server` + `email worker` on RabbitMQ and
// PostgreSQL (an operator made with `email users add`, signing in through /login). The story:
// send by keyboard, send three emails from a program, find each through the list's filters, read
// the html one and download its raw message, replay the refused one from /dead-letters and watch
// it turn sent without a reload, and every page at 390 px, in light and dark, with axe.
// Screenshots in artifacts/screenshots/journey/<setup>/, listed at the end of each setup.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { expect } from 'chai';
import { simpleParser } from 'mailparser';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { collectProblems, launchChromium, seriousViolations } from '../support/browser.js';
import { AA_TEXT, textContrasts } from '../support/contrast.js';
import { requirePostgres } from '../support/postgres.js';
import { CLI, EmailProcess, startListening } from '../support/process.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { Roles } from '../support/roles.js';
import {
  AUTHORIZED,
  MAILGUN_KEY,
  MAIL_FROM,
  startMailgunRoles,
  stopMailgunRoles,
} from '../support/roles.js';
import type { WebhookReceiver } from '../support/webhook-receiver.js';
import { startWebhookReceiver } from '../support/webhook-receiver.js';
import { eventually } from '../support/waiting.js';

/** A phone held upright: the narrowest screen the pages promise to fit (WCAG 2.2 SC 1.4.10). */
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
/** More presses of Tab than any page needs to reach anything: a page that needs more fails. */
const MAX_TABS = 80;

const OPERATOR = { name: 'ada', password: 'correct horse battery staple' };
/** What the stand-in answers while the provider refuses: Mailgun's 400, a permanent failure. */
const REFUSED = 'Mailgun refuses this sender domain until it is verified';

const TAG = 'journey-receipt';
const CSV = Buffer.from('item,total\nbook,12.00\n');
const RECEIPT = {
  to: 'Ada Lovelace <ada@example.com>',
  subject: 'Journey receipt <#1>',
  text: 'Thanks for your order, Ada. Total: 12.00',
  html: '<!doctype html><html lang="en"><head><title>Receipt</title></head><body><h1>Thanks for your order</h1><p>Total: <strong>12.00</strong></p></body></html>',
  attachments: [
    { filename: 'receipt.csv', content_type: 'text/csv', content: CSV.toString('base64') },
  ],
  tags: [TAG],
};
const DISTINCT = {
  to: 'Zed Quill <zed@quill.example.org>',
  subject: 'For Zed',
  text: 'Hello Zed, this one is yours alone.',
};
const REFUSED_EMAIL = {
  to: 'Bea <bea@example.net>',
  subject: 'Refused by the provider',
  text: 'The provider refuses this one, until it recovers.',
};
const KEYBOARD = {
  to: 'Ada Lovelace <ada@example.com>',
  subject: 'Sent with the keyboard',
  text: 'Typed, tabbed and sent without a mouse.',
};

/** One of the two ways the service runs, as the journey needs it. */
interface Setup {
  /** The folder of its screenshots: `dev` or `server-worker`. */
  readonly name: string;
  /** Where the pages and the API are. */
  readonly url: string;
  readonly mailgun: MailgunStandIn;
  /** What a program sends the JSON API to be let in: nothing on open dev, the key otherwise. */
  readonly api: Readonly<Record<string, string>>;
  /** The person who signs in through /login; absent where the pages are open. */
  readonly operator?: { readonly name: string; readonly password: string };
}

/** The ids of the emails the journey made, step by step. */
interface Made {
  keyboard?: string;
  receipt?: string;
  distinct?: string;
  refused?: string;
}

describe('The operator’s journey through the dashboard, in a real browser on real processes', function () {
  this.timeout(120_000);
  let browser: Browser;

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  describe('A. `email dev` on loopback: open, no sign-in', () => {
    let mailgun: MailgunStandIn | undefined;
    let receiver: WebhookReceiver | undefined;
    let dev: EmailProcess | undefined;

    journey(
      async () => {
        mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: MAILGUN_KEY });
        receiver = await startWebhookReceiver();
        const started = await startListening(['dev'], {
          DATA_DIR: 'memory',
          MAIL_TRANSPORT: 'mailgun',
          MAIL_FROM,
          MAILGUN_API_BASE: mailgun.baseUrl,
          MAILGUN_API_KEY: MAILGUN_KEY,
        });
        dev = started.proc;
        return { setup: { name: 'dev', url: started.url, mailgun, api: {} }, receiver };
      },
      async () => {
        await dev?.stop();
        await receiver?.close();
        await mailgun?.close();
      },
    );
  });

  describe('B. `email server` + `email worker` on RabbitMQ and PostgreSQL, signed in', () => {
    let roles: Roles | undefined;
    let mailgun: MailgunStandIn | undefined;
    let receiver: WebhookReceiver | undefined;

    journey(
      async () => {
        await Promise.all([requirePostgres(), requireRabbitMq()]);
        ({ roles, mailgun } = await startMailgunRoles());
        receiver = await startWebhookReceiver();
        await roles.database();
        const added = await withInput(roles, ['users', 'add', OPERATOR.name], OPERATOR.password);
        expect(added.code, `email users add: ${added.stderr}`).to.equal(0);
        const [server] = await Promise.all([
          roles.startReady('server'),
          roles.startReady('worker'),
        ]);
        return {
          setup: {
            name: 'server-worker',
            url: server.url,
            mailgun,
            api: AUTHORIZED,
            operator: OPERATOR,
          },
          receiver,
        };
      },
      async () => {
        await receiver?.close();
        await stopMailgunRoles(roles, mailgun);
      },
    );
  });

  /**
   * The story's steps as tests, in order, on the setup `start` makes (and `stop` ends, whatever
   * happened). Each step builds on the one before: a failure early makes the later ones fail too.
   */
  function journey(
    start: () => Promise<{ setup: Setup; receiver: WebhookReceiver }>,
    stop: () => Promise<void>,
  ): void {
    let setup: Setup;
    let context: BrowserContext;
    let page: Page;
    let problems: string[];
    let shots: string;
    const taken: string[] = [];
    /** Where the webhook endpoint of the setup posts. */
    let endpointUrl: string;
    const made: Made = {};

    /** Saves the whole page as the next numbered screenshot, `NN-name.png`. */
    const shot = async (name: string, on: Page = page): Promise<void> => {
      const file = join(shots, `${String(taken.length + 1).padStart(2, '0')}-${name}.png`);
      await on.screenshot({ path: file, fullPage: true });
      taken.push(relative(process.cwd(), file));
    };

    /** A JSON API request, as a program sends it. */
    const api = (path: string, body?: unknown): Promise<Response> =>
      fetch(`${setup.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...setup.api,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });

    const sendEmail = async (email: object): Promise<string> => {
      const answer = await api('/emails', email);
      expect(answer.status, await answer.clone().text()).to.equal(202);
      return ((await answer.json()) as { id: string }).id;
    };

    const statusOf = async (id: string): Promise<string | undefined> => {
      const answer = await api(`/emails/${id}`);
      return answer.status === 200
        ? ((await answer.json()) as { status: string }).status
        : undefined;
    };

    const waitForStatus = (id: string, status: string): Promise<true> =>
      eventually(async () => (await statusOf(id)) === status, {
        timeoutMs: 20_000,
        what: `GET /emails/${id} to say ${status}`,
      });

    const isFocused = (target: Locator): Promise<boolean> =>
      target.evaluate((el) => el === el.ownerDocument.activeElement);

    /** Presses Tab until `target` has the focus, as a keyboard user gets there. */
    const tabTo = async (target: Locator, what: string): Promise<void> => {
      await target.waitFor();
      for (let presses = 0; presses <= MAX_TABS; presses++) {
        if (await isFocused(target)) return;
        await page.keyboard.press('Tab');
      }
      const active = await page.evaluate(
        '(() => { const a = document.activeElement; return a ? a.outerHTML.slice(0, 120) : "nothing"; })()',
      );
      throw new Error(
        `${what} never had the focus in ${MAX_TABS} presses of Tab: ${String(active)}`,
      );
    };

    /** Presses Enter on what has the focus, and waits until the browser is at `path`. */
    const enterTo = async (path: string | RegExp): Promise<void> => {
      await Promise.all([
        page.waitForURL((url) =>
          typeof path === 'string' ? url.pathname === path : path.test(url.pathname),
        ),
        page.keyboard.press('Enter'),
      ]);
    };

    /** Clicks what navigates, and waits for the next page to be there. */
    const navigate = async (click: () => Promise<void>): Promise<void> => {
      await Promise.all([page.waitForEvent('framenavigated'), click()]);
      await page.locator('h1').waitFor();
    };

    /**
     * Every visible text at 4.5:1 or more, and no serious or critical axe finding, in light and
     * then in dark mode, with a screenshot of each. The email's html part is left out of axe: its
     * document is the email's author's, not ours, and with scripts off in its sandbox axe cannot
     * run there (it would wait for it forever); the contrast walker reads the top document only.
     */
    const checkSchemes = async (name: string, on: Page = page): Promise<void> => {
      for (const colorScheme of ['light', 'dark'] as const) {
        await on.emulateMedia({ colorScheme });
        const texts = await textContrasts(on);
        expect(texts.length, `${name}: some text was measured`).to.be.greaterThan(3);
        expect(
          texts.filter((t) => t.ratio < AA_TEXT),
          `${name}, ${colorScheme}: text under ${AA_TEXT}:1`,
        ).to.deep.equal([]);
        const { violations } = await new AxeBuilder({ page: on })
          .exclude('iframe.message-frame')
          .options({ iframes: false })
          .analyze();
        const serious = seriousViolations(violations);
        expect(serious, `${name}, ${colorScheme}: axe`).to.deep.equal([]);
        await shot(`${name}-${colorScheme}`, on);
      }
      await on.emulateMedia({ colorScheme: 'light' });
    };

    /** The page at `path` is no wider than a 390 px phone, with a screenshot of it there. */
    const checkPhone = async (name: string, path: string, on: Page = page): Promise<void> => {
      await on.setViewportSize(PHONE);
      await on.goto(`${setup.url}${path}`);
      await on.locator('h1').waitFor();
      const width = Number(await on.evaluate('document.documentElement.scrollWidth'));
      expect(width, `${path} at ${PHONE.width} px: its scrollWidth`).to.be.at.most(PHONE.width);
      await shot(`${name}-390`, on);
      await on.setViewportSize(DESKTOP);
    };

    const subjects = (): Promise<string[]> =>
      page.locator('#email-results tbody td[data-label="Subject"]').allInnerTexts();

    /** Fills the list's filter form from scratch, sends it, and waits for the filtered list. */
    const filter = async (values: { status?: string; to?: string; tag?: string }) => {
      await page.getByLabel('Status', { exact: true }).selectOption(values.status ?? '');
      await page.getByLabel('Recipient', { exact: true }).fill(values.to ?? '');
      await page.getByLabel('Tag', { exact: true }).fill(values.tag ?? '');
      await Promise.all([
        page.waitForURL((url) =>
          Object.entries(values).every(([k, v]) => url.searchParams.get(k) === v),
        ),
        page.getByRole('button', { name: 'Show emails' }).click(),
      ]);
      await page.locator('#email-results').waitFor();
    };

    /** When this setup began to start, for the time it took (printed, never asserted). */
    let began: number;

    before(async () => {
      began = Date.now();
      let receiver: WebhookReceiver;
      ({ setup, receiver } = await start());
      shots = resolve('artifacts', 'screenshots', 'journey', setup.name);
      // Only this run's pictures: a stale one from an earlier run would mislead a reviewer.
      await rm(shots, { recursive: true, force: true });
      await mkdir(shots, { recursive: true });
      // What an operator's service has besides emails, so that its pages show something: an
      // endpoint every status change is posted to, and an address nobody may be sent to.
      endpointUrl = `${receiver.url}/email-events`;
      const endpoint = await api('/webhooks', { url: endpointUrl });
      expect(endpoint.status, await endpoint.clone().text()).to.equal(201);
      const suppressed = await api('/suppressions', {
        address: 'gone@example.net',
        reason: 'complaint',
        detail: 'Asked to hear no more',
      });
      expect(suppressed.status, await suppressed.clone().text()).to.equal(201);
      context = await browser.newContext({
        acceptDownloads: true,
        viewport: DESKTOP,
        timezoneId: 'UTC',
        locale: 'en-GB',
      });
      page = await context.newPage();
      problems = collectProblems(page);
    });

    after(async () => {
      await context?.close();
      await stop();
      if (taken.length > 0) {
        const seconds = ((Date.now() - began) / 1000).toFixed(1);
        console.log(`      ${setup.name}: ${seconds} s from start to clean-up; screenshots:`);
        for (const file of taken) console.log(`        ${file}`);
      }
    });

    it('1. sends an email from the form with the keyboard alone, and opens it again from the list by keyboard', async () => {
      await page.goto(`${setup.url}/`);
      if (setup.operator !== undefined) {
        // Sent to sign in first, and back to the form after.
        await page.waitForURL((url) => url.pathname === '/login');
        await tabTo(page.getByLabel('User name', { exact: true }), 'User name');
        await page.keyboard.type(setup.operator.name);
        await tabTo(page.getByLabel('Password', { exact: true }), 'Password');
        await page.keyboard.type(setup.operator.password);
        await tabTo(page.getByRole('button', { name: 'Sign in' }), 'Sign in');
        await shot('sign-in-keyboard');
        await enterTo('/');
        await page.getByText(`Signed in as ${setup.operator.name}`).waitFor();
      }
      await tabTo(page.getByLabel('To', { exact: true }), 'To');
      await page.keyboard.type(KEYBOARD.to);
      await tabTo(page.getByLabel('Subject', { exact: true }), 'Subject');
      await page.keyboard.type(KEYBOARD.subject);
      await tabTo(page.getByLabel('Text', { exact: true }), 'Text');
      await page.keyboard.type(KEYBOARD.text);
      await tabTo(page.getByRole('button', { name: 'Send', exact: true }), 'Send');
      await shot('form-keyboard');
      await enterTo(/^\/emails\/[^/]+$/);
      const id = new URL(page.url()).pathname.split('/').pop() ?? '';
      made.keyboard = id;
      // The page follows the email live: queued, then sent once the stand-in took it.
      await page.locator('.status-sent').waitFor({ timeout: 20_000 });
      expect(await page.title()).to.equal('Email sent');
      expect(setup.mailgun.messages.some((m) => m.variables['email-id'] === id)).to.equal(true);
      await shot('email-sent');

      const nav = page.getByRole('navigation', { name: 'Dashboard' });
      await tabTo(
        nav.getByRole('link', { name: 'Emails', exact: true }),
        'Emails, in the navigation',
      );
      await enterTo('/emails');
      const row = page.locator('#email-results').getByRole('link', { name: KEYBOARD.subject });
      await tabTo(row, `the list's link to "${KEYBOARD.subject}"`);
      await shot('list-keyboard');
      await enterTo(`/emails/${id}`);
      await page.locator('.status-sent').waitFor();
    });

    it('2. takes three emails from a program: html, text, a file and a tag; another recipient; one the provider refuses', async () => {
      made.receipt = await sendEmail(RECEIPT);
      made.distinct = await sendEmail(DISTINCT);
      await Promise.all([
        waitForStatus(made.receipt, 'sent'),
        waitForStatus(made.distinct, 'sent'),
      ]);
      // What the provider got: both parts, the file and the tag.
      const receipt = setup.mailgun.messages.find((m) => m.variables['email-id'] === made.receipt);
      expect(receipt?.html).to.contain('<h1>Thanks for your order</h1>');
      expect(receipt?.text).to.equal(RECEIPT.text);
      expect(receipt?.tags).to.deep.equal([TAG]);
      expect(receipt?.attachments.map((f) => [f.filename, f.contentType, f.base64])).to.deep.equal([
        ['receipt.csv', 'text/csv', CSV.toString('base64')],
      ]);
      // The provider now refuses every send for good, as Mailgun does an unverified domain.
      setup.mailgun.scriptDefault({ status: 400, json: true, message: REFUSED });
      made.refused = await sendEmail(REFUSED_EMAIL);
      await waitForStatus(made.refused, 'failed');
      const refused = made.refused;
      await eventually(
        async () => {
          const answer = await api('/dead-letters');
          const { data } = (await answer.json()) as { data: { id: string }[] };
          return data.some((letter) => letter.id === refused);
        },
        { timeoutMs: 20_000, what: `the dead letter of ${refused}` },
      );
    });

    it('3. finds each of the three through the list’s filter form', async () => {
      await navigate(() =>
        page
          .getByRole('navigation', { name: 'Dashboard' })
          .getByRole('link', { name: 'Emails' })
          .click(),
      );
      expect(await subjects()).to.have.members([
        KEYBOARD.subject,
        RECEIPT.subject,
        DISTINCT.subject,
        REFUSED_EMAIL.subject,
      ]);
      await filter({ status: 'failed' });
      expect(await subjects()).to.deep.equal([REFUSED_EMAIL.subject]);
      await shot('list-filter-failed');
      await filter({ to: 'quill' });
      expect(await subjects()).to.deep.equal([DISTINCT.subject]);
      await shot('list-filter-to');
      await filter({ tag: TAG });
      expect(await subjects()).to.deep.equal([RECEIPT.subject]);
      await shot('list-filter-tag');
    });

    it('4. shows the html one in its sandboxed frame with its text part, and downloads its raw message', async () => {
      await navigate(() => page.getByRole('link', { name: RECEIPT.subject }).click());
      expect(new URL(page.url()).pathname).to.equal(`/emails/${made.receipt}`);
      const frame = page.locator('iframe.message-frame');
      expect(await frame.getAttribute('sandbox'), 'no script, no same origin').to.equal('');
      const heading = page.frameLocator('iframe.message-frame').getByRole('heading', {
        name: 'Thanks for your order',
      });
      await heading.waitFor();
      expect(await heading.isVisible()).to.equal(true);
      expect(await page.locator('pre.message-text').innerText()).to.equal(RECEIPT.text);
      expect(await page.locator('.message-files').innerText()).to.contain('receipt.csv');
      await shot('email-html');

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: 'Download the raw message (.eml)' }).click(),
      ]);
      const mail = await simpleParser(await readFile(await download.path()));
      expect(mail.subject).to.equal(RECEIPT.subject);
      expect(mail.text?.trim()).to.equal(RECEIPT.text);
      expect(mail.html || '').to.contain('<h1>Thanks for your order</h1>');
      expect(mail.attachments.map((a) => [a.filename, a.contentType])).to.deep.equal([
        ['receipt.csv', 'text/csv'],
      ]);
      expect(mail.attachments[0]?.content.equals(CSV)).to.equal(true);
      expect(mail.headers.get('x-email-id')).to.equal(made.receipt);
    });

    it('5. replays the refused one from /dead-letters once the provider is back, and shows it sent without a reload', async () => {
      const id = made.refused ?? expect.fail('no refused email');
      await navigate(() =>
        page
          .getByRole('navigation', { name: 'Dashboard' })
          .getByRole('link', { name: 'Dead letters' })
          .click(),
      );
      const replay = page.getByRole('button', { name: `Replay ${id}`, exact: true });
      const row = page.locator('tr', { has: replay });
      expect(await row.innerText())
        .to.contain(REFUSED_EMAIL.subject)
        .and.contain(REFUSED);
      // The page as it is with a letter on it: 4.5:1 and axe in both schemes, and a phone.
      await checkSchemes('dead-letters');
      await checkPhone('dead-letters', '/dead-letters');

      // The provider recovers; the operator replays the letter, through its confirmation.
      setup.mailgun.scriptDefault(undefined);
      await navigate(() => replay.click());
      await page.getByRole('heading', { name: 'Replay a dead letter' }).waitFor();
      const confirm = page.locator('form[method="post"][action="/dead-letters/replay"]');
      expect(
        await confirm.locator('input[type="hidden"][name="_csrf"]').inputValue(),
        'the confirmation carries the CSRF token',
      ).to.match(/\S{16,}/);
      expect(await statusOf(id), 'nothing replayed before the confirmation').to.equal('failed');
      await shot('replay-confirmation');
      await navigate(() => page.getByRole('button', { name: 'Replay this email' }).click());
      expect(await page.getByRole('status').first().innerText()).to.equal(
        'Replayed 1 dead letter: its email is being tried again.',
      );
      // A mark on this document: gone if the page reloads instead of updating itself.
      await page.evaluate('window.notReloaded = true');
      // A locator wait, not waitForFunction: that one compiles its predicate in the page, which
      // the page's CSP (no 'unsafe-eval') refuses whenever the first check does not settle it.
      await page
        .locator(`.follow-status[data-email="${id}"]`, { hasText: /^sent$/ })
        .waitFor({ timeout: 20_000 });
      expect(await page.evaluate('window.notReloaded')).to.equal(true);
      expect(await page.locator(`.follow-status.status-sent[data-email="${id}"]`).count()).to.equal(
        1,
      );
      await shot('replayed-sent-live');
      expect(await statusOf(id)).to.equal('sent');
      expect(setup.mailgun.messages.filter((m) => m.variables['email-id'] === id)).to.have.length(
        1,
      );
      // The follow block with its coloured status: 4.5:1 and axe in both schemes too.
      await checkSchemes('dead-letters-replayed');
    });

    it('6. fits 390 px, meets 4.5:1 in light and dark, and has no serious axe finding, on every page', async () => {
      const pages: readonly (readonly [string, string])[] = [
        ['form', '/'],
        ['list', '/emails'],
        ['email', `/emails/${made.receipt ?? ''}`],
        ['suppressions', '/suppressions'],
        ['webhooks', '/webhooks'],
      ];
      // The dead letters were checked in step 5, with a letter and with a replay followed.
      for (const [name, path] of pages) {
        await page.goto(`${setup.url}${path}`);
        await page.locator('h1').waitFor();
        // Each page shows what the journey made: checked with content, not empty.
        if (name === 'email') {
          await page.frameLocator('iframe.message-frame').locator('h1').waitFor();
        }
        if (name === 'suppressions') await page.getByText('gone@example.net').first().waitFor();
        if (name === 'webhooks') await page.getByText(endpointUrl).first().waitFor();
        await checkSchemes(name);
        await checkPhone(name, path);
      }
      if (setup.operator !== undefined) {
        // The sign-in page, as someone not signed in meets it.
        const stranger = await browser.newContext({ viewport: DESKTOP });
        try {
          const signIn = await stranger.newPage();
          await signIn.goto(`${setup.url}/login`);
          await signIn.getByRole('heading', { name: 'Sign in' }).waitFor();
          await checkSchemes('sign-in', signIn);
          await checkPhone('sign-in', '/login', signIn);
        } finally {
          await stranger.close();
        }
      }
    });

    it('7. met no script error or console error on the way', () => {
      expect(problems).to.deep.equal([]);
    });
  }
});

/** Runs an `email` command with `input` on its standard input, as a person pipes a password. */
async function withInput(
  roles: Roles,
  args: string[],
  input: string,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, ...roles.env({ LOG_LEVEL: 'warn' }) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const proc = new EmailProcess(child);
  child.stdin.end(`${input}\n`);
  const { code } = await proc.exited;
  await proc.closed;
  return { code, stderr: proc.stderr.join('') };
}
