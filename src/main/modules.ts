import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { ContainerModule } from 'inversify';
import { CancelEmail } from '../application/cancel-email.js';
import { RetryNow } from '../application/retry-now.js';
import { ResendEmail } from '../application/resend-email.js';
import { DeliverEmail } from '../application/deliver-email.js';
import { PurgeExpired } from '../application/purge-expired.js';
import { ReleaseScheduled } from '../application/release-scheduled.js';
import { RequestEmail } from '../application/request-email.js';
import { RequestBatch } from '../application/request-batch.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { InMemoryDeliveryEvents } from '../adapters/memory/in-memory-delivery-events.js';
import { createMetrics } from '../adapters/metrics/metrics.js';
import { SqlEmailQueue } from '../adapters/postgres/sql-email-queue.js';
import { SqlDeliveryLedger } from '../adapters/postgres/sql-delivery-ledger.js';
import { SqlEmailLog } from '../adapters/postgres/sql-email-log.js';
import { SqlIdempotencyStore } from '../adapters/postgres/sql-idempotency-store.js';
import { SqlApiKeyStore } from '../adapters/postgres/sql-api-key-store.js';
import { SqlOperatorStore } from '../adapters/postgres/sql-operator-store.js';
import { SqlSessionStore } from '../adapters/postgres/sql-session-store.js';
import { SqlScheduledEmails } from '../adapters/postgres/sql-scheduled-emails.js';
import { SqlAttachmentStore } from '../adapters/postgres/sql-attachment-store.js';
import { SqlSuppressionList } from '../adapters/postgres/sql-suppression-list.js';
import type { SuppressionList } from '../application/ports/suppression-list.js';
import type { EmailLog } from '../application/ports/email-log.js';
import { SqlTransportPauses } from '../adapters/postgres/sql-transport-pauses.js';
import { SqlSendPacer } from '../adapters/postgres/sql-send-pacer.js';
import { SqlWebhookTokens } from '../adapters/postgres/sql-webhook-tokens.js';
import { SqlWebhookEndpoints } from '../adapters/postgres/sql-webhook-endpoints.js';
import { SqlWebhookDeliveries } from '../adapters/postgres/sql-webhook-deliveries.js';
import { WebhookSubscriptions } from '../application/webhook-subscriptions.js';
import { RouteWebhookEvents } from '../application/route-webhook-events.js';
import type { WebhookEndpoints } from '../application/ports/webhook-endpoints.js';
import { RecordProviderEvent } from '../application/record-provider-event.js';
import { WatchConfirmations } from '../application/watch-confirmations.js';
import { domainToAscii } from '../adapters/idna/idna.js';
import { RabbitMqConnection } from '../adapters/rabbitmq/connection.js';
import { RabbitMqDeadLetterBox } from '../adapters/rabbitmq/rabbitmq-dead-letter-box.js';
import { RabbitMqDeliveryEvents } from '../adapters/rabbitmq/rabbitmq-delivery-events.js';
import { RabbitMqEmailQueue } from '../adapters/rabbitmq/rabbitmq-email-queue.js';
import { RabbitMqEmailTaskSource } from '../adapters/rabbitmq/rabbitmq-email-task-source.js';
import { RabbitMqPublisher } from '../adapters/rabbitmq/rabbitmq-publisher.js';
import { RabbitMqWebhookQueue } from '../adapters/rabbitmq/rabbitmq-webhook-queue.js';
import { SqlWebhookQueue } from '../adapters/postgres/sql-webhook-queue.js';
import { randomIds, systemClock } from '../adapters/system/system.js';
import type { OpenDatabase } from './database.js';
import { SendSlots } from '../application/send-slots.js';
import { constant, provide } from './services.js';
import { countingSuppressionList } from './counted-suppressions.js';

/**
 * Webhook jobs (and events) a worker handles at once. Each holds its slot for at most the 10 s
 * timeout of one POST, so a few receivers that never answer cannot stall the others.
 */
export const WEBHOOK_CONCURRENCY = 16;

/** Emails deleted by one statement of the retention purge, and most statements a run. */
const RETENTION_BATCH = 500;
const RETENTION_MAX_BATCHES = 200;

/**
 * Configuration, logging, time, ids and the in-process event bus: the same in every role. The
 * bus is the one path events take inside a process; metrics hear only this process's own events.
 */
