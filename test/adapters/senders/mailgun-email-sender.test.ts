import { expect } from 'chai';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import {
  MAX_RETRY_AFTER_MS,
  outcomeOf,
  parseRetryAfter,
} from '../../../src/adapters/mailgun/mailgun-response.js';
import { MailgunEmailSender } from '../../../src/adapters/mailgun/mailgun-email-sender.js';
import type { AttachmentStore } from '../../../src/application/ports/attachment-store.js';
import { storeUnavailable } from '../../../src/application/ports/email-log.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import { EmailRequest as EmailRequestCodec } from '../../../src/domain/email-request.js';
import type { DeliveryOutcome } from '../../../src/domain/delivery.js';
import { decide } from '../../../src/domain/delivery.js';
import type { MailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { emailSenderContract } from '../../contracts/email-sender.contract.js';
import { aRequest, anAddress } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { asReceived } from '../../support/mail-receivers.js';
import { FROM, MAILGUN_KEY, mailgunFault, mailgunPair } from './support.js';

const DIGEST = 'a'.repeat(64);

/** The request with one attachment stored under `DIGEST`, through the codec as a queue reads it. */
function withAttachment(request: EmailRequest): EmailRequest {
  const decoded = EmailRequestCodec.decode({
    ...request,
    attachments: [
      { filename: 'report.pdf', digest: DIGEST, size: 3, contentType: 'application/pdf' },
    ],
  });
  if (decoded._tag === 'Left') throw new Error('the test request does not decode');
  return decoded.right;
}

/** An attachment store that answers `get` with `answer` (the rest of the port is never used). */
const storeAnswering = (answer: ReturnType<AttachmentStore['get']>): AttachmentStore => ({
  put: () => TE.left(storeUnavailable('not used here')),
  get: () => answer,
  purgeOrphans: () => TE.right(0),
});

emailSenderContract('MailgunEmailSender (against the Mailgun stand-in)', async () => {
  const { standIn, sender } = await mailgunPair(recordingLogger(), 500);
  return {
    sender,
    from: FROM,
    timeoutMs: 500,
    failNext: async (kind) => standIn.script(mailgunFault(kind)),
    stopReceiver: () => standIn.close(),
    received: async () => standIn.messages.map(asReceived),
    close: async () => {
      sender.close();
      await standIn.close();
    },
  };
});

describe('MailgunEmailSender', () => {
  let standIn: MailgunStandIn;
  let sender: MailgunEmailSender;
  let log: ReturnType<typeof recordingLogger>;
  beforeEach(async () => {
    log = recordingLogger();
    ({ standIn, sender } = await mailgunPair(log, 400));
  });
  afterEach(async () => {
    sender.close();
    await standIn.close();
  });

  it("posts Mailgun's form: repeated to, our id as v:email-id, h:Message-Id and h:X-Email-Id", async () => {
    const request = aRequest({ to: ['a@example.org', 'B <b@example.org>'], html: '<p>x</p>' });
    const outcome = await sender.send(request)();
    const [m] = standIn.messages;
    expect(outcome).to.deep.equal({ _tag: 'Sent', providerId: m?.id });
    expect(m?.id).to.match(/^<.+@mg\.example\.org>$/);
    expect(m?.fields.filter(([k]) => k === 'to')).to.deep.equal([
      ['to', 'a@example.org'],
      ['to', 'B <b@example.org>'],
    ]);
    expect(m?.variables).to.deep.equal({ 'email-id': request.id });
    expect(m?.headers).to.deep.equal({
      'Message-Id': `<${request.id}@sender.example.org>`,
      'X-Email-Id': request.id,
    });
    expect(m?.encoding).to.equal('urlencoded');
    expect(log.lines).to.deep.include({
      level: 'info',
      fields: { emailId: request.id, status: 200, outcome: 'Sent', providerId: m?.id },
      message: 'API Response Status: 200.',
    });
  });

  it('posts every field once, in the order Mailgun documents them', async () => {
    const base = aRequest({ to: ['a@example.org', '"Doe, Jane" <jane@example.org>'] });
    const request = {
      ...base,
      from: anAddress('Zoë <zoe@example.org>'),
      cc: [anAddress('c@example.org')],
      bcc: [anAddress('d@example.org'), anAddress('e@example.org')],
      replyTo: [anAddress('r@example.org'), anAddress('S <s@example.org>')],
      html: '<p>x</p>',
      headers: { 'X-First': '1', 'X-Second': '2' },
      tags: ['t1', 't2'],
      metadata: { order: '42', k: 'v' },
    } as EmailRequest;
    expect((await sender.send(request)())._tag).to.equal('Sent');
    const [m] = standIn.messages;
    expect(m?.fields).to.deep.equal([
      ['from', 'Zoë <zoe@example.org>'],
      ['to', 'a@example.org'],
      ['to', '"Doe, Jane" <jane@example.org>'],
      ['cc', 'c@example.org'],
      ['bcc', 'd@example.org'],
      ['bcc', 'e@example.org'],
      ['subject', base.subject],
      ['text', base.text],
      ['html', '<p>x</p>'],
      ['h:Reply-To', 'r@example.org, S <s@example.org>'],
      ['h:Message-Id', `<${request.id}@example.org>`],
      ['h:X-Email-Id', request.id],
      ['h:X-First', '1'],
      ['h:X-Second', '2'],
      ['o:tag', 't1'],
      ['o:tag', 't2'],
      ['v:order', '42'],
      ['v:k', 'v'],
      ['v:email-id', request.id],
    ]);
  });

  it('sends the text made from the html of an html-only email, still url-encoded', async () => {
    const request = aRequest({ text: undefined, html: '<p>Hello <b>there</b></p>' });
    expect((await sender.send(request)())._tag).to.equal('Sent');
    const [m] = standIn.messages;
    expect(m?.text).to.equal('Hello there');
    expect(m?.html).to.equal('<p>Hello <b>there</b></p>');
    expect(m?.encoding).to.equal('urlencoded');
  });

  const attachmentFailures: [string, AttachmentStore | undefined, RegExp, RegExp][] = [
    [
      'no attachment store was given',
      undefined,
      /^could not read the email's attachments from storage$/,
      /without an attachment store/,
    ],
    [
      'the store does not have the bytes',
      storeAnswering(TE.right(O.none)),
      /^attachment 1 of 1 is not in the attachment store$/,
      new RegExp(`digest ${DIGEST}`),
    ],
    [
      'the store is unavailable',
      storeAnswering(TE.left(storeUnavailable('database unreachable'))),
      /^could not read the email's attachments from storage$/,
      /attachment store unavailable: database unreachable/,
    ],
  ];
  for (const [what, attachments, reason, hint] of attachmentFailures) {
    it(`answers transient, and sends nothing, when ${what}`, async () => {
      const withStore = new MailgunEmailSender({
        apiBase: standIn.baseUrl,
        apiKey: MAILGUN_KEY,
        from: FROM,
        timeoutMs: 1000,
        log,
        ...(attachments !== undefined ? { attachments } : {}),
      });
      const outcome = await withStore.send(withAttachment(aRequest()))();
      withStore.close();
      expect(outcome._tag).to.equal('Transient');
      expect(outcome._tag !== 'Sent' && outcome.reason).to.match(reason);
      expect(outcome.hint).to.match(hint);
      expect(standIn.messages).to.have.length(0);
    });
  }

  it("classifies the stand-in's own 400 for a bad address as permanent", async () => {
    // Our API never sends a UTF-8 local part, so the form is made by hand, and what the stand-in
    // answered is given to the sender's reading of Mailgun's answers and sent back by a fault.
    const form = new URLSearchParams([
      ['from', 'Sender <s@mg.example.org>'],
      ['to', 'jürgen@example.org'],
      ['subject', 'Hi'],
      ['text', 'Hello'],
    ]);
    const res = await fetch(`${standIn.baseUrl}/messages`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`api:${MAILGUN_KEY}`).toString('base64')}` },
      body: form,
    });
    const body = await res.text();
    const expected = {
      _tag: 'Permanent',
      reason: "Mailgun 400: 'to' parameter is not a valid address. please check documentation",
    };
    expect(outcomeOf({ status: res.status, body }, Date.now())).to.deep.equal(expected);
    const { message } = JSON.parse(body) as { message: string };
    standIn.script({ status: res.status, json: true, message });
    expect(await sender.send(aRequest())()).to.deep.equal(expected);
  });

  // The reason is what the email's page shows; the hint is what the worker's log adds to it.
  const table: [string, object, DeliveryOutcome['_tag'], RegExp, RegExp?][] = [
    [
      '400',
      { status: 400, message: "'to' parameter is not a valid address" },
      'Permanent',
      /not a valid address/,
    ],
    [
      '401',
      { status: 401 },
      'Permanent',
      /^Mailgun refused our API credentials \(401\)$/,
      /MAILGUN_API_KEY.*MAILGUN_API_BASE is the right region/,
    ],
    ['402', { status: 402 }, 'Permanent', /Request failed/],
    ['403 (sandbox)', { status: 403 }, 'Permanent', /Sandbox subdomains/],
    ['413', { status: 413 }, 'Permanent', /25MB/],
    ['404 with JSON', { status: 404, json: true }, 'Transient', /may be temporary/],
    [
      '404 without JSON',
      { status: 404, json: false, message: '404 page not found' },
      'Permanent',
      /^Mailgun 404 \(404 page not found\): the service is not set up with the right Mailgun address$/,
      /check MAILGUN_API_BASE \(404 page not found\)/,
    ],
    [
      '404 with an HTML page',
      {
        status: 404,
        json: false,
        message: '<html><head><title>404 Not Found</title></head></html>',
      },
      'Permanent',
      /^Mailgun 404 \(404 Not Found\): /,
      /check MAILGUN_API_BASE \(<html>/,
    ],
    [
      '301 redirect',
      { status: 301 },
      'Permanent',
      /^Mailgun answered a redirect \(301\): /,
      /check MAILGUN_API_BASE/,
    ],
    ['420', { status: 420 }, 'Transient', /recipient limit/],
    ['429', { status: 429 }, 'Transient', /Too many requests/],
    ['500', { status: 500 }, 'Transient', /Internal Server Error/],
    [
      '502 (plain text)',
      { status: 502, message: '<html>Bad Gateway</html>' },
      'Transient',
      /^Mailgun 502: Bad Gateway$/,
      /^Mailgun 502: <html>Bad Gateway<\/html>$/,
    ],
    // The stand-in's proxy names the host it stands in for, which only the log may show.
    [
      '503',
      { status: 503 },
      'Transient',
      /^Mailgun 503: 503 error at \[hidden\]$/,
      /^Mailgun 503: 503 error at mg\.example\.org$/,
    ],
    ['504', { status: 504 }, 'Transient', /^Mailgun 504: /, /error at mg\.example\.org$/],
    [
      'a dropped connection',
      { dropConnection: true },
      'Transient',
      /^network error: the connection to Mailgun broke \(ECONNRESET\)$/,
      /socket hang up/,
    ],
    ['a hang', { hang: true }, 'Transient', /timed out after 400ms/],
  ];
  for (const [what, fault, tag, reason, hint] of table) {
    it(`maps ${what} to ${tag.toLowerCase()}`, async () => {
      standIn.script(fault);
      const outcome = await sender.send(aRequest())();
      expect(outcome._tag).to.equal(tag);
      const shown = outcome._tag === 'Sent' ? '' : outcome.reason;
      expect(shown).to.match(reason);
      expect(shown).not.to.match(/MAILGUN_|127\.0\.0\.1|https?:|<html>/);
      if (hint) expect(outcome.hint).to.match(hint);
      else expect(outcome).not.to.have.property('hint');
      expect(standIn.messages).to.have.length(0);
    });
  }

  it('reports a JSON 404 as an uncertain failure, for the core to retry a few times', async () => {
    standIn.script({ status: 404, json: true });
    const outcome = await sender.send(aRequest())();
    expect(outcome).to.include({ _tag: 'Transient', uncertain: true });
    const policy = { maxAttempts: 8, delaysMs: [1000] as [number] };
    expect([1, 2, 3].map((attempt) => decide(outcome, attempt, policy)._tag)).to.deep.equal([
      'RetryLater',
      'RetryLater',
      'GiveUp',
    ]);
  });

  it('honours Retry-After on 429 as retryAfterMs', async () => {
    standIn.script({ status: 429, retryAfterSeconds: 3 });
    const outcome = await sender.send(aRequest())();
    expect(outcome).to.include({ _tag: 'Transient', retryAfterMs: 3000 });
  });

  it('says what to fix on 401, in the log and the hint only, and never shows the key', async () => {
    const wrongKey = 'key-0123456789abcdef-THIS-IS-SECRET';
    const wrong = new MailgunEmailSender({
      apiBase: standIn.baseUrl,
      apiKey: wrongKey,
      from: FROM,
      timeoutMs: 1000,
      log,
    });
    const outcome = await wrong.send(aRequest())();
    wrong.close();
    expect(outcome).to.deep.equal({
      _tag: 'Permanent',
      reason: 'Mailgun refused our API credentials (401)',
      hint: 'Mailgun rejected the API key (401): check MAILGUN_API_KEY and that MAILGUN_API_BASE is the right region',
    });
    const errors = log.lines.filter((l) => l.level === 'error').map((l) => l.message);
    expect(errors).to.deep.equal([
      'Mailgun rejected the API key (401): check MAILGUN_API_KEY and that MAILGUN_API_BASE is the right region',
    ]);
    const everything = log.text() + JSON.stringify(outcome);
    for (const secret of [
      wrongKey,
      Buffer.from(`api:${wrongKey}`).toString('base64'),
      MAILGUN_KEY,
    ]) {
      expect(everything).to.not.include(secret);
    }
  });

  it('scrubs the key from a reason even when the answer echoes it back', async () => {
    standIn.script({ status: 400, message: `Invalid key ${MAILGUN_KEY} given` });
    const outcome = await sender.send(aRequest())();
    expect(JSON.stringify(outcome)).to.not.include(MAILGUN_KEY);
    expect(outcome._tag === 'Permanent' && outcome.reason).to.include('[redacted]');
  });

  it("keeps Mailgun's words but not the URL or address it quotes, which go to the hint", async () => {
    const url = `${standIn.baseUrl}/messages`;
    standIn.script({
      status: 400,
      message: `'to' is not a valid address (POST ${url} from [::1]:4321)`,
    });
    const outcome = await sender.send(aRequest())();
    expect(outcome).to.deep.equal({
      _tag: 'Permanent',
      reason: "Mailgun 400: 'to' is not a valid address (POST [hidden] from [hidden])",
      hint: `Mailgun 400: 'to' is not a valid address (POST ${url} from [::1]:4321)`,
    });
  });

  it('answers transient when nothing listens, and drops credentials put in the base URL', async () => {
    const base = new URL(standIn.baseUrl);
    await standIn.close();
    base.username = 'api';
    base.password = MAILGUN_KEY;
    const gone = new MailgunEmailSender({
      apiBase: base.toString(),
      apiKey: MAILGUN_KEY,
      from: FROM,
      timeoutMs: 1000,
      log,
    });
    const outcome = await gone.send(aRequest())();
    gone.close();
    expect(outcome).to.deep.include({
      _tag: 'Transient',
      reason: 'network error: could not reach Mailgun (ECONNREFUSED)',
    });
    // The operator learns where it tried; the page does not.
    expect(outcome.hint).to.match(
      new RegExp(`ECONNREFUSED ${base.host.replace(/\./g, '\\.')}; check MAILGUN_API_BASE$`),
    );
    expect(JSON.stringify(outcome) + log.text()).to.not.include(MAILGUN_KEY);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-28T10:00:00Z');
  it('reads delta-seconds', () => expect(parseRetryAfter('3', now)).to.equal(3000));
  it('reads an HTTP date relative to now', () =>
    expect(parseRetryAfter('Sat, 28 Nov 2026 10:01:30 GMT', now)).to.equal(90_000));
  it('treats a date in the past as now', () =>
    expect(parseRetryAfter('Sat, 28 Nov 2026 09:00:00 GMT', now)).to.equal(0));
  it("reads a 420's own 'try again after' date when there is no header", () => {
    const message =
      'Domain x is not allowed to send: try again after Sat, 28 Nov 2026 11:00:00 UTC';
    const outcome = outcomeOf({ status: 420, body: JSON.stringify({ message }) }, now);
    expect(outcome).to.include({ _tag: 'Transient', retryAfterMs: 3_600_000, throttled: true });
  });
  it('reads at most a week, however far the header says', () => {
    expect(parseRetryAfter('99999999999999999999', now)).to.equal(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('Fri, 31 Dec 9999 23:59:59 GMT', now)).to.equal(MAX_RETRY_AFTER_MS);
  });
  it('ignores what it cannot read', () => {
    for (const bad of [null, undefined, '', 'soon', '-1', '1.5']) {
      expect(parseRetryAfter(bad, now), String(bad)).to.equal(undefined);
    }
  });
});
