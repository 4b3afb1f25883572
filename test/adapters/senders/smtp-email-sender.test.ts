import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { simpleParser } from 'mailparser';
import { buildRawMessage } from '../../../src/adapters/mime/mime-message.js';
import { SmtpEmailSender } from '../../../src/adapters/smtp/smtp-email-sender.js';
import type { SmtpFailure } from '../../../src/adapters/smtp/smtp-outcome.js';
import { outcomeOfError, outcomeOfInfo } from '../../../src/adapters/smtp/smtp-outcome.js';
import type { DeliveryOutcome } from '../../../src/domain/delivery.js';
import { EmailRequest } from '../../../src/domain/email-request.js';
import {
  FakeAttachments,
  emailSenderContract,
  withFiles,
} from '../../contracts/email-sender.contract.js';
import { aRequest } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import type { SmtpReceiver } from '../../support/mail-receivers.js';
import { startSmtpReceiver } from '../../support/mail-receivers.js';
import { FROM } from './support.js';

emailSenderContract('SmtpEmailSender (against an in-process smtp-server)', async () => {
  const receiver = await startSmtpReceiver();
  const sender = new SmtpEmailSender({
    url: receiver.url(),
    from: FROM,
    timeoutMs: 800,
    log: recordingLogger(),
    ignoreTLS: true,
    attachments: new FakeAttachments(),
  });
  return {
    sender,
    from: FROM,
    timeoutMs: 800,
    failNext: async (kind) => receiver.failNext(kind === 'timeout' ? 'hang' : kind),
    stopReceiver: () => receiver.close(),
    received: () => receiver.received(),
    close: async () => {
      sender.close();
      await receiver.close();
    },
  };
});

const PASSWORD = 'pa:ss w0rd/SECRET';

