import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import {
  EmailRequest,
  MAX_BODY_OCTETS,
  parseEmailDraft,
  toEmailRequest,
} from '../../src/domain/email-request.js';
import type { EmailId } from '../../src/domain/email-request.js';

const fieldsOf = (input: unknown): Record<string, string> => {
  const parsed = parseEmailDraft(input);
  if (E.isRight(parsed)) expect.fail('accepted an invalid request');
  return { ...parsed.left.fields };
};

describe('EmailRequest', () => {
  it('accepts one recipient as a string and several as a list', () => {
    const one = parseEmailDraft({ to: 'ada@example.com', subject: 'Hi', text: 'Hello' });
    const many = parseEmailDraft({
      to: ['ada@example.com', 'Bob <bob@example.org>'],
      subject: 'Hi',
      html: '<p>x</p>',
    });
    expect(E.isRight(one) && one.right.to).to.deep.equal(['ada@example.com']);
    expect(E.isRight(many) && many.right.to).to.deep.equal([
      'ada@example.com',
      'Bob <bob@example.org>',
    ]);
  });

  it('reports every problem at once, each on its field', () => {
    const fields = fieldsOf({ to: ['ok@example.com', 'bad@@x'], subject: '', body: 'x' });
    expect(Object.keys(fields).sort()).to.deep.equal(['body', 'subject', 'text', 'to[1]']);
    expect(fields['to[1]']).to.contain('bad@@x');
  });

  const table: readonly [string, unknown, string][] = [
    ['not an object', 'hello', 'body'],
    ['an array', [], 'body'],
    ['no recipient', { subject: 's', text: 't' }, 'to'],
    ['an empty recipient list', { to: [], subject: 's', text: 't' }, 'to'],
    [
      '51 recipients',
      { to: Array.from({ length: 51 }, (_, i) => `u${i}@example.com`), subject: 's', text: 't' },
      'to',
    ],
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
    [
      'an unknown field',
      { to: 'a@example.com', subject: 's', text: 't', cc: 'x@example.com' },
      'cc',
    ],
  ];
  for (const [what, input, field] of table) {
    it(`rejects ${what} on "${field}"`, () => {
      const fields = fieldsOf(input);
      expect(fields).to.have.property(field).that.is.a('string').and.not.empty;
    });
  }

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
    const parsed = parseEmailDraft({ to: 'a@example.com', subject: '😀', text: '😀', html: '😀' });
    expect(E.isRight(parsed)).to.equal(true);
  });

  it('accepts a 998-character subject and unicode', () => {
    expect(
      E.isRight(parseEmailDraft({ to: 'a@example.com', subject: 'é'.repeat(998), text: 't' })),
    ).to.equal(true);
  });

  it('gets an id and a time, and then round-trips through its codec', () => {
    const draft = parseEmailDraft({ to: 'a@example.com', subject: 's', text: 't' });
    if (E.isLeft(draft)) expect.fail('rejected');
    const request = toEmailRequest(
      draft.right,
      'abcdefgh12345678' as EmailId,
      new Date('2026-01-02T03:04:05Z'),
    );
    expect(request.requestedAt).to.equal('2026-01-02T03:04:05.000Z');
    expect(EmailRequest.decode(JSON.parse(JSON.stringify(request)))).to.deep.equal(
      E.right(request),
    );
  });

  it('cannot be decoded invalid: no body, bad id or a forged address', () => {
    const base = {
      id: 'abcdefgh12345678',
      to: ['a@example.com'],
      subject: 's',
      text: 't',
      requestedAt: 'x',
    };
    expect(E.isRight(EmailRequest.decode(base))).to.equal(true);
    expect(E.isRight(EmailRequest.decode({ ...base, text: undefined }))).to.equal(false);
    expect(E.isRight(EmailRequest.decode({ ...base, id: 'a/b' }))).to.equal(false);
    expect(
      E.isRight(EmailRequest.decode({ ...base, to: ['a@example.com\nBcc: e@evil.com'] })),
    ).to.equal(false);
    expect(E.isRight(EmailRequest.decode({ ...base, to: [] }))).to.equal(false);
    // A task off the queue is held to the same rules as a form.
    expect(E.isRight(EmailRequest.decode({ ...base, text: 'a\u0000' }))).to.equal(false);
    expect(E.isRight(EmailRequest.decode({ ...base, subject: 's\ud800' }))).to.equal(false);
  });
});
