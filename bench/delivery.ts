// Phase 2, the delivery path: N queued emails to N `.eml` files, through `email worker` and
// through a bare consumer; then end to end (POST N, wait for N files) through `email dev` and
// through `email server` + `email worker`.
import { performance } from 'node:perf_hooks';
import { BODY, projectPublisher } from './clients.js';
import type { LoadResult, Operation } from './load.js';
import { httpPoster, runLoad } from './load.js';
import type { Drained, Pids } from './meter.js';
import { countEml, memoryMiB, timeUntil } from './meter.js';
import type { Child } from './procs.js';
import { BASELINES, firstLine, spawnNode, stop } from './procs.js';
import type { Settings } from './roles.js';
import { AUTHORIZATION, RETRY_DELAYS_MS, outbox, startRole } from './roles.js';

export interface DeliveryRow {
  readonly path: string;
  readonly n: number;
  /** What the clock measures from: a process spawn, or the first POST. */
  readonly from: string;
  readonly timing: Drained;
  readonly rssMiB: number | undefined;
  /** Peak RSS (`VmHWM`) of the deliverer (of the larger of two). */
  readonly hwmMiB?: number;
  /**
   * Deliveries before the measured N, drained by the same process to warm it up (V8 optimising
   * its code): neither timed nor metered. Absent: none.
   */
  readonly warm?: number;
  /** The provider's latency, when the run had one (see steadyRate). */
  readonly latencyMs?: number;
  /** With a latency: the median of a slot's send-to-next-send time (see `medianCycleMs`). */
  readonly cycleMs?: number;
  /** Sends in flight of that run (WORKER_CONCURRENCY × workers, or the bare prefetch). */
  readonly slots?: number;
}

/**
 * Emails per second between the first delivery measured and the last: start-up (and the warm-up
 * deliveries, `warm`) excluded, the deliveries already seen at the first one too. With a provider
 * latency, the first delivery lands one latency after the first sends left, with a whole batch
 * of them: the clock then starts at the first send (first delivery − latency) and counts all N.
 */
export const steadyRate = (row: DeliveryRow): number => {
  const { firstMs, lastMs, firstSeen } = row.timing;
  if (row.latencyMs !== undefined) return (row.n / (lastMs - firstMs + row.latencyMs)) * 1000;
  const after = (row.warm ?? 0) + row.n - firstSeen;
  return lastMs > firstMs ? (after / (lastMs - firstMs)) * 1000 : Number.NaN;
};

export const WORKER_OUTBOX = '`email worker`, outbox';
export const BARE_CONSUMER = 'bare amqplib consumer: durable file write, ack (prefetch 32)';

export interface PrePublish {
  readonly target: string;
  readonly result: LoadResult;
}

/** Puts N tasks on a queue before its consumer starts, 64 confirms in flight; returns how many. */
async function prePublish(settings: Settings, pre: PrePublish[], target: string, op: Operation) {
  const result = await runLoad(op, { concurrency: 64, requests: settings.n, warmup: 0 });
  pre.push({ target, result });
  return settings.n - result.errorCount;
}

/** The bare consumer uses no database: its PostgreSQL column stays empty. */
const delivering = (settings: Settings, proc: Child, db = true): Pids => ({
  target: proc.pid,
  broker: settings.brokerPid,
  ...(db ? { postgres: settings.database.cpu } : {}),
});

/** Spawn → N files: the worker meets a queue already holding N tasks. */
async function drainOurs(settings: Settings, pre: PrePublish[], round: number) {
  const publisher = await projectPublisher(settings.amqpUrl, settings.prefix, RETRY_DELAYS_MS);
  const target = `our RabbitMqEmailQueue.publish (send queue), round ${round}`;
  const n = await prePublish(settings, pre, target, publisher.op).finally(publisher.close);
  const dir = outbox(settings, `deliver-worker-${round}`);
  await settings.database.settle();
  const since = performance.now();
  const worker = await startRole(settings, 'worker', { MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: dir });
  try {
    const pids = delivering(settings, worker.proc);
    const timing = await timeUntil(() => countEml(dir), n, since, pids, worker.proc);
    const { rss, hwm } = await memoryMiB(worker.proc.pid);
    const path = `${WORKER_OUTBOX}, round ${round}`;
    return { path, n, from: 'spawn', timing, rssMiB: rss, hwmMiB: hwm };
  } finally {
    await stop(worker.proc);
  }
}