describe('SmtpEmailSender', () => {
  let receiver: SmtpReceiver;
  let log: ReturnType<typeof recordingLogger>;
  let store: FakeAttachments;
  const senders: SmtpEmailSender[] = [];
  const open = (url = withAuth(PASSWORD), pool?: boolean, withStore = true): SmtpEmailSender => {
    const s = new SmtpEmailSender({
      url,
      from: FROM,
      timeoutMs: 2000,
      log,
      ignoreTLS: true,
      ...(pool === undefined ? {} : { pool }),
      ...(withStore ? { attachments: store } : {}),
    });
    senders.push(s);
    return s;
  };
  beforeEach(async () => {
    log = recordingLogger();
    store = new FakeAttachments();
    receiver = await startSmtpReceiver({ user: 'mailer', pass: PASSWORD });
  });
  afterEach(async () => {
    senders.splice(0).forEach((s) => s.close());
    await receiver.close();
  });
  const withAuth = (pass: string): string => receiver.url({ user: 'mailer', pass });

  it('times a send from when it has a pooled connection, not while it waits for one', async () => {
    // Twelve sends on two connections to a server that answers each DATA after 200 ms: the
    // last pair waits about a second for a connection, longer than the 1000 ms a send may
    // take. Timed from before that wait, they were cut off while the server took them.
    receiver.answerAfter(200);
    const sender = new SmtpEmailSender({
      url: withAuth(PASSWORD),
      from: FROM,
      timeoutMs: 1000,
      log,
      ignoreTLS: true,
      maxConnections: 2,
    });
    senders.push(sender);
    const requests = Array.from({ length: 12 }, (_, i) => aRequest({ id: `smtp-pool-${i}-0` }));
    const outcomes = await Promise.all(requests.map((r) => sender.send(r)()));
    expect(outcomes.map((o) => o._tag)).to.deep.equal(requests.map(() => 'Sent'));
    const arrived = (await receiver.received()).map((m) => m.emailId);
    expect([...arrived].sort()).to.deep.equal(requests.map((r) => r.id).sort());
  });

  it('starts no send waiting for a pooled connection once told to stop starting', async () => {
    const sender = new SmtpEmailSender({
      url: withAuth(PASSWORD),
      from: FROM,
      timeoutMs: 2000,
      log,
      ignoreTLS: true,
      maxConnections: 1,
    });
    senders.push(sender);
    const hold = receiver.holdNext();
    const first = aRequest({ id: 'smtp-stop-first-0' });
    const second = aRequest({ id: 'smtp-stop-second-0' });
    const sending = [sender.send(first)(), sender.send(second)()];
    // The first is in DATA on the one connection; the second waits for it.
    await hold.arrived;
    sender.stopStarting();
    // The waiting one answers at once, while the send under way is still held at the server.
    const two = await sending[1];
    hold.release();
    const one = await sending[0];
    // The send under way finishes; the waiting one never starts.
    expect(one!._tag).to.equal('Sent');
    expect(two).to.deep.equal({
      _tag: 'Transient',
      reason: 'the worker is stopping; not sent',
      notStarted: true,
    });
    expect((await receiver.received()).map((m) => m.emailId)).to.deep.equal([first.id]);
    // A send asked for after the stop starts nothing, at once, pooled or not.
    const late = aRequest({ id: 'smtp-stop-late-0' });
    const unpooled = open(withAuth(PASSWORD), false);
    unpooled.stopStarting();
    for (const s of [sender, unpooled]) {
      expect(await s.send(late)()).to.include({ _tag: 'Transient', notStarted: true });
    }
    expect(await receiver.received()).to.have.length(1);
  });

  it('authenticates with the URL credentials and sends without a pool too', async () => {
    const request = aRequest();
    const outcome = await open(withAuth('pa:ss w0rd/SECRET'), false).send(request)();
    expect(outcome._tag).to.equal('Sent');
    expect(outcome._tag === 'Sent' && outcome.providerId).to.match(
      new RegExp(`^<${request.id}@sender\\.example\\.org> \\(250 .*Queued as Q1\\)$`),
    );
  });

  it('sends in DATA exactly the octets buildRawMessage builds, with the bcc in the envelope only', async () => {
    const file = Uint8Array.from([0, 13, 10, 255, 46, 13, 10, 46]);
    const request = withFiles(
      aRequest({ to: 'ada@example.org', text: 'line\n.\nafter a lone dot\rand a lone CR' }),
      store,
      [{ filename: 'data.bin', content: file }],
    );
    const withBcc = EmailRequest.decode({ ...request, bcc: ['hidden@example.org'] });
    if (E.isLeft(withBcc)) throw new Error('the codec refuses a bcc');
    expect((await open().send(withBcc.right)())._tag).to.equal('Sent');
    const expected = await buildRawMessage(withBcc.right, FROM, new Map(store.files));
    // smtp-server hands over DATA with the dot-stuffing undone: the message as composed.
    expect(receiver.raw[0]?.equals(expected)).to.equal(true);
    expect((await receiver.received())[0]?.recipients).to.deep.equal([
      'ada@example.org',
      'hidden@example.org',
    ]);
    const mail = await simpleParser(expected);
    expect(mail.headerLines.map((h) => h.key)).not.to.include('bcc');
    expect(expected.toString('latin1')).not.to.include('hidden@');
    expect(Buffer.from(mail.attachments[0]?.content ?? []).equals(file)).to.equal(true);
  });

  it('answers transient, sending nothing, when an attachment cannot be loaded', async () => {
    const file = { filename: 'a.txt', content: new TextEncoder().encode('a file') };
    const request = withFiles(aRequest(), store, [file]);
    const missing = withFiles(aRequest(), new FakeAttachments(), [
      { filename: 'b.txt', content: new TextEncoder().encode('never stored here') },
    ]);
    const expectUnloaded = (outcome: DeliveryOutcome, hint: RegExp): void => {
      expect(outcome).to.deep.include({
        _tag: 'Transient',
        reason: 'an attachment could not be loaded',
      });
      expect(outcome.hint).to.match(hint);
    };
    expectUnloaded(await open().send(missing)(), /is not in the attachment store/);
    expectUnloaded(await open(undefined, undefined, false).send(request)(), /no attachment store/);
    store.down = true;
    expectUnloaded(await open().send(request)(), /attachment store is unavailable/);
    expect(receiver.raw).to.have.length(0);
    store.down = false;
    expect((await open().send(request)())._tag).to.equal('Sent');
  });

  it('reports a partial rejection as sent, naming the refused recipient, and warns', async () => {
    receiver.refuseRecipient('bad@example.org', 550);
    const request = aRequest({ to: ['ok@example.org', 'bad@example.org'] });
    const outcome = await open(withAuth('pa:ss w0rd/SECRET')).send(request)();
    expect(outcome._tag).to.equal('Sent');
    expect(outcome._tag === 'Sent' && outcome.providerId).to.match(
      /partially delivered; refused bad@example.org: SMTP 550/,
    );
    expect((await receiver.received()).map((r) => r.recipients)).to.deep.equal([
      ['ok@example.org'],
    ]);
    const warn = log.lines.find((l) => l.level === 'warn');
    expect(warn?.message).to.match(/refused 1 of 2 recipients/);
    expect(warn?.fields).to.deep.include({ rejected: ['bad@example.org'] });
  });

  it('answers permanent when every recipient is refused for good, transient when for now', async () => {
    receiver.refuseRecipient('gone@example.org', 550);
    receiver.refuseRecipient('full@example.org', 452);
    const sender = open(withAuth('pa:ss w0rd/SECRET'));
    expect((await sender.send(aRequest({ to: 'gone@example.org' }))())._tag).to.equal('Permanent');
    expect((await sender.send(aRequest({ to: 'full@example.org' }))())._tag).to.equal('Transient');
  });

  it('answers a bad password with a permanent EAUTH that never shows the password', async () => {
    const password = 'wr0ng:P@ss/word SECRET';
    const outcome = await open(withAuth(password)).send(aRequest())();
    expect(outcome).to.deep.include({
      _tag: 'Permanent',
      reason: 'the SMTP server refused our credentials (535)',
    });
    // What to fix is for the operator: in the hint and the log, not in the public reason.
    expect(outcome.hint).to.match(/check the user and password in SMTP_URL/);
    expect(log.errors().map((l) => l.message)).to.deep.equal([outcome.hint]);
    expect(receiver.authAttempts.map((a) => a.pass)).to.include(password); // it was really tried
    const everything = JSON.stringify(outcome) + log.text();
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    for (const secret of [
      password,
      encodeURIComponent(password),
      b64(password),
      b64(`\u0000mailer\u0000${password}`),
    ]) {
      expect(everything).to.not.include(secret);
    }
    expect(log.lines.filter((l) => l.level === 'error')).to.have.length(1);
  });

  it('says the server could not be reached, naming the address only in the hint', async () => {
    const port = receiver.port;
    await receiver.close();
    const outcome = await open(`smtp://127.0.0.1:${port}`).send(aRequest())();
    expect(outcome).to.deep.equal({
      _tag: 'Transient',
      reason: 'the SMTP server could not be reached (ECONNREFUSED)',
      hint: `ESOCKET on CONN: connect ECONNREFUSED 127.0.0.1:${port}: check the host and port in SMTP_URL`,
    });
    receiver = await startSmtpReceiver();
  });
});

