// What DeliverEmail keeps about tasks that wait (for a store, another worker's send, their
// transport's turn), and the arithmetic of handing a task back to the queue.
import type { EmailId } from '../domain/email-request.js';
import type { Clock } from './ports/system.js';

/** A waiting task is summarised in at most one log line this often. */
export const STORE_WAIT_LOG_EVERY_MS = 10_000;

/**
 * How long a task handed back for its transport waits in the queue, in milliseconds: the longest
 * step of the retry schedule that is not longer than its wait, or the wait itself when every
 * step is longer. RabbitMQ delays a task only by one of its fixed retry queues, and rounds any
 * other delay up to the next one: a wait of 1.2 s would become 5 s with the default schedule,
 * and the tasks handed back together would come back together, long after their turn, leaving
 * the pace unused meanwhile. Rounded down, a task comes back before its turn and asks again.
 */
export function handBackDelay(steps: readonly number[], waitMs: number): number {
  const within = steps.filter((step) => step <= waitMs);
  return within.length > 0 ? Math.max(...within) : Math.max(1, Math.ceil(waitMs));
}

/** The later of two ends of a pause (undefined: none). */
export const later = (a: Date | undefined, b: Date | undefined): Date | undefined =>
  a === undefined ? b : b === undefined || a >= b ? a : b;

/** A task asks again within a few seconds while it waits; one silent this long went elsewhere. */
const FORGET_WAITING_AFTER_MS = 60_000;

/**
 * The tasks waiting for something (a store, another worker's send), for logging: whether a task
 * just began to wait, how many wait, and whether the next summary line is due.
 */
export class Waiting {
  /** Task id → when it last asked (monotonic ms). */
  private readonly tasks = new Map<EmailId, number>();
  private lastSummaryMs: number | undefined;

  constructor(private readonly clock: Clock) {}

  waits(id: EmailId): { first: boolean; waiting: number; summarise: boolean } {
    const now = this.clock.monotonicMs();
    this.forgetSilent(now);
    const first = !this.tasks.has(id);
    this.tasks.set(id, now);
    const summarise =
      this.lastSummaryMs === undefined || now - this.lastSummaryMs >= STORE_WAIT_LOG_EVERY_MS;
    if (summarise) this.lastSummaryMs = now;
    return { first, waiting: this.tasks.size, summarise };
  }

  /** The task waits no more; true when that ends a wait that was logged. */
  answered(id: EmailId): boolean {
    const waited = this.tasks.delete(id);
    this.forgetSilent(this.clock.monotonicMs());
    if (!waited || this.tasks.size > 0 || this.lastSummaryMs === undefined) return false;
    this.lastSummaryMs = undefined;
    return true;
  }

  // A task handed back to the queue (a stop, a lost channel) may never ask here again.
  private forgetSilent(now: number): void {
    for (const [id, seen] of this.tasks) {
      if (now - seen > FORGET_WAITING_AFTER_MS) this.tasks.delete(id);
    }
  }
}
