// The tables of BENCHMARKS.md and the number formats they share with its headline.
import type { AcceptRow } from './accept.js';
import type { DeliveryRow } from './delivery.js';
import { steadyRate } from './delivery.js';
import type { CpuMs } from './meter.js';
import type { LoadResult } from './load.js';

/** A number to `digits` places; '—' when unknown; never "-0.000". */
export const f = (n: number | undefined, digits = 1): string =>
  n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits).replace(/^-(0\.?0*)$/, '$1');
export const errors = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([label, count]) => `${count}× ${label}`)
    .join(', ') || '0';
export const table = (head: string[], rows: string[][]): string =>
  [head, head.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
/** CPU ms of one role, with its user-space part (the code's own, less disk-dependent). */
export const cpu = (ms: CpuMs, role: string): string =>
  ms[role] === undefined ? '—' : `${f(ms[role], 3)} (${f(ms[`${role}.user`], 3)})`;

/** Target, in flight, rate, p50/p95/p99 and errors: the columns every load table starts with. */
export const loadColumns = (target: string, r: LoadResult): string[] => [
  target,
  String(r.concurrency),
  f(r.perSecond, 0),
  f(r.p50, 2),
  f(r.p95, 2),
  f(r.p99, 2),
  errors(r.errors),
];

/**
 * A row whose "rest of the machine" is above 0.1 CPU ms per request and a fifth of what the
 * metered processes used: something else ran on the machine meanwhile.
 */
export function overlapped(cpuMs: CpuMs): boolean {
  const rest = cpuMs.rest ?? 0;
  const metered = ['target', 'target2', 'worker', 'broker', 'postgres', 'bench'].reduce(
    (a, role) => a + (cpuMs[role] ?? 0),
    0,
  );
  return rest > 0.1 && rest > metered / 5;
}

export function acceptTable(rows: AcceptRow[]): string {
  return table(
    ['target', 'in flight', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors'].concat([
      'CPU ms/req: target',
      'worker',
      'RabbitMQ',
      'PostgreSQL',
      'bench',
      'rest of the machine',
      'RSS MiB (peak)',
    ]),
    rows.map(({ target, result: r, cpuMs, rssMiB, hwmMiB, workerRssMiB }) => [
      ...loadColumns(target, r),
      cpuMs.target2 === undefined
        ? cpu(cpuMs, 'target')
        : `${cpu(cpuMs, 'target')} + ${cpu(cpuMs, 'target2')}`,
      cpu(cpuMs, 'worker'),
      cpu(cpuMs, 'broker'),
      cpu(cpuMs, 'postgres'),
      cpu(cpuMs, 'bench'),
      overlapped(cpuMs) ? `${cpu(cpuMs, 'rest')} ⚠` : cpu(cpuMs, 'rest'),
      (hwmMiB === undefined ? f(rssMiB) : `${f(rssMiB)} (${f(hwmMiB)})`) +
        (workerRssMiB === undefined ? '' : `; worker ${f(workerRssMiB)}`),
    ]),
  );
}

/** The deliverer's column: a second worker and the server are added in brackets. */
function deliverer(ms: CpuMs): string {
  const more = [
    ms.target2 === undefined ? '' : ` (+ second worker ${cpu(ms, 'target2')})`,
    ms.server === undefined ? '' : ` (+ server ${cpu(ms, 'server')})`,
  ];
  return cpu(ms, 'target') + more.join('');
}

export function deliveryTable(rows: DeliveryRow[]): string {
  const standIn = rows.some((r) => r.timing.cpuMs.standin !== undefined);
  return table(
    ['path', 'N', 'clock from', 'first (s)', 'all N (s)', 'emails/s first→last'].concat([
      'emails/s overall',
      'CPU ms/email: deliverer',
      'RabbitMQ',
      'PostgreSQL',
      ...(standIn ? ['stand-in'] : []),
      'RSS MiB (peak)',
    ]),
    rows.map(({ path, n, warm = 0, from, timing, rssMiB, hwmMiB }, i) => [
      path,
      warm > 0 ? `${warm} + ${n}` : String(n),
      from,
      f(timing.firstMs / 1000, 2),
      f(timing.lastMs / 1000, 2),
      f(steadyRate(rows[i]!), 0),
      f(((warm + n) / timing.lastMs) * 1000, 0),
      deliverer(timing.cpuMs),
      cpu(timing.cpuMs, 'broker'),
      cpu(timing.cpuMs, 'postgres'),
      ...(standIn ? [cpu(timing.cpuMs, 'standin')] : []),
      hwmMiB === undefined ? f(rssMiB) : `${f(rssMiB)} (${f(hwmMiB)})`,
    ]),
  );
}
