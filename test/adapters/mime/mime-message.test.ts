import { createHash } from 'node:crypto';
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { ParsedMail } from 'mailparser';
import { simpleParser } from 'mailparser';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import {
  attachmentsOutcome,
  buildRawMessage,
  encodeUnstructured,
  loadAttachments,
  nodemailerMessage,
} from '../../../src/adapters/mime/mime-message.js';
import { textAlternative } from '../../../src/adapters/mime/text-alternative.js';
import { parseEmailAddress } from '../../../src/domain/email-address.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import {
  EmailId,
  EmailRequest as EmailRequestCodec,
  parseEmailDraft,
  toEmailRequest,
} from '../../../src/domain/email-request.js';
import { FakeAttachments, withFiles } from '../../contracts/email-sender.contract.js';
import { T0, aRequest, anAddress, draftOptions } from '../../support/builders.js';

const FROM = anAddress('Email Example <noreply@sender.example.org>');
const options = {
  ...draftOptions(T0),
  allowedFromDomains: ['example.org', 'xn--bcher-kva.de'],
  domainToAscii,
};
let n = 0;

/** A request as the API makes one (parser, then toEmailRequest), and its attachment bytes. */
function built(input: Record<string, unknown>): { request: EmailRequest; bytes: FakeAttachments } {
  const draft = parseEmailDraft({ to: 'ada@example.org', subject: 'Hi', ...input }, options);
  if (E.isLeft(draft)) throw new Error(`the parser refuses ${JSON.stringify(draft.left.fields)}`);
  const bytes = new FakeAttachments();
  const refs = (draft.right.attachments ?? []).map(({ content, ...file }) => {
    const decoded = Buffer.from(content, 'base64');
    return { ...file, digest: bytes.add(decoded), size: decoded.byteLength };
  });
  const id = `mime-${String((n += 1)).padStart(4, '0')}`;
  if (!EmailId.is(id)) throw new Error(`${id} is not an EmailId`);
  return { request: toEmailRequest(draft.right, id, T0, refs), bytes };
}

const raw = (request: EmailRequest, bytes = new FakeAttachments()): Promise<Buffer> =>
  buildRawMessage(request, FROM, bytes.files);

/** What every message must be on the wire: 7-bit, CRLF only, no line over 998 octets. */
function expectWireSafe(message: Buffer): void {
  expect(
    message.every((octet) => octet < 0x80),
    '7-bit',
  ).to.equal(true);
  const text = message.toString('latin1');
  expect(text, 'a bare CR or LF').not.to.match(/\r(?!\n)|(?<!\r)\n/);
  expect(text.endsWith('\r\n')).to.equal(true);
  const longest = Math.max(...text.split('\r\n').map((line) => line.length));
  expect(longest, 'the longest line, in octets').to.be.at.most(998);
}

/** A header of the message as written, unfolded, without its name. */
function rawHeader(mail: ParsedMail, name: string): string | undefined {
  const line = mail.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line?.replace(/\r\n/g, '').replace(/^[^:]+:\s*/, '');
}

/** RFC 2047 encoded-words back to text; whitespace between two of them is not part of it. */
function decodeWords(value: string): string {
  const word = /=\?UTF-8\?([BQ])\?([^?]*)\?=/gi;
  return value.replace(new RegExp(`${word.source}(?:\\s+${word.source})*`, 'gi'), (run) =>
    Buffer.concat(
      [...run.matchAll(word)].map(([, encoding, data = '']) =>
        encoding?.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : Buffer.from(
              data
                .replace(/_/g, ' ')
                .replace(/=([0-9A-F]{2})/gi, (_, hex: string) =>
                  String.fromCharCode(parseInt(hex, 16)),
                ),
              'latin1',
            ),
      ),
    ).toString('utf8'),
  );
}

const lf = (s: string | undefined): string => (s ?? '').replace(/\r\n|\r|\n/g, '\n');

