import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { migrateSql } from '../../../src/adapters/postgres/migrate.js';
import { PgliteDatabase } from '../../../src/adapters/postgres/pglite-database.js';
import { SqlEmailQueue } from '../../../src/adapters/postgres/sql-email-queue.js';
import { RabbitMqConnection } from '../../../src/adapters/rabbitmq/connection.js';
import { RabbitMqEmailQueue } from '../../../src/adapters/rabbitmq/rabbitmq-email-queue.js';
import { RabbitMqEmailTaskSource } from '../../../src/adapters/rabbitmq/rabbitmq-email-task-source.js';
import { RabbitMqPublisher } from '../../../src/adapters/rabbitmq/rabbitmq-publisher.js';
import { systemClock } from '../../../src/adapters/system/system.js';
import { DeliverEmail } from '../../../src/application/deliver-email.js';
import type { EmailQueue } from '../../../src/application/ports/email-queue.js';
import type { EmailTaskSource } from '../../../src/application/ports/email-task-source.js';
import type { RetryQueue } from '../../../src/application/ports/retry-queue.js';
import { RetryNow } from '../../../src/application/retry-now.js';
import { transient } from '../../../src/domain/delivery.js';
import type { EmailStatus } from '../../../src/domain/email-status.js';
import { aRequest } from '../../support/builders.js';
import { RecordingEvents, RecordingLogger, ScriptedSender } from '../../support/fakes.js';
import { AMQP_URL, deleteTopology, requireRabbitMq, uniquePrefix } from '../../support/rabbitmq.js';
import { eventually } from '../../support/waiting.js';

/**
 * The worker of one email over `queue`: attempt 1 fails for now, any later one is sent. Returns
 * what a test looks at, and `retryNow`, the operator's button over the same queue and log.
 */
async function workerOver(
  queue: EmailQueue & RetryQueue,
  source: EmailTaskSource,
  retryDelayMs: number,
) {
  const emails = new InMemoryEmailLog();
  const events = new RecordingEvents();
  const log = new RecordingLogger();
  const sender = new ScriptedSender([transient('a 503 from the provider')]);
  const deliver = new DeliverEmail(
    sender,
    emails,
    events,
    new InMemoryDeliveryLedger(),
    { maxAttempts: 5, delaysMs: [retryDelayMs] },
    systemClock,
    log,
    { holder: 'worker-a' },
  );
  await source.consume((task) => deliver.execute(task)());
  const request = aRequest();
  await emails.record(request)();
  const published = await queue.publish(request)();
  expect(published).to.deep.equal(E.right(undefined));
  const status = async (): Promise<EmailStatus> => {
    const found = await emails.get(request.id)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('email not in the log');
    return found.right.value;
  };
  const retryNow = new RetryNow(queue, emails, events, systemClock, log);
  return { request, sender, log, status, retryNow };
}

describe('Retry now on the real queues', function () {
  this.timeout(60_000);

  describe('RabbitMQ: a copy now, the waiting task dropped when its TTL ends', () => {
    // Long enough that the button is pressed well before the retry falls due; short enough that
    // the test sees the waiting task come back and be dropped.
    const DELAY_MS = 4_000;
    const prefix = uniquePrefix('retry-now');
    let connection: RabbitMqConnection | undefined;
    let source: RabbitMqEmailTaskSource | undefined;

    before(() => requireRabbitMq());

    after(async () => {
      await source?.stop(0);
      await deleteTopology(connection?.current() ?? AMQP_URL, prefix, [DELAY_MS]);
      await connection?.close();
    });

    it('sends once, and the stale retry neither sends nor spends an attempt', async () => {
      const logger = new RecordingLogger();
      connection = new RabbitMqConnection({
        url: AMQP_URL,
        topology: { prefix, retryDelaysMs: [DELAY_MS] },
        logger,
        name: prefix,
        initialBackoffMs: 100,
      });
      connection.start();
      expect(await connection.whenReady(10_000)).to.equal(true);
      const publisher = new RabbitMqPublisher({ connection, logger });
      source = new RabbitMqEmailTaskSource({
        connection,
        publisher,
        prefix,
        concurrency: 2,
        retryDelaysMs: [DELAY_MS],
        logger,
      });
      const queue = new RabbitMqEmailQueue({ publisher, prefix });
      const { request, sender, log, status, retryNow } = await workerOver(queue, source, DELAY_MS);

      await eventually(async () => (await status()).status === 'retrying');
      expect(await retryNow.execute(request.id)()).to.deep.equal(
        E.right({ attempt: 2, how: 'copied' }),
      );
      await eventually(async () => (await status()).status === 'sent');
      expect(sender.sent).to.have.length(2);

      // The waiting task of attempt 2 comes back from its retry queue when its TTL ends.
      await eventually(
        () => log.lines.some((l) => l.message.startsWith('Dropping a waiting retry')),
        { timeoutMs: 20_000 },
      );
      expect(sender.sent).to.have.length(2);
      const after = await status();
      expect(after.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
        [1, 'transient'],
        [2, 'sent'],
      ]);
      expect(after.expedited).to.deep.equal([2]);
      expect(after.history.map((c) => c.status)).to.include('expedited');
    });
  });

  describe('the SQL queue on PGlite: the waiting row made due now', () => {
    let db: PgliteDatabase | undefined;
    let queue: SqlEmailQueue | undefined;

    before(async () => {
      db = await PgliteDatabase.open({ dataDir: 'memory' });
      await migrateSql(db, new RecordingLogger());
      await db.start();
    });

    after(async () => {
      await queue?.stop(0);
      await db?.close();
    });

    it('moves the one task, which is sent at once, leaving nothing to drop', async () => {
      if (!db) throw new Error('PGlite did not open');
      queue = new SqlEmailQueue(db.client, { concurrency: 2, pollIntervalMs: 100 });
      // An hour: only the button can make attempt 2 happen within the test.
      const { request, sender, log, status, retryNow } = await workerOver(queue, queue, 3_600_000);

      await eventually(async () => (await status()).status === 'retrying');
      const pending = await queue.pending()();
      expect(pending).to.deep.equal(E.right({ ready: 0, scheduled: 1, leased: 0 }));

      expect(await retryNow.execute(request.id)()).to.deep.equal(
        E.right({ attempt: 2, how: 'moved' }),
      );
      await eventually(async () => (await status()).status === 'sent');
      expect(sender.sent).to.have.length(2);
      await eventually(async () => {
        const left = await queue!.pending()();
        return E.isRight(left) && left.right.ready + left.right.scheduled + left.right.leased === 0;
      });
      const after = await status();
      expect(after.attempts.map((a) => a.attempt)).to.deep.equal([1, 2]);
      expect(after.expedited).to.equal(undefined);
      expect(log.lines.some((l) => l.message.startsWith('Dropping'))).to.equal(false);

      // Nothing waits any more: a second press changes nothing.
      expect(await queue.expedite(request, 2)()).to.deep.equal(E.right('not-waiting'));
      expect(await retryNow.execute(request.id)()).to.deep.equal(
        E.left({ _tag: 'NotRetrying', status: 'sent' }),
      );
    });
  });
});
