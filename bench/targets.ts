// The targets, each judged on this run's numbers: the table at the top of BENCHMARKS.md,
// the cost table under it, and the scale-out sentences.
import type { AcceptRow } from './accept.js';
import {
  DEV,
  KOA,
  KOA_DB,
  ONE_SERVER,
  SERVER_ALONE,
  SERVER_BEHIND,
  SERVER_KEY,
  SERVER_WORKER,
  TWO_SERVERS,
  WRITE_BEHIND_MS,
} from './accept.js';
import type { BrokerCounters, BrokerWork } from './broker-work.js';
import { BARE_SIDE, OURS_SIDE } from './broker-work.js';
import type { DeliveryRow } from './delivery.js';
import { steadyRate } from './delivery.js';
import type { MailgunResults } from './mailgun.js';
import {
  BARE_MAILGUN,
  CONCURRENCY,
  LATENCY_MS,
  ONE_WORKER,
  SLOW,
  TWO_WORKERS,
  WORKER_MAILGUN,
} from './mailgun.js';
import type { CpuMs } from './meter.js';
import type { Settings } from './roles.js';
import { cpu, f, table } from './tables.js';

export interface TargetResults {
  readonly accept: AcceptRow[];
  readonly delivery: DeliveryRow[];
  readonly mailgun: MailgunResults;
  readonly broker: BrokerWork;
}

/** One line of the headline: what is compared, the two sides, and whether the target is met. */
export interface Verdict {
  readonly name: string;
  readonly ours: string;
  readonly bare: string;
  readonly ratio: string;
  readonly target: string;
  /** undefined: not measured in this run. */
  readonly met: boolean | undefined;
}

export const ACCEPT_RATIO = 0.85;
export const WORKER_RATIO = 0.9;
export const LATENCY_RATIO = 0.95;
/** The ceiling of the 670 ms run: every slot busy all the time. */
export const LATENCY_CEILING = CONCURRENCY / (LATENCY_MS / 1000);
/** Per email: the task and one event published; the task delivered and acked. */
export const BROKER_LIMITS: BrokerCounters = {
  received: 2,
  routed: 2,
  delivered: 1,
  acknowledged: 1,
};
/** What the global counters may be off by per email (other users of the broker). */
export const BROKER_SLACK = 0.05;
/** MB (10⁶ bytes), as the issue writes them. */
export const RSS_LIMITS = { server: 150, worker: 150, dev: 220 } as const;

const MB_PER_MIB = 2 ** 20 / 1e6;
const mb = (mib: number | undefined) => (mib === undefined ? undefined : mib * MB_PER_MIB);

const find = (rows: AcceptRow[], prefix: string, c: number) =>
  rows.find((r) => r.target.startsWith(prefix) && r.result.concurrency === c);

/** Mean over rows (rounds) of a path; undefined when none ran. */
export function mean(rows: readonly DeliveryRow[], path: string) {
  const of = rows.filter((r) => r.path.startsWith(path));
  if (of.length === 0) return undefined;
  const avg = (v: (r: DeliveryRow) => number | undefined) =>
    of.reduce((a, r) => a + (v(r) ?? Number.NaN), 0) / of.length;
  const cpuMs: Record<string, number> = {};
  for (const key of new Set(of.flatMap((r) => Object.keys(r.timing.cpuMs)))) {
    cpuMs[key] = avg((r) => r.timing.cpuMs[key] ?? 0);
  }
  return {
    rate: avg(steadyRate),
    cpuMs: cpuMs as CpuMs,
    rounds: of.length,
  };
}

const ratioOf = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !(b > 0) ? undefined : a / b;
const times = (r: number | undefined) => (r === undefined ? '—' : `${r.toFixed(2)}×`);
const atLeast = (r: number | undefined, min: number) =>
  r === undefined || Number.isNaN(r) ? undefined : r >= min;
const perSecond = (n: number | undefined, unit: string) => `${f(n, 0)} ${unit}/s`;

