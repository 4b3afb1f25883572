import { createHash } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { simpleParser } from 'mailparser';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import { buildRawMessage } from '../../../src/adapters/mime/mime-message.js';
import { textAlternative } from '../../../src/adapters/mime/text-alternative.js';
import { EmailId, parseEmailDraft, toEmailRequest } from '../../../src/domain/email-request.js';
import { FakeAttachments } from '../../contracts/email-sender.contract.js';
import { T0, anAddress, draftOptions } from '../../support/builders.js';

// Random seeds; a failure prints the seed and path that replay it (fc.assert's message).
const runs = { numRuns: 100 };
const FROM = anAddress('Email Example <noreply@sender.example.org>');
const options = {
  ...draftOptions(T0),
  allowedFromDomains: ['example.org', 'xn--bcher-kva.de'],
  domainToAscii,
};

/** Pieces that matter to a MIME writer, so random text hits its edges often. */
const piece = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...Array.from('abcXYZ019 .,-')) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '\n',
      '\r',
      '\r\n',
      '\t',
      '  ',
      '=',
      '?',
      '"',
      '\\',
      '_',
      '=?',
      '?=',
      '=?UTF-8?Q?x?=',
      '--',
      '.\r\n',
      'From ',
      'Bcc: x@evil.example',
    ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom('ü', 'ß', 'ж', '中', '😀', '\u00a0', '\u0301', '\u2028'),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
  // A word no line can hold, of one character or of a few.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('x', 'ü', '=', '😀', 'ab'), fc.integer({ min: 70, max: 1200 }))
      .map(([c, times]) => c.repeat(times)),
  },
);
const text = (maxPieces: number) =>
  fc.array(piece, { maxLength: maxPieces }).map((p) => p.join(''));

/** Code points, cut to `max` without splitting a pair. */
const clip = (s: string, max: number): string => [...s].slice(0, max).join('');
/** What a one-line field may hold: no control characters (the domain refuses them). */
const oneLine = (s: string, max: number): string => clip(s.replace(/\p{Cc}/gu, ' '), max);

const subject = text(30)
  .map((s) => oneLine(s, 998))
  .filter((s) => s.trim() !== '');

const quote = (name: string): string => `"${name.replace(/(["\\])/g, '\\$1')}"`;
/** A display name is at most 256 UTF-16 units, and an address may hold no line separator. */
const displayName = text(8).map((s) => {
  const chars = [...oneLine(s.replace(/\u2028/g, ' '), 256)];
  while (chars.join('').length > 256) chars.pop();
  return chars.join('');
});
const mailbox = (local: string) =>
  fc
    .tuple(displayName, fc.constantFrom('example.org', 'bücher.de', 'EXAMPLE.org'))
    .map(([name, domain]) =>
      name.trim() === '' ? `${local}@${domain}` : `${quote(name)} <${local}@${domain}>`,
    );

const headerValue = text(20).map((s) => oneLine(s, 998));
/** In-Reply-To and References hold ASCII message ids, as the API requires. */
const messageIds = fc
  .array(fc.stringMatching(/^<[A-Za-z0-9._%+-]{1,40}@[a-z0-9.-]{1,30}>$/), {
    minLength: 1,
    maxLength: 4,
  })
  .map((ids) => ids.join(' '));
const headers = fc
  .tuple(
    fc.dictionary(fc.constantFrom('X-Note', 'X-Trace', 'List-Unsubscribe'), headerValue, {
      maxKeys: 3,
    }),
    fc.option(messageIds, { nil: undefined }),
    fc.option(messageIds, { nil: undefined }),
  )
  .map(([named, inReplyTo, references]) => ({
    ...named,
    ...(inReplyTo !== undefined ? { 'In-Reply-To': inReplyTo } : {}),
    ...(references !== undefined ? { References: references } : {}),
  }));

