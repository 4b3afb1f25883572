import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { codePointCount } from './utf8.js';

/**
 * A mailbox that has been parsed strictly (RFC 5322 §3.4): `ada@example.com`,
 * `Ada Lovelace <ada@example.com>` or `"ACME (Europe) Ltd" <sales@example.com>`.
 *
 * The grammar is deliberately narrower than RFC 5322: no comments, no quoted local parts, no
 * groups, no obsolete syntax, no two addresses in one field. What we accept is exactly what every
 * adapter (SMTP envelope, Mailgun form field, MIME header) can carry without reinterpretation,
 * which is what makes header and envelope injection impossible downstream: nodemailer re-parses
 * address fields and would turn `a@b.org\r\nBcc: x@evil` into a new recipient.
 *
 * The domain may be internationalised (`info@bücher.de`); the canonical string keeps it as the
 * person typed it, and transports carry its ASCII form (UTS #46 ToASCII, see `DomainToAscii`).
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
  | 'address-too-long';

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

// RFC 5322 atext, ASCII only: the local part is what the SMTP envelope carries verbatim, and
// without SMTPUTF8 (RFC 6531), which Mailgun does not offer, it must be ASCII.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const DOT_ATOM = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*$`);
// An LDH label (RFC 1035 §2.3.1, RFC 1123 §2.1): what the DNS, and so the envelope, carries.
const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
// A whole host name of LDH labels, as `split('.').every(LABEL)` would judge it, in one match
// without the array of labels: every domain of every address is checked this way.
const LDH_HOST = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;
// A label with non-ASCII letters, checked by its shape only: letters, marks and digits with
// inner hyphens, starting with a letter or digit. Whether it is a valid IDNA label is the
// converter's call (UTS #46); this is what the codec can check without one.
const UNICODE_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?$/u;
// Printable characters allowed in a bare display name (RFC 5322 atext, space and, per RFC 6532,
// non-ASCII); quotes, angle brackets, commas and the like need the quoted form.
const BARE_DISPLAY_NAME = /^[^"<>,;:()\\[\]@]+$/;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\u0000-\u007f]/;

const codePoints = codePointCount;

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
};

const invalid = (input: string, rejection: AddressRejection): InvalidAddress => ({
  _tag: 'InvalidAddress',
  input,
  rejection,
  message: messages[rejection],
});

export interface AddressParts {
  readonly displayName?: string;
  readonly local: string;
  readonly domain: string;
}

/**
 * Turns a domain into its ASCII form (UTS #46 ToASCII, IDNA2008), or undefined when it is not a
 * valid domain name. Given by the caller: the domain imports no IDNA tables.
 */
export type DomainToAscii = (domain: string) => string | undefined;

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

// Anything `checkWhole` refuses besides emptiness: one search clears the usual address, and
// only one that holds something is asked which rule it breaks.
// eslint-disable-next-line no-control-regex
const SUSPECT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|\p{Surrogate}/u;
/** True when `s` holds more than white space (`trim() !== ''` without the trimmed copy). */
const NOT_BLANK = /\S/;

function checkWhole(input: string): AddressRejection | undefined {
  if (!NOT_BLANK.test(input)) return 'empty';
  if (!SUSPECT.test(input)) return undefined;
  if (LONE_SURROGATE.test(input)) return 'not-unicode';
  if (input.includes('\u0000')) return 'nul-character';
  // U+2028 and U+2029 are line breaks too, to any reader that follows Unicode.
  if (/[\r\n\u2028\u2029]/.test(input)) return 'line-break';
  // C0, DEL and C1 (NEL and the like): control characters have no place in a header field.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(input)) return 'control-character';
  return undefined;
}

/** A character that gives an address field its structure, and where it is. */
interface Mark {
  readonly char: string;
  readonly at: number;
}

