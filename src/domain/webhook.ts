import * as E from 'fp-ts/lib/Either.js';
import { retryStep } from './delivery.js';
import { mailbox, mailboxKey } from './email-address.js';
import type { EmailAddress } from './email-address.js';
import type { EmailStatus, StatusName } from './email-status.js';
import { STATUS_NAMES } from './email-status.js';
import type { DomainEvent, EventKey } from './events.js';

/**
 * The `type` of an outgoing webhook: `email.` and the status the change is about
 * (`email.sent`, `email.bounced`, …), in the dotted style of the Standard Webhooks
 * specification's examples (https://www.standardwebhooks.com/, "Payload structure").
 */
export type WebhookEventType = `email.${StatusName}`;

/** Every type an endpoint can subscribe to, in the order of the statuses. */
export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = STATUS_NAMES.map(
  (status): WebhookEventType => `email.${status}`,
);

const isEventType = (name: string): name is WebhookEventType =>
  (WEBHOOK_EVENT_TYPES as readonly string[]).includes(name);

/**
 * Reads an endpoint's event filter as a person writes it: `bounced` or `email.bounced`, any
 * case, duplicates merged, in the order of `WEBHOOK_EVENT_TYPES`. An empty list means every
 * type. Left: a message naming the unknown names and listing the known ones.
 */
export function parseWebhookEventTypes(
  names: readonly string[],
): E.Either<string, readonly WebhookEventType[]> {
  const wanted = new Set<string>();
  const unknown: string[] = [];
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    const type = name.startsWith('email.') ? name : `email.${name}`;
    if (isEventType(type)) wanted.add(type);
    else unknown.push(raw.trim());
  }
  if (unknown.length > 0) {
    return E.left(
      `Unknown webhook event${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => JSON.stringify(n)).join(', ')}: use any of ${STATUS_NAMES.join(', ')} (with or without "email.").`,
    );
  }
  return E.right(WEBHOOK_EVENT_TYPES.filter((type) => wanted.has(type)));
}

/** True when an endpoint subscribed to `events` (empty: every type) wants `type`. */
export const subscribes = (events: readonly WebhookEventType[], type: WebhookEventType): boolean =>
  events.length === 0 || events.includes(type);

/**
 * One change worth a webhook, read from a domain event: its type, its time (RFC 3339), and for
 * a provider's report the recipient it is about and the provider's reason. `key` names the
 * change among all of the email's (type, time, recipient), so that the same event heard twice
 * makes one delivery per endpoint, not two.
 */
export interface WebhookNotice {
  readonly type: WebhookEventType;
  readonly at: string;
  readonly recipient?: EmailAddress;
  readonly reason?: string;
  readonly key: string;
}

const notice = (
  type: WebhookEventType,
  at: string,
  extra: { readonly recipient?: EmailAddress; readonly reason?: string } = {},
): WebhookNotice => ({
  type,
  at,
  ...extra,
  // A provider's report names a recipient: its state changes once per kind (a second complaint
  // about the same recipient is the same news), so the report's time is no part of its key.
  key:
    extra.recipient === undefined
      ? [type, at, ''].join(' ')
      : [type, 'recipient', mailboxKey(extra.recipient)].join(' '),
});

/**
 * The change a domain event announces, as a webhook: every change of status, and each
 * provider report that gives a recipient a state (`delivered`, `bounced`, `complained`). A
 * failover (the status stays what it was during the send), a temporary failure the provider retries itself
 * (`deferred`) and an unsubscribe (the recipient stays delivered; its address is suppressed)
 * change no status and make none.
 */
export function webhookNotice(event: DomainEvent): WebhookNotice | undefined {
  switch (event.type) {
    case 'EmailRequested':
      return notice('email.queued', event.at);
    case 'EmailScheduled':
      return notice('email.scheduled', event.at);
    case 'EmailCancelled':
      return notice('email.cancelled', event.at);
    case 'EmailSuppressed':
      return notice('email.suppressed', event.at, {
        reason: `not sent: every To recipient is suppressed (${event.suppressed.map(mailbox).join(', ')})`,
      });
    case 'EmailSending':
      return notice('email.sending', event.at);
    case 'EmailSent':
      return notice('email.sent', event.at);
    case 'EmailDeliveryRetried':
      return notice('email.retrying', event.at, { reason: event.reason });
    case 'EmailDeliveryFailed':
      return notice('email.failed', event.at, { reason: event.reason });
    case 'EmailFailedOver':
      return undefined;
    case 'EmailUnconfirmed':
      return undefined;
    // An operator's note on an email, no change of its status: the changes that follow (the
    // attempt, the new email's own `email.queued`) make their webhooks.
    case 'EmailRetryExpedited':
    case 'EmailResent':
      return undefined;
    case 'ProviderReported': {
      const state = REPORTED_TYPES[event.kind];
      if (state === undefined) return undefined;
      return notice(state, event.at, {
        recipient: event.recipient,
        ...(event.reason !== undefined ? { reason: event.reason } : {}),
      });
    }
  }
}

