import { toASCII, toUnicode } from 'tr46';
import type { DomainToAscii, EmailAddress } from '../../domain/email-address.js';
import { addressParts } from '../../domain/email-address.js';

// UTS #46 processing for looking a name up, not for registering one: non-transitional (ß stays
// ß), STD3 rules, bidi and joiner checks, DNS lengths. CheckHyphens is off because it also
// refuses `--` in the 3rd and 4th positions, a reserved form that registries refuse but that
// hosts under a registered name (`ab--cd.example.com`) carry and SMTP delivers to; a label
// that begins or ends with a hyphen is refused by `ldh` below, as RFC 5891 §4.2.3.1 asks.
const options = {
  checkBidi: true,
  checkHyphens: false,
  checkJoiners: true,
  useSTD3ASCIIRules: true,
  transitionalProcessing: false,
} as const;

const ldh = (domain: string): boolean =>
  domain.split('.').every((label) => !label.startsWith('-') && !label.endsWith('-'));

/**
 * A domain's ASCII form under UTS #46 ToASCII (https://www.unicode.org/reports/tr46/#ToASCII),
 * lower-cased, or undefined when it is not a valid host name. `bücher.de` → `xn--bcher-kva.de`;
 * `xn--a.com` (broken punycode), `-bücher.de` and `bü cher.de` → undefined.
 */
export const domainToAscii: DomainToAscii = (domain) => {
  // An address's domain is converted when it is parsed, merged with duplicates, checked against
  // the allowed senders and the suppression list, and put on the wire: the same few domains,
  // many times a request. The answer depends on the domain alone, so it is kept.
  const known = converted.get(domain);
  if (known !== undefined) return known === null ? undefined : known;
  const ascii = toASCII(domain, { ...options, verifyDNSLength: true });
  // The hyphen rule applies to the labels as a person reads them: `-bücher` is `xn---bcher-4ya`.
  const valid = ascii !== null && ldh(ascii) && ldh(toUnicode(ascii, options).domain);
  if (converted.size >= MAX_CONVERTED) converted.clear();
  converted.set(domain, valid ? ascii : null);
  return valid ? ascii : undefined;
};

/** Domains converted so far (null: not a host name), forgotten all at once when it is full. */
const converted = new Map<string, string | null>();
const MAX_CONVERTED = 10_000;

/** A domain as a person reads it: `xn--bcher-kva.de` → `bücher.de` (unchanged if not an IDN). */
export const domainToUnicode = (domain: string): string => {
  const { domain: unicode, error } = toUnicode(domain, { useSTD3ASCIIRules: true });
  return error ? domain : unicode;
};

/**
 * The mailbox as a transport must carry it: `local@a-label.domain`. Addresses are validated
 * at the API with `domainToAscii`, so a failure here is a bug.
 */
export function asciiMailbox(address: EmailAddress): string {
  const { local, domain } = addressParts(address);
  const ascii = domainToAscii(domain);
  if (ascii === undefined)
    throw new Error('an accepted address has a domain without an ASCII form');
  return `${local}@${ascii}`;
}
