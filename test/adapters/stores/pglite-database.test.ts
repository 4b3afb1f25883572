import { expect } from 'chai';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { spawn } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MIGRATIONS_DIR,
  MIGRATIONS_TABLE,
  migrateSql,
  schemaUpToDate,
} from '../../../src/adapters/postgres/migrate.js';
import { PgDatabase } from '../../../src/adapters/postgres/pg-database.js';
import { DATA_DIR_LOCK_FILE as LOCK_FILE } from '../../../src/adapters/postgres/pglite-data-dir.js';
import {
  DataDirUnusable,
  MIGRATE_FLAG,
  PgliteDatabase,
  reportIn,
} from '../../../src/adapters/postgres/pglite-database.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';
import { safeReason } from '../../../src/adapters/postgres/sql-client.js';
import { recordingLogger } from '../../support/fakes.js';
import { POSTGRES_URL, requirePostgres } from '../../support/postgres.js';
import { sleep } from '../../support/waiting.js';

const rejection = async (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );

/** The child that creates (and migrates) a new data folder. */
const INITDB = fileURLToPath(
  new URL('../../../src/adapters/postgres/pglite-initdb.js', import.meta.url),
);

/** The migration files by name, in the order they run. */
const migrationFiles = (): string[] =>
  readdirSync(MIGRATIONS_DIR)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => file.slice(0, -'.sql'.length))
    .sort();

/** `schemaUpToDate` reads through `query(text)` answering `{ rows }`, as node-pg-migrate does. */
const sessionOf = (db: PgliteDatabase) => ({
  query: async (text: string) => ({ rows: await db.client.query(text) }),
});

const count = async (sql: SqlClient, table: string): Promise<string | undefined> =>
  (await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0]?.n;