export const coreModule = (config: Config, log: Logger, role: string) =>
  new ContainerModule(({ bind }) => {
    const bus = new InMemoryDeliveryEvents(log);
    const metrics = createMetrics(role);
    // Not async: done when it returns, so the bus spends no promise on it (every event).
    bus.subscribe((event) => {
      metrics.observe(event);
    });
    constant(bind, 'Config', config);
    constant(bind, 'Logger', log);
    constant(bind, 'Clock', systemClock);
    constant(bind, 'IdGenerator', randomIds);
    constant(bind, 'RetryPolicy', config.retry);
    constant(bind, 'Metrics', metrics);
    constant(bind, 'EventBus', bus);
    constant(bind, 'DeliveryEvents', bus);
  });

/** The use cases, shared by `dev`, `server` and `worker`: only their ports differ. */
export const useCasesModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    'RequestEmail',
    [
      'EmailQueue',
      'EmailLog',
      'DeliveryEvents',
      'IdempotencyStore',
      'IdGenerator',
      'Clock',
      'Logger',
      'ScheduledEmails',
      'AttachmentStore',
      'Config',
      'SuppressionList',
    ],
    (
      queue,
      emails,
      events,
      idempotency,
      ids,
      clock,
      log,
      scheduled,
      attachments,
      config,
      suppressions,
    ) =>
      new RequestEmail(queue, emails, events, idempotency, ids, clock, log, {
        scheduled,
        attachments,
        suppressions,
        allowedFromDomains: config.allowedFromDomains,
        domainToAscii,
        maxMessageBytes: config.maxMessageBytes,
      }),
  );
  provide(
    bind,
    'RequestBatch',
    ['RequestEmail', 'IdempotencyStore', 'IdGenerator', 'Clock', 'Logger'],
    (requestEmail, idempotency, ids, clock, log) =>
      new RequestBatch(requestEmail, idempotency, ids, clock, log),
  );
  provide(
    bind,
    'DeliverEmail',
    [
      'EmailSender',
      'EmailLog',
      'DeliveryEvents',
      'DeliveryLedger',
      'RetryPolicy',
      'Clock',
      'Logger',
      'SuppressionList',
      'TransportPauses',
      'SendPacer',
      'Metrics',
      'Config',
    ],
    (
      sender,
      emails,
      events,
      ledger,
      policy,
      clock,
      log,
      suppressions,
      pauses,
      pacer,
      metrics,
      config,
    ) =>
      new DeliverEmail(sender, emails, events, ledger, policy, clock, log, {
        // Its name on the send claims: a restarted process must not pass for the one that died.
        holder: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
        suppressions,
        domainToAscii,
        pauses,
        pacer,
        pacing: metrics,
        sendSlots: new SendSlots(config.workerConcurrency),
      }),
  );
  provide(
    bind,
    'ReleaseScheduled',
    ['ScheduledEmails', 'EmailLog', 'EmailQueue', 'DeliveryEvents', 'Clock', 'Logger'],
    (scheduled, emails, queue, events, clock, log) =>
      new ReleaseScheduled(scheduled, emails, queue, events, clock, log),
  );
  provide(
    bind,
    'CancelEmail',
    ['ScheduledEmails', 'EmailLog', 'DeliveryEvents', 'Clock', 'Logger'],
    (scheduled, emails, events, clock, log) =>
      new CancelEmail(scheduled, emails, events, clock, log),
  );
  provide(
    bind,
    'RetryNow',
    ['RetryQueue', 'EmailLog', 'DeliveryEvents', 'Clock', 'Logger'],
    (queue, emails, events, clock, log) => new RetryNow(queue, emails, events, clock, log),
  );
  provide(
    bind,
    'ResendEmail',
    [
      'RequestEmail',
      'EmailLog',
      'AttachmentStore',
      'IdempotencyStore',
      'DeliveryEvents',
      'IdGenerator',
      'Clock',
      'Logger',
    ],
    (requestEmail, emails, attachments, idempotency, events, ids, clock, log) =>
      new ResendEmail(requestEmail, emails, attachments, idempotency, events, ids, clock, log),
  );
  provide(
    bind,
    'RecordProviderEvent',
    ['EmailLog', 'DeliveryEvents', 'SuppressionList', 'DeliveryLedger', 'Clock', 'Logger'],
    (emails, events, suppressions, ledger, clock, log) =>
      new RecordProviderEvent(emails, events, suppressions, ledger, clock, log, { domainToAscii }),
  );
  // SecretTokens comes with the access module: resolved only by the roles that serve the API.
  provide(
    bind,
    'WebhookSubscriptions',
    ['WebhookEndpoints', 'SecretTokens', 'Clock', 'RouteWebhookEvents', 'Logger'],
    (endpoints, tokens, clock, route, log) =>
      new WebhookSubscriptions(reroutingEndpoints(endpoints, route, log), tokens, clock),
  );
  provide(
    bind,
    'RouteWebhookEvents',
    ['WebhookEndpoints', 'WebhookEventRouting'],
    (endpoints, routing) => new RouteWebhookEvents(endpoints, routing),
  );
  provide(
    bind,
    'WatchConfirmations',
    ['EmailLog', 'DeliveryEvents', 'Clock', 'Config'],
    (emails, events, clock, config) =>
      new WatchConfirmations(emails, events, clock, config.confirmDeadlineMs),
  );
  provide(
    bind,
    'PurgeExpired',
    [
      'EmailLog',
      'IdempotencyStore',
      'DeliveryLedger',
      'SessionStore',
      'AttachmentStore',
      'Config',
      'Clock',
      'WebhookDeliveries',
    ],
    (emails, idempotency, ledger, sessions, attachments, config, clock, webhooks) =>
      new PurgeExpired(
        emails,
        idempotency,
        ledger,
        sessions,
        attachments,
        {
          retentionDays: config.retentionDays,
          batchSize: RETENTION_BATCH,
          maxBatches: RETENTION_MAX_BATCHES,
        },
        clock,
        webhooks,
      ),
  );
});

