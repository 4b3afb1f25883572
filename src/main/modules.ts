import { ContainerModule } from 'inversify';
import { DeliverEmail } from '../application/deliver-email.js';
import { ProjectEmailStatus } from '../application/project-email-status.js';
import { RequestEmail } from '../application/request-email.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { InMemoryEmailQueue } from '../adapters/memory/in-memory-email-queue.js';
import { InMemoryEventBus } from '../adapters/memory/in-memory-event-bus.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailStatusStore,
  InMemoryIdempotencyStore,
} from '../adapters/memory/in-memory-stores.js';
import type { DeliveryEvents } from '../application/ports/delivery-events.js';
import type { Metrics } from '../adapters/metrics/metrics.js';
import { createMetrics } from '../adapters/metrics/metrics.js';
import { RabbitMqConnection } from '../adapters/rabbitmq/connection.js';
import { RabbitMqDeadLetterBox } from '../adapters/rabbitmq/rabbitmq-dead-letter-box.js';
import { RabbitMqDeliveryEvents } from '../adapters/rabbitmq/rabbitmq-delivery-events.js';
import { RabbitMqEmailQueue } from '../adapters/rabbitmq/rabbitmq-email-queue.js';
import { RabbitMqEmailTaskSource } from '../adapters/rabbitmq/rabbitmq-email-task-source.js';
import { RabbitMqPublisher } from '../adapters/rabbitmq/rabbitmq-publisher.js';
import { randomIds, systemClock } from '../adapters/system/system.js';
import { createSender } from './senders.js';
import { constant, provide } from './services.js';

/** Each process counts the events it publishes itself, so no outcome is counted twice. */
const counted = (inner: DeliveryEvents, metrics: Metrics): DeliveryEvents => ({
  publish: (event) => {
    metrics.observe(event);
    return inner.publish(event);
  },
});

/**
 * The server's events: folded into its own status store before the answer goes out, then sent to
 * the broker without waiting for the confirm. Events are best effort, and a 202 must not wait up
 * to a confirm timeout for one (the email itself was confirmed already).
 */
const echoed = (inner: DeliveryEvents, projection: ProjectEmailStatus): DeliveryEvents => ({
  publish: (event) => async () => {
    await projection.apply(event)();
    void inner.publish(event)();
  },
});

/** Configuration, logging, time and ids: the same in every role. */
export const coreModule = (config: Config, log: Logger, role: string) =>
  new ContainerModule(({ bind }) => {
    constant(bind, 'Config', config);
    constant(bind, 'Logger', log);
    constant(bind, 'Clock', systemClock);
    constant(bind, 'IdGenerator', randomIds);
    constant(bind, 'RetryPolicy', config.retry);
    constant(bind, 'Metrics', createMetrics(role));
  });

/** The use cases, shared by `dev`, `server` and `worker`: only their ports differ. */
export const useCasesModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    'RequestEmail',
    ['EmailQueue', 'DeliveryEvents', 'IdempotencyStore', 'IdGenerator', 'Clock'],
    (queue, events, idempotency, ids, clock) =>
      new RequestEmail(queue, events, idempotency, ids, clock),
  );
  provide(
    bind,
    'DeliverEmail',
    ['EmailSender', 'DeliveryEvents', 'DeliveryLedger', 'RetryPolicy', 'Clock', 'Logger'],
    (sender, events, ledger, policy, clock, log) =>
      new DeliverEmail(sender, events, ledger, policy, clock, log),
  );
  provide(
    bind,
    'ProjectEmailStatus',
    ['EmailStatusStore'],
    (store) => new ProjectEmailStatus(store),
  );
});

/** Stores that live in the process: status read model, idempotency keys, delivered ids. */
export const processStoresModule = new ContainerModule(({ bind }) => {
  provide(bind, 'EmailStatusStore', [], () => new InMemoryEmailStatusStore());
  provide(bind, 'IdempotencyStore', [], () => new InMemoryIdempotencyStore());
  provide(bind, 'DeliveryLedger', [], () => new InMemoryDeliveryLedger());
});

/** `email dev`: the queue and the events stay in memory, with RabbitMQ's semantics. */
export const inMemoryMessagingModule = (config: Config, log: Logger) =>
  new ContainerModule(({ bind }) => {
    const queue = new InMemoryEmailQueue({ concurrency: config.workerConcurrency });
    const bus = new InMemoryEventBus(log);
    constant(bind, 'EmailQueue', queue);
    constant(bind, 'EmailTaskSource', queue);
    constant(bind, 'DeadLetterBox', queue);
    provide(bind, 'DeliveryEvents', ['Metrics'], (metrics) => counted(bus, metrics));
    constant(bind, 'EventFeed', (handler) => bus.subscribe(handler));
    constant(bind, 'Readiness', () => true);
  });

/**
 * `email server`, `email worker` and `email dead-letters`: one long-lived connection per process,
 * one confirm channel for every publish, the topology declared on every (re)connect.
 */
export const rabbitMqModule = (config: Config, log: Logger, role: string) =>
  new ContainerModule(({ bind }) => {
    if (!config.amqpUrl)
      throw new Error('AMQP_URL is required for RabbitMQ (checked by loadConfig)');
    const prefix = config.queuePrefix;
    const connection = new RabbitMqConnection({
      url: config.amqpUrl.reveal(),
      topology: { prefix, retryDelaysMs: config.retry.delaysMs },
      logger: log,
      name: `email ${role} (pid ${process.pid})`,
    });
    const publisher = new RabbitMqPublisher({ connection, logger: log });
    constant(bind, 'RabbitMqConnection', connection);
    constant(bind, 'EmailQueue', new RabbitMqEmailQueue({ publisher, prefix }));
    constant(bind, 'DeadLetterBox', new RabbitMqDeadLetterBox({ publisher, prefix }));
    const events = new RabbitMqDeliveryEvents({ publisher, prefix, logger: log });
    if (role === 'server') {
      // The server also folds what it publishes into its own status store at once, so the page
      // a 202 points to never depends on the event's round trip through the broker.
      provide(bind, 'DeliveryEvents', ['Metrics', 'ProjectEmailStatus'], (metrics, projection) =>
        counted(echoed(events, projection), metrics),
      );
    } else {
      provide(bind, 'DeliveryEvents', ['Metrics'], (metrics) => counted(events, metrics));
    }
    constant(bind, 'Readiness', () => connection.isReady());
    provide(
      bind,
      'EmailTaskSource',
      [],
      () =>
        new RabbitMqEmailTaskSource({
          connection,
          publisher,
          prefix,
          concurrency: config.workerConcurrency,
          retryDelaysMs: config.retry.delaysMs,
          logger: log,
        }),
    );
  });

/** The sender chosen by MAIL_TRANSPORT: the one line of configuration the core never sees. */
export const senderModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    'SenderHandle',
    ['Config', 'Logger', 'Clock', 'DeliveryEvents'],
    (config, log, clock, events) => createSender(config, log, clock, events),
  );
  provide(bind, 'EmailSender', ['SenderHandle'], (handle) => handle.sender);
});
