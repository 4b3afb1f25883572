import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';

/**
 * A mailbox that has been parsed strictly: `ada@example.com` or `Ada Lovelace <ada@example.com>`.
 *
 * The grammar is deliberately narrower than RFC 5322: no comments, no quoted local parts, no
 * groups, no obsolete syntax, no two addresses in one field. What we accept is exactly what every
 * adapter (SMTP envelope, Mailgun form field, MIME header) can carry without reinterpretation,
 * which is what makes header and envelope injection impossible downstream: nodemailer re-parses
 * address fields and would turn `a@b.org\r\nBcc: x@evil` into a new recipient.
 */
export interface EmailAddressBrand {
  readonly EmailAddress: unique symbol;
}

export type AddressRejection =
  | 'empty'
  | 'not-unicode'
  | 'nul-character'
  | 'control-character'
  | 'line-break'
  | 'comment'
  | 'several-addresses'
  | 'missing-at'
  | 'quoted-local-part'
  | 'bad-local-part'
  | 'bad-domain'
  | 'bad-display-name'
  | 'local-part-too-long'
  | 'domain-too-long'
  | 'address-too-long'
  | 'non-ascii-domain';

export interface InvalidAddress {
  readonly _tag: 'InvalidAddress';
  readonly input: string;
  readonly rejection: AddressRejection;
  readonly message: string;
}

/** RFC 5321 §4.5.3.1 limits, in octets; the 254 for the whole address is RFC 3696 erratum 1690. */
export const MAX_LOCAL_PART_OCTETS = 64;
export const MAX_DOMAIN_OCTETS = 255;
export const MAX_ADDRESS_OCTETS = 254;
const MAX_DISPLAY_NAME_CHARS = 256;

