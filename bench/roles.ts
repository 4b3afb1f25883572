// The `email` roles as the bench starts them, and the settings every phase shares.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DEV_NODE_OPTIONS } from '../src/main/heap.js';
import type { BareBroker } from './clients.js';
import type { Counter } from './meter.js';
import type { BenchDatabase } from './postgres.js';
import type { Child } from './procs.js';
import { CLI, freePort, spawnNode, waitReady } from './procs.js';

export interface Settings {
  readonly amqpUrl: string;
  /** QUEUE_PREFIX of this run only: `bench-<random>`; every name under it is deleted at the end. */
  readonly prefix: string;
  /** A temporary directory holding every outbox; removed at the end. */
  readonly tmp: string;
  readonly broker: BareBroker;
  /** `bench_<random>`: this run's own PostgreSQL database, dropped at the end. */
  readonly database: BenchDatabase;
  readonly concurrencies: readonly number[];
  readonly requests: number;
  readonly warmup: number;
  /**
   * Emails per outbox drain and end-to-end run (section 2), and tasks published per drain there;
   * the Mailgun drains measure `mailgunN`.
   */
  readonly n: number;
  /**
   * Emails each Mailgun drain without latency delivers before its N, unmeasured: a deliverer
   * spawned for the drain spends its first few thousand sends with V8 still optimising its code
   * (our worker, timed in windows of a thousand, twice: 1.9 to 2.3 CPU ms per email over its
   * first, 0.67 to 0.71 over its fifth, 0.52 to 0.67 from its sixth on; the bare consumer 0.42 to
   * 0.44 from its fifth, as from its sixth on).
   */
  readonly warmN: number;
  /**
   * Emails each Mailgun drain without latency measures, after its `warmN` (section 3's rows and
   * the scale-out's): a window of seconds, not one under a second (why, with the trial's
   * figures: the report's section 3).
   */
  readonly mailgunN: number;
  /** Emails of the run at 670 ms provider latency. */
  readonly latencyN: number;
  /** Emails whose broker work is counted, per side. */
  readonly brokerN: number;
  /** Ours-bare rounds of the delivery comparisons (ours, bare, bare, ours for 2). */
  readonly rounds: number;
  /** BENCH_SMOKE: a tiny run that only checks the scripts work. */
  readonly smoke: boolean;
  /** RabbitMQ's process, when it runs on this machine: its CPU time is metered too (`brokerCpu`). */
  readonly brokerPid: Counter | undefined;
}

/** Short retry steps: nothing in a bench retries, and fewer retry queues to declare and delete. */
export const RETRY_DELAYS = '1s,5s';
export const RETRY_DELAYS_MS: readonly number[] = [1000, 5000];

/**
 * The API key every `email server` (and `email dev`) of a run requires, from API_KEYS; the load
 * sends it as a bearer token on every request, the bare servers' requests included (they ignore
 * it). `email dev` on 127.0.0.1 is open and does not check it.
 */
export const API_KEY = 'bench-key-0123456789abcdefghijklmnop';
export const AUTHORIZATION = { authorization: `Bearer ${API_KEY}` } as const;
/**
 * RATE_LIMIT, the request count per key: the highest the setting takes, far above what this
 * machine serves (a few thousand a second), so that no request of the bench is refused with a
 * 429. It is still counted: one statement per request on the shared PostgreSQL store.
 */
export const RATE_LIMIT = '1000000/s';

export interface Role {
  readonly proc: Child;
  /** The HTTP address: the API for dev and server, health and metrics for a worker. */
  readonly url: string;
}

/**
 * Starts `email <role>` at LOG_LEVEL=warn (at info every email costs log lines, and logging
 * would be measured rather than our code) and returns once its /readyz answers 200, which for
 * server and worker means connected to the broker with the topology declared, and to this run's
 * database with the migrations applied (for dev: its embedded database opened and migrated).
 */
export async function startRole(
  settings: Settings,
  role: 'dev' | 'server' | 'worker',
  env: Record<string, string>,
): Promise<Role> {
  const port = await freePort();
  const workerPort = await freePort();
  // `email dev` keeps its queue and stores in an embedded PostgreSQL (PGlite) in DATA_DIR, by
  // default ./data of the checkout: each start gets a fresh folder in the run's temp dir instead.
  const state: Record<string, string> =
    role === 'dev'
      ? { DATA_DIR: join(settings.tmp, `dev-data-${randomBytes(4).toString('hex')}`) }
      : { AMQP_URL: settings.amqpUrl, DATABASE_URL: settings.database.url };
  // `email dev` with the node options `npm start` gives it; the other roles as `node cli.js`.
  const nodeOptions = role === 'dev' ? DEV_NODE_OPTIONS : [];
  const proc = spawnNode(`email ${role}`, [...nodeOptions, CLI, role], {
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    WORKER_PORT: String(workerPort),
    QUEUE_PREFIX: settings.prefix,
    RETRY_DELAYS,
    SHUTDOWN_GRACE_MS: '5000',
    API_KEYS: API_KEY,
    RATE_LIMIT,
    ...state,
    ...env,
  });
  const url = `http://127.0.0.1:${role === 'worker' ? workerPort : port}`;
  await waitReady(`${url}/readyz`, proc);
  return { proc, url };
}

export const outbox = (settings: Settings, name: string): string => join(settings.tmp, name);
