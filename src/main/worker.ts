import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { createOpsApp } from '../adapters/http/ops-app.js';
import { openDatabase } from './database.js';
import type { Running } from './runtime.js';
import { senderModule, warnUnusedSendRates } from './senders.js';
import {
  bridgeToBroker,
  brokerRoleContainer,
  deliveryHandler,
  listen,
  readiness,
  startRetention,
} from './runtime.js';
import { startReleasingScheduled } from './scheduler.js';
import { startWatchingConfirmations } from './watchdog.js';
import { onEveryConnect, startWebhooks, webhookDeliveryModule } from './webhooks.js';
import { resolve } from './services.js';

/**
 * `email worker`: consumes tasks and sends them, writing every outcome to PostgreSQL. Its own
 * small listener on WORKER_PORT answers /healthz, /readyz (broker and database reachable) and
 * /metrics for the orchestrator. It also deletes what is older than RETENTION_DAYS.
 */
export async function startWorker(config: Config, log: Logger): Promise<Running> {
  const db = openDatabase(config, log);
  // Each send's recipients are looked up in PostgreSQL just before it, not in a copy in memory
  // as the server's at accept time: a copy hears another process's add only once its
  // notification arrives, and an address whose add has returned must not be sent to.
  const container = brokerRoleContainer(
    config,
    log,
    'worker',
    db,
    undefined,
    undefined,
    senderModule,
    webhookDeliveryModule,
  );
  const connection = resolve(container, 'RabbitMqConnection');
  const metrics = resolve(container, 'Metrics');
  const tasks = resolve(container, 'EmailTaskSource');
  const sender = resolve(container, 'EmailSender');
  const deliver = resolve(container, 'DeliverEmail');
  const unbridge = bridgeToBroker(container, config, log);

  connection.start();
  log.info(
    {
      transport: sender.name,
      concurrency: config.workerConcurrency,
      broker: connection.redactedUrl,
      database: db.where,
    },
    'Starting Queue Worker',
  );
  warnUnusedSendRates(config, log);
  await tasks.consume(deliveryHandler(deliver));
  // Its own channel and prefetch: a receiver that never answers cannot slow down sending.
  const webhooks = await startWebhooks(container, log, {
    inProcessEvents: false,
    routeEvents: { onConnected: onEveryConnect(connection) },
  });
  const stopRetention = startRetention(container, log);
  const scheduler = startReleasingScheduled(container, log);
  const watchdog = startWatchingConfirmations(container, log);
  // Listen at once (health checks, 503s) and only say so if the broker takes long to answer.
  void connection.whenReady(5000).then((ready) => {
    if (!ready) {
      log.warn(
        { broker: connection.redactedUrl },
        'RabbitMQ is not reachable yet; will consume once it is',
      );
    }
  });

  const ops = createOpsApp({
    readiness: readiness(container),
    metrics: () => metrics.render(),
    log,
  });
  const http = await listen(ops.callback(), config.workerPort, config.host, 'WORKER_PORT');
  log.info({ url: http.url }, `Listening on ${http.url} (health and metrics)`);
  return {
    url: http.url,
    async stop() {
      stopRetention();
      // Before the connection closes: a release in flight is publishing on it.
      await scheduler.stop();
      await watchdog.stop();
      // Tasks still waiting for a send slot go back at once; the sends under way finish.
      deliver.stopSending();
      await tasks.stop(config.shutdownGraceMs);
      await webhooks.stop(config.shutdownGraceMs);
      await http.close(1000);
      await resolve(container, 'SenderHandle').close();
      await unbridge();
      await connection.close();
      await db.close();
    },
  };
}