describe('buildRawMessage', () => {
  it('writes From, To, Cc, Reply-To, the extra headers, X-Email-Id, Message-ID and Date, and never Bcc', async () => {
    const { request } = built({
      from: 'News Desk <news@example.org>',
      to: ['Ada Lovelace <ada@example.org>', 'bob@example.org'],
      cc: 'Carol <carol@example.org>',
      bcc: ['dave@example.org', 'Eve <eve@example.org>'],
      reply_to: 'Replies <replies@example.org>',
      text: 'Hello',
      headers: {
        'X-Campaign': 'spring-2026',
        'X-Note': 'Grüße aus Köln',
        'List-Unsubscribe': '<https://example.org/u/1>, <mailto:u@example.org?subject=stop>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
        'In-Reply-To': '<prev@example.org>',
        References: '<first@example.org> <prev@example.org>',
      },
    });
    const message = await raw(request);
    expectWireSafe(message);
    const mail = await simpleParser(message);
    const people = (field: ParsedMail['to']) =>
      (Array.isArray(field) ? field : [field]).flatMap((f) => f?.value ?? []);
    expect(people(mail.from)).to.deep.include({ name: 'News Desk', address: 'news@example.org' });
    expect(people(mail.to).map((a) => [a.name, a.address])).to.deep.equal([
      ['Ada Lovelace', 'ada@example.org'],
      ['', 'bob@example.org'],
    ]);
    expect(people(mail.cc).map((a) => [a.name, a.address])).to.deep.equal([
      ['Carol', 'carol@example.org'],
    ]);
    expect(people(mail.replyTo).map((a) => [a.name, a.address])).to.deep.equal([
      ['Replies', 'replies@example.org'],
    ]);
    expect(rawHeader(mail, 'X-Campaign')).to.equal('spring-2026');
    expect(decodeWords(rawHeader(mail, 'X-Note') ?? '')).to.equal('Grüße aus Köln');
    expect(rawHeader(mail, 'List-Unsubscribe')).to.equal(
      '<https://example.org/u/1>, <mailto:u@example.org?subject=stop>',
    );
    expect(rawHeader(mail, 'List-Unsubscribe-Post')).to.equal('List-Unsubscribe=One-Click');
    expect(mail.inReplyTo).to.equal('<prev@example.org>');
    expect(mail.references).to.deep.equal(['<first@example.org>', '<prev@example.org>']);
    expect(mail.headers.get('x-email-id')).to.equal(request.id);
    // The Message-ID names the request's From, not MAIL_FROM.
    expect(mail.messageId).to.equal(`<${request.id}@example.org>`);
    expect(mail.date?.toISOString()).to.equal(T0.toISOString());
    // Bcc: in the envelope, and nowhere in the message.
    expect(mail.headerLines.map((h) => h.key)).not.to.include('bcc');
    expect(message.toString('latin1')).not.to.match(/dave@|eve@/);
    expect(nodemailerMessage(request, FROM, new Map()).envelope).to.deep.equal({
      from: 'news@example.org',
      to: [
        'ada@example.org',
        'bob@example.org',
        'carol@example.org',
        'dave@example.org',
        'eve@example.org',
      ],
    });
  });

  it('takes From and the Message-ID domain from MAIL_FROM when the request has none', async () => {
    const request = aRequest();
    const mail = await simpleParser(await raw(request));
    expect(mail.from?.value).to.deep.equal([
      { name: 'Email Example', address: 'noreply@sender.example.org' },
    ]);
    expect(mail.messageId).to.equal(`<${request.id}@sender.example.org>`);
    expect(nodemailerMessage(request, FROM, new Map()).envelope.from).to.equal(
      'noreply@sender.example.org',
    );
  });

  it('ends every line in CRLF: a bare LF or CR in text or html becomes CRLF', async () => {
    const { request } = built({
      text: 'one\ntwo\rthree\r\nfour\n\n\rfive',
      html: '<p>one</p>\n<p>two</p>\r<p>three</p>',
    });
    const message = await raw(request);
    expectWireSafe(message);
    // Plain ASCII in short lines goes 7bit: the canonical lines are on the wire as they are.
    expect(message.toString('latin1')).to.include('one\r\ntwo\r\nthree\r\nfour\r\n\r\n\r\nfive');
    const mail = await simpleParser(message);
    expect(lf(mail.text).trimEnd()).to.equal('one\ntwo\nthree\nfour\n\n\nfive');
    expect(lf(mail.html || '')).to.equal('<p>one</p>\n<p>two</p>\n<p>three</p>');
  });

  describe('keeps every line within 998 octets, encoding what cannot be folded', () => {
    const cases: [string, Record<string, unknown>, (mail: ParsedMail) => void][] = [
      [
        'a 990-character one-word subject',
        { subject: 'x'.repeat(990) },
        (mail) => expect(mail.subject).to.equal('x'.repeat(990)),
      ],
      [
        'a 990-character one-word subject, not ASCII',
        { subject: 'ü😀'.repeat(330) },
        (mail) => expect(mail.subject).to.equal('ü😀'.repeat(330)),
      ],
      [
        'a subject that only looks encoded, with runs of spaces',
        { subject: '  =?UTF-8?Q?not_this?=   but  this ' },
        (mail) => expect(mail.subject).to.equal('  =?UTF-8?Q?not_this?=   but  this '),
      ],
      [
        'display names of the longest length the domain allows (256), bare, quoted and not ASCII',
        {
          from: `${'n'.repeat(256)} <news@example.org>`,
          to: [`"${'\\"'.repeat(256)}" <ada@example.org>`, `${'ñ'.repeat(256)} <bob@example.org>`],
          reply_to: `"${'r.'.repeat(128)}" <replies@example.org>`,
        },
        (mail) => {
          expect(mail.from?.value[0]?.name).to.equal('n'.repeat(256));
          const to = Array.isArray(mail.to) ? mail.to[0] : mail.to;
          expect(to?.value.map((a) => a.name)).to.deep.equal(['"'.repeat(256), 'ñ'.repeat(256)]);
          expect(mail.replyTo?.value[0]?.name).to.equal('r.'.repeat(128));
        },
      ],
      [
        'a 900-character one-word X- header value, ASCII and not',
        { headers: { 'X-Ascii': 'h'.repeat(900), 'X-Unicode': 'ä'.repeat(900) } },
        (mail) => {
          expect(rawHeader(mail, 'X-Ascii')).to.equal('h'.repeat(900));
          expect(decodeWords(rawHeader(mail, 'X-Unicode') ?? '')).to.equal('ä'.repeat(900));
        },
      ],
      [
        'a 998-character one-word X- header value, longer than a line can hold',
        { headers: { 'X-Token': 't'.repeat(998) } },
        (mail) => expect(decodeWords(rawHeader(mail, 'X-Token') ?? '')).to.equal('t'.repeat(998)),
      ],
      [
        'a List-Unsubscribe URL of 990 characters, not ASCII either',
        { headers: { 'List-Unsubscribe': `<https://example.org/${'ü'.repeat(480)}>` } },
        (mail) =>
          // Cut where no line could hold it; RFC 2369 readers drop whitespace inside the brackets.
          expect(rawHeader(mail, 'List-Unsubscribe')?.replace(/\s/g, '')).to.equal(
            `<https://example.org/${'%C3%BC'.repeat(480)}>`,
          ),
      ],
      [
        'a 5000-character line of text with no spaces',
        { text: 'w'.repeat(5000), html: `<p>${'h'.repeat(5000)}</p>` },
        (mail) => {
          expect(lf(mail.text).trimEnd()).to.equal('w'.repeat(5000));
          expect(mail.html).to.equal(`<p>${'h'.repeat(5000)}</p>`);
        },
      ],
      [
        'a 5000-character line of non-ASCII text with no spaces',
        { text: '€'.repeat(5000) },
        (mail) => expect(lf(mail.text).trimEnd()).to.equal('€'.repeat(5000)),
      ],
    ];
    for (const [what, input, check] of cases) {
      it(what, async () => {
        const { request } = built({ text: 'Hello', ...input });
        const message = await raw(request);
        expectWireSafe(message);
        check(await simpleParser(message));
      });
    }

    it('(a 300-character display name cannot reach it: the domain refuses names over 256)', () => {
      expect(E.isLeft(parseEmailAddress(`${'n'.repeat(300)} <ada@example.org>`))).to.equal(true);
    });
  });

  it('builds the same octets whatever order the extra headers come in (jsonb reorders keys)', async () => {
    const { request } = built({
      text: 'Hi',
      headers: {
        'X-Long-Header-Name': 'first',
        'X-B': 'second',
        'List-Unsubscribe': '<mailto:u@example.org>',
      },
    });
    const reordered = EmailRequestCodec.decode({
      ...request,
      headers: {
        'X-B': 'second',
        'List-Unsubscribe': '<mailto:u@example.org>',
        'X-Long-Header-Name': 'first',
      },
    });
    if (E.isLeft(reordered)) throw new Error('the codec refuses the reordered request');
    expect((await raw(reordered.right)).equals(await raw(request))).to.equal(true);
  });

  it('dates a scheduled email at its send_at, and one sent at once at its request', async () => {
    const sendAt = new Date(T0.getTime() + 3 * 24 * 3600_000);
    const scheduled = built({ text: 'Later', send_at: sendAt.toISOString() }).request;
    const now = built({ text: 'Now' }).request;
    const dateOf = async (r: EmailRequest) => (await simpleParser(await raw(r))).date?.getTime();
    expect(await dateOf(scheduled)).to.equal(sendAt.getTime());
    expect(await dateOf(now)).to.equal(T0.getTime());
  });

  it('builds the same octets from the same request and bytes, and other boundaries for another', async () => {
    const { request, bytes } = built({
      text: 'Hello',
      html: '<p>Hello <img src="cid:logo"></p>',
      attachments: [
        { filename: 'logo.png', content: 'iVBORw0KGgo=', content_id: 'logo' },
        { filename: 'a.pdf', content: 'JVBERi0xLjQK' },
      ],
    });
    const first = await raw(request, bytes);
    expect((await raw(request, bytes)).equals(first)).to.equal(true);
    // As the worker gets it: decoded off the queue, keys in another order.
    const reordered = Object.fromEntries(Object.entries(request).reverse());
    const decoded = EmailRequestCodec.decode(JSON.parse(JSON.stringify(reordered)));
    if (E.isLeft(decoded)) throw new Error('the codec refuses a request it made');
    expect((await raw(decoded.right, bytes)).equals(first)).to.equal(true);
    const boundaries = (m: Buffer) => [...m.toString('latin1').matchAll(/boundary="([^"]+)"/g)];
    const [[, boundary = ''] = []] = boundaries(first);
    expect(boundary).to.match(/^--_NmP-[0-9a-f]{24}-Part_1$/);
    const other = EmailRequestCodec.decode({ ...request, id: `${request.id}-2` });
    if (E.isLeft(other)) throw new Error('the codec refuses another id');
    const [[, otherBoundary] = []] = boundaries(await raw(other.right, bytes));
    expect(otherBoundary).not.to.equal(boundary);
  });

  it('writes internationalised domains as A-labels in every address header, the envelope and the Message-ID', async () => {
    const { request } = built({
      from: 'Bücherstube Köln <info@bücher.de>',
      to: ['Jörg <kunde@bücher.de>', 'ada@example.org'],
      cc: 'cc@BÜCHER.de',
      bcc: 'geheim@bücher.de',
      reply_to: 'antwort@bücher.de',
      text: 'Hallo',
    });
    const message = await raw(request);
    expectWireSafe(message);
    const head = (message.toString('latin1').split('\r\n\r\n')[0] ?? '').replace(/\r\n/g, '\n');
    expect(head).to.match(
      /^From: =\?UTF-8\?Q\?B=C3=BCcherstube_K=C3=B6ln\?= <info@xn--bcher-kva\.de>$/m,
    );
    expect(head).to.match(
      /^To: =\?UTF-8\?Q\?J=C3=B6rg\?= <kunde@xn--bcher-kva\.de>, ada@example\.org$/m,
    );
    expect(head).to.match(/^Cc: cc@xn--bcher-kva\.de$/m);
    expect(head).to.match(/^Reply-To: antwort@xn--bcher-kva\.de$/m);
    expect(head).to.match(new RegExp(`^Message-ID: <${request.id}@xn--bcher-kva\\.de>$`, 'm'));
    expect(nodemailerMessage(request, FROM, new Map()).envelope).to.deep.equal({
      from: 'info@xn--bcher-kva.de',
      to: [
        'kunde@xn--bcher-kva.de',
        'ada@example.org',
        'cc@xn--bcher-kva.de',
        'geheim@xn--bcher-kva.de',
      ],
    });
    const mail = await simpleParser(message);
    expect(mail.from?.value[0]?.name).to.equal('Bücherstube Köln');
  });

  it('puts a part with a Content-ID inline, beside the html that shows it (multipart/related)', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const pdf = Buffer.from('%PDF-1.4\n%\u00e2\u00e3\n', 'latin1');
    const { request, bytes } = built({
      html: '<p>Our logo: <img src="cid:logo@example.org"></p>',
      attachments: [
        { filename: 'logo.png', content: png.toString('base64'), content_id: 'logo@example.org' },
        { filename: 'Rechnung März.pdf', content: pdf.toString('base64') },
      ],
    });
    const message = await raw(request, bytes);
    expectWireSafe(message);
    expect(message.toString('latin1')).to.match(
      /Content-Type: multipart\/related; type="text\/html"/,
    );
    const mail = await simpleParser(message, { keepCidLinks: true });
    expect(mail.html).to.include('src="cid:logo@example.org"');
    const logo = mail.attachments.find((a) => a.cid === 'logo@example.org');
    expect(logo).to.deep.include({
      filename: 'logo.png',
      contentType: 'image/png',
      contentDisposition: 'inline',
      related: true,
    });
    expect(logo?.content.equals(png)).to.equal(true);
    const invoice = mail.attachments.find((a) => a.filename === 'Rechnung März.pdf');
    expect(invoice).to.deep.include({
      contentType: 'application/pdf',
      contentDisposition: 'attachment',
    });
    expect(invoice?.content.equals(pdf)).to.equal(true);
    // An html-only email gets its text part: multipart/alternative inside the related.
    expect(lf(mail.text).trim()).to.equal(lf(textAlternative(request)).trim());
    expect(message.toString('latin1')).to.match(/Content-Type: multipart\/alternative/);
  });

  it('names each file and types it as given, lets nodemailer infer a missing type, and never makes a file a container', async () => {
    const store = new FakeAttachments();
    const content = Uint8Array.from([0, 1, 2, 13, 10, 255]);
    const request = withFiles(aRequest(), store, [
      { filename: 'table.csv', content, contentType: 'text/csv; charset=utf-8; header=present' },
      { filename: 'no-type.pdf', content },
      { filename: 'forwarded.eml', content, contentType: 'message/rfc822' },
      { filename: 'parts.bin', content, contentType: 'multipart/mixed' },
    ]);
    const message = await raw(request, store);
    expectWireSafe(message);
    const text = message.toString('latin1');
    expect(text).to.include(
      'Content-Type: text/csv; charset=utf-8; header=present; name=table.csv',
    );
    expect(text).to.include('Content-Type: application/pdf; name=no-type.pdf');
    expect(text).to.include('Content-Type: message/rfc822; name=forwarded.eml');
    expect(text).to.include('Content-Type: application/octet-stream; name=parts.bin');
    const mail = await simpleParser(message);
    expect(mail.attachments.map((a) => a.filename)).to.deep.equal([
      'table.csv',
      'no-type.pdf',
      'forwarded.eml',
      'parts.bin',
    ]);
    for (const file of mail.attachments) expect(file.content.equals(content)).to.equal(true);
  });
});

