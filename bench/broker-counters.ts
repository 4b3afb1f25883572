// What the broker did, read from RabbitMQ's Prometheus plugin (rabbitmq_prometheus, port
// 15692): message counters, and the broker's CPU time when it runs on this machine. Read before
// and after N emails, they say how much broker work one email costs.
import { readdir, readFile } from 'node:fs/promises';

/** Where the plugin answers (`rabbitmq-plugins enable rabbitmq_prometheus`). */
export const DEFAULT_METRICS_URL = 'http://127.0.0.1:15692';

export interface BrokerCounterOptions {
  /** The plugin's base URL (default DEFAULT_METRICS_URL). */
  readonly metricsUrl?: string;
  /**
   * A QUEUE_PREFIX: adds `prefix.*` counters from `/metrics/detailed`, summed over the channels
   * open now and the exchanges and queues named `<prefix>.…`, so that other users of a shared
   * broker do not count. A closed channel's counts leave with it: read while the roles run.
   * Publishes through the default exchange (webhook jobs) have no prefix and are not in them.
   */
  readonly prefix?: string;
  /** The broker's pid for `cpu_ms`; default: the oldest `beam.smp` in /proc, if any. */
  readonly brokerPid?: number;
}

/** `rabbitmq_global_messages_<name>_total` → the key it is read into. */
const GLOBAL: Readonly<Record<string, string>> = {
  received: 'received',
  routed: 'routed',
  unroutable_dropped: 'unroutable_dropped',
  unroutable_returned: 'unroutable_returned',
  delivered: 'delivered',
  acknowledged: 'acknowledged',
  confirmed: 'confirmed',
  redelivered: 'redelivered',
  dead_lettered_expired: 'dead_lettered_expired',
};

/** `rabbitmq_detailed_channel_messages_<name>_total` → the key it is read into (per prefix). */
const DETAILED: Readonly<Record<string, string>> = {
  published: 'prefix.published',
  unroutable_dropped: 'prefix.unroutable_dropped',
  delivered: 'prefix.delivered_no_ack',
  delivered_ack: 'prefix.delivered_ack',
  acked: 'prefix.acked',
};

const LINE = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+)$/;

/** The samples of a Prometheus text exposition: name, labels and value of each line. */
export function parse(
  text: string,
): { name: string; labels: Map<string, string>; value: number }[] {
  const out: { name: string; labels: Map<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const match = LINE.exec(line);
    if (!match) continue;
    const labels = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) {
      labels.set(pair[1] ?? '', pair[2] ?? '');
    }
    out.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return out;
}

async function get(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}: is rabbitmq_prometheus enabled?`);
  return res.text();
}

/**
 * The broker's `beam.smp`: the one started first, since `rabbitmqctl` and `rabbitmq-plugins` run
 * a short-lived `beam.smp` of their own while they work.
 */
async function findBeam(): Promise<number | undefined> {
  let oldest: { pid: number; start: number } | undefined;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
    if (comm.trim() !== 'beam.smp') continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => undefined);
    // starttime is field 22 of stat(5); 20 once pid and comm are cut.
    const start = Number(stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    if (!Number.isFinite(start)) continue;
    if (oldest === undefined || start < oldest.start) oldest = { pid: Number(entry), start };
  }
  return oldest?.pid;
}

/** User + system CPU of `pid` in ms (USER_HZ is 100 on Linux). */
async function cpuMs(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5); 12 and 13 once pid and comm are cut.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The broker's counters now, summed over their labels: `received`, `routed`,
 * `unroutable_dropped`, `delivered`, `acknowledged`, `confirmed`… (RabbitMQ's global counters,
 * for every user of the broker), `prefix.*` with `options.prefix` (see BrokerCounterOptions),
 * and `cpu_ms`, the broker's user + system CPU time, when its process is found on this machine.
 * The global counters need RabbitMQ 3.10 or later; on a shared broker they also count its other
 * users' work, so read them when it is otherwise quiet, or rely on `prefix.*`.
 */
export async function readBrokerCounters(
  options: BrokerCounterOptions = {},
): Promise<Record<string, number>> {
  const base = options.metricsUrl ?? DEFAULT_METRICS_URL;
  const out: Record<string, number> = {};
  const add = (key: string, value: number): void => {
    out[key] = (out[key] ?? 0) + value;
  };
  for (const { name, value } of parse(await get(`${base}/metrics`))) {
    const key = /^rabbitmq_global_messages_(.+)_total$/.exec(name)?.[1];
    const into = key === undefined ? undefined : GLOBAL[key];
    if (into !== undefined) add(into, value);
  }
  if (options.prefix !== undefined) {
    const own = (name: string | undefined): boolean =>
      name !== undefined && name.startsWith(`${options.prefix}.`);
    const detailed = await get(
      `${base}/metrics/detailed?family=channel_exchange_metrics&family=channel_queue_metrics`,
    );
    for (const key of Object.values(DETAILED)) out[key] = 0;
    for (const { name, labels, value } of parse(detailed)) {
      const key = /^rabbitmq_detailed_channel_messages_(.+)_total$/.exec(name)?.[1];
      const into = key === undefined ? undefined : DETAILED[key];
      if (into !== undefined && (own(labels.get('exchange')) || own(labels.get('queue')))) {
        add(into, value);
      }
    }
  }
  const pid = options.brokerPid ?? (await findBeam());
  const cpu = pid === undefined ? undefined : await cpuMs(pid);
  if (cpu !== undefined) out.cpu_ms = cpu;
  return out;
}

/**
 * What the broker did per email between two readings of `readBrokerCounters` around `n` emails:
 * each counter's difference divided by `n` (a counter missing from either reading is left out).
 * `routed` counts each queue a message reached (RabbitMQ 3.10: a message routed to two queues
 * counts two), and so do `delivered` and `acknowledged`; `unroutable_dropped` counts a publish
 * no queue took.
 */
export function brokerWorkPerEmail(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
  n: number,
): Record<string, number> {
  if (!(n > 0)) throw new Error(`brokerWorkPerEmail: n must be positive, got ${n}`);
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const earlier = before[key];
    if (earlier === undefined) continue;
    out[key] = Math.round(((value - earlier) / n) * 1000) / 1000;
  }
  return out;
}