// RFC 5322 atext, ASCII only: the local part is what the SMTP envelope carries verbatim.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const DOT_ATOM = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*$`);
const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
// Printable characters allowed in a bare display name; quotes, angle brackets, commas and the
// like need the quoted form, which we accept too.
const BARE_DISPLAY_NAME = /^[^"<>,;:()\\[\]@]+$/;

const octets = (s: string): number => new TextEncoder().encode(s).length;

const messages: Record<AddressRejection, string> = {
  empty: 'is empty',
  'not-unicode': 'is not valid Unicode (a lone surrogate)',
  'nul-character': 'contains a NUL character, which is never allowed in an address',
  'control-character': 'contains a control character',
  'line-break': 'contains a line break (CR or LF), which is never allowed in an address',
  comment: 'contains a comment in parentheses; write the address without it',
  'several-addresses': 'holds more than one address; give each recipient separately',
  'missing-at': 'needs the form name@domain',
  'quoted-local-part': 'has a quoted part before the @, which this service does not accept',
  'bad-local-part': 'has characters before the @ that are not allowed',
  'bad-domain': 'has a domain that is not a valid host name',
  'bad-display-name': 'has a display name that is not allowed; use "Name" <name@domain>',
  'local-part-too-long': `has more than ${MAX_LOCAL_PART_OCTETS} characters before the @`,
  'domain-too-long': `has a domain longer than ${MAX_DOMAIN_OCTETS} characters`,
  'address-too-long': `is longer than ${MAX_ADDRESS_OCTETS} characters`,
  'non-ascii-domain': 'has a non-ASCII domain; write it in its xn-- (punycode) form',
};

const reject = (input: string, rejection: AddressRejection): E.Either<InvalidAddress, never> =>
  E.left({ _tag: 'InvalidAddress', input, rejection, message: `${messages[rejection]}` });

export interface AddressParts {
  readonly displayName?: string;
  readonly local: string;
  readonly domain: string;
}

/** Splits `Name <addr>` / `"Name" <addr>` / `addr` without interpreting anything else. */
function splitDisplayName(
  input: string,
): E.Either<AddressRejection, { name?: string; spec: string }> {
  const open = input.lastIndexOf('<');
  if (open === -1) {
    return input.includes('>') ? E.left('bad-display-name') : E.right({ spec: input });
  }
  if (!input.endsWith('>') || input.indexOf('<') !== open) return E.left('bad-display-name');
  const spec = input.slice(open + 1, -1).trim();
  const rawName = input.slice(0, open).trim();
  if (rawName === '') return E.right({ spec });
  if (rawName.startsWith('"')) {
    const inner = rawName.slice(1, -1);
    if (!rawName.endsWith('"') || rawName.length < 2 || /(^|[^\\])"/.test(inner)) {
      return E.left('bad-display-name');
    }
    const name = inner.replace(/\\(.)/g, '$1');
    return name.length > MAX_DISPLAY_NAME_CHARS
      ? E.left('bad-display-name')
      : E.right({ name, spec });
  }
  if (!BARE_DISPLAY_NAME.test(rawName) || rawName.length > MAX_DISPLAY_NAME_CHARS) {
    return E.left('bad-display-name');
  }
  return E.right({ name: rawName, spec });
}

/**
 * A UTF-16 code unit of a surrogate pair standing alone: no character at all, which no UTF-8
 * consumer (PostgreSQL, an SMTP server, a MIME header) can store or carry.
 */
export const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * True when `s` cannot be any part of a valid address (it holds a control character, NUL and
 * line breaks included, or a lone surrogate): a search for it can only find nothing.
 */
export const foreignToAddresses = (s: string): boolean =>
  // eslint-disable-next-line no-control-regex
  LONE_SURROGATE.test(s) || /[\u0000-\u001f\u007f-\u009f]/.test(s);

function checkWhole(input: string): AddressRejection | undefined {
  if (input.trim() === '') return 'empty';
  if (LONE_SURROGATE.test(input)) return 'not-unicode';
  if (input.includes('\u0000')) return 'nul-character';
  if (/[\r\n]/.test(input)) return 'line-break';
  // C0, DEL and C1 (NEL and the like): control characters have no place in a header field.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(input)) return 'control-character';
  return undefined;
}

function checkSpec(spec: string): AddressRejection | undefined {
  if (/[(]/.test(spec)) return 'comment';
  if (/[,;]/.test(spec) || (spec.match(/@/g) ?? []).length > 1) return 'several-addresses';
  const at = spec.lastIndexOf('@');
  if (at <= 0 || at === spec.length - 1) return 'missing-at';
  const local = spec.slice(0, at);
  const domain = spec.slice(at + 1);
  if (local.startsWith('"')) return 'quoted-local-part';
  if (!DOT_ATOM.test(local)) return 'bad-local-part';
  if (octets(local) > MAX_LOCAL_PART_OCTETS) return 'local-part-too-long';
  if (octets(domain) > MAX_DOMAIN_OCTETS) return 'domain-too-long';
  // eslint-disable-next-line no-control-regex
  if (/[^\u0000-\u007f]/.test(domain)) return 'non-ascii-domain';
  if (!domain.split('.').every((label) => LABEL.test(label))) return 'bad-domain';
  if (octets(spec) > MAX_ADDRESS_OCTETS) return 'address-too-long';
  return undefined;
}

/** Parses one mailbox; each rejection names its reason so the form can say what to fix. */
export function parseEmailAddress(input: string): E.Either<InvalidAddress, EmailAddress> {
  const whole = checkWhole(input);
  if (whole) return reject(input, whole);
  const trimmed = input.trim();
  if (/[(]/.test(trimmed)) return reject(input, 'comment');
  const split = splitDisplayName(trimmed);
  if (E.isLeft(split)) {
    // `a@b.org, c@d.org` has no angle brackets; tell the person about the comma, not a name.
    return reject(input, /[,;]/.test(trimmed) ? 'several-addresses' : split.left);
  }
  const problem = checkSpec(split.right.spec);
  if (problem) return reject(input, problem);
  const name = split.right.name;
  const canonical =
    name === undefined ? split.right.spec : `${quoteName(name)} <${split.right.spec}>`;
  // The one place the brand is granted: every check above has passed.
  return E.right(canonical as EmailAddress);
}

/** Renders a display name so that it parses back to the same name (RFC 5322 quoted-string). */
function quoteName(name: string): string {
  return BARE_DISPLAY_NAME.test(name) && !/[."]/.test(name)
    ? name
    : `"${name.replace(/(["\\])/g, '\\$1')}"`;
}

/** The parts of an already validated address; it cannot fail because the brand proves the parse. */
export function addressParts(address: EmailAddress): AddressParts {
  const open = address.lastIndexOf('<');
  const spec = open === -1 ? address : address.slice(open + 1, -1);
  const at = spec.lastIndexOf('@');
  const raw = open === -1 ? '' : address.slice(0, open).trim();
  const displayName = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  return {
    ...(displayName ? { displayName } : {}),
    local: spec.slice(0, at),
    domain: spec.slice(at + 1),
  };
}

/** The bare `local@domain`, as an SMTP envelope or a log line wants it. */
export const mailbox = (address: EmailAddress): string => {
  const { local, domain } = addressParts(address);
  return `${local}@${domain}`;
};

/** The io-ts codec: decoding re-runs the parser, so a value from a queue is as safe as a form's. */
export const EmailAddress = t.brand(
  t.string,
  (s): s is t.Branded<string, EmailAddressBrand> => {
    const parsed = parseEmailAddress(s);
    // Only the canonical form decodes, so equal addresses are equal strings everywhere.
    return E.isRight(parsed) && parsed.right === s;
  },
  'EmailAddress',
);
export type EmailAddress = t.TypeOf<typeof EmailAddress>;
