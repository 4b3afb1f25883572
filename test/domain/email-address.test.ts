import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { AddressRejection, DomainToAscii } from '../../src/domain/email-address.js';
import {
  EmailAddress,
  addressParts,
  describeListedAddress,
  mailbox,
  mailboxKey,
  parseAddressList,
  parseEmailAddress,
} from '../../src/domain/email-address.js';

/**
 * A stand-in for UTS #46 ToASCII that knows two IDNs, so these tests stay pure; the real one
 * (tr46) is tested in test/adapters/idna/idna.test.ts.
 */
const fakeToAscii: DomainToAscii = (domain) => {
  const lower = domain.toLowerCase();
  const known: Record<string, string> = {
    'bücher.de': 'xn--bcher-kva.de',
    'exämple.com': 'xn--exmple-cua.com',
  };
  return known[lower] ?? (/^[a-z0-9.-]+$/.test(lower) ? lower : undefined);
};

const valid: readonly [string, string][] = [
  ['ada@example.com', 'ada@example.com'],
  ['  ada@example.com  ', 'ada@example.com'],
  ['Ada@Example.COM', 'Ada@Example.COM'],
  ['Ada <ada@example.com>', 'Ada <ada@example.com>'],
  ['Ada Lovelace <ada@example.com>', 'Ada Lovelace <ada@example.com>'],
  ['Ada<ada@example.com>', 'Ada <ada@example.com>'],
  ['Ada < ada@example.com >', 'Ada <ada@example.com>'],
  ['"Lovelace, Ada" <ada@example.com>', '"Lovelace, Ada" <ada@example.com>'],
  ['"Ada" <ada@example.com>', 'Ada <ada@example.com>'],
  ['"  Ada  " <ada@example.com>', 'Ada <ada@example.com>'],
  ['"" <ada@example.com>', 'ada@example.com'],
  ['J. Doe <j@example.com>', '"J. Doe" <j@example.com>'],
  ['"<b>" <x@example.com>', '"<b>" <x@example.com>'],
  ['"a@b.org; c@d.org" <x@example.com>', '"a@b.org; c@d.org" <x@example.com>'],
  ['"Say \\"hi\\" \\\\ bye" <x@example.com>', '"Say \\"hi\\" \\\\ bye" <x@example.com>'],
  ['"Team: \\A" <x@example.com>', '"Team: A" <x@example.com>'],
  ['<ada@example.com>', 'ada@example.com'],
  ['first.last+tag@sub.example.co.uk', 'first.last+tag@sub.example.co.uk'],
  ["o'brien@example.ie", "o'brien@example.ie"],
  ['noreply@localhost', 'noreply@localhost'],
  ['Zoë <zoe@example.com>', 'Zoë <zoe@example.com>'],
  [`${'a'.repeat(64)}@example.com`, `${'a'.repeat(64)}@example.com`],
  // Without a converter (the codec) a non-ASCII domain is checked by its shape.
  ['ada@exämple.com', 'ada@exämple.com'],
  ['Ada <ada@пример.рф>', 'Ada <ada@пример.рф>'],
];

