import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { DomainEvent } from '../domain/events.js';
import { webhookNotice, webhookPayload } from '../domain/webhook.js';
import type { SecretTokens } from './ports/credentials.js';
import type { EmailLog } from './ports/email-log.js';
import type { Clock, Logger } from './ports/system.js';
import type { NewWebhookDelivery, WebhookDeliveries } from './ports/webhook-deliveries.js';
import type { WebhookEndpoints } from './ports/webhook-endpoints.js';
import type { WebhookQueue, WebhookWork } from './ports/webhook-queue.js';

/**
 * Makes one webhook delivery per subscribed endpoint out of each change an event announces, and
 * queues its first attempt. Hearing the same event twice (at-least-once everywhere) makes no
 * second delivery: the store keeps one per endpoint, email and change, and only a delivery that
 * has no attempt yet is queued again, which the job's own check makes harmless.
 *
 * The payload is written once, here, from the email as it stands now, so every attempt sends
 * and signs the very same bytes.
 */
export class FanOutWebhooks {
  constructor(
    private readonly endpoints: WebhookEndpoints,
    private readonly deliveries: WebhookDeliveries,
    private readonly emails: EmailLog,
    private readonly queue: WebhookQueue,
    private readonly tokens: SecretTokens,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** `redeliver` when a store or the queue did not answer: the event is to be heard again. */
  async handle(event: DomainEvent): Promise<WebhookWork> {
    const notice = webhookNotice(event);
    if (notice === undefined) return 'done';
    const subscribed = await this.endpoints.subscribedTo(notice.type)();
    if (E.isLeft(subscribed)) return this.unavailable(event, subscribed.left.reason);
    if (subscribed.right.length === 0) return 'done';
    const found = await this.emails.get(event.id)();
    if (E.isLeft(found)) return this.unavailable(event, found.left.reason);
    // Deleted by retention since: there is nothing left to describe.
    if (O.isNone(found.right)) return 'done';
    const payload = JSON.stringify(webhookPayload(notice, found.right.value));
    const now = this.clock.now();
    const wanted = subscribed.right.map((endpoint): NewWebhookDelivery => ({
      // 16 random bytes: the webhook-id a receiver dedupes on must never repeat.
      id: `msg_${this.tokens.random(16)}`,
      endpointId: endpoint.id,
      url: endpoint.url,
      emailId: event.id,
      type: notice.type,
      noticeKey: notice.key,
      payload,
      createdAt: now,
    }));
    const stored = await this.deliveries.create(wanted)();
    if (E.isLeft(stored)) return this.unavailable(event, stored.left.reason);
    for (const delivery of stored.right) {
      if (delivery.state !== 'pending' || delivery.attempts.length > 0) continue;
      const queued = await this.queue.publish({ deliveryId: delivery.id, attempt: 1 }, 0)();
      if (E.isLeft(queued)) return this.unavailable(event, queued.left.reason);
    }
    return 'done';
  }

  private unavailable(event: DomainEvent, reason: string): WebhookWork {
    this.log.warn(
      { emailId: event.id, event: event.type, reason },
      'Could not make the webhook deliveries of a change yet; trying again',
    );
    return 'redeliver';
  }
}