/**
 * The structural characters of a field (`<`, `>`, `,`, `;`, `@` and the `(` that opens a
 * comment), skipping quoted strings (RFC 5322 §3.2.4) and comments (§3.2.2), where a
 * backslash escapes the next character: in `"Doe, Jane" <jane@example.com>` the comma is part
 * of the name. `unterminated` is set when a quoted string or comment runs to the end.
 */
function scan(text: string): { readonly marks: readonly Mark[]; readonly unterminated: boolean } {
  const marks: Mark[] = [];
  let quoted = false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text.charAt(i);
    if (char === '\\' && (quoted || depth > 0)) {
      i++;
    } else if (quoted) {
      quoted = char !== '"';
    } else if (char === '(') {
      if (depth === 0) marks.push({ char, at: i });
      depth++;
    } else if (depth > 0) {
      if (char === ')') depth--;
    } else if (char === '"') {
      quoted = true;
    } else if ('<>,;@'.includes(char)) {
      marks.push({ char, at: i });
    }
  }
  return { marks, unterminated: quoted || depth > 0 };
}

const positions = (marks: readonly Mark[], chars: string): number[] =>
  marks.filter((m) => chars.includes(m.char)).map((m) => m.at);

/**
 * A display name (RFC 5322 §3.4 `display-name`): one quoted-string (§3.2.4), which may hold any
 * printable character, or a bare phrase of atext and spaces. Mixed phrases (`Ada "A" Lovelace`)
 * and obsolete forms are refused. Surrounding white space is not part of the name, and an empty
 * name is no name.
 */
function parseDisplayName(raw: string): E.Either<AddressRejection, string | undefined> {
  let name: string;
  if (raw.startsWith('"')) {
    // Exactly one quoted string: the quote that closes it is the last character.
    if (closingQuote(raw) !== raw.length - 1) return E.left('bad-display-name');
    name = raw.slice(1, -1).replace(/\\(.)/gsu, '$1').trim();
  } else if (BARE_DISPLAY_NAME.test(raw)) {
    name = raw;
  } else {
    return raw === '' ? E.right(undefined) : E.left('bad-display-name');
  }
  if (name.length > MAX_DISPLAY_NAME_CHARS) return E.left('bad-display-name');
  return E.right(name === '' ? undefined : name);
}

/** Where the quoted string that opens `text` ends (its closing quote), or -1. */
function closingQuote(text: string): number {
  for (let i = 1; i < text.length; i++) {
    if (text.charAt(i) === '\\') i++;
    else if (text.charAt(i) === '"') return i;
  }
  return -1;
}

/**
 * Checks a domain and measures it: its ASCII form (via `toAscii`) must be a host name, and the
 * length that counts is that of the ASCII form (RFC 5321 §4.5.3.1). Without a converter a
 * non-ASCII domain is checked by its shape only, and measured in code points; the same shape
 * and measure apply with a converter too, so whatever is accepted with one still decodes
 * without one (the io-ts codec has none).
 */
function checkDomain(domain: string, toAscii?: DomainToAscii): E.Either<AddressRejection, number> {
  // An ASCII domain (nearly all) has as many code points as code units, and its labels are all
  // LDH labels or it is no host name: one match, without spreading or splitting it.
  const unicode = NON_ASCII.test(domain);
  const typed = unicode ? codePoints(domain) : domain.length;
  if (typed > MAX_DOMAIN_OCTETS) return E.left('domain-too-long');
  const shaped = unicode
    ? domain
        .split('.')
        .every((label) => (NON_ASCII.test(label) ? UNICODE_LABEL : LABEL).test(label))
    : LDH_HOST.test(domain);
  if (!shaped) return E.left('bad-domain');
  if (toAscii === undefined) return E.right(typed);
  const ascii = toAscii(domain);
  // LDH_HOST admits ASCII only: a converter's answer with anything else is refused by it too.
  if (ascii === undefined || !LDH_HOST.test(ascii)) return E.left('bad-domain');
  if (ascii.length > MAX_DOMAIN_OCTETS) return E.left('domain-too-long');
  return E.right(Math.max(typed, ascii.length));
}

