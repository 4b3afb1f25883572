// What a run reads off the processes it measures, from /proc (Linux): resident memory, CPU time,
// and deliveries counted as they land. CPU time per request complements requests per second
// here: on two shared cores a process's rate depends on its neighbours, its CPU cost much less.
import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { Child } from './procs.js';
import { waitFor } from './procs.js';

/** Resident set size in MiB (`VmRSS`): what the process holds after the run. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  return kb === undefined ? Number.NaN : Number(kb) / 1024;
}

/** Resident memory now (`VmRSS`) and at its peak so far (`VmHWM`), in MiB. */
export interface Memory {
  readonly rss: number;
  readonly hwm: number;
}

export async function memoryMiB(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const field = (name: string) => {
    const kb = new RegExp(`${name}:\\s+(\\d+)\\s+kB`).exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) / 1024;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** Cumulative CPU seconds of something that is not one process (PostgreSQL's backends). */
export interface Counter {
  read(): Promise<{ readonly user: number; readonly total: number }>;
}

/**
 * What a run meters, by role ('target', 'worker', 'broker', 'postgres'): a process id, or a
 * counter for a changing set of processes.
 */
export type Pids = Readonly<Record<string, number | Counter | undefined>>;
export type CpuMs = Readonly<Record<string, number>>;

/**
 * CPU seconds of each process so far (USER_HZ is 100 on Linux: 10 ms ticks): `role` is user +
 * system, `role.user` the user part alone. System time here is mostly file creation and fsync,
 * and varies with the state of the file system; user time is the code's own.
 */
export async function cpuSeconds(pids: Pids): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [role, pid] of Object.entries(pids)) {
    if (pid === undefined) continue;
    if (typeof pid !== 'number') {
      const { user, total } = await pid.read();
      out[role] = total;
      out[`${role}.user`] = user;
      continue;
    }
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch((error: unknown) => {
      // The broker is not ours: if it was restarted meanwhile, its column is left empty. A role
      // or a baseline that is gone has failed, and that is said plainly.
      if (role === 'broker') return undefined;
      throw new Error(`the ${role} process (pid ${pid}) is gone: ${String(error)}`);
    });
    if (stat === undefined) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out[role] = (Number(fields[11]) + Number(fields[12])) / 100;
    out[`${role}.user`] = Number(fields[11]) / 100;
  }
  return out;
}

/** CPU milliseconds per item of each process between two samples. */
export const cpuMsPer = (
  before: Record<string, number>,
  after: Record<string, number>,
  items: number,
): CpuMs =>
  Object.fromEntries(
    Object.entries(after).map(([role, s]) => [role, ((s - (before[role] ?? s)) * 1000) / items]),
  );

/** RabbitMQ's Erlang VM, when it runs on this machine: its CPU is part of every broker path. */
export async function brokerPid(): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'beam.smp') return Number(entry);
  }
  return undefined;
}

/** User and total CPU seconds of one process so far; undefined once it is gone. */
async function processSeconds(pid: number): Promise<{ user: number; total: number } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = Number(fields[11]) / 100;
  return { user, total: user + Number(fields[12]) / 100 };
}

/**
 * RabbitMQ's CPU seconds since the first reading, as a Counter: its process is looked up again
 * whenever it is unknown or gone (another engineer's test restarts the broker on this machine),
 * a new one counted from its first reading. NaN (an empty column) while there is none.
 */
export function brokerCpu(): Counter {
  let pid: number | undefined;
  let base = { user: 0, total: 0 };
  let last = { user: 0, total: 0 };
  let carried = { user: 0, total: 0 };
  return {
    read: async () => {
      let now = pid === undefined ? undefined : await processSeconds(pid);
      if (now === undefined) {
        carried = {
          user: carried.user + last.user - base.user,
          total: carried.total + last.total - base.total,
        };
        pid = await brokerPid();
        now = pid === undefined ? undefined : await processSeconds(pid);
        if (now === undefined) return { user: Number.NaN, total: Number.NaN };
        base = now;
      }
      last = now;
      return {
        user: carried.user + now.user - base.user,
        total: carried.total + now.total - base.total,
      };
    },
  };
}

/** Finished `.eml` files only: the outbox writes `.<random>.eml.tmp` first and renames. */
export async function countEml(dir: string): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.eml') && !n.startsWith('.')).length;
}

export interface Drained {
  /**
   * Milliseconds from `since` to the first delivery seen past `warm` (the first delivered email
   * when `warm` is 0), and to the n-th.
   */
  readonly firstMs: number;
  readonly lastMs: number;
  /** Deliveries counted at `firstMs` (polling sees them some at a time). */
  readonly firstSeen: number;
  /** CPU ms per email of each metered process, from the first delivery seen to the last. */
  readonly cpuMs: CpuMs;
}

/**
 * Times `count() >= target()` from `since` (performance.now()), polling every 20 ms, metering
 * the CPU of `pids` from the first delivery seen to the last. The target may be unknown for a
 * while: end to end, polling starts with the first POST, and how many were accepted is known
 * only once the last one is answered. `warm`: deliveries that warm the deliverer up, not
 * measured: the clock and the CPU start once more than that many are seen.
 */
export async function timeUntil(
  count: () => Promise<number>,
  target: number | (() => number | undefined),
  since: number,
  pids: Pids,
  proc?: Child,
  warm = 0,
): Promise<Drained> {
  let first: { ms: number; seen: number; cpu: Record<string, number> } | undefined;
  const goal = typeof target === 'number' ? () => target : target;
  const lastMs = await waitFor(
    async () => {
      const seen = await count();
      if (seen > warm && first === undefined) {
        first = { ms: performance.now() - since, seen, cpu: await cpuSeconds(pids) };
      }
      const n = goal();
      return n !== undefined && seen >= n ? performance.now() - since : undefined;
    },
    // Long enough for N = 2000 at a few dozen a second on a busy machine; the watchdog bounds the run.
    300_000,
    'the deliveries',
    proc,
  );
  const after = await cpuSeconds(pids);
  const items = (goal() ?? 0) - (first?.seen ?? 0);
  return {
    firstMs: first?.ms ?? lastMs,
    lastMs,
    firstSeen: first?.seen ?? goal() ?? 0,
    cpuMs: first && items > 0 ? cpuMsPer(first.cpu, after, items) : {},
  };
}

/** CPU ticks of the whole machine from /proc/stat: busy (user, nice, system, irq, softirq). */
async function machineTicks(): Promise<{ busy: number; user: number; total: number }> {
  const cpu = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0] = cpu
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, user: user + nice, total: busy + idle + iowait };
}

/** Every process of the machine together, kernel threads included (CPU seconds so far). */
export const machineCpu: Counter = {
  read: async () => {
    const { busy, user } = await machineTicks();
    return { total: busy / 100, user: user / 100 };
  },
};

/** The machine's busy share (0..1) over `ms`. */
export async function machineBusy(ms = 1000): Promise<number> {
  const before = await machineTicks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = await machineTicks();
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : Number.NaN;
}
