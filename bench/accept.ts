// Phase 1, the accept path: POST /emails (or the bare equivalent) at each concurrency, our
// roles next to the bare floors they are built on.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { topologyNames } from '../src/adapters/rabbitmq/topology.js';
import { BODY } from './clients.js';
import type { Block, LoadResult, Operation } from './load.js';
import { httpPoster, measure, measureBlock, summarize, warm } from './load.js';
import type { CpuMs, Pids } from './meter.js';
import { countEml, cpuMsPer, cpuSeconds, machineCpu, memoryMiB } from './meter.js';
import type { Child } from './procs.js';
import { BASELINES, firstLine, sleep, spawnNode, stop, waitFor } from './procs.js';
import { parse } from './broker-counters.js';
import type { Role, Settings } from './roles.js';
import { AUTHORIZATION, outbox, startRole } from './roles.js';

/** Row names, by the prefix the report finds them with. */
export const SERVER_ALONE = '`email server` → PostgreSQL + RabbitMQ, no consumer';
export const SERVER_KEY = '`email server` with a new Idempotency-Key each, no consumer';
/**
 * WRITE_BEHIND_MS of the server compared with the bare server without a database: its rows are
 * written after the 202s, those of each 20 ms in one INSERT.
 */
export const WRITE_BEHIND_MS = 20;
export const SERVER_BEHIND = `\`email server\` with WRITE_BEHIND_MS=${WRITE_BEHIND_MS} → RabbitMQ, its rows after the 202, no consumer`;
export const SERVER_WORKER = '`email server` → PostgreSQL + RabbitMQ, `email worker` draining';
export const HTTP_PUB = 'bare node:http + confirmed publish';
export const KOA = 'bare Koa + koa-body + confirmed publish';
export const KOA_DB = 'bare Koa + koa-body + INSERT + confirmed publish';
export const DEV = '`email dev` (embedded PostgreSQL, outbox)';
export const ONE_SERVER = 'scale-out: one `email server`, no consumer';
export const TWO_SERVERS = 'scale-out: two `email server`s, the requests alternating, no consumer';

/** The one concurrency the Idempotency-Key rows run at. */
export const KEYED_CONCURRENCY = 16;

export interface AcceptRow {
  readonly target: string;
  readonly result: LoadResult;
  /** CPU ms per measured request: `target` (what answers), `worker`, `broker` (RabbitMQ). */
  readonly cpuMs: CpuMs;
  /** RSS of the process that answered, after the run; undefined when that is the bench itself. */
  readonly rssMiB: number | undefined;
  /** Its peak RSS so far (`VmHWM`): warm-up and every earlier row of the process included. */
  readonly hwmMiB?: number;
  /** For `email server`: the RSS of the worker that drained its queue meanwhile. */
  readonly workerRssMiB?: number;
}

interface Target {
  readonly name: string;
  readonly makeOp: (concurrency: number) => { op: Operation; close(): void };
  /** The process that answers; the bench itself for the in-process baseline. */
  readonly pid: number;
  readonly workerPid?: number;
  /** More processes that answer (a second server): metered as `target2`, … */
  readonly more?: readonly number[];
  /**
   * Runs after the warm-up and after the measured requests: for our roles it waits until every
   * accepted email is delivered, so that the measured requests neither inherit a backlog nor
   * leave theirs uncounted (CPU is read after it), and RSS is read once all is done.
   */
  readonly settle?: (accepted: number) => Promise<void>;
  /** Run at these concurrencies only (default: all of the settings'). */
  readonly concurrencies?: readonly number[];
  /** Fewer requests than the settings' for a slow target (`email dev`): {warmup, requests}. */
  readonly counts?: { readonly warmup: number; readonly requests: number };
}

/** `rest`: the machine's CPU that none of the metered processes used. */
function withRest(ms: CpuMs): CpuMs {
  const ours = ['target', 'target2', 'worker', 'broker', 'postgres', 'bench'];
  const sum = (suffix: string) => ours.reduce((a, role) => a + (ms[`${role}${suffix}`] ?? 0), 0);
  const machine = ms.machine ?? 0;
  const user = ms['machine.user'] ?? 0;
  return { ...ms, rest: machine - sum(''), 'rest.user': user - sum('.user') };
}

const metered = (settings: Settings, target: Target): Pids => ({
  target: target.pid,
  ...Object.fromEntries((target.more ?? []).map((pid, i) => [`target${i + 2}`, pid])),
  worker: target.workerPid,
  broker: settings.brokerPid,
  postgres: settings.database.cpu,
  // The load generator, unless it is the target already; and the whole machine, so that what
  // none of these used (kernel threads, other work on the machine) shows as the rest.
  bench: target.pid === process.pid ? undefined : process.pid,
  machine: machineCpu,
});

