/**
 * How the Mailgun stand-in reads `POST /v3/:domain/messages`: both encodings Mailgun takes,
 * repeated keys, comma-separated recipients, and Mailgun's own wording for what it refuses
 * (Mailgun's API reference, "Messages": documentation.mailgun.com/docs/mailgun/api-reference).
 */

/** A file part (`attachment` or `inline`) as it arrived: its name, type and exact bytes. */
export interface ReceivedFile {
  /** For `inline`, also the Content-ID Mailgun gives the part (`cid:<filename>`). */
  readonly filename: string;
  readonly contentType: string;
  /** Octets. */
  readonly size: number;
  /** The bytes, base64: the record is listed as JSON over HTTP too. */
  readonly base64: string;
}

/** One message as Mailgun would have queued it. */
export interface ReceivedMessage {
  /** The id the stand-in answered with, angle brackets included, as Mailgun does. */
  readonly id: string;
  readonly domain: string;
  readonly receivedAt: string;
  /**
   * When its request reached the stand-in, in milliseconds since the epoch (before the body was
   * read, so a large body does not move it): what a provider's rate limit would count.
   */
  readonly arrivedAtMs: number;
  readonly encoding: 'urlencoded' | 'multipart';
  readonly from: string;
  /** Every `to` field, comma-separated values split, in order. */
  readonly to: readonly string[];
  /** The same for `cc` and `bcc`. */
  readonly cc: readonly string[];
  readonly bcc: readonly string[];
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
  /** `o:tag` fields, in order. */
  readonly tags: readonly string[];
  /** `attachment` and `inline` file parts, each in order (multipart only). */
  readonly attachments: readonly ReceivedFile[];
  readonly inline: readonly ReceivedFile[];
  /** `v:name` fields, by name. */
  readonly variables: Readonly<Record<string, string>>;
  /** `h:Name` fields, by name as sent: the extra MIME headers Mailgun would add. */
  readonly headers: Readonly<Record<string, string>>;
  /** Every field as it arrived, in order; a file part shows as `[file name (size)]`. */
  readonly fields: readonly (readonly [string, string])[];
  /** The HTTP request headers, the Authorization value masked. */
  readonly requestHeaders: Readonly<Record<string, string>>;
}

export type Fields = readonly (readonly [string, string])[];

/** A file part of a multipart body, with the form field that carried it. */
export interface FilePart extends ReceivedFile {
  readonly field: string;
}

export interface ReadForm {
  /** Every field in order; a file part shows as `[file name (size)]`. */
  readonly fields: Fields;
  readonly files: readonly FilePart[];
}

// Mailgun's limits (Messages API reference and "Sending Messages": 1000 recipients, 25 MB,
// 16 kB of o:, h:, v: and t: options; 10 tags a message, help.mailgun.com "Tags").
const MAX_RECIPIENTS = 1000;
const MAX_TAGS = 10;
const MAX_OPTIONS_BYTES = 16 * 1024;
const BAD_ADDRESS = (field: string): string =>
  `'${field}' parameter is not a valid address. please check documentation`;

/**
 * Reads both encodings with the web `Request` parser Node ships (undici): multipart included,
 * file parts with their name, type and bytes, so the stand-in writes no parser of its own.
 */
export async function readFields(contentType: string, body: Buffer): Promise<ReadForm | undefined> {
  if (!/^(multipart\/form-data|application\/x-www-form-urlencoded)\b/i.test(contentType)) {
    return undefined;
  }
  const request = new Request('http://stand-in/', {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
  const form = await request.formData();
  const fields: [string, string][] = [];
  const files: FilePart[] = [];
  for (const [key, value] of form) {
    if (typeof value === 'string') {
      fields.push([key, value]);
      continue;
    }
    const bytes = Buffer.from(await value.arrayBuffer());
    fields.push([key, `[file ${value.name} (${value.size})]`]);
    files.push({
      field: key,
      filename: value.name,
      contentType: value.type,
      size: bytes.length,
      base64: bytes.toString('base64'),
    });
  }
  return { fields, files };
}

/** Splits `a@x.org, "Doe, Jo" <jo@y.org>` on the commas that separate addresses. */
export function splitAddresses(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] ?? '';
    if (c === '\\' && quoted) {
      current += c + (value[++i] ?? '');
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '<') angle = true;
    else if (!quoted && c === '>') angle = false;
    if (c === ',' && !quoted && !angle) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

// The local part in printable ASCII, without the specials: Mailgun refuses a UTF-8 local part
// (RFC 6531) as it refuses any other bad address. The domain in ASCII (A-labels) too.
const BARE = /^(?:(?![<>@",;()[\]\\])[\x21-\x7e])+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/**
 * Loose RFC 5322 check, as Mailgun's: `addr` or `Name <addr>`, never a line break. The display
 * name may be Unicode (Mailgun encodes it); the address itself may not.
 */
export function isValidAddress(value: string): boolean {
  if (/[\r\n]/.test(value)) return false;
  // `s`: a display name may hold U+2028 and the like, which `.` alone does not match.
  const named = /^(.*?)\s*<([^<>]*)>$/s.exec(value);
  if (!named) return BARE.test(value);
  const name = named[1] ?? '';
  const nameOk = /^"(?:[^"\\]|\\.)*"$/.test(name) || !/[<>"@,;]/.test(name);
  return nameOk && BARE.test(named[2] ?? '');
}

const all = (fields: Fields, key: string): string[] =>
  fields.filter(([k]) => k === key).map(([, v]) => v);
const first = (fields: Fields, key: string): string | undefined => all(fields, key)[0];
const prefixed = (fields: Fields, prefix: string): Record<string, string> =>
  Object.fromEntries(
    fields.filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]),
  );

