import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { EmailAddress, LONE_SURROGATE, parseEmailAddress } from './email-address.js';

export const MAX_RECIPIENTS = 50;
export const MAX_SUBJECT_CHARS = 998; // RFC 5322 §2.1.1 line limit
/** Each body part, in UTF-8 octets; two of them still fit the 1 MB request limit. */
export const MAX_BODY_OCTETS = 500_000;

const octets = (s: string): number => new TextEncoder().encode(s).length;

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
  if (value.trim() === '') return 'is required';
  const text = textProblem(value);
  if (text !== undefined) return text;
  if (/[\r\n]/.test(value)) return 'must be one line (no CR or LF)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'must not contain control characters';
  const chars = [...value].length;
  if (chars > MAX_SUBJECT_CHARS) return `is longer than ${MAX_SUBJECT_CHARS} characters`;
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

const EmailRequestShape = t.intersection([
  t.type({ id: EmailId, to: Recipients, subject: Subject, requestedAt: t.string }),
  t.partial({ text: Body, html: Body, tags: Tags }),
]);

interface EmailRequestBrand {
  readonly EmailRequest: unique symbol;
}
/**
 * A request that can be sent as it is. The brand adds the rule no field carries alone (at least
 * one non-empty body), so a value of this type cannot exist invalid, whether it came from a form
 * or was decoded off a queue.
 */
export const EmailRequest = t.brand(
  EmailRequestShape,
  (r): r is t.Branded<t.TypeOf<typeof EmailRequestShape>, EmailRequestBrand> =>
    (r.text ?? '').trim() !== '' || (r.html ?? '').trim() !== '',
  'EmailRequest',
);
export type EmailRequest = t.TypeOf<typeof EmailRequest>;

/** Field name → what is wrong with it, in words a person can act on. */
export type FieldErrors = Readonly<Record<string, string>>;

export interface InvalidEmailRequest {
  readonly _tag: 'InvalidEmailRequest';
  readonly fields: FieldErrors;
}

/** What a person asked for, validated; the use case adds the id and the time. */
export interface EmailDraft {
  readonly to: readonly EmailAddress[];
  readonly subject: Subject;
  readonly text?: string;
  readonly html?: string;
  readonly tags?: readonly string[];
}

const KNOWN_FIELDS = new Set(['to', 'subject', 'text', 'html', 'tags']);

function parseRecipients(value: unknown, errors: Record<string, string>): EmailAddress[] {
  if (value === undefined || value === null || value === '') {
    errors.to = TO_REQUIRED;
    return [];
  }
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
    errors.to = 'must be an address or a list of addresses (strings)';
    return [];
  }
  const count = recipientCountProblem(list.length);
  if (count !== undefined) errors.to = count;
  const addresses: EmailAddress[] = [];
  list.forEach((raw: string, i) => {
    const parsed = parseEmailAddress(raw);
    const key = typeof value === 'string' ? 'to' : `to[${i}]`;
    if (E.isLeft(parsed)) errors[key] = `"${truncate(raw)}" ${parsed.left.message}`;
    else addresses.push(parsed.right);
  });
  return addresses;
}

function parseSubject(value: unknown, errors: Record<string, string>): Subject | undefined {
  const problem = subjectProblem(value);
  if (problem !== undefined) errors.subject = problem;
  return Subject.is(value) ? value : undefined;
}

function parseBody(name: 'text' | 'html', value: unknown, errors: Record<string, string>): void {
  if (value === undefined || value === null) return;
  const problem = bodyProblem(value);
  if (problem !== undefined) errors[name] = problem;
}

function parseTags(value: unknown, errors: Record<string, string>): string[] | undefined {
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

/** Validates untrusted input (a decoded JSON body or form) and reports every problem at once. */
export function parseEmailDraft(input: unknown): E.Either<InvalidEmailRequest, EmailDraft> {
  if (!isRecord(input)) {
    return E.left({
      _tag: 'InvalidEmailRequest',
      fields: { body: 'must be an object with to, subject and text or html' },
    });
  }
  const errors: Record<string, string> = {};
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) {
      errors[key] = 'is not a known field (use to, subject, text, html, tags)';
    }
  }
  const to = parseRecipients(input.to, errors);
  const subject = parseSubject(input.subject, errors);
  parseBody('text', input.text, errors);
  parseBody('html', input.html, errors);
  const tags = parseTags(input.tags, errors);
  const text = typeof input.text === 'string' && input.text.trim() !== '' ? input.text : undefined;
  const html = typeof input.html === 'string' && input.html.trim() !== '' ? input.html : undefined;
  if (text === undefined && html === undefined && !errors.text && !errors.html) {
    errors.text = 'is required (or give html): the email needs a body';
  }
  if (Object.keys(errors).length > 0 || subject === undefined) {
    return E.left({ _tag: 'InvalidEmailRequest', fields: errors });
  }
  return E.right({
    to,
    subject,
    ...(text !== undefined ? { text } : {}),
    ...(html !== undefined ? { html } : {}),
    ...(tags !== undefined && tags.length > 0 ? { tags } : {}),
  });
}

/** Gives a draft its identity; a bug (not bad input) if the result does not decode. */
export function toEmailRequest(draft: EmailDraft, id: EmailId, requestedAt: Date): EmailRequest {
  const decoded = EmailRequest.decode({ ...draft, id, requestedAt: requestedAt.toISOString() });
  if (E.isLeft(decoded)) throw new Error('a validated draft failed to decode as an EmailRequest');
  return decoded.right;
}
