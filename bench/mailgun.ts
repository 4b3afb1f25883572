// Phase 3, the Mailgun path: `email worker` with MAIL_TRANSPORT=mailgun draining N tasks into
// the project's Mailgun stand-in (no latency, no faults), against a bare node-fetch POST loop
// to the same stand-in. The stand-in runs in a child of its own so that neither side shares an
// event loop with it; it reports how many messages it holds over IPC.
import { performance } from 'node:perf_hooks';
import { bareMailgunClient, projectPublisher } from './clients.js';
import { runLoad } from './load.js';
import { cpuMsPer, cpuSeconds, rssMiB, timeUntil } from './meter.js';
import type { Child } from './procs.js';
import { BASELINES, firstLine, spawnNode, stop } from './procs.js';
import type { DeliveryRow } from './delivery.js';
import type { Settings } from './roles.js';
import { RETRY_DELAYS_MS, startRole } from './roles.js';

const KEY = 'key-bench-0123456789abcdef';
const DOMAIN = 'mg.bench.example.org';
const FROM = `Bench <noreply@${DOMAIN}>`;

/** Asks the stand-in host how many messages it holds ('clear' empties it first). */
function ask(host: Child, message: 'count' | 'clear'): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stand-in did not answer')), 5000);
    host.child.once('message', (reply: { count: number }) => {
      clearTimeout(timer);
      resolve(reply.count);
    });
    host.child.send(message);
  });
}

export async function mailgunPath(settings: Settings): Promise<DeliveryRow[]> {
  const host = spawnNode('mailgun stand-in', [BASELINES, 'mailgun', KEY, DOMAIN], {}, true);
  try {
    const baseUrl = String((await firstLine(host)).url);
    const publisher = await projectPublisher(settings.amqpUrl, settings.prefix, RETRY_DELAYS_MS);
    const pre = await runLoad(publisher.op, {
      concurrency: 64,
      requests: settings.n,
      warmup: 0,
    }).finally(publisher.close);
    const n = settings.n - pre.errorCount;

    const since = performance.now();
    const worker = await startRole(settings, 'worker', {
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_KEY: KEY,
      MAILGUN_API_BASE: baseUrl,
      MAIL_FROM: FROM,
    });
    let ours: DeliveryRow;
    try {
      const pids = {
        target: worker.proc.pid,
        broker: settings.brokerPid,
        postgres: settings.database.cpu,
      };
      const timing = await timeUntil(() => ask(host, 'count'), n, since, pids, worker.proc);
      const rss = await rssMiB(worker.proc.pid);
      ours = { path: '`email worker`, mailgun → stand-in', n, from: 'spawn', timing, rssMiB: rss };
    } finally {
      await stop(worker.proc);
    }

    // The same form, 32 requests in flight like WORKER_CONCURRENCY's default, nothing else.
    await ask(host, 'clear');
    const client = bareMailgunClient(baseUrl, KEY, FROM);
    // The bench process does nothing else meanwhile: its CPU is the client's.
    const self = { target: process.pid };
    const cpuBefore = await cpuSeconds(self);
    const started = performance.now();
    let firstMs: number | undefined;
    const op = async (): Promise<string | null> => {
      const error = await client.op();
      if (error === null) firstMs ??= performance.now() - started;
      return error;
    };
    const result = await runLoad(op, { concurrency: 32, requests: settings.n, warmup: 0 });
    const lastMs = performance.now() - started;
    const cpuMs = cpuMsPer(cpuBefore, await cpuSeconds(self), settings.n);
    client.close();
    const bare: DeliveryRow = {
      path: 'bare node-fetch POST loop → stand-in (32 in flight)',
      n: settings.n - result.errorCount,
      from: 'first POST',
      timing: { firstMs: firstMs ?? lastMs, lastMs, cpuMs },
      rssMiB: undefined,
    };
    if ((await ask(host, 'count')) !== bare.n) throw new Error('the stand-in missed messages');
    return [ours, bare];
  } finally {
    await stop(host);
  }
}
