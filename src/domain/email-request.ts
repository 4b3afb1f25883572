import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { codePointCount, utf8Length } from './utf8.js';
import {
  EmailAddress,
  LONE_SURROGATE,
  addressParts,
  mailboxKey,
  parseEmailAddress,
} from './email-address.js';

export const MAX_RECIPIENTS = 50;
export const MAX_SUBJECT_CHARS = 998; // RFC 5322 §2.1.1 line limit
/** Each body part, in UTF-8 octets; two of them still fit the 1 MB request limit. */
export const MAX_BODY_OCTETS = 500_000;

const octets = utf8Length;

// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f]|\p{Surrogate}/u;

/** One code point as a person can read it in an error message: `\r`, `\n`, `\u0000`. */
const visible = (c: string): string =>
  c === '\r'
    ? '\\r'
    : c === '\n'
      ? '\\n'
      : UNPRINTABLE.test(c)
        ? `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`
        : c;

/**
 * Part of a person's input quoted back in a message: at most 80 characters, cut between code
 * points (a cut pair would itself be broken Unicode), with invisible characters spelled out.
 */
const truncate = (s: string): string => {
  const chars = [...s];
  const kept = chars.length > 80 ? chars.slice(0, 77) : chars;
  return kept.map(visible).join('') + (chars.length > 80 ? '...' : '');
};

// Text a UTF-8 store can keep: PostgreSQL refuses NUL in text and jsonb (22021, 22P05), and a
// lone surrogate has no UTF-8 form at all. Refused here, a client is told what to fix (400)
// instead of being told to try again (503) forever.
const textProblem = (value: string): string | undefined =>
  LONE_SURROGATE.test(value)
    ? 'is not valid Unicode (a lone surrogate)'
    : value.includes('\u0000')
      ? 'must not contain NUL characters'
      : undefined;

/** True when `s` holds more than white space: `trim() !== ''` without copying a whole body. */
const hasText = (s: string): boolean => /\S/.test(s);

/**
 * True when `s` has more than `max` code points. A string no longer than `max` code units has no
 * more code points, and is not spread into an array of them to be counted.
 */
const longerThan = (s: string, max: number): boolean => s.length > max && codePointCount(s) > max;

// Each rule once, as what is wrong in words a person can act on (undefined: nothing). The codecs
// check a value with them; the parser reports them field by field.
const TO_REQUIRED = 'is required: give at least one recipient address';

const recipientCountProblem = (count: number): string | undefined =>
  count === 0
    ? TO_REQUIRED
    : count > MAX_RECIPIENTS
      ? `has ${count} recipients; at most ${MAX_RECIPIENTS} are allowed`
      : undefined;

function subjectProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return value === undefined ? 'is required' : 'must be a string';
  if (!hasText(value)) return 'is required';
  const text = textProblem(value);
  if (text !== undefined) return text;
  if (/[\r\n]/.test(value)) return 'must be one line (no CR or LF)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'must not contain control characters';
  if (longerThan(value, MAX_SUBJECT_CHARS)) return `is longer than ${MAX_SUBJECT_CHARS} characters`;
  return undefined;
}

function bodyProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  const text = textProblem(value);
  if (text !== undefined) return text;
  if (octets(value) > MAX_BODY_OCTETS) return `is larger than ${MAX_BODY_OCTETS} bytes`;
  return undefined;
}

export const MAX_TAGS = 10;
const TAG = /^[A-Za-z0-9_-]{1,64}$/;

function tagsProblem(tags: readonly string[]): string | undefined {
  const bad = tags.find((tag) => !TAG.test(tag));
  if (bad !== undefined) {
    return `"${truncate(bad)}" is not a tag: use 1 to 64 of A-Z, a-z, 0-9, _ and -`;
  }
  if (tags.length > MAX_TAGS) return `has ${tags.length} tags; at most ${MAX_TAGS} are allowed`;
  return undefined;
}

interface EmailIdBrand {
  readonly EmailId: unique symbol;
}
/** Ids are URL- and header-safe so they can go into a path, a Message-ID and an AMQP messageId. */
export const EmailId = t.brand(
  t.string,
  (s): s is t.Branded<string, EmailIdBrand> => /^[A-Za-z0-9_-]{8,64}$/.test(s),
  'EmailId',
);
export type EmailId = t.TypeOf<typeof EmailId>;

