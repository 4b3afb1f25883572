import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import * as t from 'io-ts';
import type { QueueUnavailable } from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import { redeliverPauseMs } from '../../application/ports/email-task-source.js';
import type { Logger } from '../../application/ports/system.js';
import type {
  WebhookEventRouting,
  WebhookHandlers,
  WebhookJob,
  WebhookJobSource,
  WebhookQueue,
  WebhookWork,
} from '../../application/ports/webhook-queue.js';
import { retryStep } from '../../domain/delivery.js';
import { DomainEvent } from '../../domain/events.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import { WEBHOOK_RETRY_DELAYS_MS, webhookEventKeys } from '../../domain/webhook.js';
import { ChannelKeeper } from './channel-keeper.js';
import type { RabbitMqConnection } from './connection.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import { errorText } from './rabbitmq-publisher.js';
import type { TopologyNames } from './topology.js';
import { bindWebhookEvents, topologyNames } from './topology.js';

/** The AMQP `type` of a job; events on the same queue come from the events exchange without one. */
export const WEBHOOK_JOB_TYPE = 'webhook.job';

/**
 * A delivery id as a store can take it: printable ASCII, at most 200 characters. A NUL or a
 * control character would be refused by PostgreSQL on every try, holding a slot for nothing.
 */
const DeliveryId = t.refinement(t.string, (s) => /^[\x21-\x7e]{1,200}$/.test(s), 'DeliveryId');

/**
 * How many times one message is handled in hand before it goes back to the queue (about two
 * and a half minutes of pauses). Each return counts toward the queue's delivery limit, so a
 * message that can never be handled (a store that refuses it every time) ends after about 50
 * minutes instead of holding a slot for good; an outage of the database shorter than that
 * loses nothing.
 */
const TRIES_IN_HAND = 30;

const JobBody = t.type({
  v: t.literal(1),
  deliveryId: DeliveryId,
  attempt: t.refinement(t.number, (n) => Number.isInteger(n) && n >= 1, 'Attempt'),
});

export interface RabbitMqWebhookQueueOptions {
  readonly connection: RabbitMqConnection;
  /** Publishes jobs with confirms. */
  readonly publisher: RabbitMqPublisher;
  readonly prefix: string;
  /** Jobs and events handled at once (the channel's prefetch). */
  readonly concurrency: number;
  readonly logger: Logger;
  /** WEBHOOK_RETRY_DELAYS: the retry queues declared (default WEBHOOK_RETRY_DELAYS_MS). */
  readonly retryDelaysMs?: readonly number[];
  /** First pause before a `redeliver` is handled again (default 100 ms, doubling, at most 5 s). */
  readonly redeliveryDelayMs?: number;
}

interface Subscription {
  channel?: Channel;
  consumerTag?: string;
  closed: boolean;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * The webhook queue on RabbitMQ (see topology.ts): `<prefix>.webhooks` carries jobs, published
 * through the default exchange, and hears the domain events webhooks are made from; a job due
 * later waits in the retry queue of the shortest step that is long enough, whose TTL sends it
 * back. A message is acked only once its handler is done, so a crash leaves it to the next
 * worker. A `redeliver` (a store down) is handled again here after a growing pause rather than
 * handed back, which would spend the queue's delivery limit during a long outage.
 */
export class RabbitMqWebhookQueue implements WebhookQueue, WebhookJobSource, WebhookEventRouting {
  private readonly names: TopologyNames;
  private readonly subscription: ChannelKeeper<Subscription>;
  private handlers: WebhookHandlers | undefined;
  private stopping = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly steps: readonly [number, ...number[]];

  constructor(private readonly options: RabbitMqWebhookQueueOptions) {
    this.names = topologyNames(options.prefix);
    const [first, ...rest] = options.retryDelaysMs ?? WEBHOOK_RETRY_DELAYS_MS;
    if (first === undefined) throw new Error('retryDelaysMs must not be empty');
    this.steps = [first, ...rest];
    this.subscription = new ChannelKeeper(
      options.connection,
      (model, lost) => this.open(model, lost),
      {
        reopenDelayMs: 1000,
        onOpenFailed: (err) =>
          options.logger.warn({ err: errorText(err) }, 'Could not start consuming webhook jobs'),
      },
    );
  }

  publish(job: WebhookJob, delayMs: number): TE.TaskEither<QueueUnavailable, void> {
    const queue =
      delayMs <= 0
        ? this.names.webhooksQueue
        : this.names.webhookRetryQueue(retryStep(this.steps, delayMs));
    return this.options.publisher.publish(
      '',
      queue,
      {
        body: Buffer.from(JSON.stringify({ v: 1, ...job })),
        messageId: job.deliveryId,
        headers: {},
      },
      { mandatory: true, persistent: true, type: WEBHOOK_JOB_TYPE },
    );
  }

