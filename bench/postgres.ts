// The PostgreSQL database of one bench run: `bench_<random>`, created at the start, migrated
// with `email migrate`, handed to `email server`, `email worker` and the bare Koa baseline as
// DATABASE_URL, and dropped WITH (FORCE) at the end whatever happened. Also meters the CPU time
// PostgreSQL spends on it (its backends and the WAL writer, checkpointer and background writer).
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { Counter } from './meter.js';

/** Where the bench creates its database: any database of the server, as a superuser. */
export const PG_ADMIN_URL =
  process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchDatabase {
  readonly name: string;
  /** DATABASE_URL for the roles and the baseline. */
  readonly url: string;
  readonly version: string;
  /** Cumulative CPU seconds PostgreSQL spent for this database since it was created. */
  readonly cpu: Counter;
  /**
   * Before a measured drain: `VACUUM (ANALYZE)` of the database, then `CHECKPOINT`, so that the
   * drain neither competes with autovacuum and the checkpointer working off the rows of an earlier
   * phase nor is counted for them (a drain's own rows were written just before it). `CHECKPOINT`
   * needs a superuser or `pg_checkpoint`; without either it is left out, said once on stderr.
   */
  settle(): Promise<void>;
  /** DROP DATABASE … WITH (FORCE), then checks that it is gone; says what it found. */
  drop(): Promise<string>;
}

/** user and system seconds of one process from /proc/<pid>/stat (10 ms ticks). */
async function procSeconds(pid: number): Promise<{ user: number; total: number } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = Number(fields[11]) / 100;
  return { user, total: user + Number(fields[12]) / 100 };
}

/**
 * PostgreSQL runs one process per connection, and pools open and close connections, so the set
 * of processes changes during a run. The counter remembers every process it has seen: one that
 * appears after its first reading counts from zero (it is new), one that exits keeps its last
 * reading (only its CPU since the previous reading is lost). The shared background processes are
 * counted too: the WAL writer flushes for every database, other work on this server included.
 */
function cpuCounter(admin: pg.Client, database: string): Counter {
  const base = new Map<number, { user: number; total: number }>();
  const last = new Map<number, { user: number; total: number }>();
  let first = true;
  let reading = Promise.resolve({ user: 0, total: 0 });
  const read = async () => {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
       WHERE datname = $1 OR backend_type IN ('walwriter', 'checkpointer', 'background writer')`,
      [database],
    );
    for (const { pid } of rows) {
      const now = await procSeconds(pid);
      if (now === undefined) continue;
      if (!base.has(pid)) base.set(pid, first ? now : { user: 0, total: 0 });
      last.set(pid, now);
    }
    first = false;
    let user = 0;
    let total = 0;
    for (const [pid, now] of last) {
      user += now.user - base.get(pid)!.user;
      total += now.total - base.get(pid)!.total;
    }
    return { user, total };
  };
  // One reading at a time: the admin connection runs one query at a time anyway.
  return {
    read: () => {
      reading = reading.catch(() => undefined).then(read);
      return reading;
    },
  };
}

export async function createBenchDatabase(name: string): Promise<BenchDatabase> {
  if (!/^bench_[0-9a-f]+$/.test(name)) throw new Error(`not a bench database name: ${name}`);
  const admin = new pg.Client({
    connectionString: PG_ADMIN_URL,
    connectionTimeoutMillis: 5000,
    application_name: 'queued-email-bench',
  });
  await admin.connect().catch((error: unknown) => {
    throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN_URL} (${String(error)})`);
  });
  // An idle admin connection dropped by the server must fail the next query, not the process.
  admin.on('error', (error) => console.error(`bench: PostgreSQL admin connection: ${error}`));
  const version =
    (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]
      ?.v ?? 'unknown';
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const cpu = cpuCounter(admin, name);
  await cpu.read();
  let dropped: Promise<string> | undefined;
  let checkpoints = true;
  return {
    name,
    url: url.toString(),
    version,
    cpu,
    async settle() {
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        await client.query('VACUUM (ANALYZE)');
      } finally {
        await client.end();
      }
      if (!checkpoints) return;
      await admin.query('CHECKPOINT').catch((error: { code?: string }) => {
        // 42501, insufficient privilege: the run goes on, its drains a little less alike.
        if (error.code !== '42501') throw error;
        checkpoints = false;
        console.error(
          `bench: CHECKPOINT refused to ${url.username || 'this user'}; drains skip it`,
        );
      });
    },
    drop() {
      dropped ??= (async () => {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        const { rows } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        await admin.end();
        return rows.length === 0 ? `database ${name} dropped` : `database ${name} is still there`;
      })();
      return dropped;
    },
  };
}
