import * as t from 'io-ts';
import { EmailAddress } from './email-address.js';
import { EmailId } from './email-request.js';

/**
 * Domain events. Each carries the recipients and subject so that a status projection can be built
 * from any of them, in any order: the server and worker are separate processes and the broker
 * does not promise that `requested` arrives before `delivered` on another instance.
 */
const common = { id: EmailId, at: t.string, to: t.readonlyArray(EmailAddress), subject: t.string };

export const EmailRequested = t.type({ type: t.literal('EmailRequested'), ...common });
/** A worker took the task and is about to hand it to a transport. */
export const EmailSending = t.type({
  type: t.literal('EmailSending'),
  ...common,
  attempt: t.number,
});
/** The provider accepted the email (Mailgun's 200, SMTP's 250): not yet a delivery report. */
export const EmailSent = t.type({
  type: t.literal('EmailSent'),
  ...common,
  attempt: t.number,
  providerId: t.string,
  durationMs: t.number,
});
export const EmailDeliveryRetried = t.type({
  type: t.literal('EmailDeliveryRetried'),
  ...common,
  attempt: t.number,
  reason: t.string,
  /** How long the failed attempt took, in milliseconds. */
  durationMs: t.number,
  delayMs: t.number,
  nextAttemptAt: t.string,
});
export const EmailDeliveryFailed = t.type({
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
export const EmailFailedOver = t.type({
  type: t.literal('EmailFailedOver'),
  ...common,
  fromTransport: t.string,
  toTransport: t.string,
  reason: t.string,
});

export const DomainEvent = t.union([
  EmailRequested,
  EmailSending,
  EmailSent,
  EmailDeliveryRetried,
  EmailDeliveryFailed,
  EmailFailedOver,
]);
export type DomainEvent = t.TypeOf<typeof DomainEvent>;
export type EmailRequested = t.TypeOf<typeof EmailRequested>;
export type EmailSending = t.TypeOf<typeof EmailSending>;
export type EmailSent = t.TypeOf<typeof EmailSent>;
export type EmailDeliveryRetried = t.TypeOf<typeof EmailDeliveryRetried>;
export type EmailDeliveryFailed = t.TypeOf<typeof EmailDeliveryFailed>;
export type EmailFailedOver = t.TypeOf<typeof EmailFailedOver>;

export type EventKey = 'requested' | 'sending' | 'sent' | 'retrying' | 'failed' | 'failover';

/** The routing key on the events exchange. */
export const eventKey = (e: DomainEvent): EventKey => {
  switch (e.type) {
    case 'EmailRequested':
      return 'requested';
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
  }
};
