/**
 * The event webhooks of the Mailgun stand-in: what Mailgun POSTs after it accepted a message
 * (documentation.mailgun.com, "Webhooks" and "Securing Webhooks"). The body is JSON,
 * `{"signature": {timestamp, token, signature}, "event-data": {...}}`, signed in the body with
 * HMAC-SHA256 over `timestamp + token` under the domain's webhook signing key.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { ReceivedMessage } from './mailgun-form.js';
import { bareAddress, mailboxOf } from './mailgun-form.js';

export const EVENT_NAMES = ['delivered', 'failed', 'complained', 'unsubscribed'] as const;
export type EventName = (typeof EVENT_NAMES)[number];
export type Severity = 'permanent' | 'temporary';

/** One event to post, as a test scripts it: the message by our id or Mailgun's, and a recipient. */
export interface EventScript {
  /** Our id, as the message carried it in `v:email-id`. */
  readonly emailId?: string;
  /** The id the stand-in answered with, angle brackets optional. */
  readonly messageId?: string;
  readonly recipient: string;
  readonly event: EventName;
  /** `failed` only; `permanent` when not given. */
  readonly severity?: Severity;
  readonly reason?: string;
  /** `delivery-status.code`: 250 for delivered, 550 for a permanent failure, 421 for a temporary. */
  readonly code?: number;
}

export interface MailgunSignature {
  /** Unix seconds, as a string. */
  readonly timestamp: string;
  /** 50 random hex characters, new for every post. */
  readonly token: string;
  /** Hex HMAC-SHA256 of `timestamp + token` under the webhook signing key. */
  readonly signature: string;
}

/** The fields of Mailgun's `event-data` the stand-in fills in. */
export interface MailgunEventData {
  readonly event: EventName;
  readonly severity?: Severity;
  readonly reason?: string;
  readonly id: string;
  /** Float seconds. */
  readonly timestamp: number;
  readonly 'log-level': 'info' | 'warn' | 'error';
  readonly recipient: string;
  readonly 'recipient-domain': string;
  readonly message: {
    readonly headers: {
      readonly 'message-id': string;
      readonly from: string;
      readonly to: string;
      readonly subject: string;
    };
  };
  readonly tags: readonly string[];
  readonly 'user-variables': Readonly<Record<string, string>>;
  readonly 'delivery-status'?: {
    readonly 'attempt-no': number;
    readonly code: number;
    readonly message: string;
    readonly description: string;
  };
}

export interface MailgunWebhookPayload {
  readonly signature: MailgunSignature;
  readonly 'event-data': MailgunEventData;
}

/** One POST to the webhook URL; `status` null when the receiver could not be reached. */
export interface WebhookDelivery {
  readonly url: string;
  readonly event: EventName;
  readonly recipient: string;
  readonly messageId: string;
  /** `event-data.id`: the same on every attempt of one event. */
  readonly eventId: string;
  /** 1 for the first try of an event. */
  readonly attempt: number;
  /** Posted after a send (`autoEvents`), or scripted through `sendEvent`. */
  readonly auto: boolean;
  readonly status: number | null;
  readonly error?: string;
  readonly at: string;
}

/** What the receiver answered. */
export interface WebhookAnswer {
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
}

/** Why an event cannot be posted, with the status the HTTP endpoint answers. */
export interface EventRefused {
  readonly status: 400 | 404 | 409;
  readonly message: string;
}

/** A webhook signing key of the shape Mailgun shows: 32 hex characters. */
export const newSigningKey = (): string => randomBytes(16).toString('hex');

export function sign(key: string, now = Date.now()): MailgunSignature {
  const timestamp = String(Math.floor(now / 1000));
  const token = randomBytes(25).toString('hex');
  const signature = createHmac('sha256', key)
    .update(timestamp + token)
    .digest('hex');
  return { timestamp, token, signature };
}

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === 'object' && u !== null && !Array.isArray(u);

const FIELDS = ['email_id', 'message_id', 'recipient', 'event', 'severity', 'reason', 'code'];

