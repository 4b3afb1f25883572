import * as t from 'io-ts';
import { EmailAddress } from './email-address.js';
import type { EmailRequest } from './email-request.js';
import { EmailId } from './email-request.js';

/**
 * Domain events. Each carries the recipients and subject so that a status projection can be built
 * from any of them, in any order: the server and worker are separate processes and the broker
 * does not promise that `requested` arrives before `delivered` on another instance.
 */
const common = { id: EmailId, at: t.string, to: t.readonlyArray(EmailAddress), subject: t.string };
/** The other recipients, when there are any: every recipient has a state of its own. */
const copies = t.partial({
  cc: t.readonlyArray(EmailAddress),
  bcc: t.readonlyArray(EmailAddress),
});
/** An event's own fields, with the recipients every event carries. */
const event = <P extends t.Props>(props: P) => t.intersection([t.type(props), copies]);

/** What the first event of an email carries for its status besides the recipients. */
const labels = t.partial({
  tags: t.readonlyArray(t.string),
  metadata: t.record(t.string, t.string),
  /** Recipients dropped at accept time because they are on the suppression list. */
  suppressed: t.readonlyArray(EmailAddress),
  /** The email this one is a resend of (an operator's "Resend"): the same request, a new id. */
  resendOf: EmailId,
});

/** Accepted for sending now: on the queue. Also the release of a scheduled email. */
export const EmailRequested = t.intersection([
  event({ type: t.literal('EmailRequested'), ...common }),
  labels,
]);
/** Accepted, and held by us until `sendAt` (RFC 3339). */
export const EmailScheduled = t.intersection([
  event({ type: t.literal('EmailScheduled'), ...common, sendAt: t.string }),
  labels,
]);
/**
 * Every recipient left was on the suppression list when a worker took the email: it is not sent.
 * `suppressed` lists them (the rest of `to`, `cc`, `bcc` was dropped at accept time already).
 */
export const EmailSuppressed = event({
  type: t.literal('EmailSuppressed'),
  ...common,
  suppressed: t.readonlyArray(EmailAddress),
});
/** A scheduled email cancelled before it was released: it will never be sent. */
export const EmailCancelled = event({ type: t.literal('EmailCancelled'), ...common });
/** A worker took the task and is about to hand it to a transport. */
export const EmailSending = event({
  type: t.literal('EmailSending'),
  ...common,
  attempt: t.number,
});
/**
 * The provider accepted the email (Mailgun's 200, SMTP's 250): not yet a delivery report.
 * `transport` names the one that took it (`mailgun`, `smtp`, `outbox`; with failover, the one
 * that answered, not the chain). Optional: events recorded before it existed have none, and a
 * send found in the ledger on a redelivery does not say.
 */
export const EmailSent = t.intersection([
  event({
    type: t.literal('EmailSent'),
    ...common,
    attempt: t.number,
    providerId: t.string,
    durationMs: t.number,
  }),
  t.partial({ transport: t.string }),
]);
export const EmailDeliveryRetried = event({
  type: t.literal('EmailDeliveryRetried'),
  ...common,
  attempt: t.number,
  reason: t.string,
  /** How long the failed attempt took, in milliseconds. */
  durationMs: t.number,
  delayMs: t.number,
  nextAttemptAt: t.string,
});
export const EmailDeliveryFailed = event({
  type: t.literal('EmailDeliveryFailed'),
  ...common,
  attempt: t.number,
  /** The last attempt's own outcome: a permanent refusal, or a transient one with no tries left. */
  outcome: t.union([t.literal('transient'), t.literal('permanent')]),
  reason: t.string,
  /** How long the last attempt took, in milliseconds. */
  durationMs: t.number,
});

/** A transport failed for now and the next one was tried: running on a fallback is never silent. */
export const EmailFailedOver = event({
  type: t.literal('EmailFailedOver'),
  ...common,
  fromTransport: t.string,
  toTransport: t.string,
  reason: t.string,
});

/** What a provider can tell about one recipient after it accepted the email. */
export const ProviderReportKind = t.keyof({
  delivered: null,
  /** A permanent failure: the address will not take mail (Mailgun's `failed`, `permanent`). */
  bounced: null,
  complained: null,
  unsubscribed: null,
  /** A temporary failure: the provider keeps trying (Mailgun's `failed`, `temporary`). */
  deferred: null,
});
export type ProviderReportKind = t.TypeOf<typeof ProviderReportKind>;

/**
 * A provider's report about one recipient (a Mailgun webhook). `at` is the provider's time of the
 * event, `recipient` one of the email's own addresses when it could be matched, and
 * `providerEventId` the provider's id of the event (the same report sent twice carries it twice).
 */
export const ProviderReported = t.intersection([
  event({
    type: t.literal('ProviderReported'),
    ...common,
    recipient: EmailAddress,
    kind: ProviderReportKind,
    source: t.literal('mailgun'),
    providerEventId: t.string,
  }),
  t.partial({ reason: t.string }),
]);

/**
 * The watchdog's finding: `transport` accepted the email and then reported nothing on any
 * recipient within `deadlineMs` (milliseconds) of the send. A provider that says yes and then
 * nothing is an outage no peer notices; the email's status does not change, its history says so.
 */
