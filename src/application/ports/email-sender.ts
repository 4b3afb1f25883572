import type { Task } from 'fp-ts/lib/Task.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';

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
}