interface SubjectBrand {
  readonly Subject: unique symbol;
}
export const Subject = t.brand(
  t.string,
  (s): s is t.Branded<string, SubjectBrand> => subjectProblem(s) === undefined,
  'Subject',
);
export type Subject = t.TypeOf<typeof Subject>;

const Recipients = t.refinement(
  t.readonlyArray(EmailAddress),
  (to) => recipientCountProblem(to.length) === undefined,
  'Recipients',
);

const Body = t.refinement(t.string, (s) => bodyProblem(s) === undefined, 'Body');

/** Labels a sender puts on an email to find it again (`GET /emails?tag=`). */
const Tags = t.refinement(
  t.readonlyArray(t.string),
  (tags) => tagsProblem(tags) === undefined,
  'Tags',
);

const AddressList = t.readonlyArray(EmailAddress);

/** `metadata`: up to 20 string pairs, reaching Mailgun as `v:` variables and the status JSON. */
export const MAX_METADATA = 20;
export const MAX_METADATA_KEY_CHARS = 40;
export const MAX_METADATA_VALUE_CHARS = 500;
const METADATA_KEY = /^[A-Za-z0-9_.-]{1,40}$/;
/** Ours on every Mailgun message: a sender's metadata may not take it over. */
const RESERVED_METADATA_KEYS = new Set(['email-id']);

