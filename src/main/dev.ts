import * as E from 'fp-ts/lib/Either.js';
import { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { isLoopback } from '../adapters/http/loopback.js';
import { accessModule, guardedAccess } from './access.js';
import type { OpenDatabase } from './database.js';
import { openDatabase, openEmbeddedDatabase } from './database.js';
import { coreModule, sqlQueueModule, sqlStoresModule, useCasesModule } from './modules.js';
import { senderModule, warnUnusedSendRates } from './senders.js';
import type { Running } from './runtime.js';
import { deliveryHandler, portProblem, serveWeb, startRetention } from './runtime.js';
import { startReleasingScheduled } from './scheduler.js';
import { startWatchingConfirmations } from './watchdog.js';
import { startWebhooks, webhookDeliveryModule } from './webhooks.js';
import { resolve } from './services.js';

/**
 * `email dev`: server and worker in one process, no broker, no account. The queue and every
 * store are tables of one database: the embedded PostgreSQL (PGlite) in DATA_DIR, or
 * DATABASE_URL when it is set. A task is committed before the 202, so a stop (Ctrl-C, a crash)
 * loses nothing: what was waiting is taken again on the next start.
 */
export async function startDev(config: Config, log: Logger): Promise<Running> {
  // Said before the database is opened: that takes seconds on a fresh checkout, and creates it.
  const taken = await portProblem(config.port, config.host);
  if (taken !== undefined) throw new Error(taken);
  const db: OpenDatabase = config.databaseUrl
    ? openDatabase(config, log)
    : await openEmbeddedDatabase(config.dataDir, log);
  try {
    return await run(config, log, db);
  } catch (err) {
    await db.close();
    throw err;
  }
}

async function run(config: Config, log: Logger, db: OpenDatabase): Promise<Running> {
  const container = new Container();
  container.load(
    coreModule(config, log, 'dev'),
    useCasesModule,
    sqlStoresModule(db),
    sqlQueueModule(config, log, db),
    senderModule,
    webhookDeliveryModule,
    accessModule(config, db),
  );
  const tasks = resolve(container, 'EmailTaskSource');
  const queue = resolve(container, 'SqlEmailQueue');
  const sender = resolve(container, 'EmailSender');
  log.info({ transport: sender.name, database: db.where }, 'Starting Queue Worker');
  warnUnusedSendRates(config, log);
  const deliver = resolve(container, 'DeliverEmail');
  await tasks.consume(deliveryHandler(deliver));
  const webhooks = await startWebhooks(container, log, { inProcessEvents: true });
  const stopRetention = startRetention(container, log);
  const scheduler = startReleasingScheduled(container, log);
  const watchdog = startWatchingConfirmations(container, log);

  const where = config.transports.includes('outbox') ? { outbox: config.outboxDir } : {};
  // On this machine only, dev is a local tool like Mailpit: nothing to sign in to. Reachable
  // from elsewhere, it is a relay like any server, and guarded like one.
  const open = isLoopback(config.host);
  if (!open) {
    log.warn(
      { host: config.host },
      'HOST is not a loopback address: the API needs a key and the pages a sign-in, as in email server (see "email api-keys create" and "email users add")',
    );
  }
  const http = await serveWeb(
    container,
    config,
    log,
    { ...where, database: db.where },
    open ? { mode: 'open' } : guardedAccess(container, log),
  );
  return {
    url: http.url,
    async stop() {
      // No new requests first, then the sends in flight; everything else stays in the database.
      stopRetention();
      await http.close(Math.min(config.shutdownGraceMs, 5000));
      await scheduler.stop();
      await watchdog.stop();
      // Tasks still waiting for a send slot go back at once; the sends under way finish.
      deliver.stopSending();
      await tasks.stop(config.shutdownGraceMs);
      await webhooks.stop(config.shutdownGraceMs);
      const pending = await queue.pending()();
      if (E.isRight(pending)) {
        const { ready, scheduled, leased } = pending.right;
        const waiting = ready + scheduled + leased;
        log.info(
          { ready, scheduled, leased, database: db.where },
          waiting === 0
            ? 'No email left waiting'
            : `${waiting} email${waiting === 1 ? '' : 's'} left waiting; ${waiting === 1 ? 'it resumes' : 'they resume'} on the next start`,
        );
      }
      await resolve(container, 'SenderHandle').close();
      await db.close();
    },
  };
}
