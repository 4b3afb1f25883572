import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import * as O from 'fp-ts/lib/Option.js';
import type { Task } from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import fetch from 'node-fetch';
import type { AttachmentStore } from '../../application/ports/attachment-store.js';
import type { EmailSender } from '../../application/ports/email-sender.js';
import type { Logger } from '../../application/ports/system.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import { permanent, publicText, transient } from '../../domain/delivery.js';
import type { EmailAddress } from '../../domain/email-address.js';
import type { AttachmentRef, EmailRequest } from '../../domain/email-request.js';
import { asciiMailbox, domainToAscii } from '../idna/idna.js';
import { DeadlinePassed, Deadlines } from '../system/deadlines.js';
import { EMAIL_ID_HEADER, messageIdOf } from '../mime/mime-message.js';
import { textAlternative } from '../mime/text-alternative.js';
import { outcomeOf, UNAUTHORIZED_HINT } from './mailgun-response.js';

export interface MailgunOptions {
  /** `https://api.mailgun.net/v3/<domain>`; the sender POSTs to `<apiBase>/messages`. */
  readonly apiBase: string;
  readonly apiKey: string;
  /** MAIL_FROM: the From of every request that does not name its own. */
  readonly from: EmailAddress;
  readonly timeoutMs: number;
  /** Where attachment bytes are kept; needed only by requests that carry attachments. */
  readonly attachments?: AttachmentStore;
  readonly log: Logger;
  /** Wall-clock milliseconds, to turn an HTTP-date Retry-After into a delay. */
  readonly now?: () => number;
}

/** A file of the request with its bytes, as it goes into the form. */
interface LoadedFile {
  readonly ref: AttachmentRef;
  readonly bytes: Uint8Array;
}

/** What the email's page says when the files could not be read; the hint says why. */
const FILES_UNREADABLE = "could not read the email's attachments from storage";

/** The files of an email without attachments. */
const NO_FILES: E.Either<DeliveryOutcome, readonly LoadedFile[]> = E.right([]);

/** Mailgun bodies are a line of JSON; anything far larger is not Mailgun talking. */
const MAX_RESPONSE_BYTES = 1_000_000;

// The network could not take us to Mailgun at all (as opposed to a connection that broke).
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ETIMEDOUT',
]);

/**
 * Sends through Mailgun's HTTP API (node-fetch 3). The key goes only into the Authorization
 * header, built here because node-fetch refuses credentials in a URL, and every reason, hint or
 * log line that could echo text from elsewhere is scrubbed of it. Reasons are public (see
 * `DeliveryOutcome`): the API's URL and host, which node-fetch's errors quote, go to the hint.
 */
export class MailgunEmailSender implements EmailSender {
  readonly name = 'mailgun';
  private readonly endpoint: string;
  private readonly authorization: string;
  // Keep-alive: a TLS handshake per email would cost more than the API call itself.
  private readonly agent: HttpAgent;
  /** The send timeout's abort signals (`timeoutMs`). */
  private readonly deadlines = new Deadlines();
  private readonly now: () => number;
  /** Our configuration's host, which no reason may show (a one-label name escapes the patterns). */
  private readonly hosts: readonly string[];
  /** What `redact` takes out: the key, and the credentials as the header carries them. */
  private readonly secrets: readonly string[];
  /**
   * The request headers, one object per form kind, built once: node-fetch copies them into
   * its own Headers for every request and never changes ours. A FormData body brings its own
   * multipart type, boundary included.
   */
  private readonly urlEncodedHeaders: Readonly<Record<string, string>>;
  private readonly multipartHeaders: Readonly<Record<string, string>>;

