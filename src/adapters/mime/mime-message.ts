import { createHash } from 'node:crypto';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { SendMailOptions } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import type { AttachmentStore } from '../../application/ports/attachment-store.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import { transient } from '../../domain/delivery.js';
import type { EmailAddress } from '../../domain/email-address.js';
import { addressParts } from '../../domain/email-address.js';
import type { AttachmentRef, EmailRequest } from '../../domain/email-request.js';
import { allRecipients } from '../../domain/email-request.js';
import { asciiMailbox, domainToAscii } from '../idna/idna.js';
import { textAlternative } from './text-alternative.js';

/**
 * What every MIME transport sends, built in one place: SMTP hands these octets to the server,
 * the outbox writes them, and `GET /emails/{id}/raw` shows them, so all three are the same bytes.
 */

/** Our id on every message, whatever the transport: the status page's id, findable in a mailbox. */
export const EMAIL_ID_HEADER = 'X-Email-Id';

/** Attachment bytes by digest, as loaded from the AttachmentStore. */
export type AttachmentBytes = ReadonlyMap<string, Uint8Array>;

/** `{name, address}` objects, so nodemailer renders our parse instead of re-parsing a string. */
export const mimeAddress = (a: EmailAddress): { name: string; address: string } => ({
  name: addressParts(a).displayName ?? '',
  address: asciiMailbox(a),
});

const fromOf = (request: EmailRequest, defaultFrom: EmailAddress): EmailAddress =>
  request.from ?? defaultFrom;

/**
 * `<id@from-domain>`, the domain in its ASCII form: the same on every attempt and every
 * transport, so a receiver handed the same email twice (delivery is at least once) can tell it
 * is one message.
 */
export function messageIdOf(request: EmailRequest, defaultFrom: EmailAddress): string {
  const { domain } = addressParts(fromOf(request, defaultFrom));
  return `<${request.id}@${domainToAscii(domain) ?? domain}>`;
}

/** The SMTP envelope: every recipient (bcc only here), each domain as A-labels. */
export const envelopeOf = (
  request: EmailRequest,
  defaultFrom: EmailAddress,
): { from: string; to: string[] } => ({
  from: asciiMailbox(fromOf(request, defaultFrom)),
  to: allRecipients(request).map(asciiMailbox),
});

// Canonical line ends for text/* (RFC 2046 §4.1.1): a bare CR or LF would reach the wire as it
// is when the part goes out 7bit, and nodemailer's newline option only mends bare LF.
const crlf = (s: string): string => s.replace(/\r\n|\r|\n/g, '\r\n');

// Room for a folded line: RFC 5322 §2.2.3 asks for 78, and 998 is the limit (§2.1.1).
const FOLD_AT = 76;
/** The longest word a header line takes whole: with the longest name (X- and 70), under 998. */
const MAX_WORD = 900;
/** An unstructured value that can go as it is: printable ASCII words, one space apart. */
const PLAIN_WORDS = /^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/;

/**
 * An unstructured header value (Subject, X-…) as it may go on the wire: as given when it is
 * printable ASCII words one space apart, none too long for a line; otherwise all of it as
 * RFC 2047 encoded-words of at most 52 characters, one space apart. Encoding the whole value
 * (not just its non-ASCII words) keeps what folding cannot: a word no line can hold, runs of
 * spaces, leading or trailing space, and text that only looks like an encoded-word, so the
 * receiver decodes exactly the value.
 */
export function encodeUnstructured(value: string): string {
  if (value === '') return value;
  const plain =
    PLAIN_WORDS.test(value) &&
    !value.includes('=?') &&
    value.split(' ').every((word) => word.length <= MAX_WORD);
  if (plain) return value;
  // Q stays readable for mostly-Latin text; B is shorter for everything else.
  const latin = value.match(/[A-Za-z]/g)?.length ?? 0;
  const other = value.match(/[^\x20-\x7e]/g)?.length ?? 0;
  return encodeWord(value, other < latin ? 'Q' : 'B', 52);
}

/**
 * A structured value (List-*, In-Reply-To, References) as it may go on the wire. These carry
 * URIs and message ids, which an encoded-word would turn into text no reader parses, so the
 * value stays as given, in ASCII: a non-ASCII character becomes its UTF-8 percent-encoding (the
 * URI form of an IRI, RFC 3987 §3.1), keeping the whole message 7-bit for any SMTP server.
 */
export const asciiStructured = (value: string): string =>
  value.replace(/[^\p{ASCII}]+/gu, (s) => encodeURIComponent(s));