/** `attachments`: up to 20; each a file the worker fetches by its digest when it sends. */
export const MAX_ATTACHMENTS = 20;
const MAX_FILENAME_CHARS = 255;
/** RFC 2045 §5.1 type/subtype, parameters allowed; nothing that could end the header. */
const CONTENT_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(?:[ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=(?:[\x21\x23-\x3a\x3c-\x7e]+|"[\x20\x21\x23-\x5b\x5d-\x7e]*"))*$/;
/** A Content-ID's inside (RFC 2392): what `cid:` in the html names. */
const CONTENT_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$/;
/** SHA-256, lowercase hex: the attachment's name in the attachment store. */
const DIGEST = /^[0-9a-f]{64}$/;

/**
 * An attachment as a request carries it: not its bytes (they are stored once, by digest, and
 * fetched by the worker), but everything that goes in its MIME part.
 */
export const AttachmentRef = t.intersection([
  t.type({
    filename: t.refinement(t.string, (f) => filenameProblem(f) === undefined, 'Filename'),
    digest: t.refinement(t.string, (d) => DIGEST.test(d), 'Digest'),
    /** Octets of the decoded content. */
    size: t.number,
  }),
  t.partial({
    contentType: t.refinement(t.string, (c) => CONTENT_TYPE.test(c), 'ContentType'),
    /** Present: the part is inline, for `cid:<contentId>` in the html. */
    contentId: t.refinement(t.string, (c) => CONTENT_ID.test(c), 'ContentId'),
  }),
]);
export type AttachmentRef = t.TypeOf<typeof AttachmentRef>;

/**
 * Extra header fields a sender may set (RFC 2369 List-*, RFC 8058 List-Unsubscribe-Post,
 * RFC 5322 §3.6.4 In-Reply-To and References), and any `X-` field but our own.
 */
const NAMED_HEADERS = ['List-Unsubscribe', 'List-Unsubscribe-Post', 'In-Reply-To', 'References'];
// Field names ignore case (RFC 5322 §1.2.2): `x-campaign` is as much an X- field as `X-Campaign`.
const X_HEADER = /^X-[A-Za-z0-9-]{1,70}$/i;
export const RESERVED_HEADERS = new Set(['x-email-id']);
/** Mailgun reads `X-Mailgun-*` fields as instructions (variables, tags, drop, deliver-by). */
const RESERVED_HEADER_PREFIX = 'x-mailgun-';
/** A message id no valid message can exceed, with room to fold it within 998 octets. */
const MAX_MESSAGE_ID_CHARS = 900;
export const MAX_HEADERS = 20;

const Headers = t.refinement(
  t.record(t.string, t.string),
  (h) => headersProblem(h) === undefined,
  'Headers',
);

const Metadata = t.refinement(
  t.record(t.string, t.string),
  (m) => metadataProblem(m) === undefined,
  'Metadata',
);

const EmailRequestShape = t.intersection([
  t.type({ id: EmailId, to: Recipients, subject: Subject, requestedAt: t.string }),
  t.partial({
    /** Absent: the service's MAIL_FROM. */
    from: EmailAddress,
    cc: AddressList,
    /** In the envelope only: never in a header of any transport. */
    bcc: AddressList,
    replyTo: AddressList,
    text: Body,
    html: Body,
    headers: Headers,
    attachments: t.readonlyArray(AttachmentRef),
    tags: Tags,
    metadata: Metadata,
    /** RFC 3339: held until then (status `scheduled`), by us, not by the provider. */
    sendAt: t.string,
  }),
]);

interface EmailRequestBrand {
  readonly EmailRequest: unique symbol;
}
/**
 * A request that can be sent as it is. The brand adds the rules no field carries alone (at least
 * one non-empty body; at most 50 distinct recipients in to, cc and bcc together), so a value of
 * this type cannot exist invalid, whether it came from a form or was decoded off a queue.
 */
export const EmailRequest = t.brand(
  EmailRequestShape,
  (r): r is t.Branded<t.TypeOf<typeof EmailRequestShape>, EmailRequestBrand> =>
    (hasText(r.text ?? '') || hasText(r.html ?? '')) &&
    recipientCountProblem(allRecipients(r).length) === undefined &&
    (r.attachments ?? []).length <= MAX_ATTACHMENTS,
  'EmailRequest',
);
export type EmailRequest = t.TypeOf<typeof EmailRequest>;

/** Every recipient, as the envelope carries them: to, then cc, then bcc. */
export const allRecipients = (r: {
  readonly to: readonly EmailAddress[];
  readonly cc?: readonly EmailAddress[];
  readonly bcc?: readonly EmailAddress[];
}): readonly EmailAddress[] => [...r.to, ...(r.cc ?? []), ...(r.bcc ?? [])];

/** Field name → what is wrong with it, in words a person can act on. */
export type FieldErrors = Readonly<Record<string, string>>;

export interface InvalidEmailRequest {
  readonly _tag: 'InvalidEmailRequest';
  readonly fields: FieldErrors;
}

/** An attachment as the API receives it: its content still base64, checked but not decoded. */
export interface DraftAttachment {
  readonly filename: string;
  /** Standard base64 (RFC 4648 §4), padding required, whitespace allowed between lines. */
  readonly content: string;
  /** Decoded size in octets. */
  readonly size: number;
  readonly contentType?: string;
  readonly contentId?: string;
}

/** What a person asked for, validated; the use case adds the id, the time and stores the files. */
export interface EmailDraft {
  readonly from?: EmailAddress;
  readonly to: readonly EmailAddress[];
  readonly cc?: readonly EmailAddress[];
  readonly bcc?: readonly EmailAddress[];
  readonly replyTo?: readonly EmailAddress[];
  readonly subject: Subject;
  readonly text?: string;
  readonly html?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly attachments?: readonly DraftAttachment[];
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly sendAt?: string;
}

/** What the rules need besides the input: decided by configuration and the clock, not by us. */
export interface DraftOptions {
  /** The request's time: `send_at` must be after it and at most `MAX_SCHEDULE_MS` later. */
  readonly now: Date;
  /** `ALLOWED_FROM_DOMAINS`, lowercase ASCII (A-labels); empty: any `from` is refused. */
  readonly allowedFromDomains: readonly string[];
  /**
   * Turns an address's domain into its ASCII form (UTS #46 ToASCII), or undefined when it is not
   * a valid domain name: how internationalised domains are checked, compared and allowed.
   * Without it, only ASCII domains are compared case-insensitively.
   */
  readonly domainToAscii?: (domain: string) => string | undefined;
}

export const MAX_SCHEDULE_MS = 30 * 24 * 60 * 60 * 1000;
/** Entries one address field may list before duplicates are merged into at most 50. */
const MAX_LISTED_ADDRESSES = 1000;

const KNOWN_FIELD_NAMES = [
  'from',
  'to',
  'cc',
  'bcc',
  'reply_to',
  'subject',
  'text',
  'html',
  'headers',
  'attachments',
  'tags',
  'metadata',
  'send_at',
];
const KNOWN_FIELDS: ReadonlySet<string> = new Set(KNOWN_FIELD_NAMES);

/**
 * The Unicode bidirectional embedding, override and isolate controls (Unicode UAX #9 §2.1, §2.4;
 * the "Trojan Source" characters of CVE-2021-42574). In a file name they reorder what a mail
 * program shows, so that an executable passes for a document; nothing a real name needs.
 */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/;

function filenameProblem(name: string): string | undefined {
  if (name.trim() === '') return 'is required';
  const text = textProblem(name);
  if (text !== undefined) return text;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'must not contain control characters';
  if (/[/\\]/.test(name)) return 'must be a file name, without / or \\';
  if (longerThan(name, MAX_FILENAME_CHARS)) {
    return `is longer than ${MAX_FILENAME_CHARS} characters`;
  }
  return undefined;
}

/** A header value: one line, printable, short enough to fold within RFC 5322's 998 octets. */
function headerValueProblem(value: string): string | undefined {
  const text = textProblem(value);
  if (text !== undefined) return text;
  if (/[\r\n]/.test(value)) return 'must be one line (no CR or LF)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'must not contain control characters';
  if (longerThan(value, MAX_SUBJECT_CHARS)) return `is longer than ${MAX_SUBJECT_CHARS} characters`;
  return undefined;
}

const headerNameProblem = (name: string): string | undefined => {
  if (RESERVED_HEADERS.has(name.toLowerCase())) return 'is set by this service';
  if (name.toLowerCase().startsWith(RESERVED_HEADER_PREFIX)) {
    return 'is an instruction to Mailgun, not a header you may set';
  }
  if (X_HEADER.test(name) || NAMED_HEADERS.some((n) => n.toLowerCase() === name.toLowerCase())) {
    return undefined;
  }
  return `is not a header you may set: use X-… or ${NAMED_HEADERS.join(', ')}`;
};

/** In-Reply-To and References hold message ids (RFC 5322 §3.6.4): ASCII, each folded alone. */
function messageIdsProblem(name: string, value: string): string | undefined {
  if (!/^(in-reply-to|references)$/i.test(name)) return undefined;
  if (/[^\x20-\x7e]/.test(value)) return 'must be message ids in ASCII, such as <id@example.com>';
  const tooLong = value.split(/\s+/).find((id) => id.length > MAX_MESSAGE_ID_CHARS);
  return tooLong === undefined
    ? undefined
    : `holds a message id longer than ${MAX_MESSAGE_ID_CHARS} characters`;
}

function headersProblem(headers: Readonly<Record<string, string>>): string | undefined {
  const names = Object.keys(headers);
  if (names.length > MAX_HEADERS) return `has ${names.length} headers; at most ${MAX_HEADERS}`;
  const lower = names.map((n) => n.toLowerCase());
  if (new Set(lower).size !== lower.length) return 'names a header twice (names ignore case)';
  for (const [name, value] of Object.entries(headers)) {
    const problem =
      headerNameProblem(name) ?? headerValueProblem(value) ?? messageIdsProblem(name, value);
    if (problem !== undefined) return `${name} ${problem}`;
  }
  return undefined;
}

function metadataProblem(metadata: Readonly<Record<string, string>>): string | undefined {
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA) return `has ${entries.length} pairs; at most ${MAX_METADATA}`;
  for (const [key, value] of entries) {
    if (!METADATA_KEY.test(key)) {
      return `key "${truncate(key)}" must be 1 to ${MAX_METADATA_KEY_CHARS} of A-Z, a-z, 0-9, _, . and -`;
    }
    if (RESERVED_METADATA_KEYS.has(key)) return `key "${key}" is used by this service`;
    const text = textProblem(value);
    if (text !== undefined) return `value of "${key}" ${text}`;
    if (longerThan(value, MAX_METADATA_VALUE_CHARS)) {
      return `value of "${key}" is longer than ${MAX_METADATA_VALUE_CHARS} characters`;
    }
  }
  return undefined;
}

