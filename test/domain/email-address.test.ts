import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { AddressRejection } from '../../src/domain/email-address.js';
import {
  EmailAddress,
  addressParts,
  mailbox,
  parseEmailAddress,
} from '../../src/domain/email-address.js';

const valid: readonly [string, string][] = [
  ['ada@example.com', 'ada@example.com'],
  ['  ada@example.com  ', 'ada@example.com'],
  ['Ada <ada@example.com>', 'Ada <ada@example.com>'],
  ['Ada Lovelace <ada@example.com>', 'Ada Lovelace <ada@example.com>'],
  ['"Lovelace, Ada" <ada@example.com>', '"Lovelace, Ada" <ada@example.com>'],
  ['<ada@example.com>', 'ada@example.com'],
  ['first.last+tag@sub.example.co.uk', 'first.last+tag@sub.example.co.uk'],
  ["o'brien@example.ie", "o'brien@example.ie"],
  ['noreply@localhost', 'noreply@localhost'],
  ['Zoë <zoe@example.com>', 'Zoë <zoe@example.com>'],
  [`${'a'.repeat(64)}@example.com`, `${'a'.repeat(64)}@example.com`],
];

const invalid: readonly [string, AddressRejection][] = [
  ['', 'empty'],
  ['   ', 'empty'],
  ['ada@example.com\r\nBcc: eve@evil.com', 'line-break'],
  ['ada@example.com\nBcc: eve@evil.com', 'line-break'],
  ['Ada\r <ada@example.com>', 'line-break'],
  ['ada\u0000@example.com', 'nul-character'],
  ['ada@example.com\u0000', 'nul-character'],
  ['Ada\ud800 <ada@example.com>', 'not-unicode'],
  ['"Ada \udc00" <ada@example.com>', 'not-unicode'],
  ['ada\ud83d@example.com', 'not-unicode'],
  ['ada\t@example.com', 'control-character'],
  ['"Ada\u0085Bcc" <ada@example.com>', 'control-character'],
  ['ada\u009f@example.com', 'control-character'],
  ['ada@example.com (Ada)', 'comment'],
  ['ada(comment)@example.com', 'comment'],
  ['ada@example.com, eve@evil.com', 'several-addresses'],
  ['ada@example.com;eve@evil.com', 'several-addresses'],
  ['ada@eve@example.com', 'several-addresses'],
  ['ada.example.com', 'missing-at'],
  ['@example.com', 'missing-at'],
  ['ada@', 'missing-at'],
  ['"ada lovelace"@example.com', 'quoted-local-part'],
  ['ada..lovelace@example.com', 'bad-local-part'],
  ['.ada@example.com', 'bad-local-part'],
  ['ada lovelace@example.com', 'bad-local-part'],
  ['ada@-example.com', 'bad-domain'],
  ['ada@example..com', 'bad-domain'],
  ['ada@exa_mple.com', 'bad-domain'],
  ['ada@[127.0.0.1]', 'bad-domain'],
  ['Ada <ada@example.com', 'bad-display-name'],
  ['Ada <eve> <ada@example.com>', 'bad-display-name'],
  ['"Ada <ada@example.com>', 'bad-display-name'],
  [`${'a'.repeat(65)}@example.com`, 'local-part-too-long'],
  [
    `ada@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`,
    'domain-too-long',
  ],
  [
    `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}.com`,
    'address-too-long',
  ],
  ['ada@exämple.com', 'non-ascii-domain'],
  ['adä@example.com', 'bad-local-part'],
];

describe('EmailAddress', () => {
  describe('accepts', () => {
    for (const [input, canonical] of valid) {
      it(`${JSON.stringify(input)} as ${JSON.stringify(canonical)}`, () => {
        const parsed = parseEmailAddress(input);
        expect(parsed).to.deep.equal(E.right(canonical));
      });
    }
  });

  describe('rejects, naming the reason', () => {
    for (const [input, rejection] of invalid) {
      it(`${JSON.stringify(input.length > 60 ? `${input.slice(0, 57)}...` : input)}: ${rejection}`, () => {
        const parsed = parseEmailAddress(input);
        if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right}`);
        expect(parsed.left.rejection).to.equal(rejection);
        expect(parsed.left.message).to.be.a('string').and.not.be.empty;
      });
    }
  });

  it('splits an address into its parts', () => {
    const parsed = parseEmailAddress('"Lovelace, Ada" <ada@example.com>');
    if (E.isLeft(parsed)) expect.fail(parsed.left.message);
    expect(addressParts(parsed.right)).to.deep.equal({
      displayName: 'Lovelace, Ada',
      local: 'ada',
      domain: 'example.com',
    });
    expect(mailbox(parsed.right)).to.equal('ada@example.com');
  });

  it('decodes only canonical, valid strings (a queue cannot smuggle one in)', () => {
    expect(E.isRight(EmailAddress.decode('Ada <ada@example.com>'))).to.equal(true);
    expect(E.isRight(EmailAddress.decode(' ada@example.com'))).to.equal(false);
    expect(E.isRight(EmailAddress.decode('ada@example.com\r\nBcc: eve@evil.com'))).to.equal(false);
    expect(E.isRight(EmailAddress.decode(42))).to.equal(false);
    expect(E.isRight(EmailAddress.decode('Ada\ud800 <ada@example.com>'))).to.equal(false);
  });

  it('says what is wrong with NUL and broken Unicode, and accepts a whole emoji', () => {
    const message = (input: string): string => {
      const parsed = parseEmailAddress(input);
      return E.isLeft(parsed) ? parsed.left.message : 'accepted';
    };
    expect(message('ada@example.com\u0000')).to.contain('NUL');
    expect(message('Ada\ud800 <ada@example.com>')).to.equal(
      'is not valid Unicode (a lone surrogate)',
    );
    expect(parseEmailAddress('Ada 😀 <ada@example.com>')).to.deep.equal(
      E.right('Ada 😀 <ada@example.com>'),
    );
  });
});
