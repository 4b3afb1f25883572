import type { DeliveryOutcome } from '../../domain/delivery.js';
import { permanent, publicText, sent, throttled, transient } from '../../domain/delivery.js';

/** The parts of a nodemailer error this mapping reads (see nodemailer's NodemailerError). */
export interface SmtpFailure {
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  readonly command?: string;
  readonly message?: string;
}

/** The parts of nodemailer's SMTPSentMessageInfo this mapping reads. */
export interface SmtpSuccess {
  readonly messageId?: string;
  readonly response?: string;
  readonly accepted?: readonly unknown[];
  readonly rejected?: readonly unknown[];
  readonly rejectedErrors?: readonly SmtpFailure[];
}

// The connection broke or never formed; nothing says the message itself is unwelcome.
const CONNECTION_CODES = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ETLS',
  'EPROXY',
  'EMAXLIMIT',
  'ECONNRESET',
  'ECONNREFUSED',
]);
// The same message would fail the same way on every attempt.
const PERMANENT_CODES = new Set(['ECONFIG', 'EREQUIRETLS', 'EENVELOPE', 'EMAXRECIPIENTS']);

/** For the worker's log: a refused login is our configuration's fault. */
export const AUTH_HINT =
  'the SMTP server refused the credentials: check the user and password in SMTP_URL';

// The network could not take us to the server at all (as opposed to a connection that broke).
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
]);

const oneLine = (s: string | undefined): string => (s ?? '').replace(/\s+/g, ' ').trim();

/**
 * The replies a server may give when it limits us rather than refuses the message: RFC 5321
 * §4.2.5 lets 421 close the session ("service not available") and §4.2.3 gives 451 (local error)
 * and 452 (insufficient storage) as the transient refusals, and servers use all three for their
 * limits. Gmail: `421-4.7.28 … an unusual rate of unsolicited mail … temporarily rate limited`;
 * Postfix: `421 4.7.0 … Error: too many connections`; others say "throttled", "limit exceeded",
 * "slow down".
 */
const THROTTLE_CODES = new Set([421, 451, 452]);
const THROTTLE_WORDS = /\b(?:rate|ratelimit\w*|too many|throttl\w*|limit\w*|slow down)\b/i;
/**
 * Limits of one message, not of our pace: RFC 5321 §4.5.3.1.10 has a server that takes no more
 * RCPT TO in one transaction answer 452, and Gmail says `452 4.5.3 Your message has too many
 * recipients` (and names its "sending limits"); a pause would not change that message, and a
 * throttle does not spend attempts, so it must not read as one.
 */
const MESSAGE_LIMIT_WORDS = /too many recipients|recipients? per|per (?:transaction|message)/i;
/**
 * Limits of a mailbox or of a message's size, not of our pace: `452 4.2.2 Mailbox size limit
 * exceeded` (Postfix's words for a full mailbox), `451 4.3.0 Message size exceeds fixed limit`
 * (Exim's), "over quota", "mailbox over limit". The recipient's mailbox stays full and the
 * message as big after a pause.
 */
const SIZE_LIMIT_WORDS =
  /\b(?:size|quota|mailbox (?:is )?(?:full|over (?:its )?(?:limit|quota))|too (?:big|large)|insufficient (?:system )?storage)\b/i;
/**
 * RFC 3463 enhanced status codes of a mailbox's or a message's limit (class.subject.detail, the
 * class left out): 2.2 mailbox full, 2.3 message length exceeds an administrative limit, 3.4
 * message too big for the system, 5.3 too many recipients. A server's code is a stronger sign
 * than its words: with one of these, the reply is no throttle whatever it says.
 */
const MESSAGE_LIMIT_CODES = new Set(['2.2', '2.3', '3.4', '5.3']);
/** The enhanced status code at the start of a reply's text (`452 4.2.2 …`, `452-4.5.3 …`). */
const ENHANCED_CODE = /^\s*(?:\d{3}[ -])?\s*[245]\.(\d{1,3}\.\d{1,3})\b/;
// "try (again) later" alone is not a limit: Postfix says it for a local problem of its own.

/**
 * True when a 421, 451 or 452 reply speaks of our rate (see THROTTLE_WORDS), and neither its
 * enhanced status code nor its words say the limit is a mailbox's or a message's (see
 * MESSAGE_LIMIT_CODES, MESSAGE_LIMIT_WORDS, SIZE_LIMIT_WORDS).
 */
export function isThrottleReply(code: number | undefined, text: string): boolean {
  const enhanced = ENHANCED_CODE.exec(text)?.[1];
  return (
    code !== undefined &&
    THROTTLE_CODES.has(code) &&
    !(enhanced !== undefined && MESSAGE_LIMIT_CODES.has(enhanced)) &&
    THROTTLE_WORDS.test(text) &&
    !MESSAGE_LIMIT_WORDS.test(text) &&
    !SIZE_LIMIT_WORDS.test(text)
  );
}

function describe(e: SmtpFailure): string {
  const on = e.command ? ` on ${e.command}` : '';
  const text = oneLine(e.response) || oneLine(e.message) || 'no details';
  return e.responseCode
    ? `SMTP ${e.responseCode}${on}: ${text}`
    : `${e.code ?? 'error'}${on}: ${text}`;
}

/**
 * The error as a page may show it and, when that had to leave something out, as it came (the
 * hint): a server's reply keeps its code and words, minus addresses, hosts and paths, and minus
 * `hide`, the host our configuration names.
 */