/**
 * The endpoints store as the admin API changes it: once an endpoint is added or removed, the
 * webhook queue's routing follows before the answer goes out, so the events announced after a
 * 201 reach the new endpoint. A routing that fails is logged; the workers' periodic run
 * (`startWebhooks`) makes up for it.
 */
function reroutingEndpoints(
  endpoints: WebhookEndpoints,
  route: RouteWebhookEvents,
  log: Logger,
): WebhookEndpoints {
  const reroute = async (): Promise<void> => {
    const routed = await route.execute()();
    if (routed._tag === 'Left') {
      log.warn(
        { reason: routed.left.reason },
        'Could not route the webhook events to the endpoints yet; the workers will',
      );
    }
  };
  return {
    add: (endpoint) => async () => {
      const added = await endpoints.add(endpoint)();
      if (added._tag === 'Right') await reroute();
      return added;
    },
    remove: (id) => async () => {
      const removed = await endpoints.remove(id)();
      if (removed._tag === 'Right' && removed.right) await reroute();
      return removed;
    },
    list: () => endpoints.list(),
    subscribedTo: (type) => endpoints.subscribedTo(type),
    get: (id) => endpoints.get(id),
  };
}

/**
 * Every store in one database (PostgreSQL, or the embedded PGlite of `email dev`), shared by all
 * servers and workers on it. `suppressions`: the suppression list to use instead of a
 * SqlSuppressionList on `database.client` (`email server` keeps a copy in memory,
 * CachedSuppressionList; the worker and `email dev` ask the table). `emails`: the email log to
 * use instead of a SqlEmailLog on `database.client` (`email server` with WRITE_BEHIND_MS wraps
 * one in a WriteBehindEmailLog).
 */
export const sqlStoresModule = (
  database: OpenDatabase,
  suppressions?: SuppressionList,
  emails: EmailLog = new SqlEmailLog(database.client),
) =>
  new ContainerModule(({ bind }) => {
    constant(bind, 'EmailLog', emails);
    constant(bind, 'IdempotencyStore', new SqlIdempotencyStore(database.client));
    constant(bind, 'DeliveryLedger', new SqlDeliveryLedger(database.client));
    constant(bind, 'ApiKeyStore', new SqlApiKeyStore(database.client));
    constant(bind, 'OperatorStore', new SqlOperatorStore(database.client));
    constant(bind, 'SessionStore', new SqlSessionStore(database.client));
    constant(bind, 'ScheduledEmails', new SqlScheduledEmails(database.client));
    constant(bind, 'AttachmentStore', new SqlAttachmentStore(database.client, systemClock));
    // Counted in this process's metrics: every role that loads the stores loads coreModule too.
    provide(bind, 'SuppressionList', ['Metrics'], (metrics) =>
      countingSuppressionList(suppressions ?? new SqlSuppressionList(database.client), metrics),
    );
    constant(bind, 'WebhookTokens', new SqlWebhookTokens(database.client));
    constant(bind, 'TransportPauses', new SqlTransportPauses(database.client));
    provide(
      bind,
      'SendPacer',
      ['Config'],
      (config) => new SqlSendPacer(database.client, config.sendRates ?? {}),
    );
    constant(bind, 'WebhookEndpoints', new SqlWebhookEndpoints(database.client));
    constant(bind, 'WebhookDeliveries', new SqlWebhookDeliveries(database.client));
    constant(bind, 'StoreReadiness', () => database.ready());
  });

