import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import * as E from 'fp-ts/lib/Either.js';
import type { Task } from 'fp-ts/lib/Task.js';
import { PathReporter } from 'io-ts/lib/PathReporter.js';
import type { DeliveryEvents } from '../../application/ports/delivery-events.js';
import type { Logger } from '../../application/ports/system.js';
import type { EventKey } from '../../domain/events.js';
import { DomainEvent, eventKey } from '../../domain/events.js';
import { ChannelKeeper } from './channel-keeper.js';
import type { RabbitMqConnection } from './connection.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import { errorText } from './rabbitmq-publisher.js';
import { WATCHERS_REREAD_AFTER_MS } from './event-watchers.js';
import { declareWatchersQueue, topologyNames } from './topology.js';

export interface RabbitMqDeliveryEventsOptions {
  readonly publisher: RabbitMqPublisher;
  readonly prefix: string;
  readonly logger: Logger;
}

/**
 * Domain events on the `<prefix>.events` topic exchange, keyed `requested`, `sending`, `sent`,
 * `retrying`, `failed`, `failover`. Best effort by the port's contract: the email log already
 * holds every change, so a lost event costs a live page a refresh, never a delivery or a
 * status; failures are logged and the task goes on. Not mandatory: an exchange nobody listens
 * to is normal (no server running).
 */
export class RabbitMqDeliveryEvents implements DeliveryEvents {
  private readonly exchange: string;

  constructor(private readonly options: RabbitMqDeliveryEventsOptions) {
    this.exchange = topologyNames(options.prefix).eventsExchange;
  }

  publish(event: DomainEvent): Task<void> {
    return async () => {
      const sent = await this.options.publisher.publish(
        this.exchange,
        eventKey(event),
        { body: Buffer.from(JSON.stringify(event)), messageId: event.id, headers: {} },
        { mandatory: false, persistent: false },
      )();
      if (E.isLeft(sent)) {
        this.options.logger.warn(
          { emailId: event.id, event: event.type, reason: sent.left.reason },
          'Could not publish a delivery event',
        );
      }
    };
  }
}

/** How long an orphaned events queue (its server died) lingers before the broker removes it. */
const QUEUE_EXPIRES_MS = 10 * 60_000;

export interface EventSubscription {
  close(): Promise<void>;
}

export interface SubscribeOptions {
  /**
   * Called each time the queue is bound and consumed from: at first, and again after a
   * reconnect or a reopened channel, when events may have gone by unheard.
   */
  readonly onBound?: () => void;
  /**
   * Also hold a consumer on `<prefix>.watchers` on the same channel, from the binding on, so
   * that publishers know a live page is open (see EventWatchers). It goes with the channel.
   */
  readonly watcher?: boolean;
}

/**
 * Feeds events to `handler` through a queue of this process's own, bound to `routingKeys`
 * (every event by default): each server instance sees all of them. The queue is named rather than exclusive so that it outlives
 * a dropped connection: events published while this process reconnects wait for it there. It is
 * deleted on close, and `x-expires` removes it if the process dies without closing.
 */
