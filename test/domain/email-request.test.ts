import { expect } from 'chai';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { createHash } from 'node:crypto';
import { draftOptions } from '../support/builders.js';
import {
  EmailRequest,
  MAX_BODY_OCTETS,
  MAX_SCHEDULE_MS,
  encodedSizeOf,
  parseEmailDraft,
  toEmailRequest,
} from '../../src/domain/email-request.js';
import type {
  AttachmentRef,
  DraftOptions,
  EmailDraft,
  EmailId,
} from '../../src/domain/email-request.js';

/** The rules' clock: `send_at` is judged against it. */
const NOW = new Date('2026-11-28T10:00:00.000Z');
const optionsWith = (o: Partial<DraftOptions> = {}): DraftOptions => ({
  ...draftOptions(NOW),
  ...o,
});
const valid = { to: 'ada@example.com', subject: 'Hi', text: 'Hello' };

const draftOf = (input: unknown, options: DraftOptions = optionsWith()): EmailDraft => {
  const parsed = parseEmailDraft(input, options);
  if (E.isLeft(parsed)) expect.fail(`refused: ${JSON.stringify(parsed.left.fields)}`);
  return parsed.right;
};

const fieldsOf = (
  input: unknown,
  options: DraftOptions = optionsWith(),
): Record<string, string> => {
  const parsed = parseEmailDraft(input, options);
  if (E.isRight(parsed)) expect.fail('accepted an invalid request');
  return { ...parsed.left.fields };
};

/** Refused with a message on exactly these fields, and no other. */
const refusedOn = (input: unknown, keys: readonly string[], options?: DraftOptions) => {
  const fields = fieldsOf(input, options);
  expect(Object.keys(fields).sort(), JSON.stringify(fields)).to.deep.equal([...keys].sort());
  for (const key of keys) expect(fields[key]).to.be.a('string').and.not.empty;
  return fields;
};

const addresses = (n: number, domain = 'example.com', from = 0): string[] =>
  Array.from({ length: n }, (_, i) => `u${from + i}@${domain}`);

const base64 = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64');
/** As a MIME body carries base64: lines of 76 characters ending in CRLF. */
const wrapped = (b: string): string => (b.match(/.{1,76}/g) ?? []).join('\r\n');
const anAttachment = (o: Record<string, unknown> = {}) => ({
  filename: 'report.pdf',
  content: base64('Hello'),
  ...o,
});
const withAttachments = (...attachments: unknown[]) => ({ ...valid, attachments });

