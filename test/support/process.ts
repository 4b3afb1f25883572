// Runs the `email` CLI as a child process, the way a person or a container would.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually, sleep } from './waiting.js';

export const CLI = fileURLToPath(new URL('../../src/main/cli.js', import.meta.url));

export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export class EmailProcess {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly records: LogRecord[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process has exited and all of its output has been read. */
  readonly closed: Promise<void>;
  private buffer = '';

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout.push(chunk);
      this.buffer += chunk;
      let newline;
      while ((newline = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        try {
          this.records.push(JSON.parse(line) as LogRecord);
        } catch {
          // Not a log line (usage text): kept in stdout.
        }
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    // 'exit' can come before the last output: 'close' is when stdout and stderr are complete.
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
  }

  output(): string {
    return this.stdout.join('') + this.stderr.join('');
  }

  /** Waits for a log record that matches, failing with everything printed so far. */
  async waitForLog(match: (r: LogRecord) => boolean, timeoutMs = 15_000): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = this.records.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) break;
      await sleep(25);
    }
    throw new Error(`no matching log line within ${timeoutMs} ms; output:\n${this.output()}`);
  }

  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export function runEmail(args: string[], env: Record<string, string | undefined>): EmailProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    // DATA_DIR=memory unless a test names a folder: no test may write ./data in the checkout.
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info', DATA_DIR: 'memory', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new EmailProcess(child);
}

/** Starts a server-type role and returns its URL once it logs that it is listening. */
export async function startListening(args: string[], env: Record<string, string | undefined>) {
  const proc = runEmail(args, { PORT: '0', WORKER_PORT: '0', ...env });
  try {
    // An embedded database opens in seconds, but in many on a loaded machine.
    const line = await proc.waitForLog(
      (r) => typeof r.url === 'string' && r.msg.startsWith('Listening'),
      45_000,
    );
    return { proc, url: String(line.url) };
  } catch (error) {
    // Never left behind: with --exit, a child the test lost would outlive mocha.
    proc.child.kill('SIGKILL');
    throw error;
  }
}

/**
 * Waits for a log record. Unlike `waitForLog`, it also waits for lines still in the pipe after
 * the process exited, and it is the way to read a log after observing something else (an HTTP
 * answer, a file): the log line written before may not have been read yet.
 */
export const waitForRecord = (
  proc: EmailProcess,
  match: (r: LogRecord) => boolean,
  what = 'a log line',
  timeoutMs = 15_000,
): Promise<LogRecord> =>
  eventually(async () => proc.records.find(match), { timeoutMs, what }).catch((error: unknown) => {
    throw new Error(`${String(error)}; output:\n${proc.output()}`, { cause: error });
  });
