// Phase 3, the Mailgun path: `email worker` with MAIL_TRANSPORT=mailgun draining N emails into
// the project's Mailgun stand-in, against a bare amqplib consumer doing the same provider call,
// one UPDATE and the ack; then both at 670 ms of provider latency; then one worker against two
// (scale-out). The stand-in runs in a child of its own so that neither side shares an event
// loop with it; it reports how many messages it holds over IPC.
//
// Our emails are recorded first through the path they take in use: an `email server` (with the
// run's API key) accepts them with nothing consuming, then stops; the worker starts on a send
// queue holding N tasks whose rows are in `emails`. The bare side gets the same: N rows in a
// table of its own, N tasks naming them.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { topologyNames } from '../src/adapters/rabbitmq/topology.js';
import { BARE_DELIVERIES, mailgunAuthorization, mailgunForm } from './bare.js';
import { BODY, DRAFT } from './clients.js';
import type { DeliveryRow, PrePublish } from './delivery.js';
import { httpPoster, runLoad } from './load.js';
import type { Pids } from './meter.js';
import { memoryMiB, timeUntil } from './meter.js';
import type { Child } from './procs.js';
import { BASELINES, firstLine, spawnNode, stop } from './procs.js';
import type { Settings } from './roles.js';
import { AUTHORIZATION, startRole } from './roles.js';

const KEY = 'key-bench-0123456789abcdef';
const DOMAIN = 'mg.bench.example.org';
const FROM = `Bench <noreply@${DOMAIN}>`;
/** WORKER_CONCURRENCY of our worker (its default), and the bare consumer's prefetch. */
export const CONCURRENCY = 32;
/** The provider latency of the target: 0.95 × WORKER_CONCURRENCY / 0.67 s. */
export const LATENCY_MS = 670;

export const WORKER_MAILGUN = '`email worker`, mailgun → stand-in';
export const BARE_MAILGUN = `bare amqplib consumer: node-fetch POST, UPDATE, ack (prefetch ${CONCURRENCY})`;
export const SLOW = `, ${LATENCY_MS} ms provider latency`;
export const ONE_WORKER = 'scale-out: one `email worker`, mailgun → stand-in';
export const TWO_WORKERS = 'scale-out: two `email worker`s, mailgun → stand-in';

export interface MailgunResults {
  /** No latency: ours and bare, alternated (ours, bare, bare, ours). */
  readonly rows: DeliveryRow[];
  /** At LATENCY_MS: ours, then bare. */
  readonly latency: DeliveryRow[];
  /** One worker against two, draining the same N. */
  readonly scale: DeliveryRow[];
  /**
   * One worker against two at LATENCY_MS, draining the same N (half the latency run's): waiting
   * on the provider rather than on the cores, where a second worker's sends add to the first's.
   */
  readonly scaleLatency: DeliveryRow[];
  /** How the emails were recorded before each drain. */
  readonly pre: PrePublish[];
}

type Message = 'count' | 'clear' | 'arrivals' | { latencyMs: number };

interface Reply {
  readonly count: number;
  /** With 'arrivals': when each message held arrived, ms since the epoch. */
  readonly arrivals: readonly number[];
}

/** Asks the stand-in host, which answers how many messages it holds ('clear' empties it first). */
function tell(host: Child, message: Message): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stand-in did not answer')), 5000);
    host.child.once('message', (reply: Reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
    host.child.send(message);
  });
}

/** How many messages the stand-in host holds ('clear' empties it first). */
const ask = async (host: Child, message: Message): Promise<number> =>
  (await tell(host, message)).count;

/**
 * The median time from a send's arrival at the stand-in to the next send of its slot, given the
 * arrivals of a drain with `slots` sends in flight: sorted, the i-th and the (i + slots)-th are
 * one slot's consecutive sends (a batch keeps its order). With a provider latency it is the
 * latency plus what the deliverer takes between an answer and its next send; `slots` over it is
 * the rate of a drain long enough that its start and end do not count. Undefined under three
 * batches.
 */
export function medianCycleMs(arrivals: readonly number[], slots: number): number | undefined {
  if (arrivals.length < 3 * slots) return undefined;
  const sorted = [...arrivals].sort((a, b) => a - b);
  const cycles: number[] = [];
  for (let i = 0; i + slots < sorted.length; i += 1) cycles.push(sorted[i + slots]! - sorted[i]!);
  cycles.sort((a, b) => a - b);
  return cycles[Math.floor(cycles.length / 2)];
}

/**
 * A drain's row fields for its provider latency: none without one; with one, the latency and
 * the median cycle of the drain just measured (`slots` sends in flight).
 */
async function latencyFields(host: Child, slots: number, latencyMs: number) {
  if (latencyMs === 0) return {};
  const cycleMs = medianCycleMs((await tell(host, 'arrivals')).arrivals, slots);
  return cycleMs === undefined ? { latencyMs } : { latencyMs, cycleMs, slots };
}

/** The stand-in host's base URL, from the line it announced itself with. */
const standInUrl = (host: Child): string =>
  String((JSON.parse(host.lines[0]!) as { url: string }).url);