const REPORTED_TYPES: Readonly<
  Record<Extract<DomainEvent, { type: 'ProviderReported' }>['kind'], WebhookEventType | undefined>
> = {
  delivered: 'email.delivered',
  bounced: 'email.bounced',
  complained: 'email.complained',
  unsubscribed: undefined,
  deferred: undefined,
};

/**
 * The routing key of the events each webhook type is made from (see `webhookNotice`): a queue
 * that is to make webhooks of some types need hear only these keys. Every provider report
 * travels under `provider`, whatever its kind.
 */
export const WEBHOOK_TYPE_EVENT_KEYS: Readonly<Record<WebhookEventType, EventKey>> = {
  'email.scheduled': 'scheduled',
  'email.queued': 'requested',
  'email.sending': 'sending',
  'email.sent': 'sent',
  'email.retrying': 'retrying',
  'email.failed': 'failed',
  'email.cancelled': 'cancelled',
  'email.suppressed': 'suppressed',
  'email.delivered': 'provider',
  'email.bounced': 'provider',
  'email.complained': 'provider',
};

/**
 * The webhook types some endpoint wants, given every endpoint's filter (an empty filter wants
 * every type); none for no endpoints. In the order of `WEBHOOK_EVENT_TYPES`.
 */
export function wantedWebhookTypes(
  filters: readonly (readonly WebhookEventType[])[],
): readonly WebhookEventType[] {
  return WEBHOOK_EVENT_TYPES.filter((type) => filters.some((events) => subscribes(events, type)));
}

/** The routing keys of the events that make webhooks of `types`, each once, in a stable order. */
export function webhookEventKeys(types: readonly WebhookEventType[]): readonly EventKey[] {
  return [
    ...new Set(
      WEBHOOK_EVENT_TYPES.filter((t) => types.includes(t)).map((t) => WEBHOOK_TYPE_EVENT_KEYS[t]),
    ),
  ];
}

/**
 * The body of an outgoing webhook: `type`, `timestamp` (the change's time, RFC 3339) and `data`,
 * the email as it stands when the delivery is made (`status` may already be past `type`: a
 * `email.sending` notice can be made after the email was sent). `to` holds the addresses as
 * written in the To header; `recipient` and `reason` are there when the change has them.
 */
export interface WebhookPayload {
  readonly type: WebhookEventType;
  readonly timestamp: string;
  readonly data: {
    readonly id: string;
    readonly status: StatusName;
    readonly to: readonly string[];
    readonly subject: string;
    readonly tags: readonly string[];
    readonly metadata: Readonly<Record<string, string>>;
    readonly recipient?: string;
    readonly reason?: string;
  };
}

/** The payload of `change` about the email `status` (see WebhookPayload). */
export const webhookPayload = (change: WebhookNotice, status: EmailStatus): WebhookPayload => ({
  type: change.type,
  timestamp: change.at,
  data: {
    id: status.id,
    status: status.status,
    to: [...status.to],
    subject: status.subject,
    tags: status.tags ?? [],
    metadata: status.metadata ?? {},
    ...(change.recipient !== undefined ? { recipient: mailbox(change.recipient) } : {}),
    ...(change.reason !== undefined ? { reason: change.reason } : {}),
  },
});

/**
 * When a failed delivery is tried again: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the
 * attempt before (milliseconds), eight attempts in all over about a day and a half: Svix's and
 * Resend's schedule (docs.svix.com, "Retry schedule"), which Standard Webhooks senders follow.
 */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
];

/** An attempt that has no answer in this long (ms) failed; the next one is scheduled as usual. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/**
 * The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed, in ms: its
 * step of `delaysMs` (`WEBHOOK_RETRY_DELAYS` or the default schedule); when the receiver's
 * `Retry-After` (RFC 9110 §10.2.3) is longer, the shortest step of the schedule at least that
 * long, or the longest step. Always one of the steps, so a queue that holds jobs in one
 * fixed-delay queue per step (RabbitMQ) waits exactly what the delivery says. Undefined when
 * `attempt` was the last.
 */
export function webhookRetryDelayMs(
  attempt: number,
  retryAfterMs?: number,
  delaysMs: readonly number[] = WEBHOOK_RETRY_DELAYS_MS,
): number | undefined {
  const step = delaysMs[attempt - 1];
  if (step === undefined) return undefined;
  // The same rounding as the email tasks' retry queues: the shortest step long enough.
  return retryStep([step, ...delaysMs], Math.max(step, retryAfterMs ?? 0));
}
