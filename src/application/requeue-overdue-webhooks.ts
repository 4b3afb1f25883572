import * as E from 'fp-ts/lib/Either.js';
import type { Clock, Logger } from './ports/system.js';
import type { WebhookDeliveries } from './ports/webhook-deliveries.js';
import type { WebhookQueue } from './ports/webhook-queue.js';

/**
 * How late a pending delivery's attempt must be before its job counts as lost (ms): well past
 * any queue's own lateness (a busy consumer, a retry queue's TTL expiring behind others).
 */
export const OVERDUE_AFTER_MS = 5 * 60_000;

/** Deliveries looked at per sweep. */
const BATCH = 100;

/**
 * Queues again the next attempt of every pending delivery whose attempt is long overdue: its
 * job was lost (a queue that dropped it after too many failed handlings, a publish whose
 * confirm never came). The job's own check (`DeliverWebhook`: only the next attempt of a
 * pending delivery is acted on) makes a job that was merely slow, not lost, harmless to repeat.
 */
export class RequeueOverdueWebhooks {
  constructor(
    private readonly deliveries: WebhookDeliveries,
    private readonly queue: WebhookQueue,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Answers how many jobs it queued again; a store or queue that does not answer is logged. */
  async sweep(): Promise<number> {
    const due = new Date(this.clock.now().getTime() - OVERDUE_AFTER_MS);
    const overdue = await this.deliveries.overdue(due, BATCH)();
    if (E.isLeft(overdue)) {
      this.log.warn(
        { reason: overdue.left.reason },
        'Could not look for overdue webhook deliveries',
      );
      return 0;
    }
    let queued = 0;
    for (const delivery of overdue.right) {
      const job = { deliveryId: delivery.id, attempt: delivery.attempts.length + 1 };
      const published = await this.queue.publish(job, 0)();
      if (E.isLeft(published)) {
        this.log.warn(
          { reason: published.left.reason },
          'Could not queue an overdue webhook again',
        );
        break;
      }
      queued += 1;
    }
    if (queued > 0) {
      this.log.warn({ queued }, 'Queued again webhook deliveries whose jobs were lost');
    }
    return queued;
  }
}