function acceptVerdicts(settings: Settings, rows: AcceptRow[]): Verdict[] {
  const out: Verdict[] = [];
  // Against the bare server without a database: the server that writes its rows behind, the
  // status write the issue allows to be deferred.
  for (const [prefix, server, what] of [
    [KOA_DB, SERVER_ALONE, 'bare Koa + koa-body + INSERT + confirmed publish'],
    [
      KOA,
      SERVER_BEHIND,
      `bare Koa + koa-body + confirmed publish (no database), ours with WRITE_BEHIND_MS=${WRITE_BEHIND_MS}`,
    ],
  ] as const) {
    for (const c of settings.concurrencies) {
      const ours = find(rows, server, c)?.result.perSecond;
      const bare = find(rows, prefix, c)?.result.perSecond;
      const r = ratioOf(ours, bare);
      out.push({
        name: `Accept: \`email server\` (database, API key) vs ${what}, ${c} in flight`,
        ours: perSecond(ours, 'req'),
        bare: perSecond(bare, 'req'),
        ratio: times(r),
        target: `≥ ${ACCEPT_RATIO}×`,
        met: atLeast(r, ACCEPT_RATIO),
      });
    }
  }
  return out;
}

function workerVerdicts(m: MailgunResults): Verdict[] {
  const ours = mean(m.rows, WORKER_MAILGUN);
  const bare = mean(m.rows, BARE_MAILGUN);
  const r = ratioOf(ours?.rate, bare?.rate);
  const slow = mean(m.latency, `${WORKER_MAILGUN}${SLOW}`);
  const slowBare = mean(m.latency, `${BARE_MAILGUN}${SLOW}`);
  const share = ratioOf(slow?.rate, LATENCY_CEILING);
  return [
    {
      name:
        `Worker → Mailgun stand-in vs a bare consumer (POST, UPDATE, ack), prefetch ${CONCURRENCY}` +
        (ours && ours.rounds > 1 ? `, means of ${ours.rounds} rounds` : ''),
      ours: perSecond(ours?.rate, 'emails'),
      bare: perSecond(bare?.rate, 'emails'),
      ratio: times(r),
      target: `≥ ${WORKER_RATIO}×`,
      met: atLeast(r, WORKER_RATIO),
    },
    {
      name: `Worker at ${LATENCY_MS} ms provider latency, WORKER_CONCURRENCY=${CONCURRENCY}, vs ${CONCURRENCY} / ${LATENCY_MS / 1000} s`,
      ours: perSecond(slow?.rate, 'emails'),
      bare: `${f(LATENCY_CEILING, 1)}/s (bare consumer: ${f(slowBare?.rate, 1)}/s)`,
      ratio: times(share),
      target: `≥ ${LATENCY_RATIO}× (${f(LATENCY_RATIO * LATENCY_CEILING, 1)}/s)`,
      met: atLeast(share, LATENCY_RATIO),
    },
  ];
}

const counts = (c: BrokerCounters) =>
  `${f(c.received, 2)} / ${f(c.routed, 2)} / ${f(c.delivered, 2)} / ${f(c.acknowledged, 2)}`;

function brokerVerdict(work: BrokerWork): Verdict {
  const name =
    'Broker messages per email, happy path: published / routed / delivered / acknowledged';
  const target = `≤ ${counts(BROKER_LIMITS)} (the task and one event; the task's delivery and ack)`;
  if (!work.measured) {
    return { name, ours: 'not measured', bare: '—', ratio: '—', target, met: undefined };
  }
  const ours = work.rows.find((r) => r.side === OURS_SIDE);
  const bare = work.rows.find((r) => r.side === BARE_SIDE);
  const keys = Object.keys(BROKER_LIMITS) as (keyof BrokerCounters)[];
  return {
    name,
    ours: ours ? counts(ours.perEmail) : '—',
    bare: bare ? counts(bare.perEmail) : '—',
    ratio: '—',
    target,
    met: ours ? keys.every((k) => ours.perEmail[k] <= BROKER_LIMITS[k] + BROKER_SLACK) : undefined,
  };
}