function told(e: SmtpFailure, hide: readonly string[]): { shown: string; hint?: string } {
  const said = describe(e);
  const shown = publicText(said, hide);
  return shown === said ? { shown } : { shown, hint: said };
}

/**
 * A connection that failed before the server said anything. Node's own code (ECONNREFUSED) is in
 * nodemailer's message (`connect ECONNREFUSED 127.0.0.1:2525`) next to the address, which only
 * the log may show.
 */
function connectionFailure(e: SmtpFailure): DeliveryOutcome {
  const said = describe(e);
  const code = /\b(E[A-Z_]{4,})\b/.exec(oneLine(e.message))?.[1] ?? e.code ?? 'error';
  if (UNREACHABLE.has(code) || e.code === 'EDNS') {
    return transient(
      `the SMTP server could not be reached (${code})`,
      undefined,
      `${said}: check the host and port in SMTP_URL`,
    );
  }
  if (code === 'ETIMEDOUT') {
    return transient('the SMTP server did not answer in time (ETIMEDOUT)', undefined, said);
  }
  if (e.code === 'ETLS') {
    return transient(`TLS with the SMTP server failed (${code})`, undefined, said);
  }
  return transient(`the connection to the SMTP server broke (${code})`, undefined, said);
}

/**
 * A failed send as an outcome. RFC 5321: 4yz is transient, 5yz permanent; a 421, 451 or 452 that
 * speaks of a rate is `throttled` (`isThrottleReply`). The exception, as in
 * nodemailer's own `isPermanentResponseCode`, is 503 (bad sequence of commands): it says the
 * session was in the wrong state, typically a pooled connection left half-way by an earlier
 * failure, not that the message is refused, so a new connection may well take it; MAX_ATTEMPTS
 * bounds the retries if it does not.
 *
 * The reason is public (see `DeliveryOutcome`): the server's reply, which a person can act on
 * (`550 5.1.1 <x@example.org>: Recipient address rejected`), without addresses, hosts or paths
 * (`hide`: our configuration's host). Which variable to check goes in the hint.
 */
export function outcomeOfError(e: SmtpFailure, hide: readonly string[] = []): DeliveryOutcome {
  const code = e.responseCode;
  const { shown, hint } = told(e, hide);
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH') {
    // 454 "temporary authentication failure" is the server's problem, not our password.
    return code !== undefined && code >= 400 && code < 500
      ? transient(`the SMTP server could not check our credentials now (${shown})`, undefined, hint)
      : permanent(
          `the SMTP server refused our credentials (${code ?? e.code})`,
          `${AUTH_HINT} (${describe(e)})`,
        );
  }
  if (code !== undefined) {
    if (code >= 500 && code !== 503) return permanent(shown, hint);
    // SMTP has no Retry-After: the core pauses the transport for its own retry step.
    if (isThrottleReply(code, oneLine(e.response) || oneLine(e.message))) {
      return throttled(shown, undefined, hint);
    }
    return transient(shown, undefined, hint);
  }
  if (e.code && CONNECTION_CODES.has(e.code)) return connectionFailure(e);
  if (e.code && PERMANENT_CODES.has(e.code)) return permanent(shown, hint);
  // Unknown failures are retried: at worst a few extra attempts, bounded by MAX_ATTEMPTS.
  return transient(shown, undefined, hint);
}

/**
 * A completed SMTP transaction. When the server took some recipients and refused others, the
 * message is already on its way to those it took, so a retry would send it to them twice: it is
 * `sent`, with the refused recipients named in the provider id, and the caller logs a warning.
 * When it took none (nodemailer normally rejects then, but a server may still answer 250), the
 * outcome follows the refusals: permanent if any was a 5yz, else transient. The server's replies
 * are public text here too, as in `outcomeOfError`.
 */
export function outcomeOfInfo(
  info: SmtpSuccess,
  hide: readonly string[] = [],
): {
  outcome: DeliveryOutcome;
  rejected: string[];
} {
  const rejected = (info.rejected ?? []).map(String);
  const reasons = (info.rejectedErrors ?? []).map((e) => told(e, hide));
  const hints = reasons.flatMap((r) => (r.hint === undefined ? [] : [r.hint]));
  const hint = hints.length > 0 ? hints.join('; ') : undefined;
  const response = oneLine(info.response);
  const shownResponse = publicText(response, hide);
  const id = info.messageId || shownResponse || 'smtp: accepted';
  if (rejected.length === 0) {
    const replyHint = shownResponse === response ? undefined : `SMTP ${response}`;
    return {
      outcome: sent(shownResponse && info.messageId ? `${id} (${shownResponse})` : id, replyHint),
      rejected,
    };
  }
  const shownReasons = reasons.map((r) => r.shown);
  const detail = `refused ${rejected.join(', ')}${shownReasons.length ? `: ${shownReasons.join('; ')}` : ''}`;
  if ((info.accepted ?? []).length === 0) {
    const anyPermanent = (info.rejectedErrors ?? []).some(
      (e) => (e.responseCode ?? 0) >= 500 && e.responseCode !== 503,
    );
    return {
      outcome: anyPermanent ? permanent(detail, hint) : transient(detail, undefined, hint),
      rejected,
    };
  }
  return { outcome: sent(`${id} (partially delivered; ${detail})`, hint), rejected };
}