describe('SMTP outcome mapping', () => {
  const table: [string, SmtpFailure, DeliveryOutcome['_tag']][] = [
    ['421 service not available', { code: 'EENVELOPE', responseCode: 421 }, 'Transient'],
    ['451 local error', { code: 'EMESSAGE', responseCode: 451 }, 'Transient'],
    [
      '503 bad sequence (nodemailer: not permanent)',
      { code: 'EPROTOCOL', responseCode: 503 },
      'Transient',
    ],
    ['550 mailbox unavailable', { code: 'EENVELOPE', responseCode: 550 }, 'Permanent'],
    ['554 transaction failed', { code: 'EMESSAGE', responseCode: 554 }, 'Permanent'],
    ['EAUTH 535', { code: 'EAUTH', responseCode: 535 }, 'Permanent'],
    ['EAUTH 454 temporary', { code: 'EAUTH', responseCode: 454 }, 'Transient'],
    ['ESOCKET (refused)', { code: 'ESOCKET', message: 'connect ECONNREFUSED' }, 'Transient'],
    ['ECONNECTION', { code: 'ECONNECTION' }, 'Transient'],
    ['ETIMEDOUT', { code: 'ETIMEDOUT' }, 'Transient'],
    ['EDNS', { code: 'EDNS' }, 'Transient'],
    ['ECONFIG', { code: 'ECONFIG' }, 'Permanent'],
    ['an unknown error', { message: 'surprise' }, 'Transient'],
  ];
  for (const [what, failure, tag] of table) {
    it(`maps ${what} to ${tag.toLowerCase()}`, () =>
      expect(outcomeOfError(failure)._tag).to.equal(tag));
  }

  // The reason is what the email's page shows; the hint is what the worker's log adds to it.
  const words: [string, SmtpFailure, string, string?][] = [
    [
      "a recipient's refusal, kept as the server said it",
      {
        code: 'EENVELOPE',
        responseCode: 550,
        command: 'RCPT TO',
        response: '550 5.1.1 <x@example.com>: Recipient address rejected: User unknown',
      },
      'SMTP 550 on RCPT TO: 550 5.1.1 <x@example.com>: Recipient address rejected: User unknown',
    ],
    [
      'a reply that names hosts and addresses',
      {
        code: 'EPROTOCOL',
        responseCode: 421,
        command: 'CONN',
        response: '421 4.7.0 mx1.relay.example.net Error: too many connections from 10.1.2.3',
      },
      'SMTP 421 on CONN: 421 4.7.0 [hidden] Error: too many connections from [hidden]',
      'SMTP 421 on CONN: 421 4.7.0 mx1.relay.example.net Error: too many connections from 10.1.2.3',
    ],
    [
      'a refused connection',
      { code: 'ESOCKET', command: 'CONN', message: 'connect ECONNREFUSED ::1:2525' },
      'the SMTP server could not be reached (ECONNREFUSED)',
      'ESOCKET on CONN: connect ECONNREFUSED ::1:2525: check the host and port in SMTP_URL',
    ],
    [
      'an unknown host',
      { code: 'EDNS', command: 'CONN', message: 'getaddrinfo ENOTFOUND smtp.internal.example' },
      'the SMTP server could not be reached (ENOTFOUND)',
      'EDNS on CONN: getaddrinfo ENOTFOUND smtp.internal.example: check the host and port in SMTP_URL',
    ],
    [
      'a closed connection',
      { code: 'ECONNECTION', command: 'CONN', message: 'Connection closed unexpectedly' },
      'the connection to the SMTP server broke (ECONNECTION)',
      'ECONNECTION on CONN: Connection closed unexpectedly',
    ],
    [
      'a wrong password',
      { code: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN', response: '535 5.7.8 Error' },
      'the SMTP server refused our credentials (535)',
      'the SMTP server refused the credentials: check the user and password in SMTP_URL (SMTP 535 on AUTH PLAIN: 535 5.7.8 Error)',
    ],
    [
      'a host from our configuration that no pattern would catch',
      { code: 'EMESSAGE', responseCode: 451, response: '451 relay busy, try again later' },
      'SMTP 451: 451 [hidden] busy, try again later',
      'SMTP 451: 451 relay busy, try again later',
    ],
  ];
  for (const [what, failure, reason, hint] of words) {
    it(`words ${what} for the page`, () => {
      const outcome = outcomeOfError(failure, ['relay:25', 'relay']);
      expect(outcome._tag === 'Sent' ? undefined : outcome.reason).to.equal(reason);
      expect(outcome.hint).to.equal(hint);
    });
  }

  it('maps a 250 with every recipient refused by the rejections', () => {
    const info = { accepted: [], rejected: ['a@x.org'], rejectedErrors: [{ responseCode: 452 }] };
    expect(outcomeOfInfo(info).outcome._tag).to.equal('Transient');
  });
});
