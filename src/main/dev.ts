import { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { createHttpApp } from '../adapters/http/app.js';
import {
  coreModule,
  inMemoryMessagingModule,
  processStoresModule,
  senderModule,
  useCasesModule,
} from './modules.js';
import type { Listening } from './runtime.js';
import { csrfSecret, deliveryHandler, listen } from './runtime.js';
import { resolve } from './services.js';

export interface Running {
  readonly url: string;
  stop(): Promise<void>;
}

/** `email dev`: server and worker in one process, on in-memory adapters. No broker, no account. */
export async function startDev(config: Config, log: Logger): Promise<Running> {
  const container = new Container();
  container.load(
    coreModule(config, log, 'dev'),
    useCasesModule,
    processStoresModule,
    inMemoryMessagingModule(config, log),
    senderModule,
  );
  const feed = resolve(container, 'EventFeed');
  const projection = resolve(container, 'ProjectEmailStatus');
  const metrics = resolve(container, 'Metrics');
  feed((event) => projection.apply(event)());

  const tasks = resolve(container, 'EmailTaskSource');
  log.info({ transport: resolve(container, 'EmailSender').name }, 'Starting Queue Worker');
  await tasks.consume(deliveryHandler(resolve(container, 'DeliverEmail')));

  const app = createHttpApp({
    requestEmail: resolve(container, 'RequestEmail'),
    statuses: resolve(container, 'EmailStatusStore'),
    readiness: resolve(container, 'Readiness'),
    metrics: () => metrics.render(),
    csrfSecret: csrfSecret(config),
    log,
  });
  const http: Listening = await listen(app.callback(), config.port, config.host);
  log.info({ url: http.url, outbox: config.outboxDir }, `Listening on ${http.url}`);
  return {
    url: http.url,
    async stop() {
      await tasks.stop(config.shutdownGraceMs);
      await http.close(Math.min(config.shutdownGraceMs, 5000));
      await resolve(container, 'SenderHandle').close();
    },
  };
}