/** Empties the stand-in and sets its latency for every send from now on (0: none). */
async function reset(host: Child, latencyMs: number): Promise<void> {
  await ask(host, 'clear'); // forgets the faults too
  await ask(host, { latencyMs });
}

/** N emails through `email server` with nothing consuming: rows in `emails`, N tasks queued. */
async function record(settings: Settings, pre: PrePublish[], n: number, what: string) {
  // Whatever an earlier phase left there is not this drain's work; its own events are.
  await settings.broker.purgeQueue(topologyNames(settings.prefix).webhooksQueue);
  const server = await startRole(settings, 'server', {});
  try {
    const poster = httpPoster(`${server.url}/emails`, BODY, 64, 202, undefined, AUTHORIZATION);
    const result = await runLoad(poster.op, { concurrency: 64, requests: n, warmup: 0 }).finally(
      poster.close,
    );
    pre.push({ target: `\`email server\` POST /emails (recording), ${what}`, result });
    return n - result.errorCount;
  } finally {
    // Before the worker starts: a server left running would hear the worker's events.
    await stop(server.proc);
  }
}

/** N rows in `bare_deliveries` and N tasks naming them on the bare queue. */
async function recordBare(settings: Settings, pre: PrePublish[], n: number, what: string) {
  const queue = `${settings.prefix}.bare.mailgun`;
  await settings.broker.quorumQueue(queue);
  const ids = Array.from({ length: n }, () => randomBytes(16).toString('base64url'));
  const client = new pg.Client({ connectionString: settings.database.url });
  await client.connect();
  try {
    await client.query(BARE_DELIVERIES);
    await client.query(
      `INSERT INTO bare_deliveries (id, status, updated_at, request)
       SELECT id, 'queued', now(), $2::jsonb FROM unnest($1::text[]) AS id`,
      [ids, JSON.stringify(DRAFT)],
    );
  } finally {
    await client.end();
  }
  let next = 0;
  const op = settings.broker.publishTo(queue, () => ids[next++]!);
  const result = await runLoad(op, { concurrency: 64, requests: n, warmup: 0 });
  pre.push({ target: `bare confirm publish (INSERTed first), ${what}`, result });
  return { queue, n: n - result.errorCount };
}

const metering = (settings: Settings, host: Child, procs: readonly Child[]): Pids => ({
  target: procs[0]!.pid,
  ...Object.fromEntries(procs.slice(1).map((p, i) => [`target${i + 2}`, p.pid])),
  broker: settings.brokerPid,
  postgres: settings.database.cpu,
  standin: host.pid,
});

/** Peak RSS of the deliverers, and their RSS at the end. */
async function memories(procs: readonly Child[]) {
  const all = await Promise.all(procs.map((p) => memoryMiB(p.pid)));
  return {
    rssMiB: Math.max(...all.map((m) => m.rss)),
    hwmMiB: Math.max(...all.map((m) => m.hwm)),
  };
}

/** What one drain delivers: `warm` unmeasured, then `n` measured (see `Settings.warmN`). */
interface Drain {
  readonly n: number;
  readonly warm: number;
  readonly path: string;
  readonly latencyMs: number;
}

async function drainOurs(
  settings: Settings,
  host: Child,
  pre: PrePublish[],
  o: Drain & { workers: number },
): Promise<DeliveryRow> {
  await reset(host, o.latencyMs);
  const n = (await record(settings, pre, o.warm + o.n, o.path)) - o.warm;
  await settings.database.settle();
  const baseUrl = standInUrl(host);
  const since = performance.now();
  const env = {
    MAIL_TRANSPORT: 'mailgun',
    MAILGUN_API_KEY: KEY,
    MAILGUN_API_BASE: baseUrl,
    MAIL_FROM: FROM,
    WORKER_CONCURRENCY: String(CONCURRENCY),
  };
  const workers: Child[] = [];
  try {
    const started = await Promise.all(
      Array.from({ length: o.workers }, () => startRole(settings, 'worker', env)),
    );
    workers.push(...started.map((r) => r.proc));
    const pids = metering(settings, host, workers);
    const total = o.warm + n;
    const timing = await timeUntil(
      () => ask(host, 'count'),
      total,
      since,
      pids,
      workers[0],
      o.warm,
    );
    return {
      path: o.path,
      n,
      ...(o.warm > 0 ? { warm: o.warm } : {}),
      from: 'spawn',
      timing,
      ...(await memories(workers)),
      ...(await latencyFields(host, CONCURRENCY * o.workers, o.latencyMs)),
    };
  } finally {
    for (const w of workers) await stop(w);
  }
}