/**
 * Tasks a worker handles at once for WORKER_CONCURRENCY sends: twice as many, so that while one
 * batch of sends records its outcomes and acks (outside their send slots, see SendSlots) as
 * many tasks already wait for those slots, each taking one the moment it is free. Sends of
 * equal latency finish together, so fewer waiting than sending would leave slots idle for a
 * round trip. The sends themselves stay bounded by DeliverEmail's SendSlots.
 */
export const taskHandlers = (workerConcurrency: number): number => 2 * workerConcurrency;

/**
 * `email dev` (and `email dead-letters` without a broker): the queue is a table in the same
 * database, committed before the 202, taken with `FOR UPDATE SKIP LOCKED`. One instance serves
 * as queue, task source and dead-letter box, so a publish wakes the consumer at once.
 */
export const sqlQueueModule = (config: Config, log: Logger, database: OpenDatabase) =>
  new ContainerModule(({ bind }) => {
    const queue = new SqlEmailQueue(database.client, {
      concurrency: taskHandlers(config.workerConcurrency),
      logger: log,
    });
    constant(bind, 'SqlEmailQueue', queue);
    constant(bind, 'EmailQueue', queue);
    constant(bind, 'RetryQueue', queue);
    constant(bind, 'EmailTaskSource', queue);
    constant(bind, 'DeadLetterBox', queue);
    constant(
      bind,
      'WebhookJobs',
      new SqlWebhookQueue(database.client, { concurrency: WEBHOOK_CONCURRENCY, logger: log }),
    );
    // Its webhook queue hears no events: the process fans out its own changes (startWebhooks).
    constant(bind, 'WebhookEventRouting', { hearOnly: () => TE.right(undefined) });
    // The queue lives in the database: the stores' readiness already says whether it answers.
    constant(bind, 'BrokerReadiness', () => true);
  });

/**
 * `email server`, `email worker` and `email dead-letters`: one long-lived connection per process,
 * one confirm channel for every publish, the topology declared on every (re)connect. This
 * process's own events cross to the broker, without holding up whoever published them.
 */
export const rabbitMqModule = (config: Config, log: Logger, role: string) =>
  new ContainerModule(({ bind }) => {
    if (!config.amqpUrl)
      throw new Error('AMQP_URL is required for RabbitMQ (checked by loadConfig)');
    const prefix = config.queuePrefix;
    const connection = new RabbitMqConnection({
      url: config.amqpUrl.reveal(),
      topology: {
        prefix,
        retryDelaysMs: config.retry.delaysMs,
        webhookRetryDelaysMs: config.webhookRetryDelaysMs,
      },
      logger: log,
      name: `email ${role} (pid ${process.pid})`,
    });
    const publisher = new RabbitMqPublisher({ connection, logger: log });
    constant(bind, 'RabbitMqConnection', connection);
    const emailQueue = new RabbitMqEmailQueue({ publisher, prefix });
    constant(bind, 'EmailQueue', emailQueue);
    constant(bind, 'RetryQueue', emailQueue);
    constant(bind, 'DeadLetterBox', new RabbitMqDeadLetterBox({ publisher, prefix }));
    constant(bind, 'BrokerEvents', new RabbitMqDeliveryEvents({ publisher, prefix, logger: log }));
    constant(bind, 'BrokerReadiness', () => connection.isReady());
    const webhookQueue = new RabbitMqWebhookQueue({
      connection,
      publisher,
      prefix,
      concurrency: WEBHOOK_CONCURRENCY,
      retryDelaysMs: config.webhookRetryDelaysMs,
      logger: log,
    });
    constant(bind, 'WebhookJobs', webhookQueue);
    constant(bind, 'WebhookEventRouting', webhookQueue);
    provide(
      bind,
      'EmailTaskSource',
      [],
      () =>
        new RabbitMqEmailTaskSource({
          connection,
          publisher,
          prefix,
          concurrency: taskHandlers(config.workerConcurrency),
          retryDelaysMs: config.retry.delaysMs,
          logger: log,
        }),
    );
  });