const attachment = fc.record({
  filename: fc.constantFrom('a.pdf', 'b.txt', 'Grüße März.csv', `${'n'.repeat(200)}.bin`, 'x'),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 3000 }),
  contentType: fc.option(
    fc.constantFrom(
      'application/pdf',
      'text/plain; charset=utf-8',
      'message/rfc822',
      'application/octet-stream',
    ),
    { nil: undefined },
  ),
  inline: fc.boolean(),
});

const draftInput = fc.record({
  to: fc.array(mailbox('to'), { minLength: 1, maxLength: 3 }),
  cc: fc.array(mailbox('cc'), { maxLength: 2 }),
  bcc: fc.array(mailbox('bcc'), { maxLength: 2 }),
  reply_to: fc.array(mailbox('reply'), { maxLength: 1 }),
  subject,
  text: fc.option(text(60), { nil: undefined }),
  html: fc.option(
    text(30).map((s) => `<p>${s.replace(/[<>&]/g, ' ')}</p>`),
    { nil: undefined },
  ),
  headers,
  attachments: fc.array(attachment, { maxLength: 3 }),
});

let n = 0;

describe('buildRawMessage, for any request the domain accepts', () => {
  it('writes only CRLF lines of at most 998 octets that mailparser reads back as the request', async () => {
    await fc.assert(
      fc.asyncProperty(draftInput, async ({ attachments, to, ...input }) => {
        // Distinct local parts, so no recipient is dropped as a duplicate of another.
        const draft = parseEmailDraft(
          {
            ...input,
            to: to.map((a, i) => a.replace('to@', `to${i}@`)),
            // A body is required; give one when the draw gave none.
            ...((input.text ?? input.html ?? '').trim() === '' ? { text: 'x' } : {}),
            // Inline parts are images, as the html refers to them: an inline text/plain part
            // would be read into the body by mailparser.
            attachments: attachments.map((a, i) => ({
              filename: a.filename,
              content: Buffer.from(a.bytes).toString('base64'),
              ...(a.inline
                ? { content_type: 'image/png', content_id: `part${i}@example.org` }
                : a.contentType !== undefined
                  ? { content_type: a.contentType }
                  : {}),
            })),
          },
          options,
        );
        if (E.isLeft(draft)) throw new Error(JSON.stringify(draft.left.fields));
        const store = new FakeAttachments();
        const refs = (draft.right.attachments ?? []).map(({ content, ...file }) => {
          const bytes = Buffer.from(content, 'base64');
          return { ...file, digest: store.add(bytes), size: bytes.byteLength };
        });
        const id = `prop-${(n += 1)}-email`;
        if (!EmailId.is(id)) throw new Error(`${id} is not an EmailId`);
        const request = toEmailRequest(draft.right, id, T0, refs);

        const message = await buildRawMessage(request, FROM, store.files);
        expect((await buildRawMessage(request, FROM, store.files)).equals(message)).to.equal(true);
        expect(message.every((octet) => octet < 0x80)).to.equal(true);
        const wire = message.toString('latin1');
        expect(wire).not.to.match(/\r(?!\n)|(?<!\r)\n/);
        for (const line of wire.split('\r\n')) expect(line.length).to.be.at.most(998);

        const mail = await simpleParser(message);
        expect(mail.subject).to.equal(request.subject);
        // Text is canonical CRLF on the wire; a 7bit part's last line break is the delimiter's.
        const lf = (s: string | undefined): string => (s ?? '').replace(/\r\n|\r|\n/g, '\n');
        const expected = lf(textAlternative(request));
        expect([expected, `${expected}\n`]).to.include(lf(mail.text));
        const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
        expect(mail.attachments.map((a) => sha(a.content)).sort()).to.deep.equal(
          refs.map((r) => r.digest).sort(),
        );
        expect(mail.attachments.map((a) => a.filename).sort()).to.deep.equal(
          refs.map((r) => r.filename).sort(),
        );
        expect(mail.headerLines.map((h) => h.key)).not.to.include('bcc');
      }),
      runs,
    );
  });
});