export const EmailUnconfirmed = event({
  type: t.literal('EmailUnconfirmed'),
  ...common,
  transport: t.string,
  deadlineMs: t.number,
});

/**
 * An operator asked for the waiting retry of attempt `attempt` now ("Retry now"). `copied`: the
 * queue holds a copy of the task due now (RabbitMQ, whose TTL queues cannot be reordered), and
 * the waiting task of that attempt is dropped by the worker when it arrives; false: the waiting
 * task itself was made due now (the SQL queue), so there is nothing to drop.
 */
export const EmailRetryExpedited = event({
  type: t.literal('EmailRetryExpedited'),
  ...common,
  attempt: t.number,
  copied: t.boolean,
});

/**
 * The email was sent again as a new email, `resentAs` (an operator's "Resend"): the same request
 * under a new id, whose own accepted event names this one as `resendOf`. Changes no status.
 */
export const EmailResent = event({ type: t.literal('EmailResent'), ...common, resentAs: EmailId });

export const DomainEvent = t.union([
  EmailRequested,
  EmailScheduled,
  EmailCancelled,
  EmailSuppressed,
  EmailSending,
  EmailSent,
  EmailDeliveryRetried,
  EmailDeliveryFailed,
  EmailFailedOver,
  ProviderReported,
  EmailUnconfirmed,
  EmailRetryExpedited,
  EmailResent,
]);
export type DomainEvent = t.TypeOf<typeof DomainEvent>;
export type EmailRequested = t.TypeOf<typeof EmailRequested>;
export type EmailScheduled = t.TypeOf<typeof EmailScheduled>;
export type EmailCancelled = t.TypeOf<typeof EmailCancelled>;
export type EmailSuppressed = t.TypeOf<typeof EmailSuppressed>;
export type EmailSending = t.TypeOf<typeof EmailSending>;
export type EmailSent = t.TypeOf<typeof EmailSent>;
export type EmailDeliveryRetried = t.TypeOf<typeof EmailDeliveryRetried>;
export type EmailDeliveryFailed = t.TypeOf<typeof EmailDeliveryFailed>;
export type EmailFailedOver = t.TypeOf<typeof EmailFailedOver>;
export type ProviderReported = t.TypeOf<typeof ProviderReported>;
export type EmailUnconfirmed = t.TypeOf<typeof EmailUnconfirmed>;
export type EmailRetryExpedited = t.TypeOf<typeof EmailRetryExpedited>;
export type EmailResent = t.TypeOf<typeof EmailResent>;

export type EventKey =
  | 'requested'
  | 'scheduled'
  | 'cancelled'
  | 'suppressed'
  | 'sending'
  | 'sent'
  | 'retrying'
  | 'failed'
  | 'failover'
  | 'provider'
  | 'unconfirmed'
  | 'expedited'
  | 'resent';

/** The routing key on the events exchange. */
export const eventKey = (e: DomainEvent): EventKey => {
  switch (e.type) {
    case 'EmailRequested':
      return 'requested';
    case 'EmailScheduled':
      return 'scheduled';
    case 'EmailCancelled':
      return 'cancelled';
    case 'EmailSuppressed':
      return 'suppressed';
    case 'EmailSending':
      return 'sending';
    case 'EmailSent':
      return 'sent';
    case 'EmailDeliveryRetried':
      return 'retrying';
    case 'EmailDeliveryFailed':
      return 'failed';
    case 'EmailFailedOver':
      return 'failover';
    case 'ProviderReported':
      return 'provider';
    case 'EmailUnconfirmed':
      return 'unconfirmed';
    case 'EmailRetryExpedited':
      return 'expedited';
    case 'EmailResent':
      return 'resent';
  }
};

/** The recipient fields every event about `request` carries: to, and cc and bcc when given. */
export const recipientsOf = (request: EmailRequest): Pick<EmailRequested, 'to' | 'cc' | 'bcc'> => ({
  to: request.to,
  ...(request.cc !== undefined ? { cc: request.cc } : {}),
  ...(request.bcc !== undefined ? { bcc: request.bcc } : {}),
});

/**
 * The first event of an accepted request, as the email log records it and the API announces it:
 * held until its `sendAt` (scheduled), or on the queue at once (requested). `suppressed` names
 * the recipients dropped at accept time, which the request no longer carries; `resendOf` the
 * email this one resends, when it is a resend.
 */
export function acceptedEvent(
  request: EmailRequest,
  suppressed: readonly EmailAddress[] = [],
  resendOf?: EmailId,
): EmailRequested | EmailScheduled {
  const common = {
    id: request.id,
    at: request.requestedAt,
    ...recipientsOf(request),
    subject: request.subject,
    ...(request.tags !== undefined ? { tags: request.tags } : {}),
    ...(request.metadata !== undefined ? { metadata: request.metadata } : {}),
    ...(suppressed.length > 0 ? { suppressed } : {}),
    ...(resendOf !== undefined ? { resendOf } : {}),
  };
  return request.sendAt === undefined
    ? { type: 'EmailRequested', ...common }
    : { type: 'EmailScheduled', ...common, sendAt: request.sendAt };
}
