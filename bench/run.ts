// `npm run bench`: our roles next to bare baselines, in one run, written to BENCHMARKS.md with
// the method and the machine, and printed. Progress goes to stderr, the report to stdout.
// It stops by itself: fixed request counts, a timeout on every wait, and a watchdog; on any
// failure or signal, children are stopped, the broker objects deleted and temp dirs removed.
import { connect } from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { deleteTopology } from '../test/support/rabbitmq.js';
import { acceptPath } from './accept.js';
import { brokerWork } from './broker-work.js';
import { bareBroker } from './clients.js';
import { deliveryPath } from './delivery.js';
import { mailgunPath } from './mailgun.js';
import { brokerCpu, machineBusy } from './meter.js';
import type { BenchDatabase } from './postgres.js';
import { createBenchDatabase } from './postgres.js';
import { CLI, killAll, runToEnd, stopAll } from './procs.js';
import { renderReport } from './report.js';
import type { Settings } from './roles.js';
import { RETRY_DELAYS_MS } from './roles.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/**
 * BENCH_SMOKE=1: a tiny run (a few dozen requests and emails per row, one round) that checks the
 * scripts still work end to end; its numbers mean nothing. The test suite runs it.
 */
const SMOKE = process.env.BENCH_SMOKE === '1';
/** BENCH_OUTPUT: where the report goes (the smoke test's temp file); BENCHMARKS.md otherwise. */
const OUTPUT =
  process.env.BENCH_OUTPUT ?? fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
/**
 * Well above a normal run (about ten minutes on a quiet machine, twice that on a day the same
 * machine runs at half its speed; more with the other engineers' tests running): only a hang
 * reaches it.
 */
const WATCHDOG_MS = (SMOKE ? 4 : 45) * 60_000;
const run = promisify(execFile);

let settings: Settings | undefined;
let database: BenchDatabase | undefined;
let tmp: string | undefined;
let cleaning: Promise<Cleaned> | undefined;

interface Cleaned {
  /** What `rabbitmqctl list_queues name` found under the prefix afterwards. */
  readonly queues: string;
  /** Whether the run's database is gone. */
  readonly database: string;
}
/** Set by a signal: what fails after it (children stopping under a run) is not news. */
let interrupted = false;

