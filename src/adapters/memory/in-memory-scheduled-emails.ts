import * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { ScheduledEmails } from '../../application/ports/scheduled-emails.js';
import type { EmailId } from '../../domain/email-request.js';

interface Held {
  readonly id: EmailId;
  readonly dueMs: number;
  /** Until when a worker releases it; undefined while no one has taken it. */
  leasedUntilMs?: number;
}

/** Earliest due first, ties by the id's code units, as the SQL store's `COLLATE "C"` orders. */
const oldestFirst = (a: Held, b: Held): number =>
  a.dueMs - b.dueMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

const leaseFree = (held: Held, nowMs: number): boolean =>
  held.leasedUntilMs === undefined || held.leasedUntilMs <= nowMs;

/**
 * The held emails of one process: for unit tests and `memory` runs. It passes the same contract
 * suite as `SqlScheduledEmails` (`test/contracts/`). Each call runs to its end before another
 * starts (nothing is awaited inside), which makes a take or a cancel as atomic as the SQL
 * store's single statements: no email is leased to two callers, and of a cancel and a take of
 * one email exactly one wins.
 */
export class InMemoryScheduledEmails implements ScheduledEmails {
  private readonly held = new Map<EmailId, Held>();

  hold(id: EmailId, dueAt: Date): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      if (!this.held.has(id)) this.held.set(id, { id, dueMs: dueAt.getTime() });
    });
  }

  takeDue(
    now: Date,
    leaseMs: number,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly EmailId[]> {
    return TE.fromIO(() => {
      const nowMs = now.getTime();
      const taken = [...this.held.values()]
        .filter((h) => h.dueMs <= nowMs && leaseFree(h, nowMs))
        .sort(oldestFirst)
        .slice(0, limit);
      for (const h of taken) h.leasedUntilMs = nowMs + leaseMs;
      return taken.map((h) => h.id);
    });
  }

  released(id: EmailId): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      this.held.delete(id);
    });
  }

  cancel(id: EmailId, now: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      const h = this.held.get(id);
      if (h === undefined || !leaseFree(h, now.getTime())) return false;
      this.held.delete(id);
      return true;
    });
  }

  /** The earliest due time, leased or not, as in SQL (see `SqlScheduledEmails.nextDue`). */
  nextDue(): TE.TaskEither<StoreUnavailable, Date | undefined> {
    return TE.fromIO(() => {
      let next: number | undefined;
      for (const h of this.held.values()) {
        if (next === undefined || h.dueMs < next) next = h.dueMs;
      }
      return next === undefined ? undefined : new Date(next);
    });
  }
}
