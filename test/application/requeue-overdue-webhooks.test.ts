import { expect } from 'chai';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import type { WebhookJob, WebhookQueue } from '../../src/application/ports/webhook-queue.js';
import {
  OVERDUE_AFTER_MS,
  RequeueOverdueWebhooks,
} from '../../src/application/requeue-overdue-webhooks.js';
import { InMemoryWebhookDeliveries } from '../../src/adapters/memory/in-memory-webhook-stores.js';
import { aWebhookDelivery } from '../contracts/webhook-deliveries.contract.js';
import { later } from '../support/builders.js';
import { RecordingLogger } from '../support/fakes.js';

/** A queue that keeps what it was given, and can be made to refuse. */
class RecordingQueue implements WebhookQueue {
  readonly jobs: { job: WebhookJob; delayMs: number }[] = [];
  down = false;
  publish(job: WebhookJob, delayMs: number) {
    if (this.down) return TE.left(queueUnavailable('broker away'));
    this.jobs.push({ job, delayMs });
    return TE.right(undefined);
  }
}

describe('RequeueOverdueWebhooks', () => {
  const clockAt = (ms: number) => ({ now: () => later(ms), monotonicMs: () => ms });

  it('queues again the next attempt of each delivery whose job is long overdue, and no other', async () => {
    const deliveries = new InMemoryWebhookDeliveries();
    const queue = new RecordingQueue();
    const lost = aWebhookDelivery(0);
    const retried = aWebhookDelivery(0);
    const recent = aWebhookDelivery(OVERDUE_AFTER_MS);
    await deliveries.create([lost, retried, recent])();
    await deliveries.recordAttempt(
      retried.id,
      { attempt: 1, at: later(10), durationMs: 5, statusCode: 500 },
      { state: 'pending', nextAttemptAt: later(1_000) },
    )();
    const requeue = new RequeueOverdueWebhooks(
      deliveries,
      queue,
      clockAt(OVERDUE_AFTER_MS + 2_000),
      new RecordingLogger(),
    );
    expect(await requeue.sweep()).to.equal(2);
    expect(queue.jobs).to.deep.equal([
      { job: { deliveryId: lost.id, attempt: 1 }, delayMs: 0 },
      { job: { deliveryId: retried.id, attempt: 2 }, delayMs: 0 },
    ]);
  });

  it('says so and queues nothing when the queue does not answer', async () => {
    const deliveries = new InMemoryWebhookDeliveries();
    const queue = new RecordingQueue();
    queue.down = true;
    await deliveries.create([aWebhookDelivery(0)])();
    const log = new RecordingLogger();
    const requeue = new RequeueOverdueWebhooks(
      deliveries,
      queue,
      clockAt(OVERDUE_AFTER_MS * 2),
      log,
    );
    expect(await requeue.sweep()).to.equal(0);
    expect(log.lines.some((r) => r.message.includes('Could not queue'))).to.equal(true);
  });
});