/** The base64 alphabet of RFC 4648 §4 with padding; line breaks (MIME style) are tolerated. */
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;
/**
 * Checked without a repeated group: V8 runs `(?:x{4})*` by recursion, which overflows the stack
 * on a file of a few megabytes. One character class, then the length and the padding, is linear.
 */
const isBase64 = (b: string): boolean => b.length % 4 === 0 && BASE64_TEXT.test(b);

/** Decoded octets of valid base64 `b` (whitespace already removed). */
const base64Octets = (b: string): number =>
  (b.length / 4) * 3 - (b.endsWith('==') ? 2 : b.endsWith('=') ? 1 : 0);

/**
 * About how many octets the message will have once encoded: attachments as base64 with its
 * line breaks (4/3, plus CRLF every 76), bodies at their size plus a tenth for their encoding
 * (real text stays close to its size in quoted-printable), a text part generated from an
 * html-only body as large again as the html, and every header value (subject, addresses,
 * extra headers, tags, metadata) with room for its encoding and folding.
 */
export function encodedSizeOf(draft: EmailDraft): number {
  const html = octets(draft.html ?? '');
  const bodies = octets(draft.text ?? '') + html + (draft.text === undefined ? html : 0);
  const files = (draft.attachments ?? []).reduce(
    (sum, a) => sum + Math.ceil((a.size * 4) / 3) * (78 / 76) + 300,
    0,
  );
  // Each header value (an absent sender counted as an empty one) with room for its name: summed
  // in place rather than gathered into one array first, as every request is measured.
  let headerText = octets(draft.subject) + 4 + octets(draft.from ?? '') + 4;
  const add = (values: readonly string[] | undefined): void => {
    for (const v of values ?? []) headerText += octets(v) + 4;
  };
  const addPairs = (record: Readonly<Record<string, string>> | undefined): void => {
    for (const [name, value] of Object.entries(record ?? {})) {
      headerText += octets(name) + 4 + octets(value) + 4;
    }
  };
  add(draft.to);
  add(draft.cc);
  add(draft.replyTo);
  addPairs(draft.headers);
  add(draft.tags);
  addPairs(draft.metadata);
  return Math.ceil(bodies * 1.1 + files + headerText * 1.4 + 4096);
}