/** `MB now (peak)`, judged on the peak. */
function memoryVerdict(
  name: string,
  rss: number | undefined,
  hwm: number | undefined,
  limit: number,
) {
  const peak = mb(hwm);
  return {
    name,
    ours: `${f(mb(rss), 0)} MB (peak ${f(peak, 0)})`,
    bare: '—',
    ratio: '—',
    target: `peak < ${limit} MB`,
    met: peak === undefined || Number.isNaN(peak) ? undefined : peak < limit,
  };
}

/** The largest of some readings; undefined when there are none. */
const largest = (values: readonly (number | undefined)[]): number | undefined => {
  const known = values.filter((v): v is number => v !== undefined && !Number.isNaN(v));
  return known.length === 0 ? undefined : Math.max(...known);
};

function memoryVerdicts(r: TargetResults): Verdict[] {
  // Every accept row `email server` answered, in the order they ran: the last one's RSS is the
  // RSS after the load, and the peak only grows.
  const server = r.accept.filter((row) =>
    [SERVER_ALONE, SERVER_BEHIND, SERVER_KEY, SERVER_WORKER, ONE_SERVER].some((p) =>
      row.target.startsWith(p),
    ),
  );
  const last = server[server.length - 1];
  const dev = r.accept.filter((row) => row.target.startsWith(DEV));
  const devE2e = r.delivery.filter((row) => row.path.startsWith('`email dev`'));
  const devRss = largest([...dev.map((row) => row.rssMiB), ...devE2e.map((x) => x.rssMiB)]);
  const devHwm = largest([...dev.map((row) => row.hwmMiB), ...devE2e.map((x) => x.hwmMiB)]);
  const workers = [
    ...r.mailgun.rows,
    ...r.mailgun.latency,
    ...r.mailgun.scale,
    ...r.mailgun.scaleLatency,
  ].filter((row) => [WORKER_MAILGUN, ONE_WORKER, TWO_WORKERS].some((p) => row.path.startsWith(p)));
  const workerRss = largest(workers.map((w) => w.rssMiB));
  const workerHwm = largest(workers.map((w) => w.hwmMiB));
  return [
    memoryVerdict(
      '`email server` RSS after the accept load (every accept row of the process)',
      last?.rssMiB,
      largest(server.map((row) => row.hwmMiB)),
      RSS_LIMITS.server,
    ),
    memoryVerdict(
      '`email worker` RSS after draining N into the Mailgun stand-in (the largest of the runs)',
      workerRss,
      workerHwm,
      RSS_LIMITS.worker,
    ),
    memoryVerdict(
      '`email dev` RSS (embedded PostgreSQL) after the accept load and end to end',
      devRss,
      devHwm,
      RSS_LIMITS.dev,
    ),
  ];
}

function scaleVerdicts(settings: Settings, r: TargetResults): Verdict[] {
  const one = mean(r.mailgun.scale, ONE_WORKER);
  const two = mean(r.mailgun.scale, TWO_WORKERS);
  const top = settings.concurrencies[settings.concurrencies.length - 1]!;
  const oneServer = find(r.accept, ONE_SERVER, top)?.result.perSecond;
  const twoServers = find(r.accept, TWO_SERVERS, top)?.result.perSecond;
  const workers = ratioOf(two?.rate, one?.rate);
  const servers = ratioOf(twoServers, oneServer);
  const oneSlow = mean(r.mailgun.scaleLatency, ONE_WORKER);
  const twoSlow = mean(r.mailgun.scaleLatency, TWO_WORKERS);
  const slow = ratioOf(twoSlow?.rate, oneSlow?.rate);
  return [
    {
      name: `Scale-out: two \`email worker\`s vs one at ${LATENCY_MS} ms provider latency, draining the same N (the cores not the limit)`,
      ours: perSecond(twoSlow?.rate, 'emails'),
      bare: `one: ${perSecond(oneSlow?.rate, 'emails')}`,
      ratio: times(slow),
      target: '> 1×',
      met: slow === undefined ? undefined : slow > 1,
    },
    {
      name: 'Scale-out: two `email worker`s vs one, no provider latency, draining the same N (Mailgun stand-in)',
      ours: perSecond(two?.rate, 'emails'),
      bare: `one: ${perSecond(one?.rate, 'emails')}`,
      ratio: times(workers),
      target: '> 1× until the cores are the limit',
      met: workers === undefined ? undefined : workers > 1,
    },
    {
      name: `Scale-out: two \`email server\`s vs one, ${top} in flight split between them`,
      ours: perSecond(twoServers, 'req'),
      bare: `one: ${perSecond(oneServer, 'req')}`,
      ratio: times(servers),
      target: '> 1× until the cores are the limit',
      met: servers === undefined ? undefined : servers > 1,
    },
  ];
}