export async function subscribeToEvents(
  connection: RabbitMqConnection,
  prefix: string,
  handler: (event: DomainEvent) => void | Promise<void>,
  logger: Logger,
  routingKeys: readonly EventKey[] | '#' = '#',
  options: SubscribeOptions = {},
): Promise<EventSubscription> {
  const names = topologyNames(prefix);
  const exchange = names.eventsExchange;
  const queueName = `${exchange}.${hostname().slice(0, 60)}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const deliver = (msg: ConsumeMessage | null): void => {
    if (msg === null) return; // cancelled by the broker: see `open`
    let json: unknown;
    try {
      json = JSON.parse(msg.content.toString('utf8'));
    } catch {
      logger.warn({ routingKey: msg.fields.routingKey }, 'Ignoring an event that is not JSON');
      return;
    }
    const decoded = DomainEvent.decode(json);
    if (E.isLeft(decoded)) {
      logger.warn(
        { routingKey: msg.fields.routingKey, errors: PathReporter.report(decoded).slice(0, 3) },
        'Ignoring an event that does not decode',
      );
      return;
    }
    Promise.resolve()
      .then(() => handler(decoded.right))
      .catch((err: unknown) => logger.error({ err: errorText(err) }, 'Event handler failed'));
  };

  // Set by close(): its own deleteQueue cancels the consumer too.
  let closing = false;
  const open = async (model: ChannelModel, lost: () => void): Promise<Channel> => {
    const ch = await model.createChannel();
    ch.on('error', (err: unknown) => logger.warn({ err: errorText(err) }, 'Events channel error'));
    ch.on('close', lost);
    const { queue } = await ch.assertQueue(queueName, {
      exclusive: false,
      autoDelete: false,
      durable: false,
      arguments: { 'x-expires': QUEUE_EXPIRES_MS },
    });
    for (const key of routingKeys === '#' ? ['#'] : routingKeys) {
      await ch.bindQueue(queue, exchange, key);
    }
    // A queue deleted under us cancels its consumer: close the channel, and it is opened again
    // (queues declared, bound, consumed, onBound called) after reopenDelayMs.
    const cancelled = (msg: ConsumeMessage | null): boolean => {
      if (msg === null && !closing) void ch.close().catch(() => undefined);
      return msg === null;
    };
    await ch.consume(
      queue,
      (msg) => {
        if (!cancelled(msg)) deliver(msg);
      },
      { noAck: true },
    );
    if (options.watcher === true) {
      // After the binding: a publisher that sees this consumer publishes into a bound queue.
      await declareWatchersQueue(ch, prefix);
      await ch.consume(names.watchersQueue, cancelled, { noAck: true });
    }
    options.onBound?.();
    return ch;
  };

  // The connection is still up but the channel died: come back on our own. A failed open is
  // tried again the same way, so it is only logged.
  const channel = new ChannelKeeper(connection, open, {
    reopenDelayMs: 1000,
    onOpenFailed: (err) =>
      logger.warn({ err: errorText(err) }, 'Could not start consuming delivery events'),
  });
  await channel.keepOpen();

  return {
    async close(): Promise<void> {
      closing = true;
      const ch = await channel.release()?.catch(() => undefined);
      await ch?.deleteQueue(queueName).catch(() => undefined);
      await ch?.close().catch(() => undefined);
    },
  };
}

export interface OnDemandEventFeedOptions {
  readonly connection: RabbitMqConnection;
  readonly prefix: string;
  readonly logger: Logger;
  /** The keys its queue is bound to while held (see subscribeToEvents). */
  readonly routingKeys: readonly EventKey[] | '#';
  /** Every event heard while held. */
  readonly handler: (event: DomainEvent) => void | Promise<void>;
  /**
   * How long the queue stays after the last holder let go (default 30 s): a page reloaded, or
   * the next one opened, finds it still there instead of binding a queue again.
   */
  readonly lingerMs?: number;
  /**
   * How long after each binding its holders are told again (default WATCHERS_REREAD_AFTER_MS):
   * until then, a publisher may still skip an event on an answer from before the binding.
   */
  readonly rereadAfterMs?: number;
  /** Runs `callback` after `delayMs`, answering what cancels it (default: an unref'd timer). */
  readonly later?: (callback: () => void, delayMs: number) => () => void;
}

const timerLater = (callback: () => void, delayMs: number): (() => void) => {
  const timer = setTimeout(callback, delayMs);
  timer.unref();
  return () => clearTimeout(timer);
};

/** How long an unheld feed keeps its queue by default (ms). */
export const DEFAULT_FEED_LINGER_MS = 30_000;

/**
 * The events of other processes, heard only while someone here wants them (a live page): the
 * first `hold` subscribes (subscribeToEvents: a queue of this process, bound to the events
 * exchange, and a consumer on the watchers queue), and both are gone `lingerMs` after the last
 * holder let go. While no one holds it, no event is routed to this process at all: the broker
 * neither stores, delivers nor drops a copy for it, and publishers that see no watcher do not
 * publish the live pages' events at all (EventWatchers).
 *
 * What a holder is promised: it sees every change, as an event, or through a re-read. Its
 * `onBound` is called when the queue has just been bound (the events before went unheard), and
 * again `rereadAfterMs` later (with every holder then, including those that joined since): a
 * publisher may have skipped events until it noticed the new watcher, and by then each skipped
 * change is in the email log.
 */
export class OnDemandEventFeed {
  private readonly holders = new Set<() => void>();
  private subscription: Promise<EventSubscription> | undefined;
  private linger: NodeJS.Timeout | undefined;
  private stopping: Promise<void> = Promise.resolve();
  private closed = false;
  /** The pending second calls of the current subscription. */
  private readonly rereads = new Set<() => void>();

  constructor(private readonly options: OnDemandEventFeedOptions) {}

  /**
   * Holds the feed until the function it returns is called. `onBound` is called whenever the
   * queue has just been bound while this holder holds it (not if it was bound already), and
   * `rereadAfterMs` after each binding: what was read before then may have changed unheard, so
   * the holder reads again.
   */
  hold(onBound: () => void): () => void {
    // Its own function, so that one callback given twice is two holders.
    const holder = (): void => onBound();
    this.holders.add(holder);
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.subscription === undefined && !this.closed) this.subscribe();
    return () => {
      if (!this.holders.delete(holder) || this.holders.size > 0 || this.closed) return;
      this.linger = setTimeout(() => {
        this.linger = undefined;
        if (this.holders.size === 0) this.unsubscribe();
      }, this.options.lingerMs ?? DEFAULT_FEED_LINGER_MS);
      this.linger.unref();
    };
  }

  /** Whether its queue exists (bound, or being bound): for tests and metrics. */
  get subscribed(): boolean {
    return this.subscription !== undefined;
  }

  /** Deletes its queue now, whoever holds it; no later `hold` subscribes again. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.linger);
    this.unsubscribe();
    await this.stopping;
  }

  private subscribe(): void {
    const { connection, prefix, logger, routingKeys, handler } = this.options;
    const tellHolders = (): void => {
      if (this.subscription !== subscription) return;
      for (const holder of [...this.holders]) holder();
    };
    const subscription: Promise<EventSubscription> = this.stopping.then(() =>
      subscribeToEvents(connection, prefix, handler, logger, routingKeys, {
        watcher: true,
        onBound: () => {
          if (this.subscription !== subscription) return;
          tellHolders();
          const cancel = (this.options.later ?? timerLater)(() => {
            this.rereads.delete(cancel);
            tellHolders();
          }, this.options.rereadAfterMs ?? WATCHERS_REREAD_AFTER_MS);
          this.rereads.add(cancel);
        },
      }),
    );
    this.subscription = subscription;
  }

  private unsubscribe(): void {
    const subscription = this.subscription;
    if (subscription === undefined) return;
    this.subscription = undefined;
    for (const cancel of this.rereads) cancel();
    this.rereads.clear();
    // A new subscription waits for this one to be gone: one queue of this process at a time.
    this.stopping = subscription.then(
      (s) => s.close(),
      () => undefined,
    );
  }
}
