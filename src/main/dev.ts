import { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { openDatabase } from './database.js';
import {
  coreModule,
  inMemoryMessagingModule,
  inMemoryStoresModule,
  senderModule,
  sqlStoresModule,
  useCasesModule,
} from './modules.js';
import type { Running } from './runtime.js';
import { deliveryHandler, serveWeb, startRetention } from './runtime.js';
import { resolve } from './services.js';

/**
 * `email dev`: server and worker in one process, no broker, no account. The queue is in memory;
 * the stores are too, unless DATABASE_URL names a PostgreSQL database to keep them in.
 */
export async function startDev(config: Config, log: Logger): Promise<Running> {
  const db = config.databaseUrl ? openDatabase(config, log) : undefined;
  const container = new Container();
  container.load(
    coreModule(config, log, 'dev'),
    useCasesModule,
    db ? sqlStoresModule(db.database, db.migrated) : inMemoryStoresModule,
    inMemoryMessagingModule(config),
    senderModule,
  );
  const tasks = resolve(container, 'EmailTaskSource');
  const sender = resolve(container, 'EmailSender');
  log.info({ transport: sender.name }, 'Starting Queue Worker');
  await tasks.consume(deliveryHandler(resolve(container, 'DeliverEmail')));
  const stopRetention = startRetention(container, log);

  const where = config.transports.includes('outbox') ? { outbox: config.outboxDir } : {};
  const http = await serveWeb(container, config, log, {
    ...where,
    ...(db ? { database: db.database.redactedUrl } : {}),
  });
  return {
    url: http.url,
    async stop() {
      // No new requests first, then the sends in flight: the in-memory queue ends with us.
      stopRetention();
      await http.close(Math.min(config.shutdownGraceMs, 5000));
      await tasks.stop(config.shutdownGraceMs);
      await resolve(container, 'SenderHandle').close();
      await db?.close();
    },
  };
}
