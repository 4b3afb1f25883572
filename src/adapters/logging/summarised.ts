import type { Logger } from '../../application/ports/system.js';

/** The least time between two lines of a `summarisedWarn`, in milliseconds. */
export const SUMMARY_EVERY_MS = 10_000;

/** Runs `work` once after `ms` milliseconds without holding the process open. */
export type Schedule = (work: () => void, ms: number) => void;

const unrefTimeout: Schedule = (work, ms) => {
  setTimeout(work, ms).unref();
};

/**
 * A `warn` line for a failure that every request may meet at once (the database or the broker
 * away, the write-behind log full): the first occurrence is logged, then at most one line each
 * `everyMs` milliseconds. Occurrences within a period are counted, and the period's end logs a
 * line with the fields of the last of them and how many were not logged (`notLogged`), so that
 * the end of a burst, and what it was, is never lost. Under an outage a server refusing
 * thousands of requests a second wrote a line for each (a reviewer counted 26,927 in 20 s, 5.7 MB
 * of log); each request still gets its own answer.
 *
 * `now` is a monotonic clock in milliseconds and `schedule` a timer (tests pass their own).
 */
export function summarisedWarn(
  log: Logger,
  message: string,
  everyMs = SUMMARY_EVERY_MS,
  now: () => number = () => performance.now(),
  schedule: Schedule = unrefTimeout,
): (fields: object) => void {
  let lastMs: number | undefined;
  let notLogged = 0;
  let latest: object = {};
  let scheduled = false;
  const summarise = (): void => {
    scheduled = false;
    if (notLogged === 0) return;
    log.warn({ ...latest, notLogged }, message);
    lastMs = now();
    notLogged = 0;
  };
  return (fields) => {
    const at = now();
    if (lastMs === undefined || at - lastMs >= everyMs) {
      log.warn(fields, message);
      lastMs = at;
      return;
    }
    notLogged += 1;
    latest = fields;
    if (!scheduled) {
      scheduled = true;
      schedule(summarise, lastMs + everyMs - at);
    }
  };
}
