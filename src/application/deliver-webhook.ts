import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import {
  WEBHOOK_RETRY_DELAYS_MS,
  WEBHOOK_TIMEOUT_MS,
  webhookRetryDelayMs,
} from '../domain/webhook.js';
import type { Clock, Logger } from './ports/system.js';
import type {
  WebhookAttempt,
  WebhookAttemptResult,
  WebhookDeliveries,
  WebhookDelivery,
} from './ports/webhook-deliveries.js';
import type { SigningWebhookEndpoint, WebhookEndpoints } from './ports/webhook-endpoints.js';
import type { WebhookJob, WebhookQueue, WebhookWork } from './ports/webhook-queue.js';
import type { WebhookSigner, WebhookTransport } from './ports/webhook-transport.js';

/** What became of one attempt, for the metrics: delivered, to be tried again, or given up. */
export type WebhookAttemptOutcome = 'delivered' | 'retrying' | 'failed';

export interface DeliverWebhookOptions {
  /** Called once per recorded attempt (metrics). */
  readonly onAttempt?: (outcome: WebhookAttemptOutcome) => void;
  /** Sent as `User-Agent`, so a receiver's logs say who called. */
  readonly userAgent?: string;
  /** The wait before each retry, ms (default `WEBHOOK_RETRY_DELAYS_MS`); its length bounds the retries. */
  readonly retryDelaysMs?: readonly number[];
  /**
   * POSTs to one endpoint in flight at once in this process (default 4). A job beyond it is put
   * back for the first step of the schedule, its attempt unspent, so that a receiver that never
   * answers holds at most this many of the worker's slots and the other endpoints keep theirs.
   */
  readonly perEndpoint?: number;
}

/** See `DeliverWebhookOptions.perEndpoint`. */
export const DEFAULT_PER_ENDPOINT = 4;

/** A final state's record: nothing more to do unless a store did not answer. */
const settled = (recorded: WebhookWork | 'recorded'): WebhookWork =>
  recorded === 'redeliver' ? 'redeliver' : 'done';

const is2xx = (status: number): boolean => status >= 200 && status < 300;

/**
 * One attempt of one webhook delivery: signs the stored payload with the endpoint's secret
 * (Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature`), POSTs it,
 * records the attempt, and on a non-2xx answer or none queues the next attempt after its step
 * of `WEBHOOK_RETRY_DELAYS_MS` (longer when the receiver's `Retry-After` says so), until the
 * last step, when the delivery is marked failed.
 *
 * A job is acted on only when it names the delivery's next attempt, so a job heard twice posts
 * at most once more (at least once, as the specification expects: receivers dedupe on
 * `webhook-id`), and never moves a delivery back.
 */
export class DeliverWebhook {
  /** POSTs in flight per endpoint id. */
  private readonly posting = new Map<string, number>();

  constructor(
    private readonly endpoints: WebhookEndpoints,
    private readonly deliveries: WebhookDeliveries,
    private readonly queue: WebhookQueue,
    private readonly transport: WebhookTransport,
    private readonly signer: WebhookSigner,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: DeliverWebhookOptions = {},
  ) {}

  /** `redeliver` when a store or the queue did not answer: the job is to be handled again. */
  async handle(job: WebhookJob): Promise<WebhookWork> {
    const found = await this.deliveries.get(job.deliveryId)();
    if (E.isLeft(found)) return this.unavailable(job, found.left.reason);
    // Deleted by retention: nothing to deliver.
    if (O.isNone(found.right)) return 'done';
    const delivery = found.right.value;
    if (delivery.state !== 'pending') return 'done';
    if (delivery.attempts.length === job.attempt) {
      // This attempt is recorded, but its next job may not have been queued (the queue did not
      // answer then): queue it now for what is left of its wait.
      return this.queueNext(delivery, job.attempt, 0);
    }
    if (delivery.attempts.length !== job.attempt - 1) return 'done';
    const busy = this.posting.get(delivery.endpointId) ?? 0;
    if (busy >= (this.options.perEndpoint ?? DEFAULT_PER_ENDPOINT)) return this.defer(job);
    // Taken before the first await, so that jobs handled at once cannot all pass the check.
    this.posting.set(delivery.endpointId, busy + 1);
    try {
      return await this.toEndpoint(job, delivery);
    } finally {
      const left = (this.posting.get(delivery.endpointId) ?? 1) - 1;
      if (left > 0) this.posting.set(delivery.endpointId, left);
      else this.posting.delete(delivery.endpointId);
    }
  }

