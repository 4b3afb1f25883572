import type { DeliveryOutcome } from '../../domain/delivery.js';
import {
  permanent,
  publicText,
  sent,
  throttled,
  transient,
  uncertain,
} from '../../domain/delivery.js';

/** What came back from Mailgun, read defensively: a body may be JSON, plain text or HTML. */
export interface MailgunReply {
  readonly status: number;
  readonly body: string;
  readonly retryAfter?: string | null;
  readonly location?: string | null;
}

/** For the worker's log: a 401 is the key or the region (a key is valid in one region only). */
export const UNAUTHORIZED_HINT =
  'Mailgun rejected the API key (401): check MAILGUN_API_KEY and that MAILGUN_API_BASE is the right region';
/** For the page: what happened, without naming our configuration. */
export const UNAUTHORIZED_REASON = 'Mailgun refused our API credentials (401)';

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

const shortLine = (text: string): string => {
  const line = text.replace(/\s+/g, ' ').trim();
  if (line === '') return '(empty body)';
  return line.length > MAX_REASON_CHARS ? `${line.slice(0, MAX_REASON_CHARS - 3)}...` : line;
};

/** Mailgun's own words for a refusal: its JSON message, else the text body, on one short line. */
export function mailgunMessage(body: string): string {
  return shortLine(jsonMessage(body).message ?? body);
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * What a person reads of an HTML error page (a proxy's, a web server's): its title, else its
 * text. The rest of such a page is server names and addresses, which are not theirs to see.
 */
function pageText(html: string): string {
  const title = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html)?.[1];
  const text = (title ?? html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')).replace(
    /<[^>]*>/g,
    ' ',
  );
  return text.replace(/&(#\d+|[a-z]+);/gi, (entity, name: string) =>
    name.startsWith('#')
      ? String.fromCharCode(Number(name.slice(1)))
      : (ENTITIES[name.toLowerCase()] ?? entity),
  );
}

const looksLikeHtml = (body: string): boolean => /^\s*<(!doctype|html|head|body)\b/i.test(body);

/**
 * Mailgun's words as a page may show them: its JSON message, or a text body, or an HTML page's
 * title, with URLs, addresses, hosts and paths taken out (and `hide`, our configuration's host).
 */
export function shownMessage(body: string, hide: readonly string[] = []): string {
  const { message } = jsonMessage(body);
  const text = message ?? (looksLikeHtml(body) ? pageText(body) : body);
  // Shortened only after the patterns ran: a cut could split an address they would then miss.
  return shortLine(publicText(text, hide));
}

/**
 * The longest `Retry-After` read, in milliseconds: a week. RFC 9110 sets no bound, and a header of
 * twenty digits is 10^23 ms, a time no `Date` can hold (its `toISOString` throws). What is read
 * only chooses a retry step or a pause, which have their own, shorter bounds
 * (MAX_THROTTLE_PAUSE_MS): a week is past any of them.
 */
export const MAX_RETRY_AFTER_MS = 7 * 24 * 3_600_000;

/**
 * `Retry-After` as milliseconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3), at
 * most MAX_RETRY_AFTER_MS. Undefined when absent or unreadable, so a garbled header falls back
 * to our own schedule.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(MAX_RETRY_AFTER_MS, Number(trimmed) * 1000);
  if (!/[a-z]/i.test(trimmed)) return undefined; // Date.parse('-1') would read it as a year
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - nowMs));
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
 *
 * The reason is public (see `DeliveryOutcome`): Mailgun's own words for the refusal, without
 * anything from our configuration (`hide`: the API's host). What the operator needs (which
 * variable to check, where a redirect pointed, the body as it came) is the hint.
 */
export function outcomeOf(
  reply: MailgunReply,
  nowMs: number,
  hide: readonly string[] = [],
): DeliveryOutcome {
  const { status, body } = reply;
  if (status >= 200 && status < 300) {
    // The id keeps its angle brackets, exactly as Mailgun reports it in events and logs. An
    // acceptance shows no words, so they are not worked out: this is every send's path, and the
    // public-text patterns cost more than the rest of reading the answer.
    return sent(jsonMessage(body).id ?? `mailgun:${status} without an id`);
  }
  const message = mailgunMessage(body);
  const shown = shownMessage(body, hide);
  // The words as they came, when the page shows fewer of them.
  const asItCame = shown === message ? undefined : `Mailgun ${status}: ${message}`;
  const after = parseRetryAfter(reply.retryAfter, nowMs);
  if (status === 401) return permanent(UNAUTHORIZED_REASON, UNAUTHORIZED_HINT);
  if (status === 404) {
    if (!jsonMessage(body).json) {
      return permanent(
        `Mailgun 404 (${shown}): the service is not set up with the right Mailgun address`,
        `Mailgun 404 without a JSON body: check MAILGUN_API_BASE (${message})`,
      );
    }
    return uncertain(`Mailgun 404 (may be temporary): ${shown}`, after, asItCame);
  }
  // 420 is Mailgun's sending limit of a domain ("… is not allowed to send: recipient limit
  // exceeded, try again after <date>", mailgun/mailgun-java#50): a rate limit, like 429, with
  // its time in the text when not in Retry-After. The pause it makes is capped
  // (MAX_THROTTLE_PAUSE_MS), so a limit of a day is tried again hourly, not waited out blind.
  if (status === 420) {
    return throttled(
      `Mailgun 420: ${shown}`,
      after ?? retryAfterFromMessage(message, nowMs),
      asItCame,
    );
  }
  // Mailgun's documentation: 429 is "Too many requests", its rate limit, with Retry-After
  // saying when to come back. A pause for the transport, not an attempt spent on the email.
  if (status === 429) return throttled(`Mailgun 429: ${shown}`, after, asItCame);
  if (status >= 500 || status === 408) {
    return transient(`Mailgun ${status}: ${shown}`, after, asItCame);
  }
  if (status >= 300 && status < 400) {
    return permanent(
      `Mailgun answered a redirect (${status}): the service is not set up with the right Mailgun address`,
      `Mailgun answered a redirect (${status} to ${reply.location ?? '?'}): check MAILGUN_API_BASE`,
    );
  }
  // 400, 402, 403, 413 and any other refusal: sending the same request again gets the same answer.
  return permanent(`Mailgun ${status}: ${shown}`, asItCame);
}