describe('loadAttachments', () => {
  const file = (text: string) => ({ filename: `${text}.txt`, content: Buffer.from(text) });

  it('needs no store for a request without attachments', async () => {
    const loaded = await loadAttachments(undefined, aRequest())();
    expect(loaded).to.deep.equal(E.right(new Map()));
  });

  it('loads each digest once, the same file attached twice included', async () => {
    const store = new FakeAttachments();
    const request = withFiles(aRequest(), store, [file('a'), file('b'), file('a')]);
    const loaded = await loadAttachments(store, request)();
    const digest = (s: string) => createHash('sha256').update(s).digest('hex');
    expect(E.isRight(loaded) && [...loaded.right.keys()]).to.deep.equal([digest('a'), digest('b')]);
  });

  it('answers why not, and each reason is a transient outcome with the same public reason', async () => {
    const store = new FakeAttachments();
    const request = withFiles(aRequest(), store, [file('a')]);
    const missing = await loadAttachments(new FakeAttachments(), request)();
    const unwired = await loadAttachments(undefined, request)();
    store.down = true;
    const down = await loadAttachments(store, request)();
    const tags = [missing, unwired, down].map((r) => (E.isLeft(r) ? r.left._tag : 'loaded'));
    expect(tags).to.deep.equal(['AttachmentMissing', 'NoAttachmentStore', 'StoreUnavailable']);
    for (const result of [missing, unwired, down]) {
      if (E.isRight(result)) continue;
      const outcome = attachmentsOutcome(result.left);
      expect(outcome).to.deep.include({
        _tag: 'Transient',
        reason: 'an attachment could not be loaded',
      });
      expect(outcome.hint).to.be.a('string');
    }
  });
});

describe('encodeUnstructured', () => {
  it('leaves printable ASCII words as they are and encodes everything else whole', () => {
    expect(encodeUnstructured('Your order #123 (3 items)')).to.equal('Your order #123 (3 items)');
    for (const value of ['Grüße', ' leading', 'two  spaces', '=?UTF-8?Q?x?=', 'x'.repeat(901)]) {
      const encoded = encodeUnstructured(value);
      expect(encoded, value).to.match(
        /^=\?UTF-8\?[QB]\?[^?\s]+\?=(?: =\?UTF-8\?[QB]\?[^?\s]+\?=)*$/,
      );
      expect(decodeWords(encoded)).to.equal(value);
    }
  });
});
