import { migrateSql } from '../../../src/adapters/postgres/migrate.js';
import { PgliteDatabase } from '../../../src/adapters/postgres/pglite-database.js';
import { emailQueueContract } from '../../contracts/email-queue.contract.js';
import { RecordingLogger } from '../../support/fakes.js';
import { sqlQueueFixture } from '../../support/sql-email-queue.js';

// The embedded queue of `email dev`, on the engine it runs on there: the same suite as the
// in-memory queue, RabbitMQ and SqlEmailQueue on PostgreSQL.
describe('SqlEmailQueue on PGlite', function () {
  // One engine for the suite: a new in-memory PGlite runs initdb (about 2 s).
  this.timeout(30_000);
  let db: PgliteDatabase | undefined;

  before(async () => {
    db = await PgliteDatabase.open({ dataDir: 'memory' });
    await migrateSql(db, new RecordingLogger());
    await db.start();
  });

  after(() => db?.close());

  emailQueueContract('SqlEmailQueue on PGlite', async () => {
    if (!db) throw new Error('PGlite did not open');
    const logger = new RecordingLogger();
    return { ...(await sqlQueueFixture(db.client, { logger })), logger };
  });
});