async function drainBare(settings: Settings, pre: PrePublish[], round: number) {
  const queue = `${settings.prefix}.bare.deliver`;
  await settings.broker.quorumQueue(queue);
  const target = `bare amqplib confirm publish (quorum queue), round ${round}`;
  const n = await prePublish(settings, pre, target, settings.broker.publishTo(queue));
  const dir = outbox(settings, `deliver-bare-${round}`);
  // Not its database, but the same quiet start as ours.
  await settings.database.settle();
  const since = performance.now();
  const args = [BASELINES, 'consume', settings.amqpUrl, queue, dir, '32'];
  const consumer = spawnNode('bare consumer', args, {});
  try {
    await firstLine(consumer);
    const pids = delivering(settings, consumer, false);
    const timing = await timeUntil(() => countEml(dir), n, since, pids, consumer);
    const { rss, hwm } = await memoryMiB(consumer.pid);
    const path = `${BARE_CONSUMER}, round ${round}`;
    return { path, n, from: 'spawn', timing, rssMiB: rss, hwmMiB: hwm };
  } finally {
    await stop(consumer);
  }
}

/** POST N at concurrency 16 while counting files: accept and delivery overlap, as in use. */
async function endToEnd(url: string, dir: string, n: number, pids: Pids, proc: Child) {
  const poster = httpPoster(`${url}/emails`, BODY, 16, 202, undefined, AUTHORIZATION);
  const since = performance.now();
  const load: { accepted?: number } = {}; // known once the last POST is answered
  const delivered = timeUntil(
    () => countEml(dir),
    () => load.accepted,
    since,
    pids,
    proc,
  );
  delivered.catch(() => undefined); // awaited below; a failed load must not leave it unhandled
  const result = await runLoad(poster.op, { concurrency: 16, requests: n, warmup: 0 }).finally(
    poster.close,
  );
  load.accepted = n - result.errorCount;
  const timing = await delivered;
  const memory = await memoryMiB(proc.pid);
  return {
    n: load.accepted,
    from: 'first POST',
    timing,
    rssMiB: memory.rss,
    hwmMiB: memory.hwm,
  };
}

/** POST N to a fresh `email dev` (embedded database, outbox) until N files. */
async function devEndToEnd(settings: Settings): Promise<DeliveryRow> {
  const devDir = outbox(settings, 'e2e-dev');
  const dev = await startRole(settings, 'dev', { MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: devDir });
  try {
    const row = await endToEnd(dev.url, devDir, settings.n, { target: dev.proc.pid }, dev.proc);
    return { path: '`email dev` end to end', ...row };
  } finally {
    await stop(dev.proc);
  }
}

export async function deliveryPath(
  settings: Settings,
): Promise<{ rows: DeliveryRow[]; pre: PrePublish[] }> {
  const pre: PrePublish[] = [];
  // Ours, bare, bare, ours: file creation speed drifts during a run here (see the caveats in
  // the report), and this order gives both the same average position.
  const rows: DeliveryRow[] = [];
  const done = (row: DeliveryRow) => {
    rows.push(row);
    console.error(`  ${row.path}: ${steadyRate(row).toFixed(0)}/s`);
  };
  for (let round = 1; round <= settings.rounds; round += 1) {
    if (round % 2 === 1) {
      done(await drainOurs(settings, pre, round));
      done(await drainBare(settings, pre, round));
    } else {
      done(await drainBare(settings, pre, round));
      done(await drainOurs(settings, pre, round));
    }
  }

  // The smoke run leaves this one out (a second start of the embedded database takes ten seconds
  // on a busy machine): `email dev` runs in the accept path, and end to end runs below.
  if (!settings.smoke) done(await devEndToEnd(settings));

  const dir = outbox(settings, 'e2e-server');
  const [worker, server] = await Promise.all([
    startRole(settings, 'worker', { MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: dir }),
    startRole(settings, 'server', {}),
  ]);
  try {
    const pids = {
      target: worker.proc.pid,
      server: server.proc.pid,
      broker: settings.brokerPid,
      postgres: settings.database.cpu,
    };
    const row = await endToEnd(server.url, dir, settings.n, pids, worker.proc);
    done({ path: '`email server` + `email worker` end to end', ...row });
  } finally {
    await stop(server.proc);
    await stop(worker.proc);
  }
  return { rows, pre };
}
