// The load generator and its statistics. Closed loop: `concurrency` lanes, each sends its next
// request as soon as its previous one answered, so the offered load adapts to the server and a
// slow server shows as fewer requests per second and longer latencies, not as a pile-up of
// sockets. Every request count is fixed and every request has a timeout: a run always ends.
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

/** One request: resolves null on success, or a short label for the error ("503", "ECONNRESET"). */
export type Operation = () => Promise<string | null>;

export interface LoadOptions {
  readonly concurrency: number;
  readonly requests: number;
  /** Sent first at the same concurrency and not counted: JIT, sockets and channels warm up. */
  readonly warmup: number;
}

export interface LoadResult {
  readonly concurrency: number;
  readonly requests: number;
  readonly durationMs: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  /** How many requests did not succeed, by label; successes are requests minus these. */
  readonly errors: Record<string, number>;
  readonly errorCount: number;
  /** Warm-up requests that failed: a queue drained afterwards holds warmup - these as well. */
  readonly warmupErrors: number;
}

/** Nearest-rank percentile of an ascending array: a value that was observed, never interpolated. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

async function lanes(
  op: Operation,
  count: number,
  concurrency: number,
  latencies: number[],
  errors: Record<string, number>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      const started = performance.now();
      const error = await op();
      latencies.push(performance.now() - started);
      if (error !== null) errors[error] = (errors[error] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

const sum = (counts: Record<string, number>): number =>
  Object.values(counts).reduce((a, b) => a + b, 0);

/** The warm-up alone: `warmup` requests at the run's concurrency; returns how many failed. */
export async function warm(op: Operation, options: LoadOptions): Promise<number> {
  const errors: Record<string, number> = {};
  await lanes(op, options.warmup, options.concurrency, [], errors);
  return sum(errors);
}

/** One stretch of measured requests, before any statistics: blocks of one target add up. */
export interface Block {
  readonly requests: number;
  readonly durationMs: number;
  readonly latencies: readonly number[];
  readonly errors: Readonly<Record<string, number>>;
}

export async function measureBlock(op: Operation, options: LoadOptions): Promise<Block> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const started = performance.now();
  await lanes(op, options.requests, options.concurrency, latencies, errors);
  return { requests: options.requests, durationMs: performance.now() - started, latencies, errors };
}

/**
 * The statistics of one or more blocks taken as one run: the rate is all requests over the time
 * spent measuring (the gaps between blocks excluded), percentiles over all latencies.
 */
export function summarize(
  blocks: readonly Block[],
  concurrency: number,
  warmupErrors = 0,
): LoadResult {
  const latencies = blocks.flatMap((b) => b.latencies).sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  for (const block of blocks) {
    for (const [label, n] of Object.entries(block.errors)) errors[label] = (errors[label] ?? 0) + n;
  }
  const requests = blocks.reduce((a, b) => a + b.requests, 0);
  const durationMs = blocks.reduce((a, b) => a + b.durationMs, 0);
  return {
    concurrency,
    requests,
    durationMs,
    perSecond: (requests / durationMs) * 1000,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    errors,
    errorCount: sum(errors),
    warmupErrors,
  };
}

/** The measured part alone; `warmupErrors` is carried into the result. */
export async function measure(
  op: Operation,
  options: LoadOptions,
  warmupErrors = 0,
): Promise<LoadResult> {
  return summarize([await measureBlock(op, options)], options.concurrency, warmupErrors);
}

export const runLoad = async (op: Operation, options: LoadOptions): Promise<LoadResult> =>
  measure(op, options, await warm(op, options));

export interface Poster {
  readonly op: Operation;
  close(): void;
}

/**
 * POSTs the same JSON body to `url` over keep-alive sockets, one per lane (maxSockets equals
 * the concurrency, so no request waits for a socket inside the agent). Success is `expected`.
 * `headers` go with every request (the API key), `extra` adds headers made for each request (a
 * fresh Idempotency-Key).
 */
export function httpPoster(
  url: string,
  body: Buffer,
  concurrency: number,
  expected = 202,
  extra?: () => Record<string, string>,
  headers: Readonly<Record<string, string>> = {},
): Poster {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const fixed = { ...headers, 'content-type': 'application/json', 'content-length': body.length };
  const op: Operation = () =>
    new Promise((resolve) => {
      const req = request(
        {
          hostname: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          agent,
          headers: extra ? { ...fixed, ...extra() } : fixed,
        },
        (res) => {
          res.on('error', () => resolve('response error'));
          // The body is read to its end, as a real client would, then thrown away.
          res.on('end', () => resolve(res.statusCode === expected ? null : String(res.statusCode)));
          res.resume();
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end(body);
    });
  return { op, close: () => agent.destroy() };
}
