import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { ScheduledEmails } from '../../application/ports/scheduled-emails.js';
import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { attempt } from './sql-client.js';

interface TakenRow {
  readonly email_id: EmailId;
  readonly due_at: Date;
}

/** Earliest due first, ties by the id's code units (as `COLLATE "C"` orders them). */
const oldestFirst = (a: TakenRow, b: TakenRow): number =>
  new Date(a.due_at).getTime() - new Date(b.due_at).getTime() ||
  (a.email_id < b.email_id ? -1 : a.email_id > b.email_id ? 1 : 0);

/**
 * The held emails in `scheduled_emails`, shared by every worker. Each operation is one statement,
 * so PostgreSQL settles every race on a row: `takeDue` locks the due rows it leases with
 * `FOR UPDATE SKIP LOCKED` (a row another worker is leasing is skipped, and one it just leased is
 * re-checked against the WHERE clause under READ COMMITTED, so no row is leased twice), and
 * `cancel` deletes only a row whose lease is free, so of a cancel and a take of one email exactly
 * one wins. All times come from the caller (`now`), never from the database clock.
 */
export class SqlScheduledEmails implements ScheduledEmails {
  constructor(private readonly sql: SqlClient) {}

  /** Holding an id already held changes nothing (a retried request): its first due time stands. */
  hold(id: EmailId, dueAt: Date): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query(
        `INSERT INTO scheduled_emails (email_id, due_at) VALUES ($1, $2::timestamptz)
         ON CONFLICT (email_id) DO NOTHING`,
        [id, dueAt.toISOString()],
      );
    });
  }

  takeDue(
    now: Date,
    leaseMs: number,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly EmailId[]> {
    return attempt(async () => {
      const rows = await this.sql.query<TakenRow>(
        `UPDATE scheduled_emails AS s SET leased_until = $2::timestamptz
          WHERE s.email_id IN (
            SELECT email_id FROM scheduled_emails
             WHERE due_at <= $1::timestamptz
               AND (leased_until IS NULL OR leased_until <= $1::timestamptz)
             ORDER BY due_at, email_id
             LIMIT $3
               FOR UPDATE SKIP LOCKED
          )
         RETURNING s.email_id, s.due_at`,
        [now.toISOString(), new Date(now.getTime() + leaseMs).toISOString(), limit],
      );
      // RETURNING follows no ORDER BY: the order is put back here.
      return [...rows].sort(oldestFirst).map((row) => row.email_id);
    });
  }

  released(id: EmailId): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query('DELETE FROM scheduled_emails WHERE email_id = $1', [id]);
    });
  }

  cancel(id: EmailId, now: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query(
        `DELETE FROM scheduled_emails
          WHERE email_id = $1 AND (leased_until IS NULL OR leased_until <= $2::timestamptz)
         RETURNING email_id`,
        [id, now.toISOString()],
      );
      return rows.length > 0;
    });
  }

  /**
   * The earliest due time of every held email, leased or not: one being released by another
   * worker keeps its time until it is released (the poller caps its sleep, and takes it when the
   * lease ran out). The `due_at` index answers it.
   */
  nextDue(): TE.TaskEither<StoreUnavailable, Date | undefined> {
    return attempt(async () => {
      const rows = await this.sql.query<{ next: Date | null }>(
        'SELECT min(due_at) AS next FROM scheduled_emails',
      );
      const next = rows[0]?.next ?? null;
      return next === null ? undefined : new Date(next);
    });
  }
}
