import { expect } from 'chai';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { asciiMailbox, domainToAscii, domainToUnicode } from '../../../src/adapters/idna/idna.js';
import type { EmailAddress } from '../../../src/domain/email-address.js';
import {
  addressParts,
  mailboxKey,
  parseAddressList,
  parseEmailAddress,
} from '../../../src/domain/email-address.js';

const accepted = (input: string): EmailAddress => {
  const parsed = parseEmailAddress(input, domainToAscii);
  if (E.isLeft(parsed)) return expect.fail(`${input}: ${parsed.left.message}`);
  return parsed.right;
};

const rejection = (input: string): string => {
  const parsed = parseEmailAddress(input, domainToAscii);
  return E.isLeft(parsed) ? parsed.left.rejection : `accepted ${parsed.right}`;
};

describe('IDNA (tr46, UTS #46) with the address parser', () => {
  describe('bug report: internationalised domains are accepted', () => {
    const cases: readonly [string, string][] = [
      ['info@bücher.de', 'info@xn--bcher-kva.de'],
      ['kontakt@münchen.de', 'kontakt@xn--mnchen-3ya.de'],
      ['info@пример.рф', 'info@xn--e1afmkfd.xn--p1ai'],
    ];
    for (const [typed, ascii] of cases) {
      it(`${typed}: kept as typed, carried as ${ascii}`, () => {
        const address = accepted(typed);
        expect(address).to.equal(typed);
        expect(asciiMailbox(address)).to.equal(ascii);
        expect(mailboxKey(address, domainToAscii)).to.equal(ascii);
      });
    }
  });

  describe('bug report: an invalid IDN is refused as a bad domain', () => {
    for (const input of [
      'a@xn--a.com', // punycode that decodes to nothing valid
      'a@-bücher.de', // leading hyphen
      'a@bücher-.de', // trailing hyphen
      'a@bü cher.de', // a space
      'a@xn--bcher-kva-.de',
      'a@ab\u200dc.de', // a joiner outside its context (and not a letter)
      `a@${'ä'.repeat(60)}.de`, // an A-label of 66 characters: over the 63 of a DNS label
    ]) {
      it(JSON.stringify(input), () => {
        expect(rejection(input)).to.equal('bad-domain');
      });
    }
  });

  it('keeps the display name and the case as typed, and converts only the domain', () => {
    const address = accepted('"Bücher, Büro" <Info@Bücher.DE>');
    expect(address).to.equal('"Bücher, Büro" <Info@Bücher.DE>');
    expect(asciiMailbox(address)).to.equal('Info@xn--bcher-kva.de');
  });

  it('treats the A-label and the U-label as one mailbox', () => {
    const keys = [accepted('info@bücher.de'), accepted('Büro <info@XN--BCHER-KVA.de>')].map((a) =>
      mailboxKey(a, domainToAscii),
    );
    expect(keys[0]).to.equal(keys[1]);
  });

  it('uses non-transitional processing: ß stays ß', () => {
    expect(domainToAscii('straße.de')).to.equal('xn--strae-oqa.de');
  });

  it('accepts an ASCII host with -- in the 3rd and 4th positions, as SMTP does', () => {
    expect(domainToAscii('ab--cd.example.com')).to.equal('ab--cd.example.com');
    expect(rejection('a@ab--cd.example.com')).to.equal('accepted a@ab--cd.example.com');
  });

  it('refuses what is not a host name', () => {
    for (const domain of ['', 'example.com.', 'a..b', 'exa_mple.com', '-ab.com', 'ab-.com']) {
      expect(domainToAscii(domain), domain).to.equal(undefined);
    }
  });

  it('shows an A-label as a person reads it, and leaves anything else alone', () => {
    expect(domainToUnicode('xn--bcher-kva.de')).to.equal('bücher.de');
    expect(domainToUnicode('example.com')).to.equal('example.com');
    expect(domainToUnicode('xn--a.com')).to.equal('xn--a.com');
  });

  it('splits a list and converts each entry', () => {
    const parsed = parseAddressList('info@bücher.de; "Doe, Jane" <jane@пример.рф>', domainToAscii);
    if (E.isLeft(parsed)) expect.fail(parsed.left.map((p) => p.message).join('; '));
    expect(parsed.right.map(asciiMailbox)).to.deep.equal([
      'info@xn--bcher-kva.de',
      'jane@xn--e1afmkfd.xn--p1ai',
    ]);
  });

  it('throws (a bug) for an address that never passed the converter', () => {
    // The codec checks the shape only, so this decodes; the API would have refused it.
    const parsed = parseEmailAddress('a@xn--a.com');
    if (E.isLeft(parsed)) expect.fail(parsed.left.message);
    expect(() => asciiMailbox(parsed.right)).to.throw(/ASCII form/);
  });

  it('whatever it accepts with the converter, the codec decodes (property)', () => {
    const letter = fc.constantFrom(...Array.from('abcxyz09äöüßéñçøпримерж中文日本語한국ทยاα-'));
    const label = fc.string({ unit: letter, minLength: 1, maxLength: 20 });
    const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    fc.assert(
      fc.property(domain, (d) => {
        const parsed = parseEmailAddress(`Ada <ada@${d}>`, domainToAscii);
        if (E.isLeft(parsed)) return;
        expect(parseEmailAddress(parsed.right)).to.deep.equal(E.right(parsed.right));
        expect(addressParts(parsed.right).domain).to.equal(d);
        expect(asciiMailbox(parsed.right)).to.match(/^ada@[a-z0-9.-]+$/);
      }),
      { numRuns: 300 },
    );
  });
});