async function drainBare(
  settings: Settings,
  host: Child,
  pre: PrePublish[],
  o: Drain,
): Promise<DeliveryRow> {
  await reset(host, o.latencyMs);
  const recorded = await recordBare(settings, pre, o.warm + o.n, o.path);
  const { queue } = recorded;
  const n = recorded.n - o.warm;
  await settings.database.settle();
  const baseUrl = standInUrl(host);
  const since = performance.now();
  const args = [BASELINES, 'mailgun-consume', settings.amqpUrl, queue, settings.database.url];
  args.push(baseUrl, KEY, FROM, DRAFT.to[0]!, String(CONCURRENCY));
  const consumer = spawnNode('bare mailgun consumer', args, {});
  try {
    await firstLine(consumer);
    const pids = metering(settings, host, [consumer]);
    const total = o.warm + n;
    const timing = await timeUntil(() => ask(host, 'count'), total, since, pids, consumer, o.warm);
    return {
      path: o.path,
      n,
      ...(o.warm > 0 ? { warm: o.warm } : {}),
      from: 'spawn',
      timing,
      ...(await memories([consumer])),
      ...(await latencyFields(host, CONCURRENCY, o.latencyMs)),
    };
  } finally {
    await stop(consumer);
  }
}

/** Sends to a fresh stand-in before the first drain: 2,000 still left the first drain cold. */
export const STAND_IN_WARMUP = 5000;

/**
 * Sends `count` messages straight to the stand-in (the form our sender posts, CONCURRENCY at a
 * time), then empties it. A stand-in fresh from its start spends the first thousand sends or so
 * warming up (V8 tiering its code up): about three times the CPU per email of a warm one, on the
 * two cores the drain shares. Without this, the first drain of the run (ours) paid for it alone.
 */
async function warmStandIn(host: Child, count: number): Promise<void> {
  const baseUrl = standInUrl(host);
  const form = mailgunForm(FROM, DRAFT.to[0]!, DRAFT.subject, DRAFT.text, 'bench-warm-up');
  const poster = httpPoster(
    `${baseUrl}/messages`,
    Buffer.from(form.toString()),
    CONCURRENCY,
    200,
    () => ({ 'content-type': 'application/x-www-form-urlencoded' }),
    { authorization: mailgunAuthorization(KEY) },
  );
  const result = await runLoad(poster.op, {
    concurrency: CONCURRENCY,
    requests: count,
    warmup: 0,
  }).finally(poster.close);
  if (result.errorCount > 0) {
    throw new Error(`the stand-in refused warm-up sends: ${JSON.stringify(result.errors)}`);
  }
  await ask(host, 'clear');
}

export async function mailgunPath(settings: Settings): Promise<MailgunResults> {
  const host = spawnNode('mailgun stand-in', [BASELINES, 'mailgun', KEY, DOMAIN], {}, true);
  const pre: PrePublish[] = [];
  try {
    await firstLine(host);
    await warmStandIn(host, settings.smoke ? 20 : STAND_IN_WARMUP);
    const { mailgunN: n, latencyN, rounds, warmN: warm } = settings;
    // Ours, bare, bare, ours, …: whatever drifts during the run falls on both alike.
    const rows: DeliveryRow[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      const order = round % 2 === 1 ? ['ours', 'bare'] : ['bare', 'ours'];
      for (const side of order) {
        if (side === 'ours') {
          const path = `${WORKER_MAILGUN}, round ${round}`;
          const o = { n, warm, path, workers: 1, latencyMs: 0 };
          rows.push(await drainOurs(settings, host, pre, o));
        } else {
          const path = `${BARE_MAILGUN}, round ${round}`;
          rows.push(await drainBare(settings, host, pre, { n, warm, path, latencyMs: 0 }));
        }
        console.error(`  ${rows[rows.length - 1]!.path}`);
      }
    }

    const latency = [
      // Unwarmed: waiting on the provider, a deliverer's CPU is not what limits it.
      await drainOurs(settings, host, pre, {
        n: latencyN,
        warm: 0,
        path: `${WORKER_MAILGUN}${SLOW}`,
        workers: 1,
        latencyMs: LATENCY_MS,
      }),
      await drainBare(settings, host, pre, {
        n: latencyN,
        warm: 0,
        path: `${BARE_MAILGUN}${SLOW}`,
        latencyMs: LATENCY_MS,
      }),
    ];
    console.error(`  ${LATENCY_MS} ms latency: done`);

    // One worker, two, two, one, …: the same N each time, from a queue recorded beforehand.
    const scale: DeliveryRow[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      for (const workers of round % 2 === 1 ? [1, 2] : [2, 1]) {
        const path = `${workers === 1 ? ONE_WORKER : TWO_WORKERS}, round ${round}`;
        // Each worker warm: two share the warm-up deliveries, so twice as many.
        const o = { n, warm: warm * workers, path, workers, latencyMs: 0 };
        scale.push(await drainOurs(settings, host, pre, o));
      }
    }
    console.error('  scale-out: done');

    // At the provider's latency: one worker, then two (the cores idle most of the time here).
    const scaleLatency: DeliveryRow[] = [];
    for (const workers of [1, 2]) {
      const path = `${workers === 1 ? ONE_WORKER : TWO_WORKERS}${SLOW}`;
      const o = { n: latencyN / 2, warm: 0, path, workers, latencyMs: LATENCY_MS };
      scaleLatency.push(await drainOurs(settings, host, pre, o));
    }
    console.error(`  scale-out at ${LATENCY_MS} ms latency: done`);
    return { rows, latency, scale, scaleLatency, pre };
  } finally {
    await stop(host);
  }
}