/**
 * `name: value` folded at its spaces into lines of at most FOLD_AT octets where the words allow
 * (RFC 5322 §2.2.3: the fold is CRLF before the space, and unfolding restores the value). A
 * word longer than a line stays whole on a line of its own, up to MAX_WORD; only a longer one,
 * which no line could hold, is cut into pieces: the 998-octet limit of §2.1.1 is a MUST, and
 * RFC 2369 §2 has readers ignore whitespace inside the angle brackets of a List-* URL. Returns
 * the value part, after `name: `.
 */
function fold(name: string, words: readonly string[]): string {
  const head = `${name}:`;
  const lines: string[] = [];
  let line = head;
  for (const word of words) {
    for (let at = 0; at < word.length; at += MAX_WORD) {
      const piece = word.slice(at, at + MAX_WORD);
      if (line !== head && line.length + 1 + piece.length > FOLD_AT) {
        lines.push(line);
        line = '';
      }
      line += ` ${piece}`;
    }
  }
  lines.push(line);
  return lines.join('\r\n').slice(head.length + 1);
}

/** Message ids as given, in ASCII; one longer than any header line can hold names no message. */
const messageIds = (value: string): string[] =>
  asciiStructured(value)
    .split(/\s+/)
    .filter((id) => id !== '' && id.length <= MAX_WORD);

/**
 * A sender's header as the wire needs it. Each is folded here and handed to nodemailer as
 * prepared, since its own folding cannot break a long word and would leave it on a line over
 * 998 octets; but References, which nodemailer always formats itself (each id in angle brackets,
 * folded between ids), goes as the list of ids.
 */
function header(key: string, value: string) {
  const name = key.toLowerCase();
  if (name === 'references') return { key, value: messageIds(value).join(' ') };
  const words =
    name === 'in-reply-to'
      ? messageIds(value)
      : name === 'list-unsubscribe' || name === 'list-unsubscribe-post'
        ? asciiStructured(value).split(/\s+/)
        : encodeUnstructured(value).split(' ');
  const folded = fold(
    key,
    words.filter((w) => w !== ''),
  );
  return { key, value: { prepared: true, value: folded } };
}

/**
 * A boundary base no part can contain: the id, so two emails never share one, and a hash of the
 * only parts that may go out unencoded (text and html), so no body can hold a delimiter line.
 * Derived, not random, so the same request builds the same octets on every attempt.
 */
function boundaryBase(request: EmailRequest, text: string | undefined): string {
  return createHash('sha256')
    .update(`${request.id}\u0000${text ?? ''}\u0000${request.html ?? ''}`)
    .digest('hex')
    .slice(0, 24);
}

/**
 * A multipart/* type on a file would make its part a container of no parts, and the file
 * would vanish for the reader: such a file goes out as the octets it is.
 */
const leafType = (contentType: string): string =>
  /^\s*multipart\//i.test(contentType) ? 'application/octet-stream' : contentType;

/** The attachment's MIME part: the name and type as given, inline with a Content-ID. */
function attachmentPart(ref: AttachmentRef, bytes: AttachmentBytes) {
  const content = bytes.get(ref.digest);
  // The senders load every digest first (loadAttachments); a missing one here is a bug.
  if (content === undefined) throw new Error(`attachment ${ref.digest} was not loaded`);
  return {
    filename: ref.filename,
    content: Buffer.from(content.buffer, content.byteOffset, content.byteLength),
    // Always base64, even for text/* and message/*: the bytes are arbitrary, and only base64
    // keeps them exact, 7-bit, in CRLF lines of 76.
    contentTransferEncoding: 'base64',
    ...(ref.contentType !== undefined ? { contentType: leafType(ref.contentType) } : {}),
    ...(ref.contentId !== undefined
      ? { cid: ref.contentId, contentDisposition: 'inline' }
      : { contentDisposition: 'attachment' }),
  };
}

/**
 * The message as nodemailer builds it. From is the request's or the service's; Bcc is in the
 * envelope only (no `bcc` option, so no header can carry it). The Date is the request's own
 * time and the boundaries derive from the request, so a re-send of the same id produces the
 * same octets.
 */
