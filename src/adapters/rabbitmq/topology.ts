import type { Channel } from 'amqplib';
import { formatDelay } from '../../domain/delivery.js';
import type { EventKey } from '../../domain/events.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import {
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_RETRY_DELAYS_MS,
  webhookEventKeys,
} from '../../domain/webhook.js';

/**
 * The broker's layout under one prefix (docs/architecture.md, the topology table). Everything is a quorum queue, checked on
 * RabbitMQ 3.10.8: quorum queues take `x-message-ttl` since 3.10 and dead-letter expired
 * messages at least once, so a retry survives a broker restart and is not dropped on its way
 * back. Retry queues are published to through the default exchange, by name: one fewer
 * exchange, and `mandatory` still reports a retry queue that does not exist.
 */
export const SEND_ROUTING_KEY = 'send';

/** Deliveries of one task (first included) before the broker dead-letters it by itself. */
export const DEFAULT_DELIVERY_LIMIT = 20;

/**
 * Listing the dead letters takes them and puts them back, which counts as a delivery. RabbitMQ
 * 4 gives quorum queues a default limit of 20 and no DLX here means dropped, so the dead queue
 * gets a limit no one will reach. (`-1` means "unlimited" only from 4.0; on 3.10 it drops the
 * message on its first return: checked.)
 */
const DEAD_QUEUE_DELIVERY_LIMIT = 1_000_000;

export interface TopologyNames {
  readonly tasksExchange: string;
  readonly sendQueue: string;
  readonly deadExchange: string;
  readonly deadQueue: string;
  readonly eventsExchange: string;
  /**
   * Presence of live pages: a server holds a consumer on it while one of its live pages is open
   * (see OnDemandEventFeed), and publishers read its consumer count (see EventWatchers). No
   * message is ever sent to it.
   */
  readonly watchersQueue: string;
  /** Outgoing webhooks: their jobs, and the events they are made from (see WEBHOOK_EVENT_KEYS). */
  readonly webhooksQueue: string;
  retryQueue(delayMs: number): string;
  /** One per step of WEBHOOK_RETRY_DELAYS_MS, dead-lettering back to `webhooksQueue`. */
  webhookRetryQueue(delayMs: number): string;
}

/**
 * Every key the webhooks queue may be bound to: those of the events that can make a webhook
 * (`webhookNotice`). Which of them it is bound to follows the endpoints (`bindWebhookEvents`).
 * A failover changes no status, so it is never among them.
 */
export const WEBHOOK_EVENT_KEYS: readonly EventKey[] = webhookEventKeys(WEBHOOK_EVENT_TYPES);

/**
 * What a server's events queue is bound to while one of its live pages is open: the news of
 * other processes that moves an email's page (the workers' mostly). Not `requested`: a server
 * writes what it accepts to the email log itself and never needs its events back.
 */
export const LIVE_PAGE_EVENT_KEYS: readonly EventKey[] = [
  'sending',
  'sent',
  'retrying',
  'failed',
  'failover',
  'suppressed',
  'provider',
];

/**
 * Whether some queue may be bound to `key` now, given the webhook types the endpoints want
 * (undefined: not known yet, so any) and whether a live page is open on some server (`watched`:
 * the watchers queue has a consumer, or that is not known; see EventWatchers). A live page
 * follows LIVE_PAGE_EVENT_KEYS; any key, those included, is routed to the webhooks queue only
 * when an endpoint wants one of the types its events make. An event under a key no queue can be
 * bound to is better not published: the broker still receives, confirms and drops it. A page
 * opened while a publisher still thought no one watched re-reads the email log once the
 * publisher must have noticed (see OnDemandEventFeed), so nothing it shows is missed.
 */
export function mayBeRouted(
  key: EventKey,
  wantedWebhookTypes: readonly WebhookEventType[] | undefined,
  watched: boolean,
): boolean {
  if (wantedWebhookTypes === undefined) return true;
  if (watched && LIVE_PAGE_EVENT_KEYS.includes(key)) return true;
  return wantedKeys(wantedWebhookTypes).includes(key);
}

/**
 * The event keys of a list of wanted types, worked out once per list: asked for every event a
 * process publishes, while the list itself (`RouteWebhookEvents.wanted`) is a new array only
 * when the endpoints were read again.
 */
const keysOfWanted = new WeakMap<readonly WebhookEventType[], readonly EventKey[]>();
function wantedKeys(types: readonly WebhookEventType[]): readonly EventKey[] {
  let keys = keysOfWanted.get(types);
  if (keys === undefined) {
    keys = webhookEventKeys(types);
    keysOfWanted.set(types, keys);
  }
  return keys;
}

export function topologyNames(prefix: string): TopologyNames {
  return {
    tasksExchange: `${prefix}.tasks`,
    sendQueue: `${prefix}.send`,
    deadExchange: `${prefix}.dead`,
    deadQueue: `${prefix}.dead`,
    eventsExchange: `${prefix}.events`,
    watchersQueue: `${prefix}.watchers`,
    webhooksQueue: `${prefix}.webhooks`,
    retryQueue: (delayMs) => `${prefix}.retry.${formatDelay(delayMs)}`,
    webhookRetryQueue: (delayMs) => `${prefix}.webhooks.retry.${formatDelay(delayMs)}`,
  };
}

