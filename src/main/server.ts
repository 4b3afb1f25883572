import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { SqlEmailLog } from '../adapters/postgres/sql-email-log.js';
import { WriteBehindEmailLog } from '../adapters/postgres/write-behind-email-log.js';
import { OnDemandEventFeed } from '../adapters/rabbitmq/rabbitmq-delivery-events.js';
import { LIVE_PAGE_EVENT_KEYS } from '../adapters/rabbitmq/topology.js';
import { accessModule, guardedAccess } from './access.js';
import { openDatabase, suppressionCopy } from './database.js';
import type { Running } from './runtime.js';
import { bridgeToBroker, brokerRoleContainer, serveWeb } from './runtime.js';
import { resolve } from './services.js';
import { keepRoutingWebhookEvents, onEveryConnect } from './webhooks.js';

/**
 * `email server`: the form and the API, publishing to RabbitMQ, with every store in PostgreSQL.
 * It listens even while the broker or the database is away, answering 503 (never a false 202)
 * and not-ready on /readyz until both are back.
 */
export async function startServer(config: Config, log: Logger): Promise<Running> {
  const db = openDatabase(config, log);
  // Every request's recipients are looked up in the suppression list: from a copy in memory,
  // kept current by PostgreSQL's notifications.
  const suppressions = suppressionCopy(config, log, db);
  // With WRITE_BEHIND_MS, an accepted email's row is written after its 202, with the others of
  // that span (docs/architecture.md, "Write-behind").
  const writeBehind =
    config.writeBehindMs > 0
      ? new WriteBehindEmailLog(new SqlEmailLog(db.client), {
          delayMs: config.writeBehindMs,
          logger: log,
        })
      : undefined;
  const container = brokerRoleContainer(
    config,
    log,
    'server',
    db,
    suppressions,
    writeBehind,
    accessModule(config, db),
  );
  if (writeBehind !== undefined) {
    resolve(container, 'Metrics').watchWriteBehind(() => writeBehind.pending);
  }
  const connection = resolve(container, 'RabbitMqConnection');
  const bus = resolve(container, 'EventBus');
  const unbridge = bridgeToBroker(
    container,
    config,
    log,
    writeBehind === undefined ? undefined : (id, publish) => writeBehind.afterWritten(id, publish),
  );
  connection.start();
  // Knows which webhook types are wanted, for the bridge, and keeps the queue's bindings right
  // even while no worker runs.
  const stopRouting = keepRoutingWebhookEvents(container, log, {
    onConnected: onEveryConnect(connection),
  });
  // Any instance can keep any email's page live, hearing the workers' events while it does:
  // with no page open, no event is routed to it at all.
  const events = new OnDemandEventFeed({
    connection,
    prefix: config.queuePrefix,
    logger: log,
    routingKeys: LIVE_PAGE_EVENT_KEYS,
    handler: (event) => bus.relay(event)(),
  });
  // Listen at once (health checks, 503s) and only say so if the broker takes long to answer.
  void connection.whenReady(5000).then((ready) => {
    if (!ready) {
      log.warn(
        { broker: connection.redactedUrl },
        'RabbitMQ is not reachable yet; answering 503 until it is',
      );
    }
  });

  const http = await serveWeb(
    container,
    config,
    log,
    { broker: connection.redactedUrl, database: db.where },
    guardedAccess(container, log),
    events,
  );
  return {
    url: http.url,
    async stop() {
      await http.close(Math.min(config.shutdownGraceMs, 5000));
      // Every request has been answered: what they accepted is written before the pool closes.
      await writeBehind?.close();
      await unbridge();
      await stopRouting();
      await events.close();
      await connection.close();
      await suppressions.stop();
      await db.close();
    },
  };
}