export type Parsed =
  | {
      readonly ok: true;
      readonly message: Omit<
        ReceivedMessage,
        'id' | 'domain' | 'receivedAt' | 'arrivedAtMs' | 'encoding' | 'requestHeaders'
      >;
    }
  | { readonly ok: false; readonly error: string };

/** The address a recipient names, without its display name: `Jo <Jo@x.org>` → `Jo@x.org`. */
export const bareAddress = (address: string): string => /<([^<>]*)>$/.exec(address)?.[1] ?? address;

/** The mailbox a recipient names, as Mailgun compares them to drop duplicates. */
export const mailboxOf = (address: string): string => bareAddress(address).toLowerCase();

const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Checks the fields in the order Mailgun reports them, one problem per answer, as it does. */
export function parseMessage(fields: Fields, files: readonly FilePart[] = []): Parsed {
  const from = first(fields, 'from');
  if (from === undefined || from.trim() === '')
    return { ok: false, error: 'from parameter is missing' };
  if (!isValidAddress(from.trim())) return { ok: false, error: BAD_ADDRESS('from') };
  const to = all(fields, 'to').flatMap(splitAddresses);
  if (to.length === 0) return { ok: false, error: 'to parameter is missing' };
  const cc = all(fields, 'cc').flatMap(splitAddresses);
  const bcc = all(fields, 'bcc').flatMap(splitAddresses);
  for (const [field, list] of [
    ['to', to],
    ['cc', cc],
    ['bcc', bcc],
  ] as const) {
    if (!list.every(isValidAddress)) return { ok: false, error: BAD_ADDRESS(field) };
  }
  // Duplicates are ignored (OpenAPI "Send an email"), so they do not count toward the limit.
  if (new Set([...to, ...cc, ...bcc].map(mailboxOf)).size > MAX_RECIPIENTS) {
    return { ok: false, error: `Too many recipients; max is ${MAX_RECIPIENTS}` };
  }
  const subject = first(fields, 'subject');
  if (subject === undefined) return { ok: false, error: 'subject parameter is missing' };
  const text = first(fields, 'text');
  const html = first(fields, 'html');
  if (!text && !html) {
    return { ok: false, error: "Need at least one of 'text' or 'html' parameters specified" };
  }
  const tags = all(fields, 'o:tag');
  // The limits below are documented; Mailgun's wording for them is not, so these are ours.
  if (tags.length > MAX_TAGS) {
    return { ok: false, error: `Too many tags; max is ${MAX_TAGS} per message` };
  }
  const options = fields
    .filter(([k]) => /^[ohvt]:/.test(k))
    .reduce((sum, [k, v]) => sum + octets(k) + octets(v), 0);
  if (options > MAX_OPTIONS_BYTES) {
    return { ok: false, error: 'Sending options (o:, h:, v:, t:) are limited to 16 kB in total' };
  }
  const filesOf = (field: string) =>
    files.filter((f) => f.field === field).map(({ field: _field, ...file }) => file);
  return {
    ok: true,
    message: {
      from: from.trim(),
      to,
      cc,
      bcc,
      subject,
      ...(text !== undefined ? { text } : {}),
      ...(html !== undefined ? { html } : {}),
      tags,
      attachments: filesOf('attachment'),
      inline: filesOf('inline'),
      variables: prefixed(fields, 'v:'),
      headers: prefixed(fields, 'h:'),
      fields,
    },
  };
}
