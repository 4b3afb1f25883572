import type { DeliveryOutcome } from '../../domain/delivery.js';
import { permanent, sent, transient, uncertain } from '../../domain/delivery.js';

/** What came back from Mailgun, read defensively: a body may be JSON, plain text or HTML. */
export interface MailgunReply {
  readonly status: number;
  readonly body: string;
  readonly retryAfter?: string | null;
  readonly location?: string | null;
}

export const UNAUTHORIZED_HINT =
  'Mailgun rejected the API key (401): check MAILGUN_API_KEY and that MAILGUN_API_BASE is the right region';

const MAX_REASON_CHARS = 300;

/** `{"message": …}` when the body is JSON with one, else undefined. */
export function jsonMessage(body: string): { json: boolean; message?: string; id?: string } {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null) return { json: false };
    return {
      json: true,
      ...('message' in parsed && typeof parsed.message === 'string'
        ? { message: parsed.message }
        : {}),
      ...('id' in parsed && typeof parsed.id === 'string' ? { id: parsed.id } : {}),
    };
  } catch {
    return { json: false };
  }
}

/** Mailgun's own words for a refusal: its JSON message, else the text body, on one short line. */
export function mailgunMessage(body: string): string {
  const { message } = jsonMessage(body);
  const text = (message ?? body).replace(/\s+/g, ' ').trim();
  if (text === '') return '(empty body)';
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS - 3)}...` : text;
}

/**
 * `Retry-After` as milliseconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
 * Undefined when absent or unreadable, so a garbled header falls back to our own schedule.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/[a-z]/i.test(trimmed)) return undefined; // Date.parse('-1') would read it as a year
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** 420 says when in its text: `… try again after Fri, 28 Nov 2026 10:00:00 UTC`. */
function retryAfterFromMessage(message: string, nowMs: number): number | undefined {
  const match = /try again after (.+?)(?:\.|$)/i.exec(message);
  return match?.[1] ? parseRetryAfter(match[1], nowMs) : undefined;
}

/**
 * Mailgun's answer as an outcome (the table in docs/architecture.md, "Delivery rules"). A JSON
 * 404 may be Mailgun saying "not yet" (it is eventually consistent): it is reported as an
 * uncertain failure, and the core decides how many times that is worth another try. A 404
 * without JSON is no Mailgun answer at all but a wrong URL, which no retry will fix.
 */
export function outcomeOf(reply: MailgunReply, nowMs: number): DeliveryOutcome {
  const { status, body } = reply;
  const message = mailgunMessage(body);
  const after = parseRetryAfter(reply.retryAfter, nowMs);
  if (status >= 200 && status < 300) {
    // The id keeps its angle brackets, exactly as Mailgun reports it in events and logs.
    return sent(jsonMessage(body).id ?? `mailgun:${status} without an id`);
  }
  if (status === 401) return permanent(UNAUTHORIZED_HINT);
  if (status === 404) {
    if (!jsonMessage(body).json) {
      return permanent(`Mailgun 404 without a JSON body: check MAILGUN_API_BASE (${message})`);
    }
    return uncertain(`Mailgun 404 (may be temporary): ${message}`, after);
  }
  if (status === 420) {
    return transient(`Mailgun 420: ${message}`, after ?? retryAfterFromMessage(message, nowMs));
  }
  if (status === 429 || status >= 500 || status === 408) {
    return transient(`Mailgun ${status}: ${message}`, after);
  }
  if (status >= 300 && status < 400) {
    return permanent(
      `Mailgun answered a redirect (${status} to ${reply.location ?? '?'}): check MAILGUN_API_BASE`,
    );
  }
  // 400, 402, 403, 413 and any other refusal: sending the same request again gets the same answer.
  return permanent(`Mailgun ${status}: ${message}`);
}
