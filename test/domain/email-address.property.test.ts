import { expect } from 'chai';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailAddress } from '../../src/domain/email-address.js';
import {
  EmailAddress as EmailAddressCodec,
  addressParts,
  parseAddressList,
  parseEmailAddress,
} from '../../src/domain/email-address.js';

// Random seeds; a failure prints the seed and path that replay it (fc.assert's message).
const runs = { numRuns: 200 };

/** Pieces that matter to an address parser, so random strings hit its edges often. */
const piece = fc.constantFrom(
  '"',
  '\\',
  '<',
  '>',
  ',',
  ';',
  ':',
  '(',
  ')',
  '@',
  '.',
  ' ',
  '-',
  'a',
  'Z',
  '9',
  'ü',
  'ж',
  '😀',
  '\u0308',
  '\u00a0',
  '\u2028',
  '\r',
  '\n',
  '\t',
  '\u0000',
  '\u0085',
  '\ud800',
  'ada',
  'example.com',
  'bücher.de',
  'xn--bcher-kva',
  'Bcc: eve@evil.com',
);
const ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-";
const atom = fc.string({ unit: fc.constantFrom(...ATEXT), minLength: 1, maxLength: 8 });
const local = fc.array(atom, { minLength: 1, maxLength: 3 }).map((a) => a.join('.'));
const labelChar = fc.constantFrom(...Array.from('abz09äжü中'));
const label = fc
  .tuple(
    labelChar,
    fc.string({ unit: fc.constantFrom(...Array.from('ab-ü9')), maxLength: 8 }),
    labelChar,
  )
  .map(([first, middle, last]) => `${first}${middle}${last}`);
const domain = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));

/** A display name with everything a quoted string may hold (RFC 5322 §3.2.4, RFC 6532). */
const nameChar = fc.oneof(
  fc.constantFrom(...Array.from('"\\,;:()<>@.[] \'ü😀\u00a0')),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
);
const displayName = fc
  .string({ unit: nameChar, maxLength: 40 })
  // Control characters and line breaks are never allowed, quoted or not.
  .filter((n) => !/[\p{Cc}\u2028\u2029]/u.test(n));

const quote = (name: string): string => `"${name.replace(/(["\\])/g, '\\$1')}"`;

const mailboxInput = fc
  .record({ name: displayName, local, domain })
  .map(({ name, local, domain }) => ({
    name,
    local,
    domain,
    input: `${quote(name)} <${local}@${domain}>`,
  }));

/** Near misses: a well-formed mailbox, bare or quoted, with a few pieces typed into it. */
const mutated = fc
  .tuple(
    mailboxInput,
    fc.constantFrom('quoted', 'bare', 'spec'),
    fc.array(fc.tuple(fc.nat(), piece), { maxLength: 3 }),
  )
  .map(([{ name, local, domain, input }, form, inserts]) =>
    inserts.reduce(
      (text, [at, p]) =>
        text.slice(0, at % (text.length + 1)) + p + text.slice(at % (text.length + 1)),
      form === 'quoted'
        ? input
        : form === 'bare'
          ? `${name} <${local}@${domain}>`
          : `${local}@${domain}`,
    ),
  );

const typed = fc.oneof(
  mutated,
  fc.array(piece, { maxLength: 24 }).map((p) => p.join('')),
  fc.string({ unit: 'binary', maxLength: 60 }),
  // Any UTF-16 code unit, lone surrogates included.
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
);

/** What any accepted address must be, whatever was typed. */
function expectSafe(address: EmailAddress): void {
  expect(address).not.to.match(/[\p{Cc}\u2028\u2029]|\p{Surrogate}/u);
  const { local, domain } = addressParts(address);
  // One mailbox: a dot-atom local part and a host name, never a list or a header.
  expect(local).to.match(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/);
  expect(domain).to.match(/^[\p{L}\p{M}\p{N}.-]+$/u);
  expect(parseAddressList(address)).to.deep.equal(E.right([address]));
  // The canonical form is a fixed point, so the codec takes it.
  expect(parseEmailAddress(address)).to.deep.equal(E.right(address));
  expect(EmailAddressCodec.is(address)).to.equal(true);
}

describe('EmailAddress properties', () => {
  it('never throws on what a person types, and what it accepts is one safe mailbox', () => {
    fc.assert(
      fc.property(typed, (input) => {
        const parsed = parseEmailAddress(input);
        if (E.isRight(parsed)) expectSafe(parsed.right);
        else expect(parsed.left.message).to.be.a('string').and.not.equal('');
      }),
      runs,
    );
  });

  it('accepts any quoted display name over a valid mailbox, keeping every part', () => {
    fc.assert(
      fc.property(mailboxInput, ({ name, local, domain, input }) => {
        const parsed = parseEmailAddress(input);
        if (E.isLeft(parsed)) expect.fail(`${input}: ${parsed.left.message}`);
        expectSafe(parsed.right);
        const trimmed = name.trim();
        expect(addressParts(parsed.right)).to.deep.equal({
          ...(trimmed !== '' ? { displayName: trimmed } : {}),
          local,
          domain,
        });
      }),
      runs,
    );
  });

  it('never throws on a typed list, and each entry it accepts is safe', () => {
    fc.assert(
      fc.property(typed, (input) => {
        const parsed = parseAddressList(input);
        if (E.isRight(parsed)) parsed.right.forEach(expectSafe);
        else for (const p of parsed.left) expect(p.index).to.be.at.least(0);
      }),
      runs,
    );
  });

  it('parses a joined list of canonical addresses back to the same list', () => {
    const canonical = mailboxInput.map(({ input }) => {
      const parsed = parseEmailAddress(input);
      if (E.isLeft(parsed)) return expect.fail(`${input}: ${parsed.left.message}`);
      return parsed.right;
    });
    fc.assert(
      fc.property(
        fc.array(canonical, { maxLength: 6 }),
        fc.constantFrom(', ', ';', ' , '),
        (list, separator) => {
          expect(parseAddressList(list.join(separator))).to.deep.equal(E.right(list));
        },
      ),
      runs,
    );
  });
});