  /** Finds the delivery's endpoint and makes the attempt; a removed endpoint fails it. */
  private async toEndpoint(job: WebhookJob, delivery: WebhookDelivery): Promise<WebhookWork> {
    const endpoint = await this.endpoints.get(delivery.endpointId)();
    if (E.isLeft(endpoint)) return this.unavailable(job, endpoint.left.reason);
    if (O.isNone(endpoint.right)) {
      // Removed since the delivery was made: nobody is left to tell.
      return settled(
        await this.record(
          delivery,
          {
            attempt: job.attempt,
            at: this.clock.now(),
            durationMs: 0,
            error: 'the endpoint was removed',
          },
          { state: 'failed' },
        ),
      );
    }
    return this.attempt(job, delivery, endpoint.right.value);
  }

  /** POSTs the attempt, records it, and queues the next one if the answer was no. */
  private async attempt(
    job: WebhookJob,
    delivery: WebhookDelivery,
    endpoint: SigningWebhookEndpoint,
  ): Promise<WebhookWork> {
    const at = this.clock.now();
    const signature = this.signer.sign(endpoint.secret, delivery.id, at, delivery.payload);
    const response = await this.transport.post({
      url: endpoint.url,
      headers: {
        'content-type': 'application/json',
        'user-agent': this.options.userAgent ?? 'queued-email-webhooks',
        'webhook-id': delivery.id,
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body: delivery.payload,
      timeoutMs: WEBHOOK_TIMEOUT_MS,
    });
    const attempt: WebhookAttempt = {
      attempt: job.attempt,
      at,
      durationMs: response.durationMs,
      ...(response._tag === 'Answered'
        ? { statusCode: response.statusCode }
        : { error: response.error }),
    };
    if (response._tag === 'Answered' && is2xx(response.statusCode)) {
      return settled(await this.record(delivery, attempt, { state: 'delivered' }));
    }
    const delayMs = webhookRetryDelayMs(
      job.attempt,
      response._tag === 'Answered' ? response.retryAfterMs : undefined,
      this.options.retryDelaysMs,
    );
    if (delayMs === undefined) {
      return settled(await this.record(delivery, attempt, { state: 'failed' }));
    }
    const nextAttemptAt = new Date(at.getTime() + response.durationMs + delayMs);
    const recorded = await this.record(delivery, attempt, { state: 'pending', nextAttemptAt });
    if (recorded !== 'recorded') return recorded;
    return this.queueNext({ ...delivery, nextAttemptAt }, job.attempt, delayMs);
  }

  /** Records the attempt; a job another worker handled already is left alone. */
  private async record(
    delivery: WebhookDelivery,
    attempt: WebhookAttempt,
    result: WebhookAttemptResult,
  ): Promise<WebhookWork | 'recorded'> {
    const recorded = await this.deliveries.recordAttempt(delivery.id, attempt, result)();
    if (E.isLeft(recorded)) {
      return this.unavailable(
        { deliveryId: delivery.id, attempt: attempt.attempt },
        recorded.left.reason,
      );
    }
    if (!recorded.right) return 'done';
    const outcome: WebhookAttemptOutcome =
      result.state === 'delivered'
        ? 'delivered'
        : result.state === 'failed'
          ? 'failed'
          : 'retrying';
    this.options.onAttempt?.(outcome);
    if (outcome === 'failed') {
      this.log.warn(
        {
          deliveryId: delivery.id,
          emailId: delivery.emailId,
          endpointId: delivery.endpointId,
          attempts: attempt.attempt,
        },
        'Gave up a webhook delivery',
      );
    }
    return result.state === 'pending' ? 'recorded' : 'done';
  }

  /** Queues attempt `attempt + 1`, due `delayMs` from now or when the delivery says. */
  private async queueNext(
    delivery: WebhookDelivery,
    attempt: number,
    delayMs: number,
  ): Promise<WebhookWork> {
    const dueIn =
      delivery.nextAttemptAt === undefined
        ? delayMs
        : Math.max(delayMs, delivery.nextAttemptAt.getTime() - this.clock.now().getTime(), 0);
    const queued = await this.queue.publish(
      { deliveryId: delivery.id, attempt: attempt + 1 },
      dueIn,
    )();
    if (E.isLeft(queued)) {
      return this.unavailable({ deliveryId: delivery.id, attempt }, queued.left.reason);
    }
    return 'done';
  }

  /** Puts the job back for the first step, unspent: its endpoint has enough POSTs in flight. */
  private async defer(job: WebhookJob): Promise<WebhookWork> {
    const [first = 5_000] = this.options.retryDelaysMs ?? WEBHOOK_RETRY_DELAYS_MS;
    const queued = await this.queue.publish(job, first)();
    if (E.isLeft(queued)) return this.unavailable(job, queued.left.reason);
    return 'done';
  }

  private unavailable(job: WebhookJob, reason: string): WebhookWork {
    this.log.warn(
      { deliveryId: job.deliveryId, attempt: job.attempt, reason },
      'Could not go on with a webhook delivery yet; trying again',
    );
    return 'redeliver';
  }
}