describe('PgliteDatabase', function () {
  this.timeout(60_000);

  it('is ready once started, not after close; closed, it answers in safe words', async () => {
    const logger = recordingLogger();
    const db = await PgliteDatabase.open({ dataDir: 'memory', logger });
    expect(db.where).to.equal('memory');
    expect(db.created).to.equal(true);
    expect(db.isReady()).to.equal(false);
    await db.start();
    expect(db.isReady()).to.equal(true);
    expect(await db.client.query('SELECT 1 AS one')).to.deep.equal([{ one: 1 }]);
    await Promise.all([db.close(), db.close()]);
    expect(db.isReady()).to.equal(false);
    const err = await rejection(db.client.query('SELECT 1'));
    expect(safeReason(err)).to.equal('the database connection was lost');
    expect(logger.lines.map((l) => l.message)).to.deep.equal(['the embedded database is open']);
  });

  it('runs an in-memory engine with the same small caches as a folder', async () => {
    const db = await PgliteDatabase.open({ dataDir: 'memory' });
    try {
      expect(await db.client.query("SELECT current_setting('shared_buffers') AS sb")).to.deep.equal(
        [{ sb: '8MB' }],
      );
    } finally {
      await db.close();
    }
  });

  describe('on one in-memory engine', () => {
    let db: PgliteDatabase;
    before(async () => {
      db = await PgliteDatabase.open({ dataDir: 'memory' });
      await db.client.query('CREATE TABLE scratch (n int PRIMARY KEY)');
    });
    after(() => db?.close());
    beforeEach(() => db.client.query('TRUNCATE scratch'));

    it('migrates a fresh database once when asked twice at the same time', async () => {
      const results = await Promise.all([
        migrateSql(db, recordingLogger()),
        migrateSql(db, recordingLogger()),
      ]);
      const names = results.flatMap((r) => r.applied);
      expect(names).to.have.length.of.at.least(1);
      expect(results.filter((r) => r.applied.length > 0)).to.have.length(1);
      const ran = await db.client.query<{ name: string }>(
        `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`,
      );
      expect(ran.map((r) => r.name)).to.deep.equal(names);
      expect(await count(db.client, 'emails')).to.equal('0');
    });

    it('commits a transaction that resolves, and rolls back one that rejects', async () => {
      await db.client.transaction(async (tx) => {
        await tx.query('INSERT INTO scratch VALUES (1)');
      });
      const err = await rejection(
        db.client.transaction(async (tx) => {
          await tx.query('INSERT INTO scratch VALUES (2)');
          throw new Error('changed my mind');
        }),
      );
      expect((err as Error).message).to.equal('changed my mind');
      expect(await db.client.query('SELECT n FROM scratch')).to.deep.equal([{ n: 1 }]);
    });

    it('nests with a savepoint: an inner failure keeps the outer writes', async () => {
      const inner = await db.client.transaction(async (tx) => {
        await tx.query('INSERT INTO scratch VALUES (1)');
        const failed = await rejection(
          tx.transaction(async (nested) => {
            await nested.query('INSERT INTO scratch VALUES (2)');
            await nested.query('INSERT INTO scratch VALUES (2)'); // duplicate key
          }),
        );
        await tx.transaction((nested) => nested.query('INSERT INTO scratch VALUES (3)'));
        return failed;
      });
      expect(safeReason(inner)).to.equal('the database refused a statement (SQLSTATE 23505)');
      expect(await db.client.query('SELECT n FROM scratch ORDER BY n')).to.deep.equal([
        { n: 1 },
        { n: 3 },
      ]);
    });

    it('makes other queries wait until a transaction ends', async () => {
      let release = (): void => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const tx = db.client.transaction(async (t) => {
        await t.query('INSERT INTO scratch VALUES (1)');
        await gate;
        await t.query('INSERT INTO scratch VALUES (2)');
      });
      await sleep(20);
      const seen = count(db.client, 'scratch');
      await sleep(50);
      release();
      await tx;
      expect(await seen).to.equal('2');
    });

    it('refuses a query on the outer client inside a transaction instead of hanging', async () => {
      const err = await rejection(
        db.client.transaction(async (tx) => {
          await tx.query('INSERT INTO scratch VALUES (1)');
          const outside = db.client.query('SELECT 1');
          expect(outside).to.be.instanceOf(Promise); // a rejection, never a throw
          await outside;
        }),
      );
      expect((err as Error).message).to.match(/inside transaction\(work\) would wait/);
      expect(await count(db.client, 'scratch')).to.equal('0');
    });

    it("gives node-pg-migrate a session whose BEGIN and COMMIT are a savepoint's", async () => {
      const err = await rejection(
        db.session(async (session) => {
          await session.query('BEGIN');
          await session.query({ text: 'INSERT INTO scratch VALUES ($1)', values: [1] });
          await session.query('ROLLBACK');
          await session.query('BEGIN;');
          await session.query('INSERT INTO scratch VALUES (2); INSERT INTO scratch VALUES (3)');
          await session.query('COMMIT;');
          const { rows } = await session.query('SELECT n FROM scratch ORDER BY n');
          expect(rows).to.deep.equal([{ n: 2 }, { n: 3 }]);
          throw new Error('the whole session rolls back');
        }),
      );
      expect((err as Error).message).to.equal('the whole session rolls back');
      expect(await count(db.client, 'scratch')).to.equal('0');
      await db.session((session) => session.query('INSERT INTO scratch VALUES (4)'));
      expect(await count(db.client, 'scratch')).to.equal('1');
    });

    describe('compared with node-postgres on PostgreSQL', () => {
      let server: PgDatabase;
      before(async () => {
        await requirePostgres();
        server = new PgDatabase({ url: POSTGRES_URL, maxConnections: 1 });
      });
      after(() => server?.close());

      it('takes the same parameters and gives the same values back', async () => {
        const sql = `SELECT $1::timestamptz AS at, $2::jsonb AS doc, $3::text[] AS tags,
            $4::int8 AS big, $5::bool AS flag, $6::bytea AS bin, $7::int4 AS small,
            $8::numeric AS num, $9::text AS date_as_text, $10::json AS js, $11 = 'x' AS untyped,
            count(*) OVER () AS rows, '2026-01-02'::date AS day,
            '2026-01-02 03:04:05.678'::timestamp AS local, '1 hour 2 minutes'::interval AS span,
            ARRAY[1, 2]::int8[] AS bigs, ARRAY[1.5]::float8[] AS floats, 'x'::char(3) AS padded,
            ARRAY['{"a": 1}']::jsonb[] AS docs, NULL::text AS nothing,
            '00000000-0000-4000-8000-000000000000'::uuid AS uuid`;
        const at = new Date('2026-11-28T10:00:00.123Z');
        const params = [
          at,
          { a: [1, 'x'], b: null },
          ['p', 'q"r', 'a,b', null, 'back\\slash', ''],
          '9007199254740993',
          true,
          Buffer.from([0, 1, 255]),
          42,
          '12.50',
          at,
          'plain text is not JSON'.length,
          'x',
        ];
        const [onServer] = await server.client.query<Record<string, unknown>>(sql, params);
        const [embedded] = await db.client.query<Record<string, unknown>>(sql, params);
        expect(embedded).to.deep.equal(onServer);
        expect(embedded).to.deep.include({ at, big: '9007199254740993', rows: '1' });
        expect(embedded!.bin).to.be.instanceOf(Buffer);
      });

      it('refuses the same parameters with the same SQLSTATE', async () => {
        // node-postgres sends a JS array as an array literal, which is not JSON.
        const sql = 'SELECT $1::jsonb AS doc';
        const onServer = await rejection(server.client.query(sql, [['a', 'b']]));
        const embedded = await rejection(db.client.query(sql, [['a', 'b']]));
        expect(safeReason(embedded)).to.equal(safeReason(onServer));
        expect(safeReason(embedded)).to.equal('the database refused a statement (SQLSTATE 22P02)');
        expect(embedded).not.to.have.property('params');
      });
    });
  });

  describe('in a data folder', () => {
    let parent: string;
    before(() => {
      parent = mkdtempSync(join(tmpdir(), 'pglite-db-'));
    });
    after(() => rmSync(parent, { recursive: true, force: true }));

    it('takes over a lock left by a process that died, and refuses a second opener', async () => {
      const dir = join(parent, 'locked', 'data');
      mkdirSync(dir, { recursive: true });
      // No process has this pid (it is above any pid_max).
      const stale = { pid: 2_147_483_646, host: hostname() };
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale));
      const db = await PgliteDatabase.open({ dataDir: dir });
      try {
        expect(db.where).to.equal(dir);
        expect(db.created).to.equal(true);
        expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).to.include({
          pid: process.pid,
        });
        const err = await rejection(PgliteDatabase.open({ dataDir: dir }));
        expect(err).to.be.instanceOf(DataDirUnusable);
        expect(err).to.include({ problem: 'in-use', dataDir: dir });
        expect((err as Error).message).to.include(`DATA_DIR=${dir} is in use by process`);
      } finally {
        await db.close();
      }
      expect(existsSync(join(dir, LOCK_FILE))).to.equal(false);
    });

    it('creates a new folder (initdb in a child process) and runs it with the small caches', async () => {
      const dir = join(parent, 'settings', 'data');
      const db = await PgliteDatabase.open({ dataDir: dir });
      try {
        expect(db.created).to.equal(true);
        expect(existsSync(join(dir, 'PG_VERSION'))).to.equal(true);
        await db.client.query('CREATE TABLE kept (n int)');
        await db.client.query('INSERT INTO kept VALUES (7)');
        const shown = await db.client.query<{ sb: string; mwm: string; tb: string }>(
          `SELECT current_setting('shared_buffers') AS sb,
                  current_setting('maintenance_work_mem') AS mwm,
                  current_setting('temp_buffers') AS tb`,
        );
        expect(shown).to.deep.equal([{ sb: '8MB', mwm: '16MB', tb: '1MB' }]);
      } finally {
        await db.close();
      }
      const again = await PgliteDatabase.open({ dataDir: dir });
      try {
        expect(again.created).to.equal(false);
        expect(await again.client.query('SELECT n FROM kept')).to.deep.equal([{ n: 7 }]);
        expect(
          await again.client.query("SELECT current_setting('shared_buffers') AS sb"),
        ).to.deep.equal([{ sb: '8MB' }]);
      } finally {
        await again.close();
      }
    });

    it('is migrated by the child that creates it when asked, and says what it applied', async () => {
      const dir = join(parent, 'migrated-at-creation');
      const db = await PgliteDatabase.open({ dataDir: dir, migrateWhenCreated: true });
      let applied: readonly string[];
      try {
        expect(db.created).to.equal(true);
        applied = db.migratedWhenCreated ?? [];
        expect(applied).to.deep.equal(migrationFiles());
        const ran = await db.client.query<{ name: string }>(
          `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`,
        );
        expect(ran.map((r) => r.name)).to.deep.equal(applied);
        expect(await count(db.client, 'emails')).to.equal('0');
        // In this process there is nothing left to apply.
        expect(await schemaUpToDate(sessionOf(db))).to.equal(true);
        expect((await migrateSql(db, recordingLogger())).applied).to.deep.equal([]);
      } finally {
        await db.close();
      }
      // An existing folder is only opened: the option changes nothing there.
      const again = await PgliteDatabase.open({ dataDir: dir, migrateWhenCreated: true });
      try {
        expect(again.created).to.equal(false);
        expect(again.migratedWhenCreated).to.equal(undefined);
      } finally {
        await again.close();
      }
    });

    it("reads the creating child's reports among whatever else it prints (a preloaded agent, say)", async () => {
      const dir = join(parent, 'noisy-child');
      const before = process.env.NODE_OPTIONS;
      // Something the child inherits that writes to standard output, before and as it exits.
      const noise =
        "process.stdout.write('agent: started\\n'); process.on('exit', () => process.stdout.write('agent: 3 spans flushed'))";
      process.env.NODE_OPTIONS = `--import=data:text/javascript,${encodeURIComponent(noise)}`;
      let db: PgliteDatabase;
      try {
        db = await PgliteDatabase.open({ dataDir: dir, migrateWhenCreated: true });
      } finally {
        if (before === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = before;
      }
      try {
        expect(db.migratedWhenCreated).to.deep.equal(migrationFiles());
      } finally {
        await db.close();
      }
    });

    it('has the creating child stop when the process that started it is gone', async () => {
      const dir = join(parent, 'orphan');
      mkdirSync(dir);
      // What the child's parent dying looks like to it: its standard input ends.
      const child = spawn(process.execPath, [INITDB, dir, MIGRATE_FLAG], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.stdin.end();
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).to.equal(3);
    });

    it('is migrated once: after a reopen there is nothing to apply', async () => {
      const dir = join(parent, 'migrated');
      const first = await PgliteDatabase.open({ dataDir: dir });
      let applied: string[];
      try {
        applied = (await migrateSql(first, recordingLogger())).applied;
        expect(applied).to.have.length.of.at.least(1);
      } finally {
        await first.close();
      }
      const logger = recordingLogger();
      const again = await PgliteDatabase.open({ dataDir: dir, logger });
      try {
        expect(again.created).to.equal(false);
        expect((await migrateSql(again, logger)).applied).to.deep.equal([]);
        expect(logger.lines.map((l) => l.message)).to.include('database schema up to date');
        const ran = await again.client.query<{ name: string }>(
          `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`,
        );
        expect(ran.map((r) => r.name)).to.deep.equal(applied);
      } finally {
        await again.close();
      }
    });

    const unusable = async (dataDir: string): Promise<DataDirUnusable> => {
      const err = await rejection(PgliteDatabase.open({ dataDir }));
      expect(err).to.be.instanceOf(DataDirUnusable);
      return err as DataDirUnusable;
    };

    it('fails, naming DATA_DIR and what to do, where the folder cannot be made', async () => {
      // Root writes through chmod 0555; a path under a regular file fails for root too.
      const file = join(parent, 'a-file');
      writeFileSync(file, 'not a folder');
      const under = join(file, 'data');
      const err = await unusable(under);
      expect(err.problem).to.equal('cannot-write');
      expect(err.message).to.equal(
        `DATA_DIR=${under} cannot be used: a part of the path is a file, not a folder ` +
          '(ENOTDIR). Set DATA_DIR to a folder this process can create and write, or ' +
          'DATA_DIR=memory to keep nothing.',
      );
      expect((await unusable(file)).message).to.include(
        `DATA_DIR=${file} cannot be used: it is a file, not a folder (EEXIST)`,
      );
    });

    it('refuses a folder that holds other files, and one it cannot open', async () => {
      const foreign = join(parent, 'foreign');
      mkdirSync(foreign);
      writeFileSync(join(foreign, 'notes.txt'), 'mine');
      const refused = await unusable(foreign);
      expect(refused.problem).to.equal('foreign-files');
      expect(refused.message).to.include(`DATA_DIR=${foreign} is not empty and holds no database`);
      expect(existsSync(join(foreign, 'PG_VERSION'))).to.equal(false);

      const old = join(parent, 'old');
      mkdirSync(old);
      writeFileSync(join(old, 'PG_VERSION'), '9.6\n');
      const unopened = await unusable(old);
      expect(unopened.problem).to.equal('cannot-open');
      expect(unopened.message).to.include(`DATA_DIR=${old} holds a database (PostgreSQL 9.6 data)`);
      expect(existsSync(join(old, LOCK_FILE))).to.equal(false);
    });
  });
});

describe("reportIn (the creating child's standard output)", () => {
  it('reads its tagged lines and nothing else', () => {
    expect(reportIn('{"initdb":"applied","names":["a","b"]}')).to.deep.equal({
      initdb: 'applied',
      names: ['a', 'b'],
    });
    expect(reportIn('{"initdb":"failed","message":"migrating … failed: x"}')).to.deep.equal({
      initdb: 'failed',
      message: 'migrating … failed: x',
    });
    expect(reportIn('{"initdb":"log","level":"warn","message":"m"}')).to.deep.equal({
      initdb: 'log',
      level: 'warn',
      message: 'm',
    });
    for (const other of [
      'agent: 3 spans flushed',
      '{"applied":["a"]}',
      '{"initdb":"applied","names":[1]}',
      '{"initdb":"log","level":"info","message":"m"}',
      '{"initdb":"failed"',
      '',
    ]) {
      expect(reportIn(other), other).to.equal(undefined);
    }
  });
});