/**
 * Resolves once `role` (a server) holds no accepted email unwritten: its /metrics say
 * `email_log_write_behind_pending` 0. Polls every 5 ms, for at most 10 s.
 */
const writtenBehind = (role: Role): Promise<true> =>
  waitFor(
    async () => {
      const samples = parse(await (await fetch(`${role.url}/metrics`)).text());
      const pending = samples.find((m) => m.name === 'email_log_write_behind_pending');
      return pending?.value === 0 ? true : undefined;
    },
    10_000,
    'the rows it holds written',
    role.proc,
    5,
  );

/** Blocks the measured requests of interleaved targets are cut into. */
export const BLOCKS = 5;

/**
 * Targets compared with each other, all running at once and measured in turns: after each one's
 * warm-up, its measured requests are cut into BLOCKS blocks, taken A B C, C B A, A B C, …, so
 * that other work on this shared machine falls on all of them alike rather than on whichever
 * happened to run at the time. Each target's rate is its requests over its measuring time.
 * `settle` runs after the warm-up and after each block (a purge: none of these has a consumer).
 */
async function interleaved(
  settings: Settings,
  targets: readonly Target[],
  concurrencies = settings.concurrencies,
): Promise<AcceptRow[]> {
  if (settings.requests % BLOCKS !== 0) throw new Error(`requests must divide by ${BLOCKS}`);
  const rows: AcceptRow[][] = targets.map(() => []);
  for (const concurrency of concurrencies) {
    const options = { concurrency, requests: settings.requests / BLOCKS, warmup: settings.warmup };
    const turns: {
      target: Target;
      op: Operation;
      close(): void;
      warmupErrors: number;
      blocks: Block[];
      seconds: Record<string, number>;
    }[] = [];
    try {
      for (const target of targets) {
        const { op, close } = target.makeOp(concurrency);
        turns.push({ target, op, close, warmupErrors: 0, blocks: [], seconds: {} });
        turns[turns.length - 1]!.warmupErrors = await warm(op, options);
        await target.settle?.(0);
      }
      for (let block = 0; block < BLOCKS; block += 1) {
        for (const turn of block % 2 === 0 ? turns : [...turns].reverse()) {
          const pids = metered(settings, turn.target);
          const before = await cpuSeconds(pids);
          turn.blocks.push(await measureBlock(turn.op, options));
          await turn.target.settle?.(0);
          for (const [role, s] of Object.entries(await cpuSeconds(pids))) {
            turn.seconds[role] = (turn.seconds[role] ?? 0) + s - (before[role] ?? s);
          }
        }
      }
    } finally {
      for (const turn of turns) turn.close();
    }
    for (const [i, turn] of turns.entries()) {
      const result = summarize(turn.blocks, concurrency, turn.warmupErrors);
      const perRequest = Object.entries(turn.seconds).map(([role, seconds]) => [
        role,
        (seconds * 1000) / result.requests,
      ]);
      const cpuMs = withRest(Object.fromEntries(perRequest) as CpuMs);
      const memory = await memoryMiB(turn.target.pid);
      rows[i]!.push({
        target: turn.target.name,
        result,
        cpuMs,
        rssMiB: memory.rss,
        hwmMiB: memory.hwm,
      });
      console.error(
        `  ${turn.target.name}, ${concurrency} in flight: ${result.perSecond.toFixed(0)}/s`,
      );
    }
  }
  return rows.flat();
}

async function series(settings: Settings, target: Target): Promise<AcceptRow[]> {
  const rows: AcceptRow[] = [];
  const pids = metered(settings, target);
  let accepted = 0;
  for (const concurrency of target.concurrencies ?? settings.concurrencies) {
    const { op, close } = target.makeOp(concurrency);
    const { warmup, requests } = target.counts ?? settings;
    const options = { concurrency, requests, warmup };
    const warmupErrors = await warm(op, options);
    accepted += warmup - warmupErrors;
    await target.settle?.(accepted);
    // From here until the last measured email is delivered, all CPU is these requests' cost.
    const before = await cpuSeconds(pids);
    const result = await measure(op, options, warmupErrors).finally(close);
    accepted += requests - result.errorCount;
    await target.settle?.(accepted);
    const cpuMs = withRest(cpuMsPer(before, await cpuSeconds(pids), requests));
    const memory = target.pid === process.pid ? undefined : await memoryMiB(target.pid);
    rows.push({
      target: target.name,
      result,
      cpuMs,
      rssMiB: memory?.rss,
      ...(memory ? { hwmMiB: memory.hwm } : {}),
    });
    console.error(`  ${target.name}, ${concurrency} in flight: ${result.perSecond.toFixed(0)}/s`);
  }
  return rows;
}