export function verdicts(settings: Settings, r: TargetResults): Verdict[] {
  return [
    ...acceptVerdicts(settings, r.accept),
    ...workerVerdicts(r.mailgun),
    brokerVerdict(r.broker),
    ...memoryVerdicts(r),
    ...scaleVerdicts(settings, r),
  ];
}

export const mark = (met: boolean | undefined): string =>
  met === undefined ? '— (not measured)' : met ? '✔' : '✘';

export function verdictTable(list: readonly Verdict[]): string {
  return table(
    ['target', 'ours', 'bare / reference', 'ratio', 'target', 'met?'],
    list.map((v) => [v.name, v.ours, v.bare, v.ratio, v.target, mark(v.met)]),
  );
}

/** CPU ms of every metered process but the load generator and the rest of the machine. */
export const PROCESS_KEYS = ['target', 'target2', 'worker', 'standin'] as const;
const sumOf = (ms: CpuMs, keys: readonly string[]) => keys.reduce((a, k) => a + (ms[k] ?? 0), 0);

/** The headline comparisons' costs: percentiles (accept) and CPU ms per email by process. */
export function costTable(settings: Settings, r: TargetResults): string {
  const rows: string[][] = [];
  for (const c of settings.concurrencies) {
    for (const prefix of [SERVER_ALONE, KOA_DB, SERVER_BEHIND, KOA]) {
      const row = find(r.accept, prefix, c);
      if (!row) continue;
      const { result: x, cpuMs } = row;
      rows.push([
        `${row.target}, ${c} in flight`,
        perSecond(x.perSecond, 'req'),
        `${f(x.p50, 2)} / ${f(x.p95, 2)} / ${f(x.p99, 2)}`,
        cpu(cpuMs, 'target'),
        cpu(cpuMs, 'broker'),
        cpu(cpuMs, 'postgres'),
        '—',
        f(sumOf(cpuMs, ['target', 'broker', 'postgres']), 3),
      ]);
    }
  }
  const m = r.mailgun;
  for (const [rows0, path] of [
    [m.rows, WORKER_MAILGUN],
    [m.rows, BARE_MAILGUN],
    [m.latency, `${WORKER_MAILGUN}${SLOW}`],
    [m.latency, `${BARE_MAILGUN}${SLOW}`],
  ] as const) {
    const x = mean(rows0, path);
    if (!x) continue;
    rows.push([
      path + (x.rounds > 1 ? ` (mean of ${x.rounds})` : ''),
      perSecond(x.rate, 'emails'),
      '—',
      cpu(x.cpuMs, 'target'),
      cpu(x.cpuMs, 'broker'),
      cpu(x.cpuMs, 'postgres'),
      cpu(x.cpuMs, 'standin'),
      f(sumOf(x.cpuMs, ['target', 'broker', 'postgres', 'standin']), 3),
    ]);
  }
  return table(
    [
      'row',
      'rate',
      'p50 / p95 / p99 ms',
      'CPU ms/email: ours or bare',
      'RabbitMQ',
      'PostgreSQL',
      'stand-in',
      'all',
    ],
    rows,
  );
}

/**
 * Where scale-out stops: the metered processes' CPU per email × the rate, as a share of the
 * machine's cores (200% here): close to it, a second process has no core to run on.
 */
