import { RabbitMqConnection } from '../../../src/adapters/rabbitmq/connection.js';
import {
  RabbitMqDeliveryEvents,
  subscribeToEvents,
} from '../../../src/adapters/rabbitmq/rabbitmq-delivery-events.js';
import { RabbitMqPublisher } from '../../../src/adapters/rabbitmq/rabbitmq-publisher.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { deliveryEventsContract } from '../../contracts/delivery-events.contract.js';
import { RecordingLogger } from '../../support/fakes.js';
import { AMQP_URL, deleteTopology, requireRabbitMq, uniquePrefix } from '../../support/rabbitmq.js';

const DELAYS = [200];

/** A connection of its own for each side: the publisher's can go while the subscriber listens. */
async function connected(prefix: string, logger: RecordingLogger): Promise<RabbitMqConnection> {
  const connection = new RabbitMqConnection({
    url: AMQP_URL,
    topology: { prefix, retryDelaysMs: DELAYS },
    logger,
    name: `${prefix}-events`,
    initialBackoffMs: 100,
  });
  connection.start();
  if (!(await connection.whenReady(10_000))) throw new Error('RabbitMQ connection not ready');
  return connection;
}

describe('RabbitMqDeliveryEvents', () => {
  before(() => requireRabbitMq());

  deliveryEventsContract('RabbitMqDeliveryEvents', async () => {
    const prefix = uniquePrefix('events');
    const logger = new RecordingLogger();
    const publishing = await connected(prefix, logger);
    const listening = await connected(prefix, new RecordingLogger());
    const received: DomainEvent[] = [];
    const subscription = await subscribeToEvents(
      listening,
      prefix,
      (event) => void received.push(event),
      logger,
    );
    const publisher = new RabbitMqPublisher({ connection: publishing, logger });
    return {
      events: new RabbitMqDeliveryEvents({ publisher, prefix, logger }),
      received,
      logger,
      // The broker is out of reach for the publisher: its connection is closed for good.
      breakDelivery: () => publishing.close(),
      async close() {
        await subscription.close();
        await publishing.close();
        await deleteTopology(AMQP_URL, prefix, DELAYS).catch(() => undefined);
        await listening.close();
      },
    };
  });
});