/** POSTs with the run's API key (the bare servers ignore it: they get the same bytes). */
const poster = (url: string) => (concurrency: number) =>
  httpPoster(url, BODY, concurrency, 202, undefined, AUTHORIZATION);

/** The requests of one load alternate between two servers. */
const split = (a: string, b: string) => (concurrency: number) => {
  const [one, two] = [poster(a)(concurrency), poster(b)(concurrency)];
  let turn = 0;
  const op: Operation = () => ((turn += 1) % 2 === 0 ? one.op() : two.op());
  return {
    op,
    close() {
      one.close();
      two.close();
    },
  };
};

/** How long a backlog may go without a single delivery before the run gives up. */
const STALL_MS = 30_000;

/**
 * Every accepted email has become a `.eml` file in `dir`. A backlog of thousands takes a while on
 * a busy machine, so the wait lasts as long as files keep coming, and fails after STALL_MS
 * without one (the watchdog bounds the whole run).
 */
const drained = (dir: string, proc: Child) => async (accepted: number) => {
  let seen = -1;
  let since = performance.now();
  for (;;) {
    const exited = proc.child.exitCode ?? proc.child.signalCode;
    if (exited !== null) throw new Error(`${proc.name} exited (${exited}):\n${proc.output()}`);
    const count = await countEml(dir);
    if (count >= accepted) return;
    if (count !== seen) {
      seen = count;
      since = performance.now();
    } else if (performance.now() - since > STALL_MS) {
      const tail = `${proc.name} printed:\n${proc.output()}`;
      throw new Error(`${count} of ${accepted} emails in ${dir}, none for ${STALL_MS} ms; ${tail}`);
    }
    await sleep(50);
  }
};

