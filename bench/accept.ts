// Phase 1, the accept path: POST /emails (or the bare equivalent) at each concurrency, our
// roles next to the bare floors they are built on.
import { BODY } from './clients.js';
import type { LoadResult, Operation } from './load.js';
import { httpPoster, measure, warm } from './load.js';
import type { CpuMs, Pids } from './meter.js';
import { countEml, cpuMsPer, cpuSeconds, rssMiB } from './meter.js';
import type { Child } from './procs.js';
import { BASELINES, firstLine, spawnNode, stop, waitFor } from './procs.js';
import type { Settings } from './roles.js';
import { outbox, startRole } from './roles.js';

export interface AcceptRow {
  readonly target: string;
  readonly result: LoadResult;
  /** CPU ms per measured request: `target` (what answers), `worker`, `broker` (RabbitMQ). */
  readonly cpuMs: CpuMs;
  /** RSS of the process that answered, after the run; undefined when that is the bench itself. */
  readonly rssMiB: number | undefined;
  /** For `email server`: the RSS of the worker that drained its queue meanwhile. */
  readonly workerRssMiB?: number;
}

interface Target {
  readonly name: string;
  readonly makeOp: (concurrency: number) => { op: Operation; close(): void };
  /** The process that answers; the bench itself for the in-process baseline. */
  readonly pid: number;
  readonly workerPid?: number;
  /**
   * Runs after the warm-up and after the measured requests: for our roles it waits until every
   * accepted email is delivered, so that the measured requests neither inherit a backlog nor
   * leave theirs uncounted (CPU is read after it), and RSS is read once all is done.
   */
  readonly settle?: (accepted: number) => Promise<void>;
}

async function series(settings: Settings, target: Target): Promise<AcceptRow[]> {
  const rows: AcceptRow[] = [];
  const pids: Pids = { target: target.pid, worker: target.workerPid, broker: settings.brokerPid };
  let accepted = 0;
  for (const concurrency of settings.concurrencies) {
    const { op, close } = target.makeOp(concurrency);
    const options = { concurrency, requests: settings.requests, warmup: settings.warmup };
    const warmupErrors = await warm(op, options);
    accepted += settings.warmup - warmupErrors;
    await target.settle?.(accepted);
    // From here until the last measured email is delivered, all CPU is these requests' cost.
    const before = await cpuSeconds(pids);
    const result = await measure(op, options, warmupErrors).finally(close);
    accepted += settings.requests - result.errorCount;
    await target.settle?.(accepted);
    const cpuMs = cpuMsPer(before, await cpuSeconds(pids), settings.requests);
    const rss = target.pid === process.pid ? undefined : await rssMiB(target.pid);
    rows.push({ target: target.name, result, cpuMs, rssMiB: rss });
    console.error(`  ${target.name}, ${concurrency} in flight: ${result.perSecond.toFixed(0)}/s`);
  }
  return rows;
}

const poster = (url: string) => (concurrency: number) => httpPoster(url, BODY, concurrency);

/** Every accepted email has become a `.eml` file in `dir`. */
const drained = (dir: string, proc: Child) => (accepted: number) =>
  waitFor(
    async () => ((await countEml(dir)) >= accepted ? true : undefined),
    60_000,
    `${accepted} emails in ${dir}`,
    proc,
    50,
  ).then(() => undefined);

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
      name: '`email dev` (in-memory queue, outbox)',
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
      name: 'bare node:http + confirmed publish → 202',
      makeOp: poster(barePubUrl),
      pid: barePub.pid,
      settle: purge,
    })),
  );
  await stop(barePub);

  const serverDir = outbox(settings, 'accept-server');
  const worker = await startRole(settings, 'worker', {
    MAIL_TRANSPORT: 'outbox',
    OUTBOX_DIR: serverDir,
  });
  const server = await startRole(settings, 'server', {});
  try {
    const serverRows = await series(settings, {
      name: '`email server` → RabbitMQ (+ `email worker` draining)',
      makeOp: poster(`${server.url}/emails`),
      pid: server.proc.pid,
      workerPid: worker.proc.pid,
      settle: drained(serverDir, worker.proc),
    });
    const workerRss = await rssMiB(worker.proc.pid);
    rows.push(...serverRows.map((row) => ({ ...row, workerRssMiB: workerRss })));
  } finally {
    await stop(server.proc);
    await stop(worker.proc);
  }
  return rows;
}