/** The body of `POST /__stand-in/events` (snake_case, like our API's `reply_to`), or why not. */
export function parseEventScript(text: string): EventScript | EventRefused {
  const bad = (message: string): EventRefused => ({ status: 400, message });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return bad('body must be JSON');
  }
  if (!isObject(body)) return bad('body must be a JSON object');
  const unknown = Object.keys(body).find((k) => !FIELDS.includes(k));
  if (unknown !== undefined) return bad(`unknown field ${unknown}; fields: ${FIELDS.join(', ')}`);
  const { email_id, message_id, recipient, event, severity, reason, code } = body;
  for (const [name, value] of Object.entries({ email_id, message_id, recipient, reason })) {
    if (value !== undefined && typeof value !== 'string') return bad(`${name} must be a string`);
  }
  if (code !== undefined && !Number.isInteger(code)) return bad('code must be an integer');
  if (!EVENT_NAMES.includes(event as EventName)) {
    return bad(`event must be one of ${EVENT_NAMES.join(', ')}`);
  }
  if (severity !== undefined && severity !== 'permanent' && severity !== 'temporary') {
    return bad('severity must be permanent or temporary');
  }
  return {
    ...(email_id !== undefined ? { emailId: email_id as string } : {}),
    ...(message_id !== undefined ? { messageId: message_id as string } : {}),
    recipient: (recipient as string | undefined) ?? '',
    event: event as EventName,
    ...(severity !== undefined ? { severity: severity as Severity } : {}),
    ...(reason !== undefined ? { reason: reason as string } : {}),
    ...(code !== undefined ? { code: code as number } : {}),
  };
}

const withoutBrackets = (id: string): string => id.replace(/^<(.*)>$/, '$1');

/** The unique recipients of a message, to, cc then bcc, as Mailgun drops duplicates. */
export function recipientsOf(message: ReceivedMessage): string[] {
  const seen = new Map<string, string>();
  for (const r of [...message.to, ...message.cc, ...message.bcc]) {
    if (!seen.has(mailboxOf(r))) seen.set(mailboxOf(r), bareAddress(r));
  }
  return [...seen.values()];
}

/**
 * The message and recipient a script names. By `emailId` the latest such message wins: a retried
 * send reaches Mailgun twice with the same `v:email-id`.
 */
export function findTarget(
  messages: readonly ReceivedMessage[],
  script: EventScript,
): { message: ReceivedMessage; recipient: string } | EventRefused {
  if (script.severity !== undefined && script.event !== 'failed') {
    return { status: 400, message: 'severity is for failed events only' };
  }
  if (script.emailId === undefined && script.messageId === undefined) {
    return { status: 400, message: 'email_id or message_id is required' };
  }
  if (script.recipient === '') return { status: 400, message: 'recipient is required' };
  const message = messages.findLast(
    (m) =>
      (script.emailId === undefined || m.variables['email-id'] === script.emailId) &&
      (script.messageId === undefined ||
        withoutBrackets(m.id) === withoutBrackets(script.messageId)),
  );
  if (message === undefined) return { status: 404, message: 'no such message' };
  const recipient = recipientsOf(message).find((r) => mailboxOf(r) === mailboxOf(script.recipient));
  if (recipient === undefined) {
    return { status: 404, message: `${script.recipient} is not a recipient of that message` };
  }
  return { message, recipient };
}

const logLevel = (script: EventScript): MailgunEventData['log-level'] =>
  script.event === 'delivered'
    ? 'info'
    : script.event === 'failed' && (script.severity ?? 'permanent') === 'permanent'
      ? 'error'
      : 'warn';

function deliveryStatus(script: EventScript): MailgunEventData['delivery-status'] {
  if (script.event === 'delivered') {
    return { 'attempt-no': 1, code: script.code ?? 250, message: 'OK', description: '' };
  }
  if (script.event !== 'failed') return undefined;
  const permanent = (script.severity ?? 'permanent') === 'permanent';
  const code = script.code ?? (permanent ? 550 : 421);
  // The stand-in's wording: real messages are whatever the receiving server said.
  const message = code >= 500 ? '5.1.1 Mailbox unavailable' : '4.2.0 Try again later';
  return { 'attempt-no': 1, code, message, description: '' };
}

