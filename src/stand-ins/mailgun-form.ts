/**
 * How the Mailgun stand-in reads `POST /v3/:domain/messages`: both encodings Mailgun takes,
 * repeated keys, comma-separated recipients, and Mailgun's own wording for what it refuses
 * (Mailgun's API reference, "Messages": documentation.mailgun.com/docs/mailgun/api-reference).
 */

/** One message as Mailgun would have queued it. */
export interface ReceivedMessage {
  /** The id the stand-in answered with, angle brackets included, as Mailgun does. */
  readonly id: string;
  readonly domain: string;
  readonly receivedAt: string;
  readonly encoding: 'urlencoded' | 'multipart';
  readonly from: string;
  /** Every `to` field, comma-separated values split, in order. */
  readonly to: readonly string[];
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
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

const MAX_RECIPIENTS = 1000;
const BAD_ADDRESS = (field: string): string =>
  `'${field}' parameter is not a valid address. please check documentation`;

/** Reads both encodings with the web `Request` parser Node ships (undici), multipart included. */
export async function readFields(contentType: string, body: Buffer): Promise<Fields | undefined> {
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
  form.forEach((value, key) => {
    fields.push([key, typeof value === 'string' ? value : `[file ${value.name} (${value.size})]`]);
  });
  return fields;
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

const BARE = /^[^\s<>@",;()[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** Loose RFC 5322 check, as Mailgun's: `addr` or `Name <addr>`, never a line break. */
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
        'id' | 'domain' | 'receivedAt' | 'encoding' | 'requestHeaders'
      >;
    }
  | { readonly ok: false; readonly error: string };

/** Checks the fields in the order Mailgun reports them, one problem per answer, as it does. */
export function parseMessage(fields: Fields): Parsed {
  const from = first(fields, 'from');
  if (from === undefined || from.trim() === '')
    return { ok: false, error: 'from parameter is missing' };
  if (!isValidAddress(from.trim())) return { ok: false, error: BAD_ADDRESS('from') };
  const to = all(fields, 'to').flatMap(splitAddresses);
  if (to.length === 0) return { ok: false, error: 'to parameter is missing' };
  if (!to.every(isValidAddress)) return { ok: false, error: BAD_ADDRESS('to') };
  if (new Set(to).size > MAX_RECIPIENTS) {
    return { ok: false, error: `Too many recipients; max is ${MAX_RECIPIENTS}` };
  }
  const subject = first(fields, 'subject');
  if (subject === undefined) return { ok: false, error: 'subject parameter is missing' };
  const text = first(fields, 'text');
  const html = first(fields, 'html');
  if (!text && !html) {
    return { ok: false, error: "Need at least one of 'text' or 'html' parameters specified" };
  }
  return {
    ok: true,
    message: {
      from: from.trim(),
      to,
      subject,
      ...(text !== undefined ? { text } : {}),
      ...(html !== undefined ? { html } : {}),
      variables: prefixed(fields, 'v:'),
      headers: prefixed(fields, 'h:'),
      fields,
    },
  };
}
