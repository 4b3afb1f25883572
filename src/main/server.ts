import { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { subscribeToEvents } from '../adapters/rabbitmq/rabbitmq-delivery-events.js';
import type { Running } from './runtime.js';
import { coreModule, processStoresModule, rabbitMqModule, useCasesModule } from './modules.js';
import { serveWeb } from './runtime.js';
import { resolve } from './services.js';

/**
 * `email server`: the form and the API, publishing to RabbitMQ. It listens even while the broker
 * is away, answering 503 (never a false 202) and not-ready on /readyz until it reconnects.
 */
export async function startServer(config: Config, log: Logger): Promise<Running> {
  const container = new Container();
  container.load(
    coreModule(config, log, 'server'),
    useCasesModule,
    processStoresModule,
    rabbitMqModule(config, log, 'server'),
  );
  const connection = resolve(container, 'RabbitMqConnection');
  const projection = resolve(container, 'ProjectEmailStatus');
  connection.start();
  // Every instance hears every event, so any of them can show any email's status page.
  const events = await subscribeToEvents(
    connection,
    config.queuePrefix,
    (event) => projection.apply(event)(),
    log,
  );
  // Listen at once (health checks, 503s) and only say so if the broker takes long to answer.
  void connection.whenReady(5000).then((ready) => {
    if (!ready) {
      log.warn(
        { broker: connection.redactedUrl },
        'RabbitMQ is not reachable yet; answering 503 until it is',
      );
    }
  });

  const http = await serveWeb(container, config, log, { broker: connection.redactedUrl });
  return {
    url: http.url,
    async stop() {
      await http.close(Math.min(config.shutdownGraceMs, 5000));
      await events.close();
      await connection.close();
    },
  };
}