/** The event as Mailgun builds it, from what the message carried. */
export function eventData(
  message: ReceivedMessage,
  recipient: string,
  script: EventScript,
  now = Date.now(),
): MailgunEventData {
  const failed = script.event === 'failed';
  const severity = script.severity ?? 'permanent';
  const reason = script.reason ?? (failed ? (severity === 'permanent' ? 'bounce' : 'generic') : '');
  const status = deliveryStatus(script);
  return {
    event: script.event,
    ...(failed ? { severity } : {}),
    ...(reason !== '' ? { reason } : {}),
    // Mailgun's event ids are 22 url-safe characters.
    id: randomBytes(16).toString('base64url').slice(0, 22),
    timestamp: now / 1000,
    'log-level': logLevel(script),
    recipient,
    'recipient-domain': recipient.slice(recipient.lastIndexOf('@') + 1),
    message: {
      headers: {
        'message-id': withoutBrackets(message.id),
        from: message.from,
        to: message.to.join(', '),
        subject: message.subject,
      },
    },
    tags: [...message.tags],
    'user-variables': { ...message.variables },
    ...(status ? { 'delivery-status': status } : {}),
  };
}

const RECEIVER_TIMEOUT_MS = 10_000;

/** fetch says only `fetch failed`; the reason (`ECONNREFUSED`, a timeout) is in its cause. */
export function whyUnreachable(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  if (cause instanceof Error) return 'code' in cause ? String(cause.code) : cause.message;
  return String(cause);
}

/**
 * Posts signed events to one URL and records every attempt. Auto events are retried like
 * Mailgun does, compressed to test time (Mailgun: about 8 hours); a 406 stops the retries, as it
 * does at Mailgun ("Webhook retries").
 */
export class WebhookPoster {
  readonly deliveries: WebhookDelivery[] = [];
  private readonly closing = new AbortController();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    readonly url: string,
    readonly signingKey: string,
    private readonly retry: { readonly tries: number; readonly delayMs: number },
  ) {}

  /** One attempt; rejects when the receiver cannot be reached. */
  async post(data: MailgunEventData, auto = false, attempt = 1): Promise<WebhookAnswer> {
    const record = (status: number | null, error?: string): void => {
      this.deliveries.push({
        url: this.url,
        event: data.event,
        recipient: data.recipient,
        messageId: data.message.headers['message-id'],
        eventId: data.id,
        attempt,
        auto,
        status,
        ...(error !== undefined ? { error } : {}),
        at: new Date().toISOString(),
      });
    };
    const payload: MailgunWebhookPayload = { signature: sign(this.signingKey), 'event-data': data };
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.any([this.closing.signal, AbortSignal.timeout(RECEIVER_TIMEOUT_MS)]),
      });
      const body = await res.text();
      record(res.status);
      const contentType = res.headers.get('content-type');
      return { status: res.status, body, ...(contentType ? { contentType } : {}) };
    } catch (error) {
      record(null, whyUnreachable(error));
      throw error;
    }
  }

  /** Posts in the background, retrying; never rejects. */
  postWithRetries(data: MailgunEventData): void {
    const run = async (): Promise<void> => {
      for (let attempt = 1; attempt <= this.retry.tries; attempt++) {
        if (attempt > 1)
          await delay(this.retry.delayMs, undefined, { signal: this.closing.signal });
        const answer = await this.post(data, true, attempt).catch(() => undefined);
        if (answer && ((answer.status >= 200 && answer.status < 300) || answer.status === 406)) {
          return;
        }
      }
    };
    const job = run()
      .catch(() => undefined) // aborted by close()
      .finally(() => this.pending.delete(job));
    this.pending.add(job);
  }

  /** Stops retries and waits for what is in flight, so nothing posts after the stand-in closed. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all(this.pending);
  }
}