/** An addr-spec (RFC 5322 §3.4.1) restricted to a dot-atom local part and a host name. */
function checkSpec(spec: string, toAscii?: DomainToAscii): AddressRejection | undefined {
  if (spec.startsWith('"')) return 'quoted-local-part';
  const at = spec.lastIndexOf('@');
  // Two `@`s: the first is not the last one.
  if (/[,;]/.test(spec) || spec.indexOf('@') !== at) return 'several-addresses';
  if (at <= 0 || at === spec.length - 1) return 'missing-at';
  const local = spec.slice(0, at);
  if (!DOT_ATOM.test(local)) return 'bad-local-part';
  // A dot-atom is ASCII: its octets are its length.
  if (local.length > MAX_LOCAL_PART_OCTETS) return 'local-part-too-long';
  const domain = checkDomain(spec.slice(at + 1), toAscii);
  if (E.isLeft(domain)) return domain.left;
  if (local.length + 1 + domain.right > MAX_ADDRESS_OCTETS) return 'address-too-long';
  return undefined;
}

/** Finds the display name and the addr-spec of one mailbox, or says why there is not one. */
function splitMailbox(
  text: string,
): E.Either<AddressRejection, { readonly name?: string; readonly spec: string }> {
  const { marks, unterminated } = scan(text);
  // The marks sorted by kind in one pass (every address of every request comes here).
  let comment = false;
  let separators = 0;
  let lastSeparator = -1;
  let ats = 0;
  let opens = 0;
  let open = -1;
  let closes = 0;
  let close = -1;
  for (const { char, at } of marks) {
    if (char === '(') comment = true;
    else if (char === '<') {
      if (opens++ === 0) open = at;
    } else if (char === '>') {
      if (closes++ === 0) close = at;
    } else if (char === '@') ats++;
    else {
      separators++;
      lastSeparator = at;
    }
  }
  if (comment) return E.left('comment');
  // An unclosed quote hides the rest; without angle brackets it can only be a broken local part.
  if (unterminated)
    return text.includes('<') ? E.left('bad-display-name') : E.right({ spec: text });
  if (separators > 0) {
    // `Lovelace, Ada <ada@example.com>` is one mailbox whose name wants quotes. Marks come in
    // order, so every separator is before the `<` when the last one is.
    const inName = opens === 1 && lastSeparator < open && ats === 1;
    return E.left(inName ? 'bad-display-name' : 'several-addresses');
  }
  if (opens === 0 && closes === 0) return E.right({ spec: text });
  if (opens !== 1 || closes !== 1 || close !== text.length - 1) {
    return E.left('bad-display-name');
  }
  const name = parseDisplayName(text.slice(0, open).trim());
  if (E.isLeft(name)) return name;
  const spec = text.slice(open + 1, -1).trim();
  return E.right(name.right === undefined ? { spec } : { name: name.right, spec });
}

/**
 * Parses one mailbox (RFC 5322 §3.4 `mailbox`, narrowed as described on `EmailAddressBrand`);
 * each rejection names its reason so the form can say what to fix. With `domainToAscii` an
 * internationalised domain must have an ASCII form (UTS #46) and is measured by it; without
 * it, as when the codec decodes a stored value, the domain is checked by its shape.
 */
export function parseEmailAddress(
  input: string,
  domainToAscii?: DomainToAscii,
): E.Either<InvalidAddress, EmailAddress> {
  const whole = checkWhole(input);
  if (whole) return E.left(invalid(input, whole));
  const split = splitMailbox(input.trim());
  if (E.isLeft(split)) return E.left(invalid(input, split.left));
  const { name, spec } = split.right;
  const problem = checkSpec(spec, domainToAscii);
  if (problem) return E.left(invalid(input, problem));
  const canonical = name === undefined ? spec : `${quoteName(name)} <${spec}>`;
  // The one place the brand is granted: every check above has passed.
  return E.right(canonical as EmailAddress);
}

