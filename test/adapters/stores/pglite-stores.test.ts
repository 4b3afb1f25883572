// The SQL stores, unchanged, on the embedded engine: the same contract suites as on PostgreSQL.
import { expect } from 'chai';
import * as O from 'fp-ts/lib/Option.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateSql } from '../../../src/adapters/postgres/migrate.js';
import { PgliteDatabase } from '../../../src/adapters/postgres/pglite-database.js';
import { SqlDeliveryLedger } from '../../../src/adapters/postgres/sql-delivery-ledger.js';
import { SqlEmailLog } from '../../../src/adapters/postgres/sql-email-log.js';
import { right, some } from '../../contracts/email-log.contract.js';
import { aRequest, anEvent, at } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { batchedWritesSuite } from '../../support/batched-writes.js';
import { emptyStoreTables, sqlStoreContracts } from '../../support/sql-stores.js';

const silent = recordingLogger();

describe('The SQL stores on PGlite', function () {
  this.timeout(60_000);
  // One in-memory engine for the file (opening one runs initdb: seconds); TRUNCATE between
  // tests costs a millisecond. One engine is one process: `peer` is a second store over it.
  let db: PgliteDatabase;

  before(async () => {
    db = await PgliteDatabase.open({ dataDir: 'memory' });
    await migrateSql(db, silent);
  });
  after(() => db?.close());

  const clean = () => emptyStoreTables(db.client);
  // One engine is one process: each store's `peer` is a second store over the same client.
  sqlStoreContracts(' on PGlite', () => ({ client: db.client, peer: db.client }));
  batchedWritesSuite(' on PGlite', () => db.client);

  describe('SqlEmailLog on PGlite', () => {
    beforeEach(clean);

    it('keeps the columns it filters on typed as node-postgres gives them', async () => {
      const log = new SqlEmailLog(db.client);
      const r = aRequest({ tags: ['a', 'b'], to: ['Ada <ADA@example.org>', 'bob@example.com'] });
      await right(log.record(r));
      await right(log.apply(anEvent.sending(r, { at: at(1) })));
      const rows = await db.client.query<Record<string, unknown>>(
        `SELECT status, recipients, tags, version, created_at, request, count(*) OVER () AS n
         FROM emails WHERE id = $1`,
        [r.id],
      );
      expect(rows[0]).to.deep.include({
        status: 'sending',
        recipients: 'Ada <ADA@example.org>\nbob@example.com',
        tags: ['a', 'b'],
        version: 2,
        n: '1', // bigint, as a string: what node-postgres answers
      });
      expect(rows[0]!.created_at).to.be.instanceOf(Date);
      expect((rows[0]!.created_at as Date).toISOString()).to.equal(r.requestedAt);
      expect(rows[0]!.request).to.deep.equal(JSON.parse(JSON.stringify(r)));
    });
  });
});

describe('A PGlite data folder', function () {
  this.timeout(60_000);
  let parent: string;
  before(() => {
    parent = mkdtempSync(join(tmpdir(), 'pglite-stores-'));
  });
  after(() => rmSync(parent, { recursive: true, force: true }));

  it('keeps what was recorded across close and reopen', async () => {
    const dir = join(parent, 'data');
    const r = aRequest({ tags: ['kept'] });
    const first = await PgliteDatabase.open({ dataDir: dir });
    try {
      await migrateSql(first, silent);
      await right(new SqlEmailLog(first.client).record(r));
      await right(new SqlDeliveryLedger(first.client).record(r.id, '<kept@test>', new Date()));
    } finally {
      await first.close();
    }

    const again = await PgliteDatabase.open({ dataDir: dir });
    try {
      expect(again.created).to.equal(false);
      const log = new SqlEmailLog(again.client);
      expect(some(await right(log.get(r.id)))).to.include({ id: r.id, status: 'queued' });
      expect(await right(log.request(r.id))).to.deep.equal(O.some(r));
      expect(await right(new SqlDeliveryLedger(again.client).sent(r.id))).to.equal('<kept@test>');
    } finally {
      await again.close();
    }
  });
});