type Errors = Record<string, string>;

function parseAddressField(
  field: string,
  value: unknown,
  errors: Errors,
  options: DraftOptions,
  required: boolean,
): EmailAddress[] {
  if (
    value === undefined ||
    value === null ||
    value === '' ||
    (Array.isArray(value) && value.length === 0)
  ) {
    if (required) errors[field] = TO_REQUIRED;
    return [];
  }
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
    errors[field] = 'must be an address or a list of addresses (strings)';
    return [];
  }
  // Counted again once duplicates are merged; this only keeps a huge list from being parsed.
  if (list.length > MAX_LISTED_ADDRESSES) {
    errors[field] =
      `has ${list.length} addresses; at most ${MAX_RECIPIENTS} distinct recipients are allowed`;
    return [];
  }
  const addresses: EmailAddress[] = [];
  list.forEach((raw: string, i) => {
    const parsed = parseEmailAddress(raw, options.domainToAscii);
    const key = typeof value === 'string' ? field : `${field}[${i}]`;
    if (E.isLeft(parsed)) errors[key] = `"${truncate(raw)}" ${parsed.left.message}`;
    else addresses.push(parsed.right);
  });
  return addresses;
}

function parseSubject(value: unknown, errors: Errors): Subject | undefined {
  const problem = subjectProblem(value);
  if (problem !== undefined) errors.subject = problem;
  // No problem is what `Subject.is` asks (a string is the first thing `subjectProblem` checks).
  return problem === undefined ? (value as Subject) : undefined;
}

function parseBody(name: 'text' | 'html', value: unknown, errors: Errors): void {
  if (value === undefined || value === null) return;
  const problem = bodyProblem(value);
  if (problem !== undefined) errors[name] = problem;
}

function parseTags(value: unknown, errors: Errors): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    errors.tags = 'must be a list of strings';
    return undefined;
  }
  const problem = tagsProblem(value);
  if (problem !== undefined) errors.tags = problem;
  // The same tag twice is one tag.
  return [...new Set(value)];
}

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === 'object' && u !== null && !Array.isArray(u);

function parseStringRecord(
  field: 'headers' | 'metadata',
  value: unknown,
  errors: Errors,
  problem: (r: Readonly<Record<string, string>>) => string | undefined,
): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    errors[field] = 'must be an object whose values are strings';
    return undefined;
  }
  const record = value as Record<string, string>;
  const found = problem(record);
  if (found !== undefined) errors[field] = found;
  return Object.keys(record).length > 0 ? { ...record } : undefined;
}

