import { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { createOpsApp } from '../adapters/http/app.js';
import type { Running } from './runtime.js';
import {
  coreModule,
  processStoresModule,
  rabbitMqModule,
  senderModule,
  useCasesModule,
} from './modules.js';
import { deliveryHandler, listen } from './runtime.js';
import { resolve } from './services.js';

/**
 * `email worker`: consumes tasks and sends them. Its own small listener on WORKER_PORT answers
 * /healthz, /readyz (broker connection up) and /metrics for the orchestrator.
 */
export async function startWorker(config: Config, log: Logger): Promise<Running> {
  const container = new Container();
  container.load(
    coreModule(config, log, 'worker'),
    useCasesModule,
    processStoresModule,
    rabbitMqModule(config, log, 'worker'),
    senderModule,
  );
  const connection = resolve(container, 'RabbitMqConnection');
  const metrics = resolve(container, 'Metrics');
  const tasks = resolve(container, 'EmailTaskSource');
  const sender = resolve(container, 'EmailSender');
  const deliver = resolve(container, 'DeliverEmail');

  connection.start();
  log.info(
    {
      transport: sender.name,
      concurrency: config.workerConcurrency,
      broker: connection.redactedUrl,
    },
    'Starting Queue Worker',
  );
  await tasks.consume(deliveryHandler(deliver));
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
    readiness: resolve(container, 'Readiness'),
    metrics: () => metrics.render(),
    log,
  });
  const http = await listen(ops.callback(), config.workerPort, config.host);
  log.info({ url: http.url }, `Listening on ${http.url} (health and metrics)`);
  return {
    url: http.url,
    async stop() {
      await tasks.stop(config.shutdownGraceMs);
      await http.close(1000);
      await resolve(container, 'SenderHandle').close();
      await connection.close();
    },
  };
}