export async function acceptPath(settings: Settings): Promise<AcceptRow[]> {
  const rows: AcceptRow[] = [];
  const bareQueue = `${settings.prefix}.bare.accept`;
  // Emptied after each run, as the worker empties ours: a backlog is not what is measured.
  const purge = (): Promise<void> => settings.broker.quorumQueue(bareQueue);
  await purge();

  const bare = spawnNode('bare http', [BASELINES, 'http'], {});
  const bareUrl = String((await firstLine(bare)).url);
  const name = 'bare node:http + JSON.parse → 202';
  rows.push(...(await series(settings, { name, makeOp: poster(bareUrl), pid: bare.pid })));
  await stop(bare);

  const dir = outbox(settings, 'accept-dev');
  const dev = await startRole(settings, 'dev', { MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: dir });
  rows.push(
    ...(await series(settings, {
      name: DEV,
      // A few hundred a second at best, its deliveries included: the settings' counts would take
      // minutes, for a row that only has its memory judged.
      counts: {
        warmup: Math.min(settings.warmup, 1000),
        requests: Math.min(settings.requests, 1000),
      },
      makeOp: poster(`${dev.url}/emails`),
      pid: dev.proc.pid,
      settle: drained(dir, dev.proc),
    })),
  );
  await stop(dev.proc);

  rows.push(
    ...(await series(settings, {
      name: 'bare amqplib confirm publish (no HTTP, in the bench process)',
      makeOp: () => ({ op: settings.broker.publishTo(bareQueue), close: () => undefined }),
      pid: process.pid,
      settle: purge,
    })),
  );

  const args = [BASELINES, 'http', settings.amqpUrl, bareQueue];
  const barePub = spawnNode('bare http+publish', args, {});
  const barePubUrl = String((await firstLine(barePub)).url);
  rows.push(
    ...(await series(settings, {
      name: `${HTTP_PUB} → 202`,
      makeOp: poster(barePubUrl),
      pid: barePub.pid,
      settle: purge,
    })),
  );
  await stop(barePub);

  // The comparison of the headline, interleaved: Koa + koa-body + confirmed publish without and
  // with one INSERT (what the database alone adds), and `email server` doing the same durable
  // work, with nothing consuming its send queue (emptied like the bare queue). Then the server
  // with an Idempotency-Key, then with a worker draining the queue meanwhile, as the rows before
  // the database were measured.
  const koaArgs = [BASELINES, 'koa', settings.amqpUrl, bareQueue];
  const koa = spawnNode(KOA, koaArgs, {});
  const koaDb = spawnNode(KOA_DB, [...koaArgs, settings.database.url], {});
  let server: Role | undefined;
  let behind: Role | undefined;
  let worker: Role | undefined;
  let second: Role | undefined;
  try {
    const koaUrl = String((await firstLine(koa)).url);
    const koaDbUrl = String((await firstLine(koaDb)).url);
    server = await startRole(settings, 'server', {});
    behind = await startRole(settings, 'server', { WRITE_BEHIND_MS: String(WRITE_BEHIND_MS) });
    const writingBehind = behind;
    // With no worker, the tasks and the events the webhooks queue hears (`requested`) pile up:
    // both are emptied, or a worker started later would inherit the backlog.
    const { sendQueue, webhooksQueue } = topologyNames(settings.prefix);
    const purgeOurs = async () => {
      await settings.broker.purgeQueue(sendQueue);
      await settings.broker.purgeQueue(webhooksQueue);
    };
    const alone = { pid: server.proc.pid, settle: purgeOurs };
    const url = `${server.url}/emails`;
    rows.push(
      ...(await interleaved(settings, [
        { name: `${KOA} → 202`, makeOp: poster(koaUrl), pid: koa.pid, settle: purge },
        { name: `${KOA_DB} → 202`, makeOp: poster(koaDbUrl), pid: koaDb.pid, settle: purge },
        { name: SERVER_ALONE, makeOp: poster(url), ...alone },
        {
          name: SERVER_BEHIND,
          makeOp: poster(`${writingBehind.url}/emails`),
          pid: behind.proc.pid,
          // Its rows are written once its block is over: their CPU is counted in the block.
          settle: async () => {
            await writtenBehind(writingBehind);
            await purgeOurs();
          },
        },
      ])),
    );
    await stop(koa);
    await stop(koaDb);
    await stop(behind.proc);

    const withKey = (concurrency: number) =>
      httpPoster(
        url,
        BODY,
        concurrency,
        202,
        () => ({ 'Idempotency-Key': randomBytes(12).toString('base64url') }),
        AUTHORIZATION,
      );
    // At the lower concurrency only: it shows what the two extra statements cost per request,
    // and the run stays short.
    const keyed = { name: SERVER_KEY, makeOp: withKey, concurrencies: [KEYED_CONCURRENCY] };
    rows.push(...(await series(settings, { ...keyed, ...alone })));

    const serverDir = outbox(settings, 'accept-server');
    worker = await startRole(settings, 'worker', {
      MAIL_TRANSPORT: 'outbox',
      OUTBOX_DIR: serverDir,
    });
    const serverRows = await series(settings, {
      name: SERVER_WORKER,
      makeOp: poster(url),
      pid: server.proc.pid,
      workerPid: worker.proc.pid,
      settle: drained(serverDir, worker.proc),
    });
    const workerRss = (await memoryMiB(worker.proc.pid)).rss;
    rows.push(...serverRows.map((row) => ({ ...row, workerRssMiB: workerRss })));
    await stop(worker.proc);

    // Scale-out: one server against two sharing the load (the same broker and database), at the
    // highest concurrency, interleaved like the comparison above.
    second = await startRole(settings, 'server', {});
    const top = [settings.concurrencies[settings.concurrencies.length - 1]!];
    // The first server has served every row above; the second alone gets as many requests
    // first, or it would be the colder of the two, its JIT still compiling while measured. With
    // only a row's warm-up (2000 requests, as it then was) it used a quarter more CPU per
    // request than the first in the split, and with as many as the first had served, the same.
    const served = rows.filter(
      (row) => row.target.startsWith('`email server`') && !row.target.startsWith(SERVER_BEHIND),
    ).length;
    const warmSecond = poster(`${second.url}/emails`)(top[0]!);
    for (let row = 0; row < Math.max(1, served); row += 1) {
      const warmup = settings.warmup + settings.requests;
      await warm(warmSecond.op, { concurrency: top[0]!, requests: 0, warmup });
      await purgeOurs(); // a backlog of tens of thousands of tasks would weigh on the broker
    }
    warmSecond.close();
    rows.push(
      ...(await interleaved(
        settings,
        [
          { name: ONE_SERVER, makeOp: poster(url), ...alone },
          {
            name: TWO_SERVERS,
            makeOp: split(url, `${second.url}/emails`),
            ...alone,
            more: [second.proc.pid],
          },
        ],
        top,
      )),
    );
  } finally {
    await stop(koa);
    await stop(koaDb);
    if (server) await stop(server.proc);
    if (behind) await stop(behind.proc);
    if (second) await stop(second.proc);
    if (worker) await stop(worker.proc);
  }
  return rows;
}