export interface TopologyOptions {
  readonly prefix: string;
  readonly retryDelaysMs: readonly number[];
  readonly deliveryLimit?: number;
  /** WEBHOOK_RETRY_DELAYS: one webhook retry queue each (default WEBHOOK_RETRY_DELAYS_MS). */
  readonly webhookRetryDelaysMs?: readonly number[];
}

const quorum = { 'x-queue-type': 'quorum' } as const;
// At-least-once dead-lettering (3.10+) holds a message in its source queue until the target
// confirmed it; it requires reject-publish overflow.
const atLeastOnce = { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' };

/**
 * Idempotent: declaring again with the same arguments is a no-op. Declaring with other arguments
 * fails with PRECONDITION_FAILED and closes the channel, which is why the arguments of an
 * existing deployment must not change silently (e.g. `deliveryLimit`).
 */
export async function declareTopology(channel: Channel, options: TopologyOptions): Promise<void> {
  const names = topologyNames(options.prefix);
  await channel.assertExchange(names.tasksExchange, 'direct', { durable: true });
  // Fanout: the broker dead-letters with the task's own routing key, ours with any key.
  await channel.assertExchange(names.deadExchange, 'fanout', { durable: true });
  await channel.assertExchange(names.eventsExchange, 'topic', { durable: true });
  await declareWatchersQueue(channel, options.prefix);
  await channel.assertQueue(names.deadQueue, {
    durable: true,
    arguments: { ...quorum, 'x-delivery-limit': DEAD_QUEUE_DELIVERY_LIMIT },
  });
  await channel.bindQueue(names.deadQueue, names.deadExchange, '');
  await channel.assertQueue(names.sendQueue, {
    durable: true,
    arguments: {
      ...quorum,
      ...atLeastOnce,
      // A task that crashes its consumers every time ends in the dead queue, not in a loop.
      'x-delivery-limit': options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT,
      'x-dead-letter-exchange': names.deadExchange,
    },
  });
  await channel.bindQueue(names.sendQueue, names.tasksExchange, SEND_ROUTING_KEY);
  for (const delayMs of new Set(options.retryDelaysMs)) {
    await channel.assertQueue(names.retryQueue(delayMs), {
      durable: true,
      arguments: {
        ...quorum,
        ...atLeastOnce,
        'x-message-ttl': delayMs,
        'x-dead-letter-exchange': names.tasksExchange,
        'x-dead-letter-routing-key': SEND_ROUTING_KEY,
      },
    });
  }
  await declareWebhookQueues(
    channel,
    names,
    options.webhookRetryDelaysMs ?? WEBHOOK_RETRY_DELAYS_MS,
  );
}

/**
 * `<prefix>.watchers`, as both the topology and a server's events feed declare it (the feed too,
 * so that a watchers queue deleted under a running server comes back with its next binding).
 * Durable and classic: it holds no message and only its consumers matter, so it needs neither
 * a quorum queue's replication nor to be declared again after a broker restart before anyone
 * can watch; explicitly classic, so that a vhost whose default queue type is quorum declares
 * the same queue.
 */
export async function declareWatchersQueue(channel: Channel, prefix: string): Promise<void> {
  await channel.assertQueue(topologyNames(prefix).watchersQueue, {
    durable: true,
    arguments: { 'x-queue-type': 'classic' },
  });
}

/**
 * `<prefix>.webhooks` holds webhook jobs and hears the events webhooks are made from (bound by
 * `bindWebhookEvents`, not here), so a change announced while no worker runs waits there. Its retry queues dead-letter through the
 * default exchange, by the queue's name, straight back to it. No dead-letter exchange: a job
 * handled badly again and again is dropped after its delivery limit rather than looping, and
 * its delivery stays pending in the database, where the metrics show it.
 */
async function declareWebhookQueues(
  channel: Channel,
  names: TopologyNames,
  retryDelaysMs: readonly number[],
): Promise<void> {
  await channel.assertQueue(names.webhooksQueue, {
    durable: true,
    arguments: { ...quorum, 'x-delivery-limit': DEFAULT_DELIVERY_LIMIT },
  });
  for (const delayMs of new Set(retryDelaysMs)) {
    await channel.assertQueue(names.webhookRetryQueue(delayMs), {
      durable: true,
      arguments: {
        ...quorum,
        ...atLeastOnce,
        'x-message-ttl': delayMs,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': names.webhooksQueue,
      },
    });
  }
}

/**
 * Binds `<prefix>.webhooks` to the events exchange under `keys` and unbinds it from every other
 * key of WEBHOOK_EVENT_KEYS: an event no endpoint can want is left unrouted, instead of being
 * written to the quorum queue, delivered and acked for nothing. Durable bindings of a durable
 * queue: they outlive a broker restart and a time with no worker. Both operations are
 * idempotent (unbinding a binding that is not there is a no-op), so any process may apply the
 * whole set at any time.
 */
export async function bindWebhookEvents(
  channel: Channel,
  prefix: string,
  keys: readonly EventKey[],
): Promise<void> {
  const names = topologyNames(prefix);
  for (const key of WEBHOOK_EVENT_KEYS) {
    if (keys.includes(key)) await channel.bindQueue(names.webhooksQueue, names.eventsExchange, key);
    else await channel.unbindQueue(names.webhooksQueue, names.eventsExchange, key);
  }
}
