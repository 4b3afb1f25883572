import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { DomainEvent } from '../../domain/events.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import type { QueueUnavailable } from './email-queue.js';

/** Try delivery `deliveryId` for the `attempt`-th time (1 for the first). */
export interface WebhookJob {
  readonly deliveryId: string;
  readonly attempt: number;
}

/**
 * Where webhook jobs wait their turn: `email.webhooks` and its retry queues on RabbitMQ, a table
 * of the embedded database in `email dev`. Right means the job is held durably.
 */
export interface WebhookQueue {
  /**
   * Holds `job` for `delayMs` (0: due now). A queue with fixed delay steps may round the delay up
   * to its next step, never down.
   */
  publish(job: WebhookJob, delayMs: number): TaskEither<QueueUnavailable, void>;
}

/**
 * `done`: handled (delivered, rescheduled, or given up); `redeliver`: a store did not answer, so
 * the queue keeps the job and offers it again after a pause. A rejection is a bug: the job goes
 * back to the queue too.
 */
export type WebhookWork = 'done' | 'redeliver';

/** What a webhook worker does with what the queue brings. */
export interface WebhookHandlers {
  /** A job: one attempt of one delivery. */
  readonly job: (job: WebhookJob) => Promise<WebhookWork>;
  /**
   * A domain event, where the queue hears them itself (RabbitMQ binds `email.webhooks` to the
   * events exchange): made into one delivery per subscribed endpoint.
   */
  readonly event: (event: DomainEvent) => Promise<WebhookWork>;
}

/** The worker's side of the webhook queue. Driven by main. */
export interface WebhookJobSource {
  /** Starts handing jobs (and events, see WebhookHandlers) to `handlers`, a few at once. */
  consume(handlers: WebhookHandlers): Promise<void>;
  /** Takes nothing new; waits up to `graceMs` for what is in hand, then lets the rest go back. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Which changes reach the webhook queue by themselves, where it hears events (RabbitMQ: the
 * bindings of `<prefix>.webhooks`). A change that can make no wanted webhook is better never
 * heard: on RabbitMQ each one heard is a quorum-queue write, a delivery and an ack.
 */
export interface WebhookEventRouting {
  /**
   * Hears from now on the changes that can make a webhook of one of `types`, and no other; empty
   * (no endpoint): none. Changes announced before this took effect are not heard again.
   */
  hearOnly(types: readonly WebhookEventType[]): TaskEither<QueueUnavailable, void>;
}
