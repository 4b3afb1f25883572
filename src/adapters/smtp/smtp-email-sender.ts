import type { ConnectionOptions } from 'node:tls';
import * as E from 'fp-ts/lib/Either.js';
import type { Task } from 'fp-ts/lib/Task.js';
import type { SMTPSentMessageInfo, Transporter } from 'nodemailer';
import nodemailer from 'nodemailer';
import pLimit from 'p-limit';
import type { LimitFunction } from 'p-limit';
import type { AttachmentStore } from '../../application/ports/attachment-store.js';
import type { EmailSender } from '../../application/ports/email-sender.js';
import type { Logger } from '../../application/ports/system.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import { notStarted, permanent, publicText, transient } from '../../domain/delivery.js';
import type { EmailAddress } from '../../domain/email-address.js';
import type { EmailRequest } from '../../domain/email-request.js';
import { allRecipients } from '../../domain/email-request.js';
import {
  attachmentsOutcome,
  envelopeOf,
  composeMessage,
  messageIdOf,
} from '../mime/mime-message.js';
import type { SmtpFailure, SmtpSuccess } from './smtp-outcome.js';
import { DeadlinePassed, Deadlines } from '../system/deadlines.js';
import { outcomeOfError, outcomeOfInfo } from './smtp-outcome.js';

/**
 * The pooled connections a worker opens to its SMTP server: nodemailer's own default (its
 * `maxConnections`), given explicitly because the sender holds its sends to it (see `send`).
 * Servers commonly allow a client a handful of connections at once.
 */
export const SMTP_POOL_CONNECTIONS = 5;

export interface SmtpOptions {
  /** `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://…:465` (implicit TLS). */
  readonly url: string;
  /** The service's MAIL_FROM, for a request without its own `from`. */
  readonly from: EmailAddress;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Reuse connections (the default): a handshake and AUTH per email would dominate the send. */
  readonly pool?: boolean;
  /** Pooled connections at most (default SMTP_POOL_CONNECTIONS): sends past them wait their turn. */
  readonly maxConnections?: number;
  readonly tls?: ConnectionOptions;
  /** Never upgrade with STARTTLS; for a local test server with a self-signed certificate. */
  readonly ignoreTLS?: boolean;
  /** Where attachment bytes are; without it, an email with attachments is not sent. */
  readonly attachments?: AttachmentStore;
}

/** What a send the worker's stop kept from starting answers. */
const NOT_STARTED = notStarted('the worker is stopping; not sent');

/**
 * Sends over SMTP with nodemailer 10. What goes in DATA is `buildRawMessage`'s octets, handed
 * over raw, so the server gets exactly what `GET /emails/{id}/raw` shows. The envelope is given
 * explicitly from our own parse (bcc only there), so nodemailer never derives recipients by
 * re-parsing header text (the injection it does not guard against: CR/LF in an address field
 * rewrote the envelope). The URL's password never leaves this class: nodemailer gets no
 * logger, and every reason and hint is scrubbed of it before it is returned. Reasons are public
 * (see `DeliveryOutcome`): the URL's host, which replies and errors quote, goes to the hint.
 */
export class SmtpEmailSender implements EmailSender {
  readonly name = 'smtp';
  private readonly transporter: Transporter<SMTPSentMessageInfo>;
  /** The send timeout's abort signals (`timeoutMs`). */
  private readonly deadlines = new Deadlines();
  private readonly secrets: readonly string[];
  /** The URL's host, which no reason may show (a one-label name escapes the patterns). */
  private readonly hosts: readonly string[];
  /** One turn per pooled connection; without a pool, every send has its own connection. */
  private readonly turns: LimitFunction | undefined;
  /** Set by `stopStarting`: a send whose turn comes from then on does not start. */
  private stopping = false;
  /**
   * The sends waiting for their turn, each by the function that answers it `notStarted`: what
   * `stopStarting` calls. A send leaves the set when its turn comes, so the set holds no more
   * than the sends waiting now (a promise settled only by a stop would keep every send's
   * reaction for the life of the worker).
   */
  private readonly waiting = new Set<() => void>();

