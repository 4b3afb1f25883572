// Child processes of a bench run: the `email` roles and the bare baselines. Every child is
// tracked from the moment it is spawned, so a failure or a signal half-way still kills it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../src/main/cli.js', import.meta.url));
export const BASELINES = fileURLToPath(new URL('./baselines.js', import.meta.url));

const live = new Set<ChildProcess>();

export interface Child {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Lines printed on stdout so far (the baselines print their address as one JSON line). */
  readonly lines: string[];
  output(): string;
}

/** `ipc` gives the parent a message channel (the stand-in host answers counts over it). */
export function spawnNode(
  name: string,
  args: string[],
  env: Record<string, string>,
  ipc = false,
): Child {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    // A process group of its own: Ctrl-C reaches the bench alone, which then stops each child
    // with one SIGTERM. A second signal would make a role exit at once, skipping its cleanup.
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines: string[] = [];
  const text: string[] = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    text.push(chunk);
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => text.push(chunk));
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  return { name, child, pid: child.pid, lines, output: () => text.join('').slice(-4000) };
}

/** SIGTERM (a clean stop: the server deletes its events queue), SIGKILL if it hangs. */
export const stop = (proc: Child, timeoutMs = 15_000): Promise<number | null> =>
  stopProcess(proc.child, timeoutMs);

async function stopProcess(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** Last resort, synchronous (for process 'exit'): nothing we started outlives the bench. */
export function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** On a signal: the same clean stop for everything still running, with a short grace. */
export const stopAll = (): Promise<unknown> =>
  Promise.all([...live].map((child) => stopProcess(child, 5000)));

/**
 * A port that was free a moment ago. The roles print their address only at `info`, and the
 * bench runs them at `warn`, so it chooses the port itself rather than reading it from a log.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value; fails with `what` (and a child's output) on timeout. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  proc?: Child,
  intervalMs = 20,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) break;
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(intervalMs);
  }
  const tail = proc ? `; ${proc.name} printed:\n${proc.output()}` : '';
  const exited = proc?.child.exitCode ?? proc?.child.signalCode;
  if (proc && exited !== null && exited !== undefined) {
    throw new Error(`${proc.name} exited (${exited}) while waiting for ${what}${tail}`);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${tail}`);
}

/** Waits until GET `url` answers 200 (a role's /readyz). */
export const waitReady = (url: string, proc: Child): Promise<true> =>
  waitFor(
    async () => ((await fetch(url)).status === 200 ? true : undefined),
    // `email dev` opens and migrates its embedded database first: twenty seconds and more while
    // the other engineers' tests load this machine.
    60_000,
    url,
    proc,
    50,
  );

/** The first stdout line of a baseline child, parsed as JSON. */
export const firstLine = (proc: Child): Promise<Record<string, unknown>> =>
  waitFor(
    async () =>
      proc.lines[0] ? (JSON.parse(proc.lines[0]) as Record<string, unknown>) : undefined,
    60_000,
    `${proc.name} to start`,
    proc,
  );

/** Spawns a command that ends by itself (`email migrate`) and waits for its exit status 0. */
export async function runToEnd(
  name: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<string> {
  const proc = spawnNode(name, args, env);
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
    proc.child.once('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  if (code !== 0) throw new Error(`${name} exited with ${String(code)}:\n${proc.output()}`);
  return proc.output().trim();
}