  /**
   * Binds the webhooks queue to the keys of the events that make `types` and unbinds it from the
   * rest, on a channel of its own: a failed binding closes that channel, not a consumer's.
   */
  hearOnly(types: readonly WebhookEventType[]): TE.TaskEither<QueueUnavailable, void> {
    return async () => {
      const model = this.options.connection.current();
      if (model === undefined) return E.left(queueUnavailable('RabbitMQ is not connected'));
      let channel: Channel | undefined;
      try {
        channel = await model.createChannel();
        channel.on('error', () => undefined);
        await bindWebhookEvents(channel, this.options.prefix, webhookEventKeys(types));
        return E.right(undefined);
      } catch (err) {
        return E.left(queueUnavailable(`could not bind the webhooks queue: ${errorText(err)}`));
      } finally {
        await channel?.close().catch(() => undefined);
      }
    };
  }

  async consume(handlers: WebhookHandlers): Promise<void> {
    if (this.handlers) throw new Error('RabbitMqWebhookQueue: already consuming');
    this.handlers = handlers;
    this.stopping = false;
    await this.subscription.keepOpen();
  }

  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const sub = await this.subscription.release()?.catch(() => undefined);
    if (sub?.channel && sub.consumerTag && !sub.closed) {
      await sub.channel.cancel(sub.consumerTag).catch(() => undefined);
    }
    if (this.inFlight.size > 0) {
      await Promise.race([Promise.allSettled([...this.inFlight]), sleep(graceMs)]);
    }
    // Whatever is still unacked goes back to the broker with the channel.
    if (sub?.channel && !sub.closed) await sub.channel.close().catch(() => undefined);
    this.handlers = undefined;
  }

  private async open(model: ChannelModel, lost: () => void): Promise<Subscription> {
    const sub: Subscription = { closed: false };
    try {
      const channel = await model.createChannel();
      sub.channel = channel;
      channel.on('error', (err: unknown) =>
        this.options.logger.warn({ err: errorText(err) }, 'RabbitMQ webhook channel error'),
      );
      channel.on('close', () => {
        sub.closed = true;
        lost();
      });
      await channel.prefetch(this.options.concurrency);
      const { consumerTag } = await channel.consume(
        this.names.webhooksQueue,
        (msg) => this.onMessage(sub, msg),
        { noAck: false },
      );
      sub.consumerTag = consumerTag;
    } catch (err) {
      sub.closed = true;
      throw err;
    }
    return sub;
  }

  private onMessage(sub: Subscription, msg: ConsumeMessage | null): void {
    if (msg === null) {
      void sub.channel?.close().catch(() => undefined);
      return;
    }
    const work = this.handle(sub, msg).catch((err: unknown) => {
      this.options.logger.error({ err: errorText(err) }, 'Bug while handling a webhook message');
      // Back to the queue after a pause; the delivery limit ends a message that always fails.
      return sleep(1000).then(() => {
        if (!sub.closed) sub.channel?.reject(msg, true);
      });
    });
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async handle(sub: Subscription, msg: ConsumeMessage): Promise<void> {
    const run = this.decode(msg);
    if (run === undefined) {
      if (!sub.closed) sub.channel?.ack(msg);
      return;
    }
    let work: WebhookWork = await run();
    for (let earlier = 0; work === 'redeliver'; earlier += 1) {
      if (this.stopping || sub.closed) return; // unacked: back to the broker with the channel
      await sleep(redeliverPauseMs(this.options.redeliveryDelayMs ?? 100, earlier));
      if (this.stopping || sub.closed) return;
      if (earlier + 1 >= TRIES_IN_HAND) {
        this.options.logger.warn(
          { messageId: msg.properties.messageId as unknown },
          'Handing a webhook message back to the queue after failing to handle it for a while',
        );
        sub.channel?.reject(msg, true);
        return;
      }
      work = await run();
    }
    if (!sub.closed) sub.channel?.ack(msg);
  }

  /** The handler call a message asks for; undefined for one that decodes as neither (dropped). */
  private decode(msg: ConsumeMessage): (() => Promise<WebhookWork>) | undefined {
    const handlers = this.handlers;
    if (handlers === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(msg.content.toString('utf8'));
    } catch {
      json = undefined;
    }
    if (msg.properties.type === WEBHOOK_JOB_TYPE) {
      const job = JobBody.decode(json);
      if (E.isRight(job)) {
        const { deliveryId, attempt } = job.right;
        return () => handlers.job({ deliveryId, attempt });
      }
    } else {
      const event = DomainEvent.decode(json);
      if (E.isRight(event)) return () => handlers.event(event.right);
    }
    this.options.logger.warn(
      { messageId: msg.properties.messageId as unknown, type: msg.properties.type as unknown },
      'Dropping a webhook message that does not decode',
    );
    return undefined;
  }
}