const invalid: readonly [string, AddressRejection][] = [
  ['', 'empty'],
  ['   ', 'empty'],
  ['ada@example.com\r\nBcc: eve@evil.com', 'line-break'],
  ['ada@example.com\nBcc: eve@evil.com', 'line-break'],
  ['Ada\r <ada@example.com>', 'line-break'],
  ['"Ada\u2028Bcc: eve@evil.com" <ada@example.com>', 'line-break'],
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
  ['Ada (Countess) <ada@example.com>', 'comment'],
  ['"Ada" (Countess) <ada@example.com>', 'comment'],
  ['<ada@example.com (x)>', 'comment'],
  ['ada@example.com, eve@evil.com', 'several-addresses'],
  ['ada@example.com;eve@evil.com', 'several-addresses'],
  ['ada@eve@example.com', 'several-addresses'],
  ['"Doe, Jane" <jane@example.com>, bob@example.org', 'several-addresses'],
  ['Ada <ada@example.com>, Eve <eve@evil.com>', 'several-addresses'],
  ['Ada <ada@example.com>,', 'several-addresses'],
  ['ada.example.com', 'missing-at'],
  ['@example.com', 'missing-at'],
  ['ada@', 'missing-at'],
  ['Ada <>', 'missing-at'],
  ['"ada lovelace"@example.com', 'quoted-local-part'],
  ['"ada@evil.com"@example.com', 'quoted-local-part'],
  ['Ada <"ada"@example.com>', 'quoted-local-part'],
  ['"ada@example.com', 'quoted-local-part'],
  ['ada..lovelace@example.com', 'bad-local-part'],
  ['.ada@example.com', 'bad-local-part'],
  ['ada lovelace@example.com', 'bad-local-part'],
  ['ada"x@example.com', 'bad-local-part'],
  ['adä@example.com', 'bad-local-part'],
  ['ada@-example.com', 'bad-domain'],
  ['ada@example..com', 'bad-domain'],
  ['ada@exa_mple.com', 'bad-domain'],
  ['ada@[127.0.0.1]', 'bad-domain'],
  ['ada@bü cher.de', 'bad-domain'],
  ['ada@-bücher.de', 'bad-domain'],
  ['ada@bücher-.de', 'bad-domain'],
  ['ada@bü_cher.de', 'bad-domain'],
  ['ada@bücher!.de', 'bad-domain'],
  ['ada@bücher\u3002de', 'bad-domain'],
  ['ada@\u0308bücher.de', 'bad-domain'],
  ['ada@bücher.de.', 'bad-domain'],
  ['Ada <ada@example.com', 'bad-display-name'],
  ['ada@example.com>', 'bad-display-name'],
  ['Ada <eve> <ada@example.com>', 'bad-display-name'],
  ['<ada@example.com> Ada', 'bad-display-name'],
  ['"Ada <ada@example.com>', 'bad-display-name'],
  ['"Ada\\" <ada@example.com>', 'bad-display-name'],
  ['Lovelace, Ada <ada@example.com>', 'bad-display-name'],
  ['Ada "A" Lovelace <ada@example.com>', 'bad-display-name'],
  ['"Ada" Lovelace <ada@example.com>', 'bad-display-name'],
  ['"Ada" "Lovelace" <ada@example.com>', 'bad-display-name'],
  ['Ada@home <ada@example.com>', 'bad-display-name'],
  [`"${'n'.repeat(257)}" <ada@example.com>`, 'bad-display-name'],
  [`${'a'.repeat(65)}@example.com`, 'local-part-too-long'],
  [
    `ada@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`,
    'domain-too-long',
  ],
  [
    `ada@${'ü'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`,
    'domain-too-long',
  ],
  [
    `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}.com`,
    'address-too-long',
  ],
];

const rejectionOf = (
  input: string,
  toAscii?: DomainToAscii,
): AddressRejection | `accepted ${string}` => {
  const parsed = parseEmailAddress(input, toAscii);
  return E.isLeft(parsed) ? parsed.left.rejection : `accepted ${parsed.right}`;
};

const parsedOrFail = (input: string, toAscii?: DomainToAscii): EmailAddress => {
  const parsed = parseEmailAddress(input, toAscii);
  if (E.isLeft(parsed)) return expect.fail(`${input}: ${parsed.left.message}`);
  return parsed.right;
};