describe('EmailRequest', () => {
  it('accepts one recipient as a string and several as a list', () => {
    expect(draftOf({ to: 'ada@example.com', subject: 'Hi', text: 'Hello' }).to).to.deep.equal([
      'ada@example.com',
    ]);
    expect(
      draftOf({ to: ['ada@example.com', 'Bob <bob@example.org>'], subject: 'Hi', html: '<p>x</p>' })
        .to,
    ).to.deep.equal(['ada@example.com', 'Bob <bob@example.org>']);
  });

  it('reports every problem at once, each on its field', () => {
    const fields = refusedOn({ to: ['ok@example.com', 'bad@@x'], subject: '', body: 'x' }, [
      'body',
      'subject',
      'text',
      'to[1]',
    ]);
    expect(fields['to[1]']).to.contain('bad@@x');
  });

  const table: readonly [string, unknown, string][] = [
    ['not an object', 'hello', 'body'],
    ['an array', [], 'body'],
    ['no recipient', { subject: 's', text: 't' }, 'to'],
    ['an empty recipient list', { to: [], subject: 's', text: 't' }, 'to'],
    ['an empty recipient', { to: '', subject: 's', text: 't' }, 'to'],
    ['51 recipients', { to: addresses(51), subject: 's', text: 't' }, 'to'],
    ['a number as recipient', { to: 42, subject: 's', text: 't' }, 'to'],
    ['a recipient list with a number', { to: ['a@example.com', 3], subject: 's', text: 't' }, 'to'],
    [
      'CR/LF in a recipient',
      { to: 'a@example.com\r\nBcc: eve@evil.com', subject: 's', text: 't' },
      'to',
    ],
    ['no subject', { to: 'a@example.com', text: 't' }, 'subject'],
    ['a blank subject', { to: 'a@example.com', subject: '   ', text: 't' }, 'subject'],
    [
      'a subject with LF',
      { to: 'a@example.com', subject: 'Hi\nBcc: eve@evil.com', text: 't' },
      'subject',
    ],
    ['a subject with CR', { to: 'a@example.com', subject: 'Hi\rthere', text: 't' }, 'subject'],
    ['a subject with a tab', { to: 'a@example.com', subject: 'Hi\tthere', text: 't' }, 'subject'],
    ['a subject with NEL', { to: 'a@example.com', subject: 'Hi\u0085there', text: 't' }, 'subject'],
    [
      'a 999-character subject',
      { to: 'a@example.com', subject: 'x'.repeat(999), text: 't' },
      'subject',
    ],
    ['a number as subject', { to: 'a@example.com', subject: 7, text: 't' }, 'subject'],
    ['no body', { to: 'a@example.com', subject: 's' }, 'text'],
    ['blank bodies', { to: 'a@example.com', subject: 's', text: ' ', html: '' }, 'text'],
    [
      'a text body that is not a string',
      { to: 'a@example.com', subject: 's', text: { a: 1 } },
      'text',
    ],
    [
      'an oversized text',
      { to: 'a@example.com', subject: 's', text: 'x'.repeat(MAX_BODY_OCTETS + 1) },
      'text',
    ],
    [
      'an oversized html',
      { to: 'a@example.com', subject: 's', html: 'é'.repeat(MAX_BODY_OCTETS / 2 + 1) },
      'html',
    ],
    ['a NUL in the text', { to: 'a@example.com', subject: 's', text: 'a\u0000b' }, 'text'],
    ['a NUL in the html', { to: 'a@example.com', subject: 's', html: '<p>\u0000</p>' }, 'html'],
    [
      'a lone surrogate in the text',
      { to: 'a@example.com', subject: 's', text: 'x\ud800' },
      'text',
    ],
    ['a lone surrogate in the html', { to: 'a@example.com', subject: 's', html: '\udfff' }, 'html'],
    ['a NUL in the subject', { to: 'a@example.com', subject: 'a\u0000b', text: 't' }, 'subject'],
    [
      'a lone surrogate in the subject',
      { to: 'a@example.com', subject: 'a\ud800', text: 't' },
      'subject',
    ],
    ['a NUL in a recipient', { to: 'a@example.com\u0000', subject: 's', text: 't' }, 'to'],
    [
      'a lone surrogate in a recipient',
      { to: ['Ada\ud800 <a@example.com>'], subject: 's', text: 't' },
      'to[0]',
    ],
    ['an unknown field', { ...valid, priority: 'high' }, 'priority'],
  ];
  for (const [what, input, field] of table) {
    it(`rejects ${what} on "${field}", and on nothing else`, () => {
      refusedOn(input, [field]);
    });
  }

  it('names the fields it knows when it refuses one it does not', () => {
    const fields = refusedOn({ ...valid, attachment: [] }, ['attachment']);
    expect(fields.attachment).to.equal(
      'is not a known field (use from, to, cc, bcc, reply_to, subject, text, html, headers, ' +
        'attachments, tags, metadata, send_at)',
    );
  });

  it('refuses a field named __proto__ like any other unknown field', () => {
    // JSON.parse makes it an own property; assigned to a plain object, its error would vanish.
    const fields = fieldsOf(
      JSON.parse('{"to":"a@example.com","subject":"s","text":"t","__proto__":1}'),
    );
    expect(Object.keys(fields)).to.deep.equal(['__proto__']);
  });

  it('names NUL and broken Unicode in words, field by field', () => {
    const fields = fieldsOf({
      to: ['ok@example.com', 'Ada\ud800 <a@example.com>', 'b@example.com\u0000'],
      subject: 'Hi \udc00',
      text: 'a\u0000b',
      html: '<p>\ud800</p>',
    });
    expect(fields).to.deep.equal({
      'to[1]': '"Ada\\ud800 <a@example.com>" is not valid Unicode (a lone surrogate)',
      'to[2]':
        '"b@example.com\\u0000" contains a NUL character, which is never allowed in an address',
      subject: 'is not valid Unicode (a lone surrogate)',
      text: 'must not contain NUL characters',
      html: 'is not valid Unicode (a lone surrogate)',
    });
    // Every message can itself be stored and shown: no lone surrogate survives into it.
    expect(Object.values(fields).some((m) => /\p{Surrogate}/u.test(m))).to.equal(false);
  });

  it('quotes a long address cut between characters, never inside an emoji', () => {
    const long = `${'a'.repeat(76)}😀${'b'.repeat(20)}@example.com`;
    const fields = fieldsOf({ to: [long], subject: 's', text: 't' });
    expect(fields['to[0]']).to.match(/^"a{76}😀\.\.\." /);
    expect(/\p{Surrogate}/u.test(fields['to[0]']!)).to.equal(false);
  });

  it('accepts whole emoji in the subject and the bodies', () => {
    expect(draftOf({ to: 'a@example.com', subject: '😀', text: '😀', html: '😀' })).to.include({
      subject: '😀',
    });
  });

  it('accepts a 998-character subject and unicode', () => {
    expect(
      draftOf({ to: 'a@example.com', subject: 'é'.repeat(998), text: 't' }).subject,
    ).to.have.length(998);
  });

  describe('control characters in one-line fields', () => {
    const controls: readonly [string, string][] = [
      ['NUL', '\u0000'],
      ['BEL', '\u0007'],
      ['ESC', '\u001b'],
      ['DEL', '\u007f'],
      ['C1 NEL', '\u0085'],
      ['C1 CSI', '\u009b'],
    ];
    for (const [name, c] of controls) {
      it(`refuses ${name} in the subject and in a header value, each on its field`, () => {
        refusedOn({ ...valid, subject: `a${c}b` }, ['subject']);
        const fields = refusedOn({ ...valid, headers: { 'X-Campaign': `a${c}b` } }, ['headers']);
        expect(fields.headers).to.match(/^X-Campaign /);
      });
    }
  });

  describe('from', () => {
    it('is optional: without it, the service sends from its own MAIL_FROM', () => {
      expect(draftOf(valid)).not.to.have.property('from');
    });

    it('accepts an address of an allowed domain, whatever the case of the domain', () => {
      expect(draftOf({ ...valid, from: 'Ada <ada@example.com>' }).from).to.equal(
        'Ada <ada@example.com>',
      );
      expect(draftOf({ ...valid, from: 'ada@EXAMPLE.Com' }).from?.toLowerCase()).to.equal(
        'ada@example.com',
      );
      expect(draftOf({ ...valid, from: 'news@Mg.Example.COM' }).from?.toLowerCase()).to.equal(
        'news@mg.example.com',
      );
    });

    it('refuses a domain not on the list, a subdomain of an allowed one included', () => {
      const fields = refusedOn({ ...valid, from: 'eve@evil.com' }, ['from']);
      expect(fields.from).to.contain('evil.com').and.contain('allowed: example.com');
      refusedOn({ ...valid, from: 'ada@sub.example.com' }, ['from']);
      refusedOn({ ...valid, from: 'ada@example.com.evil.com' }, ['from']);
    });

    it('refuses every sender when no domain is allowed', () => {
      const fields = refusedOn({ ...valid, from: 'ada@example.com' }, ['from'], {
        ...optionsWith(),
        allowedFromDomains: [],
      });
      expect(fields.from).not.to.contain('allowed:');
    });

    it('compares the ASCII form the options give for the domain', () => {
      const options = optionsWith({
        domainToAscii: (d) => (d === 'alias.test' ? 'example.com' : d),
      });
      expect(draftOf({ ...valid, from: 'ada@alias.test' }, options).from).to.be.a('string');
      refusedOn({ ...valid, from: 'ada@alias.test' }, ['from']);
    });

    it('refuses a list, even of one allowed address, and says so', () => {
      const one = refusedOn({ ...valid, from: ['ada@example.com'] }, ['from']);
      expect(one.from).to.equal('must be one address');
      // Not the first entry's domain: fixing that would only meet this refusal next.
      const other = refusedOn({ ...valid, from: ['eve@evil.com'] }, ['from']);
      expect(other.from).to.equal('must be one address');
    });

    it('refuses an address that does not parse, quoting it', () => {
      expect(refusedOn({ ...valid, from: 'not an address' }, ['from']).from).to.contain(
        '"not an address"',
      );
    });
  });

  describe('to, cc and bcc', () => {
    it('takes cc and bcc each as one address or a list', () => {
      const draft = draftOf({
        ...valid,
        cc: 'Carol <carol@example.com>',
        bcc: ['dave@example.org', 'erin@example.org'],
      });
      expect(draft.cc).to.deep.equal(['Carol <carol@example.com>']);
      expect(draft.bcc).to.deep.equal(['dave@example.org', 'erin@example.org']);
    });

    it('leaves out cc and bcc that are absent or empty', () => {
      const draft = draftOf({ ...valid, cc: [], bcc: '' });
      expect(draft).not.to.have.property('cc');
      expect(draft).not.to.have.property('bcc');
    });

    it('keys each bad address by its field and position', () => {
      refusedOn({ ...valid, cc: 'nope' }, ['cc']);
      refusedOn({ ...valid, cc: ['c@example.com', 'nope'] }, ['cc[1]']);
      refusedOn({ ...valid, bcc: ['nope', 'd@example.com'] }, ['bcc[0]']);
      refusedOn({ ...valid, bcc: 7 }, ['bcc']);
      refusedOn({ ...valid, cc: { to: 'c@example.com' } }, ['cc']);
      refusedOn({ ...valid, bcc: addresses(1001) }, ['bcc']);
      // 51 distinct recipients in all: counted once merged, and named on `to`.
      refusedOn({ ...valid, bcc: addresses(51) }, ['to']);
    });

    it('does not take cc or bcc in place of to', () => {
      refusedOn({ subject: 's', text: 't', cc: 'c@example.com', bcc: 'd@example.com' }, ['to']);
    });

    it('accepts 50 recipients over to, cc and bcc, and refuses 51 on "to"', () => {
      const fifty = {
        ...valid,
        to: addresses(20, 'example.com', 0),
        cc: addresses(20, 'example.com', 20),
        bcc: addresses(10, 'example.com', 40),
      };
      expect(draftOf(fifty).bcc).to.have.length(10);
      const fields = refusedOn({ ...fifty, bcc: addresses(11, 'example.com', 40) }, ['to']);
      expect(fields.to).to.contain('51').and.contain('50');
    });

    it('counts a mailbox given twice once: 50 in to and the same 50 in cc is 50', () => {
      const draft = draftOf({ ...valid, to: addresses(50), cc: addresses(50) });
      expect(draft.to).to.have.length(50);
      expect(draft).not.to.have.property('cc');
    });

    it('merges the same mailbox, whatever its display name or domain case, keeping the first', () => {
      const draft = draftOf({
        ...valid,
        to: ['Ada <ada@example.com>', 'bob@example.com', 'A. Lovelace <ada@EXAMPLE.COM>'],
        cc: ['Bobby <bob@Example.com>', 'carol@example.com', 'ada@example.com'],
        bcc: ['carol@EXAMPLE.com', 'dave@example.com', 'bob@example.com'],
      });
      expect(draft.to).to.deep.equal(['Ada <ada@example.com>', 'bob@example.com']);
      expect(draft.cc).to.deep.equal(['carol@example.com']);
      expect(draft.bcc).to.deep.equal(['dave@example.com']);
    });

    it('keeps mailboxes whose local parts differ in case apart (RFC 5321 §2.4)', () => {
      expect(draftOf({ ...valid, to: ['ada@example.com', 'Ada@example.com'] }).to).to.have.length(
        2,
      );
    });

    it('leaves a bcc that is only a copy of a recipient out altogether', () => {
      expect(draftOf({ ...valid, bcc: 'ADA <ada@Example.com>' })).not.to.have.property('bcc');
    });
  });

  describe('reply_to', () => {
    it('takes one address or a list, as replyTo', () => {
      expect(draftOf({ ...valid, reply_to: 'help@example.com' }).replyTo).to.deep.equal([
        'help@example.com',
      ]);
      expect(
        draftOf({ ...valid, reply_to: ['Help <help@example.com>', 'x@example.org'] }).replyTo,
      ).to.deep.equal(['Help <help@example.com>', 'x@example.org']);
      expect(draftOf(valid)).not.to.have.property('replyTo');
    });

    it('refuses a bad address on reply_to, or on its position', () => {
      refusedOn({ ...valid, reply_to: 'nope' }, ['reply_to']);
      refusedOn({ ...valid, reply_to: ['help@example.com', 'a@b.org\r\nBcc: e@evil.com'] }, [
        'reply_to[1]',
      ]);
      refusedOn({ ...valid, reply_to: 3 }, ['reply_to']);
    });
  });

  describe('headers', () => {
    it('accepts X- fields and the four named ones, in any case', () => {
      const headers = {
        'X-Campaign': 'spring',
        'x-mailer-run': '42',
        'list-unsubscribe': '<mailto:unsubscribe@example.com>',
        'LIST-UNSUBSCRIBE-POST': 'List-Unsubscribe=One-Click',
        'In-Reply-To': '<a@example.com>',
        references: '<a@example.com> <b@example.com>',
      };
      expect(draftOf({ ...valid, headers }).headers).to.deep.equal(headers);
    });

    for (const name of ['Subject', 'From', 'Bcc', 'Content-Type', 'Reply-To', 'X-', 'Xmailer']) {
      it(`refuses ${name} on "headers", naming it`, () => {
        expect(refusedOn({ ...valid, headers: { [name]: 'v' } }, ['headers']).headers).to.equal(
          `${name} is not a header you may set: use X-… or List-Unsubscribe, ` +
            'List-Unsubscribe-Post, In-Reply-To, References',
        );
      });
    }

    it('refuses X-Email-Id in any case: the service sets it', () => {
      for (const name of ['X-Email-Id', 'x-email-id', 'X-EMAIL-ID']) {
        expect(
          refusedOn({ ...valid, headers: { [name]: 'forged' } }, ['headers']).headers,
        ).to.equal(`${name} is set by this service`);
      }
    });

    it('refuses CR or LF in a value', () => {
      for (const value of ['a\r\nBcc: eve@evil.com', 'a\nb', 'a\rb']) {
        expect(
          refusedOn({ ...valid, headers: { 'X-Campaign': value } }, ['headers']).headers,
        ).to.equal('X-Campaign must be one line (no CR or LF)');
      }
    });

    it('refuses a name given twice, whatever its case', () => {
      expect(
        refusedOn({ ...valid, headers: { 'X-Tag': 'a', 'X-TAG': 'b' } }, ['headers']).headers,
      ).to.equal('names a header twice (names ignore case)');
      refusedOn({ ...valid, headers: { References: '<a@b>', references: '<c@d>' } }, ['headers']);
    });

    it('accepts 20 and refuses 21', () => {
      const some = (n: number) =>
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-H${i}`, 'v']));
      expect(Object.keys(draftOf({ ...valid, headers: some(20) }).headers ?? {})).to.have.length(
        20,
      );
      expect(refusedOn({ ...valid, headers: some(21) }, ['headers']).headers).to.contain('21');
    });

    it('refuses what is not an object of strings', () => {
      refusedOn({ ...valid, headers: ['X-A: b'] }, ['headers']);
      refusedOn({ ...valid, headers: 'X-A: b' }, ['headers']);
      refusedOn({ ...valid, headers: { 'X-A': 1 } }, ['headers']);
    });

    it('leaves out an empty object', () => {
      expect(draftOf({ ...valid, headers: {} })).not.to.have.property('headers');
    });
  });

  describe('attachments', () => {
    it('checks an 8 MB file without running out of stack (a 500 once, for files over 4 MB)', () => {
      const file = Buffer.alloc(8 * 1024 * 1024, 7);
      const draft = draftOf(withAttachments(anAttachment({ content: base64(file) })));
      expect(draft.attachments?.[0]?.size).to.equal(file.length);
      const fields = fieldsOf(withAttachments(anAttachment({ content: `${base64(file)}A` })));
      expect(fields['attachments[0].content']).to.match(/base64/);
    });

    it('keeps each file checked, its base64 compacted, with its decoded size', () => {
      const pdf = Buffer.from('%PDF-1.7 a report'.repeat(20));
      const draft = draftOf(
        withAttachments(
          anAttachment({ content: wrapped(base64(pdf)), content_type: 'application/pdf' }),
          {
            filename: 'logo.png',
            content: base64('png'),
            content_type: 'image/png',
            content_id: 'logo@example.com',
          },
        ),
      );
      expect(draft.attachments).to.deep.equal([
        {
          filename: 'report.pdf',
          content: base64(pdf),
          size: pdf.length,
          contentType: 'application/pdf',
        },
        {
          filename: 'logo.png',
          content: base64('png'),
          size: 3,
          contentType: 'image/png',
          contentId: 'logo@example.com',
        },
      ]);
    });

    it('gives the decoded size of any content, however its lines are broken', () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 1, maxLength: 400, size: 'max' }),
          fc.constantFrom('\r\n', '\n', ' ', '\t', ''),
          (bytes, gap) => {
            const content = (base64(bytes).match(/.{1,76}/g) ?? []).join(gap);
            const [file] = draftOf(withAttachments(anAttachment({ content }))).attachments ?? [];
            expect(file?.size).to.equal(bytes.length);
            expect(Buffer.from(file?.content ?? '', 'base64')).to.deep.equal(Buffer.from(bytes));
          },
        ),
      );
    });

    it('tolerates spaces, tabs and line breaks anywhere in the content', () => {
      const [file] =
        draftOf(withAttachments(anAttachment({ content: ' SGVs\r\n\tbG8g\nd29y bGQ=\r\n ' })))
          .attachments ?? [];
      expect(file).to.include({ content: 'SGVsbG8gd29ybGQ=', size: 11 });
    });

    it('accepts 20 and refuses 21 on "attachments"', () => {
      const files = (n: number) =>
        Array.from({ length: n }, (_, i) => anAttachment({ filename: `f${i}.txt` }));
      expect(draftOf(withAttachments(...files(20))).attachments).to.have.length(20);
      expect(refusedOn(withAttachments(...files(21)), ['attachments']).attachments).to.contain(
        '21',
      );
    });

    it('refuses what is not a list, or a list item that is not an object', () => {
      refusedOn({ ...valid, attachments: anAttachment() }, ['attachments']);
      refusedOn(withAttachments(anAttachment(), 'report.pdf'), ['attachments[1]']);
    });

    const refused: readonly [string, Record<string, unknown>, string][] = [
      ['no filename', { filename: undefined }, 'filename'],
      ['a filename that is not a string', { filename: 5 }, 'filename'],
      ['an empty filename', { filename: '' }, 'filename'],
      ['a blank filename', { filename: '   ' }, 'filename'],
      ['a filename with /', { filename: '../etc/passwd' }, 'filename'],
      ['a filename with \\', { filename: 'C:\\report.pdf' }, 'filename'],
      ['a filename with a line break', { filename: 'a\r\nb.pdf' }, 'filename'],
      ['a filename with NUL', { filename: 'a\u0000.pdf' }, 'filename'],
      ['a filename with BEL', { filename: 'a\u0007.pdf' }, 'filename'],
      ['a filename with a C1 control', { filename: 'a\u0085.pdf' }, 'filename'],
      ['a 256-character filename', { filename: 'x'.repeat(256) }, 'filename'],
      [
        'a filename with a right-to-left override',
        { filename: 'invoice\u202Efdp.exe' },
        'filename',
      ],
      ['a filename with a bidirectional isolate', { filename: 'a\u2067b.pdf' }, 'filename'],
      ['no content', { content: undefined }, 'content'],
      ['content that is not a string', { content: 42 }, 'content'],
      ['empty content', { content: '' }, 'content'],
      ['content of whitespace only', { content: ' \r\n\t' }, 'content'],
      ['base64 without its padding', { content: 'SGVsbG8' }, 'content'],
      ['base64 without any of its padding', { content: 'SGk' }, 'content'],
      ['too much padding', { content: 'SGk==' }, 'content'],
      ['padding in the middle', { content: 'SG==SGVs' }, 'content'],
      ['base64url characters', { content: 'ab-_' }, 'content'],
      ['characters outside base64', { content: 'SGV*bG8=' }, 'content'],
      ['a content type without a subtype', { content_type: 'png' }, 'content_type'],
      ['an empty content type', { content_type: '' }, 'content_type'],
      [
        'a content type with a line break',
        { content_type: 'text/plain\r\nBcc: eve@evil.com' },
        'content_type',
      ],
      ['a content type that is not a string', { content_type: ['text/plain'] }, 'content_type'],
      ['a content id in angle brackets', { content_id: '<logo@example.com>' }, 'content_id'],
      ['a content id with a space', { content_id: 'my logo' }, 'content_id'],
      ['an empty content id', { content_id: '' }, 'content_id'],
      ['a 201-character content id', { content_id: 'x'.repeat(201) }, 'content_id'],
      ['an unknown key', { disposition: 'inline' }, 'disposition'],
      ['a key spelt as the codec spells it', { contentType: 'image/png' }, 'contentType'],
    ];
    for (const [what, change, key] of refused) {
      it(`refuses ${what} on "attachments[1].${key}"`, () => {
        refusedOn(withAttachments(anAttachment(), anAttachment(change)), [`attachments[1].${key}`]);
      });
    }

    it('says a filename or content of another type must be a string, not that it is missing', () => {
      const given = fieldsOf(withAttachments(anAttachment({ filename: 5, content: [1] })));
      expect(given['attachments[0].filename']).to.equal('must be a string');
      expect(given['attachments[0].content']).to.equal(
        'must be a string: the file, base64-encoded',
      );
      const missing = fieldsOf(
        withAttachments(anAttachment({ filename: undefined, content: undefined })),
      );
      expect(missing['attachments[0].filename']).to.equal('is required (a string)');
      expect(missing['attachments[0].content']).to.equal('is required: the file, base64-encoded');
    });

    it('accepts media types with parameters, quoted or not', () => {
      for (const type of [
        'text/csv; charset=utf-8',
        'text/plain;charset="utf-8"',
        'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
        'multipart/mixed; boundary="a b"',
      ]) {
        expect(
          draftOf(withAttachments(anAttachment({ content_type: type }))).attachments?.[0],
        ).to.have.property('contentType', type);
      }
    });

    it('refuses the same content id on two attachments, on the second', () => {
      const fields = refusedOn(
        withAttachments(
          anAttachment({ content_id: 'logo' }),
          anAttachment({ content_id: 'chart' }),
          anAttachment({ content_id: 'logo' }),
        ),
        ['attachments[2].content_id'],
      );
      expect(fields['attachments[2].content_id']).to.contain('"logo"');
    });

    it('reports the problems of several files at once', () => {
      refusedOn(
        withAttachments(
          anAttachment({ filename: 'a/b' }),
          anAttachment(),
          anAttachment({ content: 'x', content_id: '<>' }),
        ),
        ['attachments[0].filename', 'attachments[2].content', 'attachments[2].content_id'],
      );
    });

    it('leaves out an empty list', () => {
      expect(draftOf({ ...valid, attachments: [] })).not.to.have.property('attachments');
    });
  });

  describe('tags', () => {
    it('keeps each tag once', () => {
      expect(draftOf({ ...valid, tags: ['welcome', 'a_b-1', 'welcome'] }).tags).to.deep.equal([
        'welcome',
        'a_b-1',
      ]);
    });

    it('refuses a bad tag, more than 10, or what is not a list of strings', () => {
      expect(refusedOn({ ...valid, tags: ['ok', 'not ok'] }, ['tags']).tags).to.contain('"not ok"');
      refusedOn({ ...valid, tags: ['x'.repeat(65)] }, ['tags']);
      refusedOn({ ...valid, tags: [''] }, ['tags']);
      refusedOn({ ...valid, tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }, ['tags']);
      refusedOn({ ...valid, tags: 'welcome' }, ['tags']);
      refusedOn({ ...valid, tags: [1] }, ['tags']);
    });
  });

  describe('metadata', () => {
    const pairs = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

    it('keeps up to 20 pairs', () => {
      const metadata = { ...pairs(19), 'user.id-42_x': 'x'.repeat(500) };
      expect(draftOf({ ...valid, metadata }).metadata).to.deep.equal(metadata);
    });

    const refused: readonly [string, unknown, string][] = [
      ['21 pairs', pairs(21), 'has 21 pairs; at most 20'],
      ['a key with a space', { 'user id': 'v' }, 'key "user id" must be'],
      ['an empty key', { '': 'v' }, 'key "" must be'],
      ['a 41-character key', { ['k'.repeat(41)]: 'v' }, 'must be 1 to 40'],
      ['the key email-id', { 'email-id': 'forged' }, 'key "email-id" is used by this service'],
      ['a 501-character value', { note: 'x'.repeat(501) }, 'value of "note" is longer than 500'],
      ['NUL in a value', { note: 'a\u0000b' }, 'value of "note" must not contain NUL'],
      ['a value that is not a string', { n: 1 }, 'must be an object whose values are strings'],
      ['a list', ['a'], 'must be an object whose values are strings'],
    ];
    for (const [what, metadata, message] of refused) {
      it(`refuses ${what} on "metadata"`, () => {
        expect(refusedOn({ ...valid, metadata }, ['metadata']).metadata).to.contain(message);
      });
    }

    it('accepts a 40-character key', () => {
      expect(draftOf({ ...valid, metadata: { ['k'.repeat(40)]: 'v' } }).metadata).to.have.property(
        'k'.repeat(40),
      );
    });
  });

  describe('send_at', () => {
    const at = (sendAt: unknown, now = NOW) =>
      draftOf({ ...valid, send_at: sendAt }, optionsWith({ now }));
    const refuses = (sendAt: unknown, now = NOW) =>
      refusedOn({ ...valid, send_at: sendAt }, ['send_at'], optionsWith({ now })).send_at;

    it('is optional', () => {
      expect(draftOf(valid)).not.to.have.property('sendAt');
      expect(draftOf({ ...valid, send_at: null })).not.to.have.property('sendAt');
    });

    it('is normalised to ISO UTC, whatever offset it was given in', () => {
      expect(at('2026-12-01T09:00:00Z').sendAt).to.equal('2026-12-01T09:00:00.000Z');
      expect(at('2026-12-01T10:30:00+01:30').sendAt).to.equal('2026-12-01T09:00:00.000Z');
      expect(at('2026-12-01T04:00:00-05:00').sendAt).to.equal('2026-12-01T09:00:00.000Z');
      expect(at('2026-12-01t09:00:00.25z').sendAt).to.equal('2026-12-01T09:00:00.250Z');
    });

    it('refuses a time without its offset, or that is not RFC 3339', () => {
      for (const value of [
        '2026-12-01T09:00:00',
        '2026-12-01',
        '2026-12-01T09:00Z',
        '2026-12-01 09:00:00Z',
        'Tue, 01 Dec 2026 09:00:00 GMT',
        'tomorrow',
        '',
        1796115600000,
        { at: '2026-12-01T09:00:00Z' },
      ]) {
        expect(refuses(value), String(value)).to.contain('RFC 3339');
      }
    });

    it('refuses a day the month does not have, or hour 24, instead of rolling it over', () => {
      const now = new Date('2027-02-10T00:00:00Z');
      expect(refuses('2027-02-29T09:00:00Z', now)).to.contain('RFC 3339');
      expect(refuses('2027-02-30T09:00:00Z', now)).to.contain('RFC 3339');
      expect(refuses('2027-02-20T24:00:00Z', now)).to.contain('RFC 3339');
      expect(refuses('2027-02-20T09:60:00Z', now)).to.contain('RFC 3339');
      expect(at('2027-02-28T23:59:59Z', now).sendAt).to.equal('2027-02-28T23:59:59.000Z');
      expect(at('2028-02-29T09:00:00Z', new Date('2028-02-10T00:00:00Z')).sendAt).to.equal(
        '2028-02-29T09:00:00.000Z',
      );
    });

    it('refuses a time in the past, now itself included', () => {
      expect(refuses('2026-11-28T09:59:59Z')).to.contain('in the past');
      expect(refuses(NOW.toISOString())).to.contain('in the past');
      expect(at('2026-11-28T10:00:00.001Z').sendAt).to.equal('2026-11-28T10:00:00.001Z');
      // The same instant in another offset is just as past.
      expect(refuses('2026-11-28T10:59:59+01:00')).to.contain('in the past');
    });

    it('accepts up to 30 days ahead, and refuses a millisecond more', () => {
      const limit = new Date(NOW.getTime() + MAX_SCHEDULE_MS).toISOString();
      expect(limit).to.equal('2026-12-28T10:00:00.000Z');
      expect(at(limit).sendAt).to.equal(limit);
      expect(refuses('2026-12-28T10:00:00.001Z')).to.contain('more than 30 days');
    });
  });

  describe('encodedSizeOf', () => {
    const sizeWith = (...bytes: number[]) =>
      encodedSizeOf(
        draftOf(
          withAttachments(
            ...bytes.map((n, i) =>
              anAttachment({ filename: `f${i}`, content: base64(Buffer.alloc(n, i)) }),
            ),
          ),
        ),
      );
    /** What a MIME part's body really takes: base64 in lines of 76 with CRLF. */
    const mimeBase64 = (n: number) => wrapped(base64(Buffer.alloc(n))).length + 2;

    it('counts an attachment at least as large as its base64 lines', () => {
      const bare = encodedSizeOf(draftOf(valid));
      for (const n of [1, 2, 3, 57, 1000, 100_000]) {
        expect(sizeWith(n) - bare, `${n} bytes`).to.be.at.least(mimeBase64(n));
      }
    });

    it('grows by about 4/3 of what the files add', () => {
      const grown = sizeWith(400_000) - sizeWith(100_000);
      expect(grown / 300_000).to.be.within(4 / 3, (4 / 3) * 1.05);
      expect(sizeWith(1000, 1000) - sizeWith(1000)).to.be.at.least(mimeBase64(1000));
    });

    it('grows with the bodies, in UTF-8 octets', () => {
      const text = (body: string) => encodedSizeOf(draftOf({ ...valid, text: body }));
      expect(text('x'.repeat(100_000)) - text('x')).to.be.at.least(99_999);
      expect(text('é'.repeat(100_000)) - text('e'.repeat(100_000))).to.be.at.least(100_000);
      const withHtml = encodedSizeOf(draftOf({ ...valid, html: 'h'.repeat(50_000) }));
      expect(withHtml - encodedSizeOf(draftOf(valid))).to.be.at.least(50_000);
    });
  });

  describe('toEmailRequest', () => {
    const id = 'abcdefgh12345678' as EmailId;
    const when = new Date('2026-11-28T10:00:01Z');
    const refOf = (content: Buffer, o: Partial<AttachmentRef> = {}): AttachmentRef => ({
      filename: 'report.pdf',
      digest: createHash('sha256').update(content).digest('hex'),
      size: content.length,
      ...o,
    });

    it('gets an id and a time, and then round-trips through its codec', () => {
      const request = toEmailRequest(draftOf(valid), id, new Date('2026-01-02T03:04:05Z'));
      expect(request.requestedAt).to.equal('2026-01-02T03:04:05.000Z');
      expect(EmailRequest.decode(JSON.parse(JSON.stringify(request)))).to.deep.equal(
        E.right(request),
      );
    });

    it('carries the refs in place of the files, and every other field as parsed', () => {
      const pdf = Buffer.from('%PDF');
      const draft = draftOf({
        ...valid,
        from: 'Ada <ada@example.com>',
        cc: 'carol@example.com',
        bcc: 'dave@example.com',
        reply_to: 'help@example.com',
        html: '<p>Hello</p>',
        headers: { 'X-Campaign': 'spring' },
        attachments: [
          anAttachment({ content: base64(pdf), content_type: 'application/pdf' }),
          anAttachment({ filename: 'logo.png', content: base64('png'), content_id: 'logo' }),
        ],
        tags: ['welcome'],
        metadata: { user: '42' },
        send_at: '2026-12-01T09:00:00Z',
      });
      const refs = [
        refOf(pdf, { contentType: 'application/pdf' }),
        refOf(Buffer.from('png'), { filename: 'logo.png', contentId: 'logo' }),
      ];
      const request = toEmailRequest(draft, id, when, refs);
      const { attachments: _files, ...rest } = draft;
      expect(request).to.deep.equal({
        ...rest,
        id,
        requestedAt: '2026-11-28T10:00:01.000Z',
        attachments: refs,
      });
      const json = JSON.stringify(request);
      expect(json).not.to.contain(base64(pdf));
      expect(json).not.to.contain('"content"');
      expect(EmailRequest.decode(JSON.parse(json))).to.deep.equal(E.right(request));
    });

    it('has no attachments when no refs are given', () => {
      const draft = draftOf(withAttachments(anAttachment()));
      expect(toEmailRequest(draft, id, when)).not.to.have.property('attachments');
    });

    it('throws on a ref no store could have made: a bug, not bad input', () => {
      const draft = draftOf(valid);
      expect(() =>
        toEmailRequest(draft, id, when, [refOf(Buffer.from('x'), { digest: 'abc' })]),
      ).to.throw();
    });

    // Review (rev2): a draft parseEmailDraft made is no longer re-validated by toEmailRequest
    // (the WeakSet `parsed`), but a draft is a plain mutable object: changed after parsing, it
    // used to be refused here as a bug, and must still be, or the brand can be granted to an
    // invalid request (no recipient, a header-injecting subject, no body) that the queue and the
    // worker then take as valid.
    for (const [what, change] of [
      ['its recipients emptied', (d: Record<string, unknown>) => (d.to = [])],
      ['a recipient that is no address', (d: Record<string, unknown>) => (d.to = ['nobody'])],
      ['a subject with CR LF', (d: Record<string, unknown>) => (d.subject = 'a\r\nBcc: x@y.z')],
      ['its body removed', (d: Record<string, unknown>) => delete d.text],
    ] as const) {
      it(`throws on a parsed draft changed afterwards: ${what}`, () => {
        const draft = draftOf(valid);
        try {
          change(draft as unknown as Record<string, unknown>);
        } catch {
          return; // a frozen draft refuses the change itself: as good
        }
        expect(() => toEmailRequest(draft, id, when)).to.throw();
      });
    }
  });

  describe('the EmailRequest codec', () => {
    const base = {
      id: 'abcdefgh12345678',
      to: ['a@example.com'],
      subject: 's',
      text: 't',
      requestedAt: 'x',
    };
    const decodes = (value: unknown) => E.isRight(EmailRequest.decode(value));

    it('still decodes a stored request whose file name has a bidirectional control', () => {
      // Accepted before such names were refused: it must still leave the queue and the log.
      const attachments = [{ filename: 'invoice\u202Efdp.exe', digest: 'a'.repeat(64), size: 3 }];
      expect(decodes({ ...base, attachments })).to.equal(true);
    });

    it('cannot be decoded invalid: no body, bad id or a forged address', () => {
      expect(decodes(base)).to.equal(true);
      expect(decodes({ ...base, text: undefined })).to.equal(false);
      expect(decodes({ ...base, text: undefined, html: '<p>x</p>' })).to.equal(true);
      expect(decodes({ ...base, text: '  ', html: '' })).to.equal(false);
      expect(decodes({ ...base, id: 'a/b' })).to.equal(false);
      expect(decodes({ ...base, to: ['a@example.com\nBcc: e@evil.com'] })).to.equal(false);
      expect(decodes({ ...base, to: [] })).to.equal(false);
      // An email always has a To (the suppression list stops one whose every To is on it).
      expect(decodes({ ...base, to: [], cc: ['c@example.com'] })).to.equal(false);
      // A task off the queue is held to the same rules as a form.
      expect(decodes({ ...base, text: 'a\u0000' })).to.equal(false);
      expect(decodes({ ...base, subject: 's\ud800' })).to.equal(false);
    });

    it('refuses more than 50 recipients in to, cc and bcc together', () => {
      const spread = (bcc: number) => ({
        ...base,
        to: addresses(20),
        cc: addresses(20, 'example.com', 20),
        bcc: addresses(bcc, 'example.com', 40),
      });
      expect(decodes(spread(10))).to.equal(true);
      expect(decodes(spread(11))).to.equal(false);
      expect(decodes({ ...base, to: addresses(51) })).to.equal(false);
    });

    it('refuses more than 20 attachments, and a ref without a digest', () => {
      const ref = { filename: 'a.txt', digest: 'a'.repeat(64), size: 1 };
      expect(decodes({ ...base, attachments: Array(20).fill(ref) })).to.equal(true);
      expect(decodes({ ...base, attachments: Array(21).fill(ref) })).to.equal(false);
      expect(decodes({ ...base, attachments: [{ filename: 'a.txt', size: 1 }] })).to.equal(false);
      expect(decodes({ ...base, attachments: [{ ...ref, filename: 'a/b' }] })).to.equal(false);
    });

    it('refuses headers and metadata the parser would refuse', () => {
      expect(decodes({ ...base, headers: { 'X-Email-Id': 'forged' } })).to.equal(false);
      expect(decodes({ ...base, headers: { Bcc: 'eve@evil.com' } })).to.equal(false);
      expect(decodes({ ...base, headers: { 'X-A': 'a\r\nBcc: eve@evil.com' } })).to.equal(false);
      expect(decodes({ ...base, metadata: { 'email-id': 'x' } })).to.equal(false);
    });
  });

  describe('what a review found', () => {
    it('refuses X-Mailgun-* headers: Mailgun reads them as instructions', () => {
      for (const name of ['X-Mailgun-Variables', 'x-mailgun-drop-message', 'X-Mailgun-Tag']) {
        expect(fieldsOf({ ...valid, headers: { [name]: 'x' } }).headers).to.match(/Mailgun/);
      }
    });

    it('refuses a content_type with a line break or a line separator', () => {
      for (const contentType of [
        'text/plain;\r\n\r\nx=y',
        'text/plain\u2028;x=y',
        'text/plain;\nx=y',
      ]) {
        const fields = fieldsOf(withAttachments(anAttachment({ content_type: contentType })));
        expect(fields['attachments[0].content_type'], JSON.stringify(contentType)).to.be.a(
          'string',
        );
      }
      expect(
        draftOf(withAttachments(anAttachment({ content_type: 'text/plain; charset=utf-8' }))),
      ).to.have.property('attachments');
    });

    it('refuses In-Reply-To and References that could not be sent whole', () => {
      const long = `<${'a'.repeat(990)}@b>`;
      expect(fieldsOf({ ...valid, headers: { 'In-Reply-To': long } }).headers).to.match(/900/);
      const almost = `<${'r'.repeat(905)}@b>`;
      expect(fieldsOf({ ...valid, headers: { References: `<x@y> ${almost}` } }).headers).to.match(
        /900/,
      );
      expect(fieldsOf({ ...valid, headers: { References: '<€@x>' } }).headers).to.match(/ASCII/);
      expect(draftOf({ ...valid, headers: { References: '<a@x> <b@y>' } }).headers).to.deep.equal({
        References: '<a@x> <b@y>',
      });
    });

    it('counts distinct recipients: 50 addresses and a repeat of one in the same field are 50', () => {
      const fifty = addresses(50);
      const draft = draftOf({ ...valid, to: [...fifty, fifty[0]] });
      expect(draft.to).to.have.length(50);
    });
  });
});