  constructor(private readonly options: MailgunOptions) {
    const base = new URL(options.apiBase);
    // Credentials in the base would be refused by node-fetch and printed in its error.
    base.username = '';
    base.password = '';
    this.endpoint = `${base.toString().replace(/\/+$/, '')}/messages`;
    this.authorization = `Basic ${Buffer.from(`api:${options.apiKey}`).toString('base64')}`;
    this.agent =
      base.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, maxSockets: 64 })
        : new HttpAgent({ keepAlive: true, maxSockets: 64 });
    this.now = options.now ?? Date.now;
    this.hosts = [base.host, base.hostname];
    this.secrets = [options.apiKey, this.authorization.slice('Basic '.length)].filter(
      (secret) => secret !== '',
    );
    this.urlEncodedHeaders = {
      Authorization: this.authorization,
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    };
    this.multipartHeaders = { Authorization: this.authorization, Accept: 'application/json' };
  }

  send(request: EmailRequest): Task<DeliveryOutcome> {
    return async () => {
      const { timeoutMs } = this.options;
      // Read before the clock starts: the timeout bounds Mailgun, not our own store. Without
      // attachments (nearly every email) there is nothing to wait for.
      const files =
        request.attachments === undefined || request.attachments.length === 0
          ? NO_FILES
          : await this.files(request)();
      if (E.isLeft(files)) return files.left;
      const body = this.body(request, files.right);
      if (E.isLeft(body)) return body.left;
      try {
        // The deadline covers reading the body too, so a server that stalls mid-answer times out.
        return await this.deadlines.within(timeoutMs, (signal) =>
          this.post(request, body.right, signal),
        );
      } catch (error) {
        if (error instanceof DeadlinePassed) return transient(`timed out after ${timeoutMs}ms`);
        return this.scrub(this.networkError(error));
      }
    };
  }

  /** One POST of `body` to the Messages API, its answer read whole and made an outcome. */
  private async post(
    request: EmailRequest,
    body: URLSearchParams | FormData,
    signal: AbortSignal,
  ): Promise<DeliveryOutcome> {
    const { log } = this.options;
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: body instanceof URLSearchParams ? this.urlEncodedHeaders : this.multipartHeaders,
      body,
      agent: this.agent,
      // A redirect means a wrong base; following it would turn the POST into a GET.
      redirect: 'manual',
      size: MAX_RESPONSE_BYTES,
      signal,
    });
    // Redacted before the mapping too: hiding an address could cut a secret in two.
    const answer = this.redact(await response.text());
    const location = response.headers.get('location');
    const outcome = this.scrub(
      outcomeOf(
        {
          status: response.status,
          body: answer,
          retryAfter: response.headers.get('retry-after'),
          location: location === null ? null : this.redact(location),
        },
        this.now(),
        this.hosts,
      ),
    );
    // A line per send: at a level that drops it, not even built.
    if (log.isLevelEnabled?.('info') ?? true) {
      const fields = { emailId: request.id, status: response.status, outcome: outcome._tag };
      log.info(
        outcome._tag === 'Sent' ? { ...fields, providerId: outcome.providerId } : fields,
        `API Response Status: ${response.status}.`,
      );
    }
    if (response.status === 401) log.error({ emailId: request.id }, UNAUTHORIZED_HINT);
    return outcome;
  }

  /** Closes idle keep-alive sockets, so a worker that stops does not wait for them. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * Mailgun's Messages API form: url-encoded as before when there are no files, multipart when
   * there are, as Mailgun requires for `attachment` and `inline`. Left: an address that has no
   * ASCII form, which the API's parser should have refused (a bug, said as a refusal).
   */
  private body(
    request: EmailRequest,
    files: readonly LoadedFile[],
  ): E.Either<DeliveryOutcome, URLSearchParams | FormData> {
    let fields: (readonly [string, string])[];
    try {
      fields = this.fields(request);
    } catch (error) {
      return E.left(
        permanent(
          'an address of this email has a domain with no ASCII form, so it cannot be sent',
          `mailgun form: ${describe(error)}`,
        ),
      );
    }
    const form = files.length === 0 ? new URLSearchParams() : new FormData();
    for (const [name, value] of fields) form.append(name, value);
    if (form instanceof URLSearchParams) return E.right(form);
    for (const { ref, bytes } of files) {
      const content = new Blob([bytes], { type: ref.contentType ?? 'application/octet-stream' });
      if (ref.contentId === undefined) form.append('attachment', content, ref.filename);
      // Mailgun makes an inline file's Content-ID out of its file name (`cid:logo.png` for
      // `inline=@logo.png`) and has no field to set one apart, so the part is named after the
      // Content-ID the html refers to; the original file name cannot travel with it.
      else form.append('inline', content, ref.contentId);
    }
    return E.right(form);
  }

  /**
   * Every field but the files, in the order Mailgun documents them. Pushed one by one rather
   * than spread from mapped arrays: it runs for every send, and the spreads cost more than the
   * fields themselves.
   */
  private fields(request: EmailRequest): (readonly [string, string])[] {
    const from = request.from ?? this.options.from;
    const text = textAlternative(request);
    const fields: (readonly [string, string])[] = [['from', formAddress(from)]];
    // One field per recipient: a comma inside a quoted display name cannot split an address.
    for (const a of request.to) fields.push(['to', formAddress(a)]);
    for (const a of request.cc ?? []) fields.push(['cc', formAddress(a)]);
    for (const a of request.bcc ?? []) fields.push(['bcc', formAddress(a)]);
    fields.push(['subject', request.subject]);
    if (text !== undefined) fields.push(['text', text]);
    if (request.html !== undefined) fields.push(['html', request.html]);
    if (request.replyTo !== undefined && request.replyTo.length > 0) {
      fields.push(['h:Reply-To', request.replyTo.map(formAddress).join(', ')]);
    }
    fields.push(['h:Message-Id', asciiMessageId(messageIdOf(request, from))]);
    fields.push([`h:${EMAIL_ID_HEADER}`, request.id]);
    if (request.headers !== undefined) {
      for (const [name, value] of Object.entries(request.headers))
        fields.push([`h:${name}`, value]);
    }
    for (const tag of request.tags ?? []) fields.push(['o:tag', tag]);
    if (request.metadata !== undefined) {
      for (const [key, value] of Object.entries(request.metadata)) fields.push([`v:${key}`, value]);
    }
    fields.push(['v:email-id', request.id]);
    return fields;
  }

  /** The bytes of each attachment, in order; Left: the outcome that says why they are not here. */
  private files(request: EmailRequest): TE.TaskEither<DeliveryOutcome, readonly LoadedFile[]> {
    const refs = request.attachments ?? [];
    if (refs.length === 0) return TE.right([]);
    const store = this.options.attachments;
    if (store === undefined) {
      return TE.left(
        transient(
          FILES_UNREADABLE,
          undefined,
          'the Mailgun sender was built without an attachment store: pass `attachments` to MailgunEmailSender in src/main/senders.ts',
        ),
      );
    }
    // One at a time: twenty files of up to the message limit need not all be in flight at once.
    return pipe(
      refs,
      TE.traverseSeqArrayWithIndex((i, ref) =>
        pipe(
          store.get(ref.digest),
          TE.mapLeft((e) =>
            transient(FILES_UNREADABLE, undefined, `attachment store unavailable: ${e.reason}`),
          ),
          TE.flatMap(
            O.match(
              () =>
                TE.left(
                  transient(
                    `attachment ${i + 1} of ${refs.length} is not in the attachment store`,
                    undefined,
                    `no bytes stored under digest ${ref.digest} (attachment ${i + 1}, ${ref.size} octets)`,
                  ),
                ),
              (bytes) => TE.right({ ref, bytes }),
            ),
          ),
        ),
      ),
    );
  }

  /** node-fetch's message names the URL: the page gets the error's code, the log the rest. */
  private networkError(error: unknown): DeliveryOutcome {
    const code = codeOf(error);
    const said = this.redact(`network error: ${describe(error)}`);
    if (code !== undefined && UNREACHABLE.has(code)) {
      return transient(
        `network error: could not reach Mailgun (${code})`,
        undefined,
        `${said}; check MAILGUN_API_BASE`,
      );
    }
    if (code !== undefined) {
      return transient(`network error: the connection to Mailgun broke (${code})`, undefined, said);
    }
    const shown = publicText(said, this.hosts);
    return transient(shown, undefined, shown === said ? undefined : said);
  }

  /** `text` with every secret replaced; a text that holds none (every answer) is not copied. */
  private redact(text: string): string {
    let redacted = text;
    for (const secret of this.secrets) {
      if (redacted.includes(secret)) redacted = redacted.split(secret).join('[redacted]');
    }
    return redacted;
  }

  /** `outcome` with its reason and hint redacted: itself when neither held a secret. */
  private scrub(outcome: DeliveryOutcome): DeliveryOutcome {
    const hint = outcome.hint === undefined ? undefined : this.redact(outcome.hint);
    const reason = outcome._tag === 'Sent' ? undefined : this.redact(outcome.reason);
    if (hint === outcome.hint && (outcome._tag === 'Sent' || reason === outcome.reason)) {
      return outcome;
    }
    const hinted = hint === undefined ? {} : { hint };
    return outcome._tag === 'Sent'
      ? { ...outcome, ...hinted }
      : { ...outcome, reason: reason ?? outcome.reason, ...hinted };
  }
}

/**
 * An address as a Mailgun field: the mailbox with its domain's A-labels (`info@xn--bcher-kva.de`),
 * the display name as the sender wrote it (Mailgun encodes it in the header it makes).
 */
function formAddress(address: EmailAddress): string {
  const open = address.lastIndexOf('<');
  const ascii = asciiMailbox(address);
  return open === -1 ? ascii : `${address.slice(0, open)}<${ascii}>`;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/**
 * A Message-ID's right-hand side in A-labels: a header field carries no raw Unicode domain. An
 * id all in ASCII is returned as it is, without the pattern: its domain is what `domainToAscii`
 * answered (`messageIdOf` converts it), which converts to itself, or one it could not convert,
 * which it cannot convert here either.
 */
const asciiMessageId = (id: string): string =>
  ASCII.test(id)
    ? id
    : id.replace(/@([^@>]+)>$/, (whole, domain: string) => {
        const ascii = domainToAscii(domain);
        return ascii === undefined ? whole : `@${ascii}>`;
      });

const codeOf = (error: unknown): string | undefined =>
  error instanceof Error && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error);
  const code = codeOf(error);
  return code && !error.message.includes(code) ? `${code} ${error.message}` : error.message;
};