export function nodemailerMessage(
  request: EmailRequest,
  defaultFrom: EmailAddress,
  attachments: AttachmentBytes,
) {
  const from = fromOf(request, defaultFrom);
  const text = textAlternative(request);
  const { cc = [], replyTo = [], headers = {} } = request;
  return {
    from: mimeAddress(from),
    to: request.to.map(mimeAddress),
    ...(cc.length > 0 ? { cc: cc.map(mimeAddress) } : {}),
    ...(replyTo.length > 0 ? { replyTo: replyTo.map(mimeAddress) } : {}),
    ...(text !== undefined ? { text: crlf(text) } : {}),
    ...(request.html !== undefined ? { html: crlf(request.html) } : {}),
    attachments: (request.attachments ?? []).map((ref) => attachmentPart(ref, attachments)),
    // A scheduled email is dated when it was meant to go, not weeks before; either way the same
    // on every attempt, so a re-send builds the same message.
    date: new Date(request.sendAt ?? request.requestedAt),
    messageId: messageIdOf(request, defaultFrom),
    headers: [
      header('Subject', request.subject),
      // By name: the request's headers pass through jsonb (the email log) on the way to a
      // scheduled send and to /raw, and jsonb does not keep the order keys came in.
      ...Object.entries(headers)
        .sort(([a], [b]) =>
          a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0,
        )
        .map(([key, value]) => header(key, value)),
      { key: EMAIL_ID_HEADER, value: request.id },
    ],
    envelope: envelopeOf(request, defaultFrom),
    baseBoundary: boundaryBase(request, text),
    // Belt and braces: every line nodemailer writes ends in CRLF already.
    newline: 'windows',
    // Content never comes from a path or URL: a body is text, not an instruction to read a file.
    disableFileAccess: true,
    disableUrlAccess: true,
  } satisfies SendMailOptions;
}

/**
 * The RFC 5322 message every MIME transport sends for `request`, octet for octet. A request that
 * cannot be composed (a bug: an attachment not loaded, a domain without an ASCII form) rejects.
 */
export async function buildRawMessage(
  request: EmailRequest,
  defaultFrom: EmailAddress,
  attachments: AttachmentBytes,
): Promise<Buffer> {
  return new MailComposer(nodemailerMessage(request, defaultFrom, attachments)).compile().build();
}

/** Why a request's attachments could not be had: each a reason to try again later. */
export type AttachmentsUnavailable =
  | { readonly _tag: 'NoAttachmentStore' }
  | { readonly _tag: 'AttachmentMissing'; readonly digest: string; readonly filename: string }
  | StoreUnavailable;

/** The bytes of every attachment of `request`, by digest; none to load needs no store. */
export function loadAttachments(
  store: AttachmentStore | undefined,
  request: EmailRequest,
): TE.TaskEither<AttachmentsUnavailable, AttachmentBytes> {
  const refs = [...new Map((request.attachments ?? []).map((ref) => [ref.digest, ref])).values()];
  if (refs.length === 0) return TE.right(new Map());
  if (store === undefined) return TE.left({ _tag: 'NoAttachmentStore' });
  return pipe(
    refs,
    TE.traverseArray((ref) =>
      pipe(
        store.get(ref.digest),
        TE.mapLeft((e): AttachmentsUnavailable => e),
        TE.flatMap(
          O.match(
            () =>
              TE.left<AttachmentsUnavailable>({
                _tag: 'AttachmentMissing',
                digest: ref.digest,
                filename: ref.filename,
              }),
            (bytes) => TE.right([ref.digest, bytes] as const),
          ),
        ),
      ),
    ),
    TE.map((entries) => new Map(entries)),
  );
}

/** The composer threw for this request: it would on every try (a bug, or an input we missed). */
export interface Uncomposable {
  readonly _tag: 'Uncomposable';
  readonly error: unknown;
}

/**
 * The message of `request` with its files loaded from `store`: what SMTP sends, the outbox
 * writes and `/emails/{id}/raw` shows, from one place so that they cannot differ.
 */
export function composeMessage(
  store: AttachmentStore | undefined,
  request: EmailRequest,
  defaultFrom: EmailAddress,
): TE.TaskEither<AttachmentsUnavailable | Uncomposable, Buffer> {
  return pipe(
    loadAttachments(store, request),
    TE.flatMap((bytes) =>
      TE.tryCatch(
        () => buildRawMessage(request, defaultFrom, bytes),
        (error): AttachmentsUnavailable | Uncomposable => ({ _tag: 'Uncomposable', error }),
      ),
    ),
  );
}

/**
 * The outcome of a send that could not load its attachments: transient, since a store comes
 * back and a wiring is fixed. The reason is public; which store and which file is the hint's.
 */
export function attachmentsOutcome(failure: AttachmentsUnavailable): DeliveryOutcome {
  const reason = 'an attachment could not be loaded';
  switch (failure._tag) {
    case 'NoAttachmentStore':
      return transient(
        reason,
        undefined,
        'this sender has no attachment store: give it the AttachmentStore in its options',
      );
    case 'AttachmentMissing':
      return transient(
        reason,
        undefined,
        `attachment ${failure.digest} (${failure.filename}) is not in the attachment store`,
      );
    case 'StoreUnavailable':
      return transient(reason, undefined, `the attachment store is unavailable: ${failure.reason}`);
  }
}
