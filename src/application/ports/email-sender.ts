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
   * `attempt` is which try this is (1-based), for the rare answer whose meaning depends on it:
   * Mailgun's JSON 404 is "not yet" a few times, then a real refusal.
   */
  send(request: EmailRequest, attempt?: number): Task<DeliveryOutcome>;
}
