import type { Task } from 'fp-ts/lib/Task.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';

/** A transport that answered `throttled` during one send, and its Retry-After (milliseconds). */
export interface Throttle {
  readonly transport: string;
  readonly retryAfterMs?: number;
}

/** An outcome with the name of the transport that gave it (`mailgun`, `smtp`, `outbox`). */
export interface NamedOutcome {
  readonly outcome: DeliveryOutcome;
  readonly transport: string;
  /**
   * Every transport that throttled this send, the one that answered or not: a failover chain
   * may have moved past a throttling transport to one that took the email, and that transport
   * still pauses for everyone. Absent: as the outcome says (`throttledBy`).
   */
  readonly throttled?: readonly Throttle[];
}

/** What the core tells a sender about one send. */
export interface SendOptions {
  /**
   * Transports not to try this time, each with the milliseconds until it may be tried again:
   * paused after a throttle. Only a sender that picks among several (the failover chain) has a
   * choice; the core never hands a single transport its own name here (it waits instead).
   */
  readonly skip?: ReadonlyMap<string, number>;
}

/**
 * Sends one email through one provider. It answers with an outcome and never rejects: a network
 * error is `transient`, a refusal is `permanent`, and `DeliverEmail` decides what follows.
 * The request's id travels with the message (Message-ID, `v:email-id`) so a duplicate can be traced.
 */
export interface EmailSender {
  /** For logs and metrics: `outbox`, `mailgun`, `smtp`, `failover(mailgun,smtp)`. */
  readonly name: string;
  /**
   * The transports this sender may hand an email to, in the order it tries them: what the core
   * paces and pauses (MAILGUN_RATE, a throttle). Only the failover chain has several; absent,
   * the one transport is `name`.
   */
  readonly transports?: readonly string[];
  /**
   * Hands `request` to the provider once. An answer whose meaning only time tells (Mailgun's
   * JSON 404) is reported as `uncertain`; how often to try again is the core's decision.
   */
  send(request: EmailRequest, options?: SendOptions): Task<DeliveryOutcome>;
  /**
   * `send`, naming the transport that answered. Only a sender that picks among several (the
   * failover chain) has it: for every other one the transport is its `name`. The core needs the
   * name to know whether a provider report may follow (Mailgun sends them; SMTP and the outbox
   * never do), which is why it is told who took the email, not who was asked.
   */
  sendNamed?(request: EmailRequest, options?: SendOptions): Task<NamedOutcome>;
  /**
   * The worker is stopping: sends that have not started yet (waiting for a pooled connection)
   * start no more, and answer `notStarted` (nothing went out) instead, so that their tasks go
   * back to the queue rather than start sends the stop's grace period may cut off half-way
   * (a send cut off after the provider took it is sent again by another worker). Sends under
   * way finish, and a send asked for afterwards (a failover chain moving on) answers
   * `notStarted` at once. Only a sender that makes sends wait has it.
   */
  stopStarting?(): void;
}

/**
 * `sender.send(request)`, with the transport that answered: `sendNamed` where there is one.
 * `options` goes only to `sendNamed` (the failover chain's): a single transport has no choice.
 */
export const sendNamed =
  (sender: EmailSender, request: EmailRequest, options?: SendOptions): Task<NamedOutcome> =>
  async () =>
    sender.sendNamed !== undefined
      ? sender.sendNamed(request, options)()
      : { outcome: await sender.send(request)(), transport: sender.name };

/** The transports a sender may use, in order: its own `transports`, else its name alone. */
export const transportsOf = (sender: EmailSender): readonly string[] =>
  sender.transports ?? [sender.name];

/**
 * The transports that throttled one send: what the sender listed, or, for a sender that lists
 * none (a single transport), the one that answered when its outcome is `throttled`.
 */
export function throttledBy(named: NamedOutcome): readonly Throttle[] {
  if (named.throttled !== undefined) return named.throttled;
  const { outcome, transport } = named;
  if (outcome._tag !== 'Transient' || outcome.throttled !== true) return [];
  return [
    outcome.retryAfterMs === undefined
      ? { transport }
      : { transport, retryAfterMs: outcome.retryAfterMs },
  ];
}