describe('EmailAddress', () => {
  describe('accepts', () => {
    for (const [input, canonical] of valid) {
      it(`${JSON.stringify(input)} as ${JSON.stringify(canonical)}`, () => {
        expect(parseEmailAddress(input)).to.deep.equal(E.right(canonical));
        // The canonical form is a fixed point, which is what the codec demands.
        expect(parseEmailAddress(canonical)).to.deep.equal(E.right(canonical));
        expect(EmailAddress.is(canonical)).to.equal(true);
      });
    }
  });

  describe('rejects, naming the reason', () => {
    for (const [input, rejection] of invalid) {
      it(`${JSON.stringify(input.length > 60 ? `${input.slice(0, 57)}...` : input)}: ${rejection}`, () => {
        const parsed = parseEmailAddress(input);
        if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right}`);
        expect(parsed.left.rejection).to.equal(rejection);
        expect(parsed.left.input).to.equal(input);
        expect(parsed.left.message).to.be.a('string').and.not.be.empty;
      });
    }
  });

  describe('display names in quotes (RFC 5322 §3.2.4)', () => {
    it('bug report: "ACME (Europe) Ltd" <sales@example.com> is one valid mailbox', () => {
      const address = parsedOrFail('"ACME (Europe) Ltd" <sales@example.com>');
      expect(address).to.equal('"ACME (Europe) Ltd" <sales@example.com>');
      expect(addressParts(address)).to.deep.equal({
        displayName: 'ACME (Europe) Ltd',
        local: 'sales',
        domain: 'example.com',
      });
      expect(parseAddressList(address)).to.deep.equal(E.right([address]));
    });

    it('bug report: "Doe, Jane" <jane@example.com> is one valid mailbox', () => {
      const address = parsedOrFail('"Doe, Jane" <jane@example.com>');
      expect(addressParts(address).displayName).to.equal('Doe, Jane');
      expect(mailbox(address)).to.equal('jane@example.com');
    });

    it('keeps angle brackets, @ and escaped quotes inside the name out of the address', () => {
      const address = parsedOrFail('"<b> \\"x\\" eve@evil.com" <x@example.com>');
      expect(addressParts(address)).to.deep.equal({
        displayName: '<b> "x" eve@evil.com',
        local: 'x',
        domain: 'example.com',
      });
      expect(mailbox(address)).to.equal('x@example.com');
    });

    it('still refuses a comment outside the quotes and a second address', () => {
      expect(rejectionOf('ada@example.com (Ada)')).to.equal('comment');
      expect(rejectionOf('"Ada" <ada@example.com> (Ada)')).to.equal('comment');
      expect(rejectionOf('"Doe, Jane" <jane@example.com>, bob@example.org')).to.equal(
        'several-addresses',
      );
    });
  });

  describe('internationalised domains', () => {
    it('accepts a domain the converter turns into ASCII, keeping it as typed', () => {
      expect(parseEmailAddress('Info <info@Bücher.de>', fakeToAscii)).to.deep.equal(
        E.right('Info <info@Bücher.de>'),
      );
      expect(EmailAddress.is('Info <info@Bücher.de>')).to.equal(true);
    });

    it('refuses, as a bad domain, one the converter has no ASCII form for', () => {
      const parsed = parseEmailAddress('info@bücherei.de', fakeToAscii);
      if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right}`);
      expect(parsed.left.rejection).to.equal('bad-domain');
      expect(parsed.left.message).to.equal('has a domain that is not a valid host name');
      // Structurally it is a fine domain: only the converter knows better.
      expect(rejectionOf('info@bücherei.de')).to.equal('accepted info@bücherei.de');
    });

    it('asks the converter about ASCII domains too', () => {
      expect(rejectionOf('ada@ab--cd.example', () => undefined)).to.equal('bad-domain');
      expect(rejectionOf('ada@ab--cd.example')).to.equal('accepted ada@ab--cd.example');
    });

    it('refuses a converter answer that is not an ASCII host name', () => {
      expect(rejectionOf('info@bücher.de', () => 'bücher.de')).to.equal('bad-domain');
      expect(rejectionOf('info@bücher.de', () => 'xn--bcher-kva..de')).to.equal('bad-domain');
    });

    it('measures the domain and the address by their ASCII form (RFC 5321 §4.5.3.1)', () => {
      const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(62)}`; // 190 octets
      const input = `${'l'.repeat(64)}@bücher.de`;
      expect(rejectionOf(input, () => long)).to.equal('address-too-long');
      expect(rejectionOf(input, () => `${long}.${'d'.repeat(63)}.ef`)).to.equal('domain-too-long');
      expect(rejectionOf(input)).to.equal(`accepted ${input}`);
    });
  });

  describe('mailboxKey', () => {
    it('is the local part and the lower-cased ASCII domain', () => {
      const typed = parsedOrFail('"Info" <info@Bücher.DE>', fakeToAscii);
      const ascii = parsedOrFail('info@XN--BCHER-KVA.de', fakeToAscii);
      expect(mailboxKey(typed, fakeToAscii)).to.equal('info@xn--bcher-kva.de');
      expect(mailboxKey(ascii, fakeToAscii)).to.equal('info@xn--bcher-kva.de');
    });

    it('keeps the case of the local part, which the receiving host may honour', () => {
      const upper = parsedOrFail('Info@example.com');
      const lower = parsedOrFail('info@EXAMPLE.com');
      expect(mailboxKey(upper)).to.equal('Info@example.com');
      expect(mailboxKey(lower)).to.equal('info@example.com');
    });

    it('lower-cases a non-ASCII domain when there is no converter', () => {
      expect(mailboxKey(parsedOrFail('info@BÜCHER.de'))).to.equal('info@bücher.de');
    });
  });

  describe('parseAddressList', () => {
    it('splits on commas and semicolons, not inside a quoted name', () => {
      expect(
        parseAddressList('"Doe, Jane" <jane@example.com>, bob@example.org; "A;B" <ab@example.net>'),
      ).to.deep.equal(
        E.right(['"Doe, Jane" <jane@example.com>', 'bob@example.org', '"A;B" <ab@example.net>']),
      );
    });

    it('skips empty entries, and an empty field is an empty list', () => {
      expect(parseAddressList(' a@example.com,, ;b@example.org , ')).to.deep.equal(
        E.right(['a@example.com', 'b@example.org']),
      );
      expect(parseAddressList('  ')).to.deep.equal(E.right([]));
    });

    it('reports every bad entry with its place, for "the 2nd address …"', () => {
      const parsed = parseAddressList('a@example.com, bob@, Ada (x) <ada@example.com>');
      if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right.join(', ')}`);
      expect(parsed.left.map((p) => [p.index, p.input, p.rejection])).to.deep.equal([
        [1, 'bob@', 'missing-at'],
        [2, 'Ada (x) <ada@example.com>', 'comment'],
      ]);
      expect(parsed.left.map(describeListedAddress)).to.deep.equal([
        'the 2nd address "bob@" needs the form name@domain',
        'the 3rd address "Ada (x) <ada@example.com>" contains a comment in parentheses; write the address without it',
      ]);
    });

    it('does not split inside a comment, which is then refused whole', () => {
      const parsed = parseAddressList('a@example.com (Doe, J), b@example.org');
      if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right.join(', ')}`);
      expect(parsed.left.map((p) => [p.index, p.rejection])).to.deep.equal([[0, 'comment']]);
    });

    it('refuses a line break rather than reading it as a separator', () => {
      const parsed = parseAddressList('a@example.com\r\nBcc: eve@evil.com');
      if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right.join(', ')}`);
      expect(parsed.left.map((p) => p.rejection)).to.deep.equal(['line-break']);
      expect(describeListedAddress(parsed.left[0]!)).to.equal(
        'the 1st address "a@example.com\\u000d\\u000aBcc: eve@evil.com" contains a line break (CR or LF), which is never allowed in an address',
      );
    });

    it('passes the converter on to each entry', () => {
      const parsed = parseAddressList('info@bücher.de, info@bücherei.de', fakeToAscii);
      if (E.isRight(parsed)) expect.fail(`accepted ${parsed.right.join(', ')}`);
      expect(parsed.left.map((p) => [p.index, p.rejection])).to.deep.equal([[1, 'bad-domain']]);
    });

    it('names places in English ordinals and cuts a long entry', () => {
      const say = (index: number, input = 'x'): string =>
        describeListedAddress({
          _tag: 'InvalidAddress',
          index,
          input,
          rejection: 'missing-at',
          message: 'needs the form name@domain',
        });
      expect(
        [0, 1, 2, 3, 10, 11, 12, 20, 21, 22, 100, 110].map((i) => say(i).split(' ')[1]),
      ).to.deep.equal([
        '1st',
        '2nd',
        '3rd',
        '4th',
        '11th',
        '12th',
        '13th',
        '21st',
        '22nd',
        '23rd',
        '101st',
        '111th',
      ]);
      expect(say(0, 'é'.repeat(100))).to.equal(
        `the 1st address "${'é'.repeat(57)}..." needs the form name@domain`,
      );
    });
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
    expect(E.isRight(EmailAddress.decode('"ACME (Europe) Ltd" <sales@example.com>'))).to.equal(
      true,
    );
    expect(E.isRight(EmailAddress.decode('info@bücher.de'))).to.equal(true);
    expect(E.isRight(EmailAddress.decode(' ada@example.com'))).to.equal(false);
    expect(E.isRight(EmailAddress.decode('"Ada" <ada@example.com>'))).to.equal(false);
    expect(E.isRight(EmailAddress.decode('ada@example.com\r\nBcc: eve@evil.com'))).to.equal(false);
    expect(E.isRight(EmailAddress.decode('ada@bü cher.de'))).to.equal(false);
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
