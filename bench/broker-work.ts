// Phase 4, the broker's work per email in the happy path, counted by RabbitMQ itself: its
// global message counters (rabbitmq_prometheus, `/metrics` on port 15692) read before and after
// N emails go through `email server` + `email worker` (outbox; no live page open, no webhook
// endpoint), and through a bare publisher + bare consumer. The counters are the whole broker's:
// anything else using it meanwhile (other engineers' tests on this shared machine) counts too,
// so each side is preceded by an idle window of the same length whose counts are shown, and
// subtracted at that rate.
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { topologyNames } from '../src/adapters/rabbitmq/topology.js';
import { BODY } from './clients.js';
import { httpPoster, runLoad } from './load.js';
import { countEml } from './meter.js';
import type { Child } from './procs.js';
import { BASELINES, firstLine, sleep, spawnNode, stop, waitFor } from './procs.js';
import type { Settings } from './roles.js';
import { AUTHORIZATION, outbox, startRole } from './roles.js';

export const PROMETHEUS_URL =
  process.env.RABBITMQ_PROMETHEUS_URL ?? 'http://127.0.0.1:15692/metrics';

/** RabbitMQ's global message counters (summed over protocols and queue types). */
export interface BrokerCounters {
  /** Published to the broker (`rabbitmq_global_messages_received_total`). */
  readonly received: number;
  /** Routed to at least one queue. */
  readonly routed: number;
  /** Delivered to consumers (and basic.get). */
  readonly delivered: number;
  /** Acknowledged by consumers. */
  readonly acknowledged: number;
}

export const COUNTERS = ['received', 'routed', 'delivered', 'acknowledged'] as const;

const METRIC: Record<keyof BrokerCounters, string> = {
  received: 'rabbitmq_global_messages_received_total',
  routed: 'rabbitmq_global_messages_routed_total',
  delivered: 'rabbitmq_global_messages_delivered_total',
  acknowledged: 'rabbitmq_global_messages_acknowledged_total',
};

export async function readBrokerCounters(url = PROMETHEUS_URL): Promise<BrokerCounters> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
  const text = await response.text();
  const sum = (name: string) => {
    let total = 0;
    let seen = false;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
      seen = true;
    }
    if (!seen) throw new Error(`${url} has no ${name}`);
    return total;
  };
  return {
    received: sum(METRIC.received),
    routed: sum(METRIC.routed),
    delivered: sum(METRIC.delivered),
    acknowledged: sum(METRIC.acknowledged),
  };
}

const minus = (a: BrokerCounters, b: BrokerCounters): BrokerCounters => ({
  received: a.received - b.received,
  routed: a.routed - b.routed,
  delivered: a.delivered - b.delivered,
  acknowledged: a.acknowledged - b.acknowledged,
});
const scale = (a: BrokerCounters, k: number): BrokerCounters => ({
  received: a.received * k,
  routed: a.routed * k,
  delivered: a.delivered * k,
  acknowledged: a.acknowledged * k,
});

/**
 * The endpoint answers, or the plugin is enabled (`rabbitmq-plugins enable`, which needs the
 * rights of RabbitMQ's user; the bench runs as root here) and awaited. Says how, or throws.
 */
async function ensureEndpoint(): Promise<string> {
  if (
    await readBrokerCounters().then(
      () => true,
      () => false,
    )
  ) {
    return 'rabbitmq_prometheus was enabled already';
  }
  await promisify(execFile)('rabbitmq-plugins', ['enable', 'rabbitmq_prometheus'], {
    timeout: 60_000,
  });
  await waitFor(() => readBrokerCounters().then(() => true), 30_000, PROMETHEUS_URL);
  return 'rabbitmq_prometheus enabled by this run (`rabbitmq-plugins enable`)';
}

export interface BrokerWorkRow {
  readonly side: string;
  readonly n: number;
  readonly seconds: number;
  /** What the counters moved by during the run, and during the idle window before it. */
  readonly during: BrokerCounters;
  readonly idle: BrokerCounters;
  /** (during − idle × run/idle window length) / n. */
  readonly perEmail: BrokerCounters;
}

export type BrokerWork =
  | { readonly measured: true; readonly how: string; readonly rows: BrokerWorkRow[] }
  | { readonly measured: false; readonly why: string };

export const OURS_SIDE = '`email server` + `email worker` (outbox)';
export const BARE_SIDE = 'bare confirm publish + bare consumer (durable file, ack)';

/**
 * Counts around `work`: an idle window first (the background rate), then the work, then a
 * pause for the last acks and events to land.
 */
async function counted(
  side: string,
  n: number,
  idleMs: number,
  work: () => Promise<void>,
): Promise<BrokerWorkRow> {
  const i0 = await readBrokerCounters();
  await sleep(idleMs);
  const i1 = await readBrokerCounters();
  const started = performance.now();
  await work();
  await sleep(500);
  const after = await readBrokerCounters();
  const runMs = performance.now() - started;
  const idle = minus(i1, i0);
  const during = minus(after, i1);
  const perEmail = scale(minus(during, scale(idle, runMs / idleMs)), 1 / n);
  return { side, n, seconds: runMs / 1000, during, idle, perEmail };
}

const filesIn = (dir: string, n: number, proc: Child) =>
  waitFor(
    async () => ((await countEml(dir)) >= n ? true : undefined),
    60_000,
    `${n} emails in ${dir}`,
    proc,
    50,
  );

export async function brokerWork(settings: Settings): Promise<BrokerWork> {
  let how: string;
  try {
    how = await ensureEndpoint();
  } catch (error) {
    return { measured: false, why: `${PROMETHEUS_URL} unavailable: ${String(error)}` };
  }
  const n = settings.brokerN;
  const idleMs = settings.smoke ? 200 : 1000;
  const rows: BrokerWorkRow[] = [];

  const dir = outbox(settings, 'broker-work');
  const [worker, server] = await Promise.all([
    startRole(settings, 'worker', { MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: dir }),
    startRole(settings, 'server', {}),
  ]);
  try {
    // Events an earlier phase's worker left unconsumed would be counted as this run's work.
    await settings.broker.purgeQueue(topologyNames(settings.prefix).webhooksQueue);
    rows.push(
      await counted(OURS_SIDE, n, idleMs, async () => {
        const poster = httpPoster(`${server.url}/emails`, BODY, 16, 202, undefined, AUTHORIZATION);
        const result = await runLoad(poster.op, { concurrency: 16, requests: n, warmup: 0 });
        poster.close();
        if (result.errorCount > 0)
          throw new Error(`broker work: ${result.errorCount} POSTs failed`);
        await filesIn(dir, n, worker.proc);
      }),
    );
  } finally {
    await stop(server.proc);
    await stop(worker.proc);
  }

  const queue = `${settings.prefix}.bare.deliver`;
  await settings.broker.quorumQueue(queue);
  const bareDir = outbox(settings, 'broker-work-bare');
  const args = [BASELINES, 'consume', settings.amqpUrl, queue, bareDir, '32'];
  const consumer = spawnNode('bare consumer', args, {});
  try {
    await firstLine(consumer);
    rows.push(
      await counted(BARE_SIDE, n, idleMs, async () => {
        const op = settings.broker.publishTo(queue);
        const result = await runLoad(op, { concurrency: 16, requests: n, warmup: 0 });
        if (result.errorCount > 0)
          throw new Error(`broker work: ${result.errorCount} publishes failed`);
        await filesIn(bareDir, n, consumer);
      }),
    );
  } finally {
    await stop(consumer);
  }
  return { measured: true, how, rows };
}
