import type { DeliveryOutcome } from '../../domain/delivery.js';
import { permanent, sent, transient } from '../../domain/delivery.js';

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

export const AUTH_HINT =
  'the SMTP server refused the credentials: check the user and password in SMTP_URL';

const oneLine = (s: string | undefined): string => (s ?? '').replace(/\s+/g, ' ').trim();

function describe(e: SmtpFailure): string {
  const on = e.command ? ` on ${e.command}` : '';
  const text = oneLine(e.response) || oneLine(e.message) || 'no details';
  return e.responseCode
    ? `SMTP ${e.responseCode}${on}: ${text}`
    : `${e.code ?? 'error'}${on}: ${text}`;
}

/**
 * A failed send as an outcome. RFC 5321: 4yz is transient, 5yz permanent. The exception, as in
 * nodemailer's own `isPermanentResponseCode`, is 503 (bad sequence of commands): it says the
 * session was in the wrong state, typically a pooled connection left half-way by an earlier
 * failure, not that the message is refused, so a new connection may well take it; MAX_ATTEMPTS
 * bounds the retries if it does not.
 */
export function outcomeOfError(e: SmtpFailure): DeliveryOutcome {
  const code = e.responseCode;
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH') {
    // 454 "temporary authentication failure" is the server's problem, not our password.
    return code !== undefined && code >= 400 && code < 500
      ? transient(`SMTP server could not check the credentials now (${describe(e)})`)
      : permanent(`${AUTH_HINT} (${code ?? e.code})`);
  }
  if (code !== undefined) {
    if (code >= 500 && code !== 503) return permanent(describe(e));
    return transient(describe(e));
  }
  if (e.code && CONNECTION_CODES.has(e.code)) return transient(describe(e));
  if (e.code && PERMANENT_CODES.has(e.code)) return permanent(describe(e));
  // Unknown failures are retried: at worst a few extra attempts, bounded by MAX_ATTEMPTS.
  return transient(describe(e));
}

/**
 * A completed SMTP transaction. When the server took some recipients and refused others, the
 * message is already on its way to those it took, so a retry would send it to them twice: it is
 * `sent`, with the refused recipients named in the provider id, and the caller logs a warning.
 * When it took none (nodemailer normally rejects then, but a server may still answer 250), the
 * outcome follows the refusals: permanent if any was a 5yz, else transient.
 */
export function outcomeOfInfo(info: SmtpSuccess): {
  outcome: DeliveryOutcome;
  rejected: string[];
} {
  const rejected = (info.rejected ?? []).map(String);
  const reasons = (info.rejectedErrors ?? []).map(describe);
  const id = info.messageId || oneLine(info.response) || 'smtp: accepted';
  if (rejected.length === 0) {
    const response = oneLine(info.response);
    return { outcome: sent(response && info.messageId ? `${id} (${response})` : id), rejected };
  }
  const detail = `refused ${rejected.join(', ')}${reasons.length ? `: ${reasons.join('; ')}` : ''}`;
  if ((info.accepted ?? []).length === 0) {
    const anyPermanent = (info.rejectedErrors ?? []).some(
      (e) => (e.responseCode ?? 0) >= 500 && e.responseCode !== 503,
    );
    return { outcome: anyPermanent ? permanent(detail) : transient(detail), rejected };
  }
  return { outcome: sent(`${id} (partially delivered; ${detail})`), rejected };
}