/** Renders a display name so that it parses back to the same name (RFC 5322 §3.2.4). */
function quoteName(name: string): string {
  return BARE_DISPLAY_NAME.test(name) && !name.includes('.')
    ? name
    : `"${name.replace(/(["\\])/g, '\\$1')}"`;
}

/** One entry of a list that failed, with its place (0-based, counting non-empty entries only). */
export interface InvalidListedAddress extends InvalidAddress {
  readonly index: number;
}

/**
 * Parses the comma- or semicolon-separated list a person types in one field (RFC 5322 §3.4
 * `address-list`, mailboxes only): separators inside a quoted display name or a comment do not
 * split, and empty entries (`a@b.org, ,c@d.org,`) are skipped. Every bad entry is reported,
 * with its place, so a form can say which one to fix (see `describeListedAddress`). An empty
 * text is an empty list; whether one recipient is required is the caller's rule.
 */
export function parseAddressList(
  text: string,
  domainToAscii?: DomainToAscii,
): E.Either<readonly InvalidListedAddress[], readonly EmailAddress[]> {
  const cuts = positions(scan(text).marks, ',;');
  const entries = [-1, ...cuts]
    .map((from, i) => text.slice(from + 1, cuts[i] ?? text.length).trim())
    .filter((entry) => entry !== '');
  const problems: InvalidListedAddress[] = [];
  const addresses: EmailAddress[] = [];
  entries.forEach((entry, index) => {
    const parsed = parseEmailAddress(entry, domainToAscii);
    if (E.isLeft(parsed)) problems.push({ ...parsed.left, index });
    else addresses.push(parsed.right);
  });
  return problems.length > 0 ? E.left(problems) : E.right(addresses);
}

const ordinal = (n: number): string => {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th')}`;
};

/**
 * A bad list entry in words: `the 2nd address "bob@" needs the form name@domain`. The entry
 * is cut at 60 characters, with invisible characters spelled out (`\u000d`).
 */
export function describeListedAddress(problem: InvalidListedAddress): string {
  const chars = [...problem.input];
  const shown = (chars.length > 60 ? [...chars.slice(0, 57), '...'] : chars)
    .map((c) =>
      // eslint-disable-next-line no-control-regex
      /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|\p{Surrogate}/u.test(c)
        ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
        : c,
    )
    .join('');
  return `the ${ordinal(problem.index + 1)} address "${shown}" ${problem.message}`;
}

/**
 * The parts of an already validated address; it cannot fail because the brand proves the parse.
 * In a canonical address the last `<` opens the addr-spec: a quoted name may hold `<`, but the
 * addr-spec after it holds none.
 */
export function addressParts(address: EmailAddress): AddressParts {
  const open = address.lastIndexOf('<');
  const spec = open === -1 ? address : address.slice(open + 1, -1);
  const at = spec.lastIndexOf('@');
  const local = spec.slice(0, at);
  const domain = spec.slice(at + 1);
  if (open === -1) return { local, domain };
  const raw = address.slice(0, open).trim();
  const displayName = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/gsu, '$1') : raw;
  // Two literals rather than a spread of an optional field: every address of every send passes
  // here several times (the form, the Message-ID, the suppression keys), and a spread copies.
  return displayName ? { displayName, local, domain } : { local, domain };
}

/** The bare `local@domain`, as typed (the domain may be a U-label); transports want its ASCII form. */
export const mailbox = (address: EmailAddress): string => {
  const { local, domain } = addressParts(address);
  return `${local}@${domain}`;
};

/**
 * The identity of a mailbox, to merge duplicates: the local part as is (RFC 5321 §2.4 lets the
 * receiving host treat it case-sensitively) and the domain's ASCII form in lower case, so
 * `Ada@Bücher.de` and `Ada@xn--bcher-kva.DE` are one recipient. Without a converter the domain
 * is only lower-cased.
 */
export function mailboxKey(address: EmailAddress, domainToAscii?: DomainToAscii): string {
  const { local, domain } = addressParts(address);
  return `${local}@${(domainToAscii?.(domain) ?? domain).toLowerCase()}`;
}

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
