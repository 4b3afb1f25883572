// One email with every field the API takes, through each MIME transport and read back as a mail
// client would: what the SMTP server receives and what the outbox writes are the same octets,
// the ones `buildRawMessage` builds (and `GET /emails/{id}/raw` shows).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { ParsedMail } from 'mailparser';
import { simpleParser } from 'mailparser';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import { buildRawMessage } from '../../../src/adapters/mime/mime-message.js';
import { OutboxEmailSender } from '../../../src/adapters/outbox/outbox-email-sender.js';
import { SmtpEmailSender } from '../../../src/adapters/smtp/smtp-email-sender.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../../../src/domain/email-request.js';
import { FakeAttachments } from '../../contracts/email-sender.contract.js';
import { T0, anId, draftOptions } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import type { SmtpReceiver } from '../../support/mail-receivers.js';
import { startSmtpReceiver } from '../../support/mail-receivers.js';
import { FROM } from './support.js';

/** Like a PDF, and holding every byte value, CR and LF alone included. */
const PDF = Buffer.concat([
  Buffer.from('%PDF-1.7\n%\u00e2\u00e3\u00cf\u00d3\n', 'latin1'),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from('\r\n%%EOF\r', 'latin1'),
]);
/** A 1×1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const LOGO_CID = 'logo@example.org';

/** The request as the API makes it: the draft parsed, the files stored, their refs carried. */
function fullEmail(store: FakeAttachments, overrides: Record<string, unknown> = {}): EmailRequest {
  const draft = parseEmailDraft(
    {
      from: 'Invoices <billing@example.org>',
      to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'],
      cc: 'Carol Cc <carol@example.org>',
      bcc: ['dave@example.org', 'Hidden Eve <eve@example.org>'],
      reply_to: 'Replies <replies@example.org>',
      subject: 'Your invoice – Grüße from Köln',
      text: 'Hello Ada,\nyour invoice is attached.\n',
      html: `<p>Hello Ada,</p><p><img src="cid:${LOGO_CID}" alt="logo"></p>`,
      headers: {
        'X-Campaign': 'invoices-2026',
        'X-Customer-Ref': 'Kunde Nr. 42 – Müller',
        'List-Unsubscribe': '<https://example.org/unsubscribe/42>, <mailto:stop@example.org>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
      attachments: [
        { filename: 'invoice 2026-11.pdf', content: PDF.toString('base64') },
        {
          filename: 'logo.png',
          content: PNG.toString('base64'),
          content_type: 'image/png',
          content_id: LOGO_CID,
        },
      ],
      tags: ['invoice', 'monthly'],
      metadata: { customer: '42', plan: 'pro' },
      ...overrides,
    },
    { ...draftOptions(T0), allowedFromDomains: ['example.org'], domainToAscii },
  );
  if (E.isLeft(draft)) throw new Error(`the parser refuses ${JSON.stringify(draft.left.fields)}`);
  const refs = (draft.right.attachments ?? []).map(({ content, ...file }) => {
    const bytes = Buffer.from(content, 'base64');
    return { ...file, digest: store.add(bytes), size: bytes.byteLength };
  });
  return toEmailRequest(draft.right, anId('full'), T0, refs);
}

function expectCrlfOnly(message: Buffer): void {
  const text = message.toString('latin1');
  expect(text, 'a bare CR or LF').not.to.match(/\r(?!\n)|(?<!\r)\n/);
  expect(Math.max(...text.split('\r\n').map((l) => l.length))).to.be.at.most(998);
}

/** A header as written, unfolded, without its name. */
const rawHeader = (mail: ParsedMail, name: string): string | undefined =>
  mail.headerLines
    .find((h) => h.key === name)
    ?.line.replace(/\r\n/g, '')
    .replace(/^[^:]+:\s*/, '');

const people = (field: ParsedMail['to']): [string, string][] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((f) =>
    f.value.map((a): [string, string] => [a.name, a.address ?? '']),
  );

/** What a mail client must see in the email, whichever transport carried it. */
async function expectFullEmail(message: Buffer, request: EmailRequest): Promise<void> {
  expectCrlfOnly(message);
  const mail = await simpleParser(message, { keepCidLinks: true });
  expect(people(mail.from)).to.deep.equal([['Invoices', 'billing@example.org']]);
  expect(people(mail.to)).to.deep.equal([
    ['Ada Lovelace', 'ada@example.org'],
    ['', 'bob@example.com'],
  ]);
  expect(people(mail.cc)).to.deep.equal([['Carol Cc', 'carol@example.org']]);
  expect(people(mail.replyTo)).to.deep.equal([['Replies', 'replies@example.org']]);
  expect(mail.subject).to.equal(request.subject);
  expect(mail.messageId).to.equal(`<${request.id}@example.org>`);
  // Bcc is envelope only: no header names it, and its addresses are nowhere in the message.
  expect(mail.headerLines.map((h) => h.key)).not.to.include('bcc');
  expect(message.toString('latin1')).not.to.match(/dave@|eve@|Hidden Eve/i);
  expect(rawHeader(mail, 'x-campaign')).to.equal('invoices-2026');
  expect(rawHeader(mail, 'x-customer-ref')).to.equal(
    '=?UTF-8?Q?Kunde_Nr=2E_42_=E2=80=93_M=C3=BCller?=',
  );
  expect(rawHeader(mail, 'list-unsubscribe')).to.equal(
    '<https://example.org/unsubscribe/42>, <mailto:stop@example.org>',
  );
  expect(rawHeader(mail, 'list-unsubscribe-post')).to.equal('List-Unsubscribe=One-Click');
  expect(mail.headers.get('x-email-id')).to.equal(request.id);
  expect(mail.text?.replace(/\r\n/g, '\n')).to.equal('Hello Ada,\nyour invoice is attached.\n');

  const pdf = mail.attachments.find((a) => a.filename === 'invoice 2026-11.pdf');
  expect(pdf?.contentType).to.equal('application/pdf');
  expect(pdf?.contentDisposition).to.equal('attachment');
  expect(pdf?.content.equals(PDF), 'the PDF, byte for byte').to.equal(true);
  const logo = mail.attachments.find((a) => a.filename === 'logo.png');
  expect(logo).to.deep.include({ contentType: 'image/png', contentDisposition: 'inline' });
  expect(logo?.cid).to.equal(LOGO_CID);
  expect(logo?.related, 'in the multipart/related beside the html').to.equal(true);
  expect(logo?.content.equals(PNG)).to.equal(true);
  expect(mail.html).to.include(`<img src="cid:${logo?.cid}"`);
  expect(mail.attachments).to.have.length(2);
}

describe('An email with every field', () => {
  let store: FakeAttachments;
  beforeEach(() => {
    store = new FakeAttachments();
  });

  describe('through SMTP (an in-process smtp-server)', () => {
    let receiver: SmtpReceiver;
    let sender: SmtpEmailSender;
    beforeEach(async () => {
      receiver = await startSmtpReceiver();
      sender = new SmtpEmailSender({
        url: receiver.url(),
        from: FROM,
        timeoutMs: 5000,
        log: recordingLogger(),
        ignoreTLS: true,
        attachments: store,
      });
    });
    afterEach(async () => {
      sender.close();
      await receiver.close();
    });

    it('reaches every recipient, bcc by the envelope alone, as the octets buildRawMessage built', async () => {
      const request = fullEmail(store);
      expect((await sender.send(request)())._tag).to.equal('Sent');
      const [received, ...more] = await receiver.received();
      expect(more).to.have.length(0);
      expect(received?.recipients).to.deep.equal([
        'ada@example.org',
        'bob@example.com',
        'carol@example.org',
        'dave@example.org',
        'eve@example.org',
      ]);
      const data = receiver.raw[0] ?? Buffer.alloc(0);
      expect(data.equals(await buildRawMessage(request, FROM, store.files))).to.equal(true);
      await expectFullEmail(data, request);
    });

    it('carries a body with bare LF and bare CR in CRLF lines only', async () => {
      const request = fullEmail(store, {
        text: 'one\ntwo\rthree\r\n.\nfour\r\r\n',
        html: '<p>one</p>\n<p>two</p>\r<p>.</p>\n',
      });
      expect((await sender.send(request)())._tag).to.equal('Sent');
      const data = receiver.raw[0] ?? Buffer.alloc(0);
      expectCrlfOnly(data);
      expect(data.toString('latin1')).to.include('one\r\ntwo\r\nthree\r\n.\r\nfour\r\n\r\n');
      // A line of a lone dot went through SMTP's dot-stuffing and came back whole.
      const mail = await simpleParser(data);
      expect(mail.text?.replace(/\r\n/g, '\n')).to.equal('one\ntwo\nthree\n.\nfour\n\n');
      expect(String(mail.html).replace(/\r\n/g, '\n')).to.equal(
        '<p>one</p>\n<p>two</p>\n<p>.</p>\n',
      );
    });
  });

  describe('through the outbox', () => {
    let dir: string;
    let sender: OutboxEmailSender;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'full-email-'));
      sender = new OutboxEmailSender({
        dir,
        from: FROM,
        log: recordingLogger(),
        attachments: store,
      });
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it('writes the .eml as the octets buildRawMessage built, every field as a client reads it', async () => {
      const request = fullEmail(store);
      expect((await sender.send(request)())._tag).to.equal('Sent');
      const eml = await readFile(join(dir, `${request.id}.eml`));
      expect(eml.equals(await buildRawMessage(request, FROM, store.files))).to.equal(true);
      await expectFullEmail(eml, request);
    });

    it('writes a body with bare LF and bare CR in CRLF lines only', async () => {
      const request = fullEmail(store, {
        text: 'one\ntwo\rthree\r\n.\nfour\r\r\n',
        html: '<p>one</p>\n<p>two</p>\r<p>.</p>\n',
      });
      expect((await sender.send(request)())._tag).to.equal('Sent');
      const eml = await readFile(join(dir, `${request.id}.eml`));
      expectCrlfOnly(eml);
      expect(eml.toString('latin1')).to.include('one\r\ntwo\r\nthree\r\n.\r\nfour\r\n\r\n');
    });
  });
});
