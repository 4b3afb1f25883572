import { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import {
  coreModule,
  inMemoryMessagingModule,
  processStoresModule,
  senderModule,
  useCasesModule,
} from './modules.js';
import type { Running } from './runtime.js';
import { deliveryHandler, serveWeb } from './runtime.js';
import { resolve } from './services.js';

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
  feed((event) => projection.apply(event)());

  const tasks = resolve(container, 'EmailTaskSource');
  log.info({ transport: resolve(container, 'EmailSender').name }, 'Starting Queue Worker');
  await tasks.consume(deliveryHandler(resolve(container, 'DeliverEmail')));

  const http = await serveWeb(container, config, log, { outbox: config.outboxDir });
  return {
    url: http.url,
    async stop() {
      // No new requests first, then the sends in flight: the in-memory queue ends with us.
      await http.close(Math.min(config.shutdownGraceMs, 5000));
      await tasks.stop(config.shutdownGraceMs);
      await resolve(container, 'SenderHandle').close();
    },
  };
}
