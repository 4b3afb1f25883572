import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Task } from 'fp-ts/lib/Task.js';
import fetch from 'node-fetch';
import type { EmailSender } from '../../application/ports/email-sender.js';
import type { Logger } from '../../application/ports/system.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import { publicText, transient } from '../../domain/delivery.js';
import type { EmailAddress } from '../../domain/email-address.js';
import type { EmailRequest } from '../../domain/email-request.js';
import { EMAIL_ID_HEADER, messageIdOf } from '../mime/mime-message.js';
import { outcomeOf, UNAUTHORIZED_HINT } from './mailgun-response.js';

export interface MailgunOptions {
  /** `https://api.mailgun.net/v3/<domain>`; the sender POSTs to `<apiBase>/messages`. */
  readonly apiBase: string;
  readonly apiKey: string;
  readonly from: EmailAddress;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Wall-clock milliseconds, to turn an HTTP-date Retry-After into a delay. */
  readonly now?: () => number;
}

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
  private readonly now: () => number;
  /** Our configuration's host, which no reason may show (a one-label name escapes the patterns). */
  private readonly hosts: readonly string[];

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
  }

  send(request: EmailRequest): Task<DeliveryOutcome> {
    return async () => {
      const { log, timeoutMs } = this.options;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      try {
        const response = await fetch(this.endpoint, {
          method: 'POST',
          headers: {
            Authorization: this.authorization,
            'Content-Type': 'application/x-www-form-urlencoded',
            Accept: 'application/json',
          },
          body: this.form(request),
          agent: this.agent,
          // A redirect means a wrong base; following it would turn the POST into a GET.
          redirect: 'manual',
          size: MAX_RESPONSE_BYTES,
          signal: controller.signal,
        });
        // Redacted before the mapping too: hiding an address could cut a secret in two.
        const body = this.redact(await response.text());
        const location = response.headers.get('location');
        const outcome = this.scrub(
          outcomeOf(
            {
              status: response.status,
              body,
              retryAfter: response.headers.get('retry-after'),
              location: location === null ? null : this.redact(location),
            },
            this.now(),
            this.hosts,
          ),
        );
        const fields = { emailId: request.id, status: response.status, outcome: outcome._tag };
        log.info(
          outcome._tag === 'Sent' ? { ...fields, providerId: outcome.providerId } : fields,
          `API Response Status: ${response.status}.`,
        );
        if (response.status === 401) log.error({ emailId: request.id }, UNAUTHORIZED_HINT);
        return outcome;
      } catch (error) {
        // The abort covers reading the body too, so a server that stalls mid-answer times out.
        if (controller.signal.aborted) return transient(`timed out after ${timeoutMs}ms`);
        return this.scrub(this.networkError(error));
      } finally {
        clearTimeout(timer);
      }
    };
  }

  /** Closes idle keep-alive sockets, so a worker that stops does not wait for them. */
  close(): void {
    this.agent.destroy();
  }

  private form(request: EmailRequest): URLSearchParams {
    const form = new URLSearchParams();
    form.append('from', this.options.from);
    // One field per recipient: a comma inside a quoted display name cannot split an address.
    for (const to of request.to) form.append('to', to);
    form.append('subject', request.subject);
    if (request.text !== undefined) form.append('text', request.text);
    if (request.html !== undefined) form.append('html', request.html);
    form.append('v:email-id', request.id);
    form.append('h:Message-Id', messageIdOf(request, this.options.from));
    form.append(`h:${EMAIL_ID_HEADER}`, request.id);
    return form;
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

  private redact(text: string): string {
    const secrets = [this.options.apiKey, this.authorization.slice('Basic '.length)];
    return secrets.reduce((t, s) => (s === '' ? t : t.split(s).join('[redacted]')), text);
  }

  private scrub(outcome: DeliveryOutcome): DeliveryOutcome {
    const hint = outcome.hint === undefined ? {} : { hint: this.redact(outcome.hint) };
    return outcome._tag === 'Sent'
      ? { ...outcome, ...hint }
      : { ...outcome, reason: this.redact(outcome.reason), ...hint };
  }
}

const codeOf = (error: unknown): string | undefined =>
  error instanceof Error && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error);
  const code = codeOf(error);
  return code && !error.message.includes(code) ? `${code} ${error.message}` : error.message;
};
