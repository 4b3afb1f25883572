import * as E from 'fp-ts/lib/Either.js';
import type { Container } from 'inversify';
import type { Logger } from '../application/ports/system.js';
import type { WatchConfirmations } from '../application/watch-confirmations.js';
import { formatDelay } from '../domain/delivery.js';
import { resolve } from './services.js';

/** The longest pause between two sweeps, in milliseconds. */
export const WATCHDOG_MAX_EVERY_MS = 60_000;
/** The shortest pause between two sweeps, in milliseconds: never a busy loop on the database. */
export const WATCHDOG_MIN_EVERY_MS = 1000;

/**
 * How often to sweep for a deadline of `deadlineMs`: a quarter of it, so an email is flagged at
 * most a quarter late, but at most a minute apart (an hour's deadline need not be kept to the
 * second) and at least a second apart.
 */
export const watchdogEveryMs = (deadlineMs: number): number =>
  Math.max(WATCHDOG_MIN_EVERY_MS, Math.min(WATCHDOG_MAX_EVERY_MS, Math.floor(deadlineMs / 4)));

/** How the loop of `startWatchdog` runs. */
export interface WatchdogOptions {
  /** Pause between the end of one sweep and the start of the next, in milliseconds. */
  readonly everyMs: number;
  /** False while the database is away: no sweep then (it would only fail). */
  readonly ready?: () => boolean;
}

/** A running watchdog loop, as `startWatchdog` answers it. */
export interface Watchdog {
  /** No new sweep; resolves once the sweep in flight is over. */
  stop(): Promise<void>;
}

/**
 * Runs `watch.sweep()` now and then `everyMs` after each sweep ends, one at a time in this
 * process; several workers may sweep the same log, since the fold keeps one note per email. A
 * sweep that flagged emails is a warning (a provider that went quiet); a database that does not
 * answer is said once until it answers again; a bug is logged and the loop goes on.
 */
export function startWatchdog(
  watch: Pick<WatchConfirmations, 'sweep' | 'deadlineMs'>,
  log: Logger,
  options: WatchdogOptions,
): Watchdog {
  const ready = options.ready ?? (() => true);
  const deadline = formatDelay(watch.deadlineMs);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let down = false;

  const once = async (): Promise<void> => {
    if (!ready()) return;
    const swept = await watch.sweep()();
    if (E.isLeft(swept)) {
      if (!down)
        log.warn(
          { reason: swept.left.reason },
          'Unconfirmed emails cannot be looked for; trying again',
        );
      down = true;
      return;
    }
    if (down) log.info({}, 'Unconfirmed emails can be looked for again');
    down = false;
    if (swept.right > 0) {
      log.warn(
        { unconfirmed: swept.right, deadline },
        `${swept.right} email${swept.right === 1 ? '' : 's'} sent with no provider report on any recipient within ${deadline}`,
      );
    }
  };

  const tick = (): void => {
    if (stopped) return;
    running = once()
      .catch((error: unknown) => {
        log.error({ err: error }, 'Looking for unconfirmed emails failed');
      })
      .then(() => {
        running = undefined;
        if (stopped) return;
        timer = setTimeout(tick, options.everyMs);
        // Never what keeps a process alive: a stop ends the loop, and so may the process.
        timer.unref();
      });
  };
  tick();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** The watchdog of a role that sends (`email worker`, `email dev`), over the container's log. */
export function startWatchingConfirmations(container: Container, log: Logger): Watchdog {
  const watch = resolve(container, 'WatchConfirmations');
  const stores = resolve(container, 'StoreReadiness');
  return startWatchdog(watch, log, {
    everyMs: watchdogEveryMs(watch.deadlineMs),
    ready: () => stores(),
  });
}
