import type { Channel } from 'amqplib';
import { formatDelay } from '../../domain/delivery.js';

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
  retryQueue(delayMs: number): string;
}

export function topologyNames(prefix: string): TopologyNames {
  return {
    tasksExchange: `${prefix}.tasks`,
    sendQueue: `${prefix}.send`,
    deadExchange: `${prefix}.dead`,
    deadQueue: `${prefix}.dead`,
    eventsExchange: `${prefix}.events`,
    retryQueue: (delayMs) => `${prefix}.retry.${formatDelay(delayMs)}`,
  };
}

export interface TopologyOptions {
  readonly prefix: string;
  readonly retryDelaysMs: readonly number[];
  readonly deliveryLimit?: number;
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
}
