// The one way the tests wait: for something to become true, never for a while in the hope that it
// did. `sleep` is for the few tests that must let real time pass (a slow handler, a poll loop).

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Patience {
  /** Gives up after this long (default 10 s, well inside mocha's 20 s). */
  readonly timeoutMs?: number;
  /** What is awaited, for the timeout error; the check's source when not given. */
  readonly what?: string;
  /** Between two tries (default 25 ms). */
  readonly intervalMs?: number;
}

type Settled<T> = Exclude<T, undefined | false>;

/**
 * Runs `check` until it returns something other than undefined or false, and returns that. A check
 * that throws (a failed `expect`) is tried again too. When time is up, the error says what was
 * awaited and why the last try failed, keeping an assertion's actual and expected for the diff.
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  patience: Patience = {},
): Promise<Settled<T>> {
  const { timeoutMs = 10_000, intervalMs = 25 } = patience;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let tries = 0;
  // At least two tries, however short the patience: a busy event loop is not a failed check.
  while (tries < 2 || Date.now() <= deadline) {
    tries += 1;
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as Settled<T>;
      last = undefined;
    } catch (error) {
      last = error;
    }
    await sleep(intervalMs);
  }
  throw timedOut(patience.what ?? describeCheck(check), timeoutMs, last);
}

function timedOut(what: string, timeoutMs: number, last: unknown): Error {
  const why =
    last === undefined
      ? 'it never returned a value (only undefined or false)'
      : last instanceof Error
        ? last.message
        : String(last);
  const error = new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${why}`, {
    cause: last,
  });
  // Mocha shows a diff for an error with these: keep the one the last failed assertion had.
  if (last instanceof Error && 'actual' in last && 'expected' in last) {
    const { actual, expected, showDiff } = last as Error & Record<string, unknown>;
    Object.assign(error, { actual, expected, showDiff });
  }
  return error;
}

const describeCheck = (check: () => unknown): string => {
  const source = check.toString().replace(/\s+/g, ' ').trim();
  return source.length > 160 ? `${source.slice(0, 157)}...` : source;
};
