import type { Task } from 'fp-ts/lib/Task.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';

/** An outcome with the name of the transport that gave it (`mailgun`, `smtp`, `outbox`). */
export interface NamedOutcome {
  readonly outcome: DeliveryOutcome;
  readonly transport: string;
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
   * Hands `request` to the provider once. An answer whose meaning only time tells (Mailgun's
   * JSON 404) is reported as `uncertain`; how often to try again is the core's decision.
   */
  send(request: EmailRequest): Task<DeliveryOutcome>;
  /**
   * `send`, naming the transport that answered. Only a sender that picks among several (the
   * failover chain) has it: for every other one the transport is its `name`. The core needs the
   * name to know whether a provider report may follow (Mailgun sends them; SMTP and the outbox
   * never do), which is why it is told who took the email, not who was asked.
   */
  sendNamed?(request: EmailRequest): Task<NamedOutcome>;
}

/** `sender.send(request)`, with the transport that answered: `sendNamed` where there is one. */
export const sendNamed =
  (sender: EmailSender, request: EmailRequest): Task<NamedOutcome> =>
  async () =>
    sender.sendNamed !== undefined
      ? sender.sendNamed(request)()
      : { outcome: await sender.send(request)(), transport: sender.name };
