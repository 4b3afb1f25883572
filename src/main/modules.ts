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
import { createMetrics } from '../adapters/metrics/metrics.js';
import { randomIds, systemClock } from '../adapters/system/system.js';
import { createSender } from './senders.js';
import { constant, provide } from './services.js';

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
  provide(bind, 'ProjectEmailStatus', ['EmailStatusStore'], (store) => new ProjectEmailStatus(store));
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
    constant(bind, 'DeliveryEvents', bus);
    constant(bind, 'EventFeed', (handler) => bus.subscribe(handler));
    constant(bind, 'Readiness', () => true);
  });

/** The sender chosen by MAIL_TRANSPORT: the one line of configuration the core never sees. */
export const senderModule = new ContainerModule(({ bind }) => {
  provide(bind, 'SenderHandle', ['Config', 'Logger', 'Clock'], (config, log, clock) =>
    createSender(config, log, clock),
  );
  provide(bind, 'EmailSender', ['SenderHandle'], (handle) => handle.sender);
});