/** Our queues still on the broker; any found (a role that died uncleanly) are deleted too. */
async function leftovers(prefix: string): Promise<string> {
  const args = ['list_queues', 'name', '--no-table-headers', '--quiet'];
  const { stdout } = await run('rabbitmqctl', args);
  const names = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${prefix}.`));
  for (const name of names) await run('rabbitmqctl', ['delete_queue', name]);
  return names.length === 0
    ? `no queue under the prefix left`
    : `${names.length} left over and deleted (${names.join(', ')})`;
}

/** Our topology and the bare queues; `model` is the bench's connection. */
async function deleteOurs(model: ChannelModel, prefix: string): Promise<void> {
  await deleteTopology(model, prefix, RETRY_DELAYS_MS);
  const channel = await model.createChannel();
  for (const queue of ['accept', 'deliver', 'mailgun']) {
    await channel.deleteQueue(`${prefix}.bare.${queue}`);
  }
  await channel.close();
}

/**
 * Deletes what the run declared on the broker. If the bench's connection is gone (something
 * restarted RabbitMQ mid-run: the process tests do), it reconnects and tries again for a while.
 */
async function teardown(model: ChannelModel, prefix: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  try {
    await deleteOurs(model, prefix);
    return;
  } catch (error) {
    console.error(`bench: deleting the topology failed (${String(error)}); reconnecting`);
  }
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      const fresh = await connect(AMQP_URL);
      try {
        await deleteOurs(fresh, prefix);
        return;
      } finally {
        await fresh.close().catch(() => undefined);
      }
    } catch (error) {
      if (performance.now() > deadline) throw error;
    }
  }
}

/**
 * Idempotent: the normal end, a failure and a signal all come through here. Each step runs even
 * if an earlier one failed (the database is dropped even when the broker is gone); the first
 * failure is thrown at the end.
 */
function cleanup(): Promise<Cleaned> {
  cleaning ??= (async () => {
    const failures: unknown[] = [];
    const step = <T>(p: Promise<T>): Promise<T | undefined> =>
      p.catch((error: unknown) => void failures.push(error));
    await step(stopAll());
    // WITH (FORCE): connections a killed role left behind do not keep the database alive.
    const db = database ? ((await step(database.drop())) ?? 'not dropped') : 'not created';
    let queues = 'not checked';
    if (settings) {
      const { broker, prefix } = settings;
      await step(teardown(broker.model, prefix));
      queues = (await step(leftovers(prefix))) ?? queues;
      await broker.close().catch(() => undefined); // already closed if the broker went away
    }
    if (tmp) await step(rm(tmp, { recursive: true, force: true }));
    if (failures.length > 0) throw failures[0];
    return { queues, database: db };
  })();
  return cleaning;
}

process.on('exit', () => {
  killAll();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`bench: ${signal}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/**
 * A count from the environment (BENCH_REQUESTS, BENCH_WARMUP, BENCH_N, BENCH_WARM_N,
 * BENCH_MAILGUN_N), else
 * `otherwise`.
 */
function count(name: string, otherwise: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return otherwise;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number`);
  return value;
}

async function machine(): Promise<{ cores: number; os: string }> {
  const cores = Number((await run('nproc')).stdout.trim());
  const release = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1] ?? process.platform;
  return { cores, os };
}

async function main(): Promise<void> {
  const busyAtStart = await machineBusy();
  if (busyAtStart > 0.2) {
    console.error(`bench: the machine is ${(busyAtStart * 100).toFixed(0)}% busy already`);
  }
  const started = performance.now();
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${WATCHDOG_MS / 1000} s; giving up`);
    void cleanup().finally(() => process.exit(1));
  }, WATCHDOG_MS);
  tmp = await mkdtemp(join(tmpdir(), 'email-bench-'));
  const broker = await bareBroker(AMQP_URL).catch((error: unknown) => {
    throw new Error(`RabbitMQ is not reachable at 127.0.0.1:5672 (${String(error)})`);
  });
  const id = randomBytes(4).toString('hex');
  database = await createBenchDatabase(`bench_${id}`);
  // Migrated once here, so a failing migration stops the run at once and with its message; the
  // roles then find nothing to apply at start (they still wait for /readyz, which checks it).
  const migrated = await runToEnd('email migrate', [CLI, 'migrate'], {
    DATABASE_URL: database.url,
    LOG_LEVEL: 'warn',
  });
  console.error(`bench: database ${database.name}: ${migrated}`);
  settings = {
    amqpUrl: AMQP_URL,
    prefix: `bench-${id}`,
    tmp,
    broker,
    database,
    concurrencies: SMOKE ? [16] : [16, 64],
    // 200 warm-up requests left even the bare server several times slower than once warm (V8
    // tiers code up over thousands of calls); see `warmup` below; 2500 measured requests
    // keep a fast target's run long enough (a fraction of a second) to be more than noise, and
    // the whole run within minutes now that every target runs in several comparisons.
    requests: count('BENCH_REQUESTS', SMOKE ? 50 : 2500),
    // Our server's CPU per request settles after about 5000 requests (the bare servers' sooner):
    // measured earlier, it is V8's optimising that is measured, not the steady state.
    warmup: count('BENCH_WARMUP', SMOKE ? 20 : 8000),
    n: count('BENCH_N', SMOKE ? 40 : 1000),
    warmN: count('BENCH_WARM_N', SMOKE ? 10 : 8000),
    mailgunN: count('BENCH_MAILGUN_N', SMOKE ? 40 : 3000),
    // 60 batches of 32 at 670 ms: about 41 s. The last batch's sends spread out over about
    // half a second (see the report's 670 ms section): a fixed cost per drain, 1% of this one,
    // where with 15 batches it was 5% and the rate measured the drain's end more than the pace.
    latencyN: SMOKE ? 64 : 1920,
    brokerN: SMOKE ? 20 : 300,
    // Three: a drain of N = 1000 takes two seconds, and on this shared machine two drains of the
    // same code differ by up to a fifth; the mean of three alternated rounds moves less.
    rounds: SMOKE ? 1 : 3,
    smoke: SMOKE,
    brokerPid: brokerCpu(),
  };
  console.error(`bench: prefix ${settings.prefix}, outboxes in ${tmp}`);
  console.error('1/4 accept path');
  const accept = await acceptPath(settings);
  console.error('2/4 delivery path');
  const { rows: delivery, pre } = await deliveryPath(settings);
  console.error('3/4 mailgun path');
  const mailgun = await mailgunPath(settings);
  console.error('4/4 broker work per email');
  const brokerCounts = await brokerWork(settings);
  const found = await cleanup();
  clearTimeout(watchdog);

  const report = renderReport(
    settings,
    {
      date: new Date().toISOString(),
      ...(await machine()),
      cpu: cpus()[0]?.model ?? 'unknown CPU',
      memoryGiB: totalmem() / 2 ** 30,
      node: process.version,
      rabbitmq: broker.version,
      postgres: database.version,
      seconds: (performance.now() - started) / 1000,
      busyAtStart,
      leftovers: found.queues,
      database: found.database,
    },
    { accept, pre, delivery, mailgun, broker: brokerCounts },
  );
  await writeFile(OUTPUT, report);
  process.stdout.write(report);
  console.error(`bench: wrote ${OUTPUT}`);
}

main().catch(async (error: unknown) => {
  if (!interrupted) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`bench failed: ${text}`);
  }
  await cleanup().catch((e: unknown) => console.error(`cleanup failed too: ${String(e)}`));
  process.exit(interrupted ? 130 : 1);
});