export function scaleSentences(settings: Settings, r: TargetResults, cores: number): string[] {
  const top = settings.concurrencies[settings.concurrencies.length - 1]!;
  const busy = (rate: number | undefined, ms: CpuMs | undefined, keys: readonly string[]) =>
    rate === undefined || ms === undefined ? undefined : (rate * sumOf(ms, keys)) / 10;
  const workerKeys = ['target', 'target2', 'broker', 'postgres', 'standin'];
  const serverKeys = ['target', 'target2', 'broker', 'postgres', 'bench'];
  const lines: string[] = [];
  for (const path of [ONE_WORKER, TWO_WORKERS]) {
    const x = mean(r.mailgun.scale, path);
    const pct = busy(x?.rate, x?.cpuMs, workerKeys);
    lines.push(
      `- ${path.replace('scale-out: ', '')}: ${perSecond(x?.rate, 'emails')} × ` +
        `${f(x ? sumOf(x.cpuMs, workerKeys) : undefined, 3)} CPU ms per email (workers, RabbitMQ, ` +
        `PostgreSQL, stand-in) = **${f(pct, 0)}%** of the ${cores * 100}% the ${cores} cores give.`,
    );
  }
  for (const name of [ONE_SERVER, TWO_SERVERS]) {
    const row = find(r.accept, name, top);
    const pct = busy(row?.result.perSecond, row?.cpuMs, serverKeys);
    lines.push(
      `- ${name.replace('scale-out: ', '').replace(', no consumer', '')}: ` +
        `${perSecond(row?.result.perSecond, 'req')} × ` +
        `${f(row ? sumOf(row.cpuMs, serverKeys) : undefined, 3)} CPU ms per request (servers, ` +
        `RabbitMQ, PostgreSQL, the load generator) = **${f(pct, 0)}%** of ${cores * 100}%.`,
    );
  }
  lines.push('', ...serverSplitSentence(settings, r));
  return lines;
}

/**
 * Why two servers can cost more than one: a server's CPU per request depends on how many
 * requests it has in flight (each event-loop turn's batch of INSERTs, suppression look-ups,
 * publishes and socket writes is shared by fewer), and the split halves it. Shown with this
 * run's figures: the servers' own CPU in the two scale-out rows, one server at the lowest and
 * highest concurrency of the accept rows, and which way the split went (the rates' ratio).
 */
function serverSplitSentence(settings: Settings, r: TargetResults): string[] {
  const top = settings.concurrencies[settings.concurrencies.length - 1]!;
  const low = settings.concurrencies[0]!;
  const oneRow = find(r.accept, ONE_SERVER, top);
  const twoRow = find(r.accept, TWO_SERVERS, top);
  if (oneRow === undefined || twoRow === undefined) return [];
  const { cpuMs: one } = oneRow;
  const { cpuMs: two } = twoRow;
  const atLow = find(r.accept, SERVER_ALONE, low)?.cpuMs.target;
  const atTop = find(r.accept, SERVER_ALONE, top)?.cpuMs.target;
  const byLoad =
    low === top ? '' : `: ${f(atLow, 3)} ms at ${low} in flight against ${f(atTop, 3)} at ${top}`;
  // What the split came to in this run: the sentence says which way it went, not a fixed way.
  const ratio = twoRow.result.perSecond / oneRow.result.perSecond;
  const outcome =
    ratio > 1
      ? `the second event loop still gained more than the split cost here (${f(ratio, 2)}×).`
      : `the CPU a split adds per request outweighed the second event loop here (${f(ratio, 2)}×).`;
  return [
    `The servers' own CPU per request: one server with all ${top} in flight ` +
      `${f(one.target, 3)} ms; two with about ${top / 2} each ${f(two.target, 3)} + ` +
      `${f(two.target2, 3)} = ${f((two.target ?? 0) + (two.target2 ?? 0), 3)} ms. A server's ` +
      `cost per request falls as more requests share each turn of its event loop (one ` +
      `batched INSERT, one suppression look-up, one flush to RabbitMQ and PostgreSQL for all ` +
      `the requests of the turn)${byLoad} in the accept rows above. Splitting the load halves ` +
      `each server's share: with the same two cores also running RabbitMQ, PostgreSQL and the ` +
      `load generator, ${outcome}`,
  ];
}
