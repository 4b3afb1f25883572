import type { Logger } from '../../application/ports/system.js';

/** The least time between two lines of a `summarisedWarn`, in milliseconds. */
export const SUMMARY_EVERY_MS = 10_000;

/**
 * A `warn` line for a failure that every request may meet at once (the database or the broker
 * away, the write-behind log full): the first occurrence is logged, then at most one line each
 * `everyMs` milliseconds, which counts the occurrences not logged since the line before
 * (`notLogged`). Under an outage a server refusing thousands of requests a second wrote a line
 * for each (a reviewer counted 26,927 in 20 s, 5.7 MB of log); each request still gets its own
 * answer.
 *
 * `now` is a monotonic clock in milliseconds (tests pass their own).
 */
export function summarisedWarn(
  log: Logger,
  message: string,
  everyMs = SUMMARY_EVERY_MS,
  now: () => number = () => performance.now(),
): (fields: object) => void {
  let lastMs: number | undefined;
  let notLogged = 0;
  return (fields) => {
    const at = now();
    if (lastMs !== undefined && at - lastMs < everyMs) {
      notLogged += 1;
      return;
    }
    log.warn(notLogged > 0 ? { ...fields, notLogged } : fields, message);
    lastMs = at;
    notLogged = 0;
  };
}