  constructor(private readonly options: SmtpOptions) {
    const { url, timeoutMs } = options;
    this.secrets = secretsOf(url);
    this.hosts = hostsOf(url);
    const common = {
      url,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      logger: false,
      debug: false,
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.ignoreTLS ? { ignoreTLS: true } : {}),
    };
    const maxConnections = options.maxConnections ?? SMTP_POOL_CONNECTIONS;
    this.transporter =
      options.pool === false
        ? nodemailer.createTransport(common)
        : nodemailer.createTransport({ ...common, pool: true, maxConnections });
    this.turns = options.pool === false ? undefined : pLimit(maxConnections);
    // An 'error' event nobody listens to would crash the worker; sends report their own errors.
    this.transporter.on('error', (error: Error) =>
      options.log.warn(
        { transport: 'smtp' },
        this.redact(`SMTP transport error: ${error.message}`),
      ),
    );
  }

  send(request: EmailRequest): Task<DeliveryOutcome> {
    // A send waits here for a pooled connection to be free, untimed, and is timed from when it
    // has one. Timed from before, a send that waited its turn inside nodemailer's pool was cut
    // off while the server was taking it (a reviewer's 2.5 s server, 32 sends on 5
    // connections: 10 of 40 emails arrived twice), and sent again. The message is composed
    // once its turn comes, so that sends waiting for one hold no message (nor its attachments).
    return async () => {
      // Stopping: a send asked for now (a failover chain moving on) starts nothing either.
      if (this.stopping) return NOT_STARTED;
      return this.turns === undefined ? this.composeAndTransmit(request) : this.inTurn(request);
    };
  }

  /**
   * `composeAndTransmit` on one of the pooled connections, once one is free: the answer of the
   * send, or `notStarted` as soon as `stopStarting` is called while it still waits (its turn,
   * when it comes, then starts nothing).
   */
  private inTurn(request: EmailRequest): Promise<DeliveryOutcome> {
    return new Promise<DeliveryOutcome>((resolve, reject) => {
      const giveUp = (): void => resolve(NOT_STARTED);
      this.waiting.add(giveUp);
      void this.turns!(async () => {
        // Not in the set any more: the stop answered this send already, and nothing starts.
        if (!this.waiting.delete(giveUp)) return;
        try {
          resolve(await this.composeAndTransmit(request));
        } catch (error) {
          // A bug (a send answers, it does not throw): the caller's, as without a pool.
          reject(error);
        }
      });
    });
  }

  /**
   * See `EmailSender.stopStarting`: sends still waiting for a pooled connection answer
   * `notStarted` at once, and none starts from now on.
   */
  stopStarting(): void {
    this.stopping = true;
    for (const giveUp of this.waiting) giveUp();
    this.waiting.clear();
  }

  /** `request` composed (`buildRawMessage`'s octets), then handed over by `transmit`. */
  private async composeAndTransmit(request: EmailRequest): Promise<DeliveryOutcome> {
    const composed = await composeMessage(this.options.attachments, request, this.options.from)();
    if (E.isLeft(composed)) {
      const failure = composed.left;
      if (failure._tag !== 'Uncomposable') return attachmentsOutcome(failure);
      // Composing it again would fail the same way.
      const said = `could not compose the message: ${failureOf(failure.error).message ?? 'no details'}`;
      const shown = publicText(said, this.hosts);
      return permanent(shown, shown === said ? undefined : said);
    }
    return this.transmit(request, composed.right);
  }

  /**
   * Hands `raw` to the server over one connection, within `timeoutMs` in all: the socket
   * timeouts only see silence, this also bounds a server that trickles its replies.
   */
  private async transmit(request: EmailRequest, raw: Buffer): Promise<DeliveryOutcome> {
    const { from, timeoutMs, log } = this.options;
    try {
      const info = await this.deadlines.within(timeoutMs, (signal) =>
        this.transporter.sendMail({
          envelope: envelopeOf(request, from),
          raw,
          // Not written (the raw message has it already): what nodemailer reports as sent.
          messageId: messageIdOf(request, from),
          xMailer: false,
          signal,
        }),
      );
      const { outcome, rejected } = outcomeOfInfo(this.redactInfo(info), this.hosts);
      if (rejected.length > 0 && outcome._tag === 'Sent') {
        const all = allRecipients(request).length;
        log.warn(
          { emailId: request.id, rejected, providerId: this.redact(outcome.providerId) },
          `SMTP server refused ${rejected.length} of ${all} recipients; the others ` +
            'have the email, so it is not retried',
        );
      }
      return this.scrub(outcome);
    } catch (error) {
      // Aborting does not prove the server has not taken the message: at least once, as always.
      if (error instanceof DeadlinePassed) return transient(`timed out after ${timeoutMs}ms`);
      // Redacted before the mapping: hiding an address could cut a secret in two.
      const failure = this.redactFailure(failureOf(error));
      const outcome = this.scrub(outcomeOfError(failure, this.hosts));
      if (failure.code === 'EAUTH' && outcome._tag === 'Permanent') {
        log.error(
          { emailId: request.id, responseCode: failure.responseCode },
          outcome.hint ?? outcome.reason,
        );
      }
      return outcome;
    }
  }

  /** Closes the pooled connections; a send in flight finishes first. */
  close(): void {
    this.transporter.close();
  }

  private redact(text: string): string {
    return this.secrets.reduce((t, s) => t.split(s).join('[redacted]'), text);
  }

  private redactFailure(failure: SmtpFailure): SmtpFailure {
    const { response, message } = failure;
    return {
      ...failure,
      ...(response === undefined ? {} : { response: this.redact(response) }),
      ...(message === undefined ? {} : { message: this.redact(message) }),
    };
  }

  private redactInfo(info: SMTPSentMessageInfo): SmtpSuccess {
    return {
      ...info,
      response: this.redact(info.response),
      rejectedErrors: (info.rejectedErrors ?? []).map((e) => this.redactFailure(failureOf(e))),
    };
  }

  private scrub(outcome: DeliveryOutcome): DeliveryOutcome {
    const hint = outcome.hint === undefined ? {} : { hint: this.redact(outcome.hint) };
    return outcome._tag === 'Sent'
      ? { ...outcome, providerId: this.redact(outcome.providerId), ...hint }
      : { ...outcome, reason: this.redact(outcome.reason), ...hint };
  }
}

/** The host as the URL names it, with and without its port. */
function hostsOf(url: string): string[] {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  return parsed ? [parsed.host, parsed.hostname].filter((h) => h !== '') : [];
}

/** The password, raw and in the base64 forms AUTH PLAIN and AUTH LOGIN put on the wire. */
function secretsOf(url: string): string[] {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  if (!parsed?.password) return [];
  const user = decodeURIComponent(parsed.username);
  const pass = decodeURIComponent(parsed.password);
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  return [parsed.password, pass, b64(pass), b64(`\u0000${user}\u0000${pass}`)].filter(
    (s) => s.length > 0,
  );
}

/** Reads a thrown value field by field: nodemailer's errors, or anything else a bug throws. */
function failureOf(error: unknown): SmtpFailure {
  if (typeof error !== 'object' || error === null) return { message: String(error) };
  const text = (key: string): string | undefined => {
    const value: unknown = Reflect.get(error, key);
    return typeof value === 'string' ? value : undefined;
  };
  const responseCode: unknown = Reflect.get(error, 'responseCode');
  return {
    code: text('code'),
    response: text('response'),
    command: text('command'),
    message: text('message'),
    ...(typeof responseCode === 'number' ? { responseCode } : {}),
  };
}
