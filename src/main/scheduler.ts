import * as E from 'fp-ts/lib/Either.js';
import type { Container } from 'inversify';
import type { ScheduledEmails } from '../application/ports/scheduled-emails.js';
import type { Clock, Logger } from '../application/ports/system.js';
import type { ReleaseScheduled } from '../application/release-scheduled.js';
import { resolve } from './services.js';

/** Between two looks at the store: an email goes on the queue within this of its `send_at`. */
export const SCHEDULER_EVERY_MS = 250;

export interface SchedulerOptions {
  readonly everyMs?: number;
  /**
   * False while the queue or the stores are away: nothing is taken then, since a publish refused
   * at once would hold its email for a whole lease (a worker starting before its broker answers).
   */
  readonly ready?: () => boolean;
}

export interface Scheduler {
  /** No new run; resolves once the run in flight (its publishes) is over. */
  stop(): Promise<void>;
}

/**
 * Runs `ReleaseScheduled` now and then every `everyMs`, sooner when the next email falls due
 * sooner, and again at once after a run that released something (more may be due). One run at
 * a time per process; several workers share the work through the store's leases.
 */
export function startScheduler(
  release: Pick<ReleaseScheduled, 'execute'>,
  scheduled: Pick<ScheduledEmails, 'nextDue'>,
  clock: Clock,
  log: Logger,
  options: SchedulerOptions = {},
): Scheduler {
  const everyMs = options.everyMs ?? SCHEDULER_EVERY_MS;
  const ready = options.ready ?? (() => true);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let down = false;

  const storeDown = (reason: string): void => {
    if (!down) log.warn({ reason }, 'Scheduled emails cannot be read; trying again');
    down = true;
  };

  /** How long to wait: until the next due time if that is sooner, never in a busy loop. */
  const pause = async (): Promise<number> => {
    const next = await scheduled.nextDue()();
    if (E.isLeft(next)) {
      storeDown(next.left.reason);
      return everyMs;
    }
    const inMs = next.right === undefined ? everyMs : next.right.getTime() - clock.now().getTime();
    // Due already, yet not taken: it fell due between the release and this read (then it goes
    // at the next look), or it is leased by another worker, or waiting out a refused publish.
    // Look again soon, not a whole poll later, yet not in a busy loop.
    return inMs > 0 ? Math.min(inMs, everyMs) : Math.min(SCHEDULER_EVERY_MS, everyMs);
  };

  const once = async (): Promise<number> => {
    if (!ready()) return everyMs;
    const released = await release.execute()();
    if (E.isLeft(released)) {
      storeDown(released.left.reason);
      return everyMs;
    }
    if (down) log.info({}, 'Scheduled emails can be read again');
    down = false;
    return released.right > 0 ? 0 : pause();
  };

  const tick = (): void => {
    if (stopped) return;
    running = once()
      .catch((error: unknown) => {
        // A bug, not an outage: said loudly, and the loop goes on.
        log.error({ err: error }, 'Releasing scheduled emails failed');
        return everyMs;
      })
      .then((waitMs) => {
        running = undefined;
        if (stopped) return;
        timer = setTimeout(tick, waitMs);
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

/** The poller of a role that sends (`email worker`, `email dev`), over the container's stores. */
export function startReleasingScheduled(container: Container, log: Logger): Scheduler {
  const broker = resolve(container, 'BrokerReadiness');
  const stores = resolve(container, 'StoreReadiness');
  return startScheduler(
    resolve(container, 'ReleaseScheduled'),
    resolve(container, 'ScheduledEmails'),
    resolve(container, 'Clock'),
    log,
    { ready: () => broker() && stores() },
  );
}