function parseAttachments(value: unknown, errors: Errors): DraftAttachment[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) {
    errors.attachments = 'must be a list of {"filename", "content"} objects';
    return undefined;
  }
  if (value.length > MAX_ATTACHMENTS) {
    errors.attachments = `has ${value.length} attachments; at most ${MAX_ATTACHMENTS} are allowed`;
    return undefined;
  }
  const parsed: DraftAttachment[] = [];
  const contentIds = new Set<string>();
  value.forEach((item: unknown, i) => {
    const at = `attachments[${i}]`;
    if (!isRecord(item)) {
      errors[at] = 'must be an object with filename and content';
      return;
    }
    const unknown = Object.keys(item).filter(
      (k) => !['filename', 'content', 'content_type', 'content_id'].includes(k),
    );
    if (unknown.length > 0) {
      errors[`${at}.${unknown[0]}`] =
        'is not a known field (use filename, content, content_type, content_id)';
      return;
    }
    const { filename, content, content_type: contentType, content_id: contentId } = item;
    // The bidirectional controls only here, for a new request: a request accepted before they
    // were refused must still decode off the queue, the schedule and the email log.
    const nameProblem =
      typeof filename === 'string'
        ? (filenameProblem(filename) ??
          (BIDI_CONTROLS.test(filename)
            ? 'must not contain bidirectional controls (U+202A to U+202E, U+2066 to U+2069): they make a name such as "invoice\u202Efdp.exe" show as "invoiceexe.pdf"'
            : undefined))
        : filename === undefined
          ? 'is required (a string)'
          : 'must be a string';
    if (nameProblem !== undefined) errors[`${at}.filename`] = nameProblem;
    const compact = typeof content === 'string' ? content.replace(/[\r\n \t]/g, '') : undefined;
    if (compact === undefined) {
      errors[`${at}.content`] =
        content === undefined
          ? 'is required: the file, base64-encoded'
          : 'must be a string: the file, base64-encoded';
    } else if (compact === '' || !isBase64(compact)) {
      errors[`${at}.content`] =
        compact === '' ? 'is empty' : 'is not valid base64 (RFC 4648, with padding)';
    }
    if (
      contentType !== undefined &&
      (typeof contentType !== 'string' || !CONTENT_TYPE.test(contentType))
    ) {
      errors[`${at}.content_type`] =
        'must be a media type such as image/png or text/csv; charset=utf-8';
    }
    if (contentId !== undefined) {
      if (typeof contentId !== 'string' || !CONTENT_ID.test(contentId)) {
        errors[`${at}.content_id`] = "must be 1 to 200 letters, digits or !#$%&'*+/=?^_`{|}~.@-";
      } else if (contentIds.has(contentId)) {
        errors[`${at}.content_id`] =
          `"${contentId}" is already the content_id of another attachment`;
      } else contentIds.add(contentId);
    }
    if (
      typeof filename === 'string' &&
      compact !== undefined &&
      !errors[`${at}.content`] &&
      nameProblem === undefined
    ) {
      parsed.push({
        filename,
        content: compact,
        size: base64Octets(compact),
        ...(typeof contentType === 'string' ? { contentType } : {}),
        ...(typeof contentId === 'string' ? { contentId } : {}),
      });
    }
  });
  return parsed.length > 0 ? parsed : undefined;
}

/** RFC 3339 date-time with an offset (§5.6): `2026-12-01T09:00:00Z`, `…+01:00`. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Date.parse rolls a day the month does not have (`02-30`) and `24:00` over into the next ones;
 * RFC 3339 §5.7 allows neither, and an email held until a day nobody asked for is worse than a 400.
 */
function isCalendarTime(value: string): boolean {
  const month = Number(value.slice(5, 7)) - 1;
  const day = Number(value.slice(8, 10));
  // setUTCFullYear, not Date.UTC, which reads the years 0 to 99 as 1900 to 1999.
  const date = new Date(0);
  date.setUTCFullYear(Number(value.slice(0, 4)), month, day);
  const hour = Number(value.slice(11, 13));
  return hour <= 23 && date.getUTCMonth() === month && date.getUTCDate() === day;
}

function parseSendAt(value: unknown, errors: Errors, now: Date): string | undefined {
  if (value === undefined || value === null) return undefined;
  const ms =
    typeof value === 'string' && RFC3339.test(value) && isCalendarTime(value)
      ? Date.parse(value)
      : NaN;
  if (typeof value !== 'string' || Number.isNaN(ms)) {
    errors.send_at = 'must be an RFC 3339 time with its offset, such as 2026-12-01T09:00:00Z';
    return undefined;
  }
  if (ms <= now.getTime()) {
    errors.send_at = 'is in the past: give a time after now, or leave send_at out to send at once';
    return undefined;
  }
  if (ms > now.getTime() + MAX_SCHEDULE_MS) {
    errors.send_at = 'is more than 30 days ahead';
    return undefined;
  }
  return new Date(ms).toISOString();
}

function checkFrom(from: EmailAddress | undefined, errors: Errors, options: DraftOptions): void {
  if (from === undefined) return;
  const { domain } = addressParts(from);
  const ascii = (options.domainToAscii?.(domain) ?? domain).toLowerCase();
  if (!options.allowedFromDomains.includes(ascii)) {
    errors.from = `uses the domain ${domain}, which this service may not send from${
      options.allowedFromDomains.length > 0
        ? ` (allowed: ${options.allowedFromDomains.join(', ')})`
        : ''
    }`;
  }
}

/**
 * Keeps the first of each mailbox across to, cc and bcc (in that order): the same mailbox given
 * twice, whatever its display name or the case of its domain, is one recipient.
 */
function distinct(
  lists: readonly (readonly EmailAddress[])[],
  toAscii: DraftOptions['domainToAscii'],
): EmailAddress[][] {
  const seen = new Set<string>();
  return lists.map((list) =>
    list.filter((a) => {
      const key = mailboxKey(a, toAscii);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    }),
  );
}

/**
 * Validates untrusted input (a decoded JSON body or form, field names as the API spells them)
 * and reports every problem at once, by field (`to[2]`, `attachments[0].content`).
 */
export function parseEmailDraft(
  input: unknown,
  options: DraftOptions,
): E.Either<InvalidEmailRequest, EmailDraft> {
  if (!isRecord(input)) {
    return E.left({
      _tag: 'InvalidEmailRequest',
      fields: { body: 'must be an object with to, subject and text or html' },
    });
  }
  const errors: Errors = {};
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) {
      // Defined, not assigned: `errors.__proto__ = '…'` would be dropped without a word.
      Object.defineProperty(errors, key, {
        value: `is not a known field (use ${KNOWN_FIELD_NAMES.join(', ')})`,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  const [from] = parseAddressField('from', input.from, errors, options, false);
  // A list is refused as a list: its first domain's fate would only hide that.
  if (Array.isArray(input.from)) errors.from = 'must be one address';
  else checkFrom(from, errors, options);
  const [to = [], cc = [], bcc = []] = distinct(
    [
      parseAddressField('to', input.to, errors, options, true),
      parseAddressField('cc', input.cc, errors, options, false),
      parseAddressField('bcc', input.bcc, errors, options, false),
    ],
    options.domainToAscii,
  );
  const count = to.length + cc.length + bcc.length;
  if (count > MAX_RECIPIENTS && errors.to === undefined) {
    errors.to = `has ${count} recipients with cc and bcc; at most ${MAX_RECIPIENTS} are allowed`;
  }
  const replyTo = parseAddressField('reply_to', input.reply_to, errors, options, false);
  const subject = parseSubject(input.subject, errors);
  parseBody('text', input.text, errors);
  parseBody('html', input.html, errors);
  const headers = parseStringRecord('headers', input.headers, errors, headersProblem);
  const metadata = parseStringRecord('metadata', input.metadata, errors, metadataProblem);
  const attachments = parseAttachments(input.attachments, errors);
  const tags = parseTags(input.tags, errors);
  const sendAt = parseSendAt(input.send_at, errors, options.now);
  const text = typeof input.text === 'string' && hasText(input.text) ? input.text : undefined;
  const html = typeof input.html === 'string' && hasText(input.html) ? input.html : undefined;
  if (text === undefined && html === undefined && !errors.text && !errors.html) {
    errors.text = 'is required (or give html): the email needs a body';
  }
  if (Object.keys(errors).length > 0 || subject === undefined) {
    return E.left({ _tag: 'InvalidEmailRequest', fields: errors });
  }
  const draft: EmailDraft = {
    ...(from !== undefined ? { from } : {}),
    to,
    ...(cc.length > 0 ? { cc } : {}),
    ...(bcc.length > 0 ? { bcc } : {}),
    ...(replyTo.length > 0 ? { replyTo } : {}),
    subject,
    ...(text !== undefined ? { text } : {}),
    ...(html !== undefined ? { html } : {}),
    ...(headers !== undefined ? { headers } : {}),
    ...(attachments !== undefined ? { attachments } : {}),
    ...(tags !== undefined && tags.length > 0 ? { tags } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
    ...(sendAt !== undefined ? { sendAt } : {}),
  };
  parsed.add(frozen(draft));
  return E.right(draft);
}

/**
 * `draft` frozen, with the lists and records it holds: a draft in `parsed` is trusted for what
 * it held when it was checked, so it must not change afterwards (in strict mode, as every
 * module here runs, a write to it throws). Its attachments are not frozen: a draft with
 * attachments is checked again whole (`toEmailRequest`).
 */
function frozen(draft: EmailDraft): EmailDraft {
  const { to, cc, bcc, replyTo, tags, headers, metadata } = draft;
  for (const part of [to, cc, bcc, replyTo, tags, headers, metadata]) {
    if (part !== undefined) Object.freeze(part);
  }
  return Object.freeze(draft);
}

/**
 * The drafts `parseEmailDraft` made (and their copies that only reorder or drop nothing): every
 * rule of `EmailRequest` they carry was checked on them already, with an IDNA converter, which
 * is stricter than the codec. `toEmailRequest` checks of them only what it adds. They are frozen
 * (`frozen`), so what was checked is what they hold. Held weakly: a draft lives as long as its
 * request.
 */
const parsed = new WeakSet<EmailDraft>();

/**
 * `draft` addressed to `kept` only (the recipients not on the suppression list): its cc and bcc
 * replaced by those of `kept`, present when they hold anyone. When `kept` holds the draft's own
 * lists, nothing was dropped and the copy is as valid as the draft was.
 */
export function addressedTo(
  draft: EmailDraft,
  kept: {
    readonly to: readonly EmailAddress[];
    readonly cc?: readonly EmailAddress[];
    readonly bcc?: readonly EmailAddress[];
  },
): EmailDraft {
  const same = kept.to === draft.to && sameList(kept.cc, draft.cc) && sameList(kept.bcc, draft.bcc);
  // Nobody dropped from a draft without cc and bcc (the usual email): the copy would be the draft
  // again, field for field and in the same order.
  if (same && !('cc' in draft) && !('bcc' in draft)) return draft;
  const { cc: _cc, bcc: _bcc, ...rest } = draft;
  const copy: EmailDraft = {
    ...rest,
    to: kept.to,
    ...(kept.cc !== undefined && kept.cc.length > 0 ? { cc: kept.cc } : {}),
    ...(kept.bcc !== undefined && kept.bcc.length > 0 ? { bcc: kept.bcc } : {}),
  };
  // The copy holds the draft's own (frozen) lists; frozen itself, it may be trusted as well.
  if (same && parsed.has(draft)) parsed.add(Object.freeze(copy));
  return copy;
}

/** The same list of a draft, kept whole: an absent or empty one is kept as absent. */
const sameList = (
  kept: readonly EmailAddress[] | undefined,
  given: readonly EmailAddress[] | undefined,
): boolean =>
  kept === undefined || kept.length === 0 ? (given ?? []).length === 0 : kept === given;

/**
 * Gives a draft its identity, with its attachments replaced by what the store keeps of them; a
 * bug (not bad input), thrown, if the result is not a valid `EmailRequest`.
 */
export function toEmailRequest(
  draft: EmailDraft,
  id: EmailId,
  requestedAt: Date,
  attachments: readonly AttachmentRef[] = [],
): EmailRequest {
  if (draft.attachments === undefined && attachments.length === 0) {
    // No files (most emails): the draft's fields in their order, then the id and the time. Not
    // `{ ...draft, id, … }`: V8 builds a literal that opens with a spread and goes on with more
    // fields, or one whose spread leaves a field out, on a slow path (about 0.3 to 1 µs a time).
    const request = Object.assign({}, draft, { id, requestedAt: requestedAt.toISOString() });
    if (parsed.has(draft)) {
      if (!EmailId.is(id)) throw new Error('a validated draft is not an EmailRequest');
      // The brand granted without asking again: the parser checked every other field by the
      // same rules (see `parsed`), and the id and the time are all this adds.
      return request as EmailRequest;
    }
    if (!EmailRequest.is(request)) throw new Error('a validated draft is not an EmailRequest');
    return request;
  }
  const { attachments: _files, ...rest } = draft;
  const request = {
    ...rest,
    ...(attachments.length > 0 ? { attachments } : {}),
    id,
    requestedAt: requestedAt.toISOString(),
  };
  // Checked, not decoded: every codec of the shape is a brand or a refinement (decoding would
  // only copy it), and `is` skips building the error reports and the copy.
  if (!EmailRequest.is(request)) throw new Error('a validated draft is not an EmailRequest');
  return request;
}
