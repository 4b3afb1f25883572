// The SQL of SqlEmailQueue, kept apart so that the queue's logic reads without it. Plain
// PostgreSQL 15 that PGlite runs too: no extensions, no LISTEN/NOTIFY. Times are the database's
// (`now()`), so that workers on several machines agree on leases and due times whatever their
// clocks say; durations are passed in milliseconds.
import type { DeadLetter } from '../../application/ports/dead-letter-box.js';
import type { AttemptRecord } from '../../domain/delivery.js';
import type { DeadLetterInfo, WireMessage } from '../messaging/task-message.js';
import {
  HEADERS,
  decodeAttempt,
  decodeHistory,
  describeDeadLetter,
  encodeHistory,
  toDeadLetter,
} from '../messaging/task-message.js';

/** `$n` milliseconds as an interval. */
const ms = (param: string): string => `(${param}::double precision * interval '1 millisecond')`;

/** One statement, its parameters, and what it does (for log lines). */
export interface Statement {
  readonly sql: string;
  readonly params: readonly unknown[];
  readonly what: string;
}

/** A task row as the take returns it. `seq` is bigint, read as text: it may exceed 2^53. */
export interface TaskRow {
  readonly seq: string;
  readonly email_id: string | null;
  /** A Buffer from node-postgres, a Uint8Array from PGlite. */
  readonly body: Uint8Array;
  readonly attempt: number;
  readonly history: unknown;
  /** After this take: the fence every later statement about this take names. */
  readonly deliveries: number;
}

/** Which take of which row a statement is about: a take that was taken over matches nothing. */
export interface Take {
  readonly seq: string;
  readonly deliveries: number;
}

export interface DeadLetterRow {
  readonly seq: string;
  readonly email_id: string | null;
  readonly body: Uint8Array;
  readonly reason: string;
  readonly attempts: number;
  readonly failed_at: Date | string;
  readonly history: unknown;
}

export interface PendingRow {
  readonly ready: number;
  readonly scheduled: number;
  readonly leased: number;
}

const jsonText = (value: unknown): string =>
  typeof value === 'string' ? value : JSON.stringify(value ?? []);

/** The headers task-message decodes a row with: the row's columns in their wire form. */
export const rowHeaders = (row: Pick<TaskRow, 'attempt' | 'history'>) => ({
  [HEADERS.attempt]: row.attempt,
  [HEADERS.history]: jsonText(row.history),
});

/**
 * Stores a task as it would travel on the wire; odd headers (an attempt of "many", a history
 * that is not JSON) are read leniently here, as every queue reads them, so they become a first
 * attempt rather than a row the table refuses.
 */
export const insertTask = (message: WireMessage): Statement => ({
  sql: `INSERT INTO email_tasks (email_id, body, attempt, history) VALUES ($1, $2, $3, $4::jsonb)`,
  params: [
    message.messageId ?? null,
    message.body,
    decodeAttempt(message.headers[HEADERS.attempt]),
    encodeHistory(decodeHistory(message.headers[HEADERS.history])),
  ],
  what: 'publish',
});

/**
 * Takes up to `limit` due tasks whose lease is free or ran out, oldest due first, and leases
 * them to `worker` for `leaseMs`. SKIP LOCKED lets workers take at once without waiting on each
 * other; under READ COMMITTED a row another worker just leased is re-checked against the WHERE
 * clause after its lock is released, so it is not taken twice.
 */
export const takeDue = (limit: number, leaseMs: number, worker: string): Statement => ({
  sql: `WITH due AS (
          SELECT seq FROM email_tasks
           WHERE available_at <= now() AND (locked_until IS NULL OR locked_until <= now())
           ORDER BY available_at, seq
           LIMIT $1
             FOR UPDATE SKIP LOCKED
        )
        UPDATE email_tasks AS t
           SET locked_until = now() + ${ms('$2')}, locked_by = $3, deliveries = t.deliveries + 1
          FROM due
         WHERE t.seq = due.seq
     RETURNING t.seq::text AS seq, t.email_id, t.body, t.attempt, t.history, t.deliveries`,
  params: [limit, leaseMs, worker],
  what: 'take',
});

const takesJson = (takes: readonly Take[]): string =>
  JSON.stringify(takes.map((t) => ({ seq: t.seq, deliveries: t.deliveries })));

/** The rows of `takes` still leased by `worker` (a released or settled one is not leased again). */
const heldBy = (worker: string, takes: string) => `FROM jsonb_to_recordset(${takes}::jsonb)
          AS h(seq text, deliveries integer)
       WHERE t.seq = h.seq::bigint AND t.deliveries = h.deliveries AND t.locked_by = ${worker}`;

/** Extends the leases of `takes` by `leaseMs` from now; returns the rows still held. */
export const renewLeases = (takes: readonly Take[], leaseMs: number, worker: string) => ({
  sql: `UPDATE email_tasks AS t SET locked_until = now() + ${ms('$1')}
        ${heldBy('$2', '$3')}
        RETURNING t.seq::text AS seq`,
  params: [leaseMs, worker, takesJson(takes)],
  what: 'renew',
});

/** Gives `takes` back, due as they were: the next take, here or in another worker, has them. */
export const releaseLeases = (takes: readonly Take[], worker: string): Statement => ({
  sql: `UPDATE email_tasks AS t SET locked_until = NULL, locked_by = NULL
        ${heldBy('$1', '$2')}
        RETURNING 1 AS settled`,
  params: [worker, takesJson(takes)],
  what: 'release',
});

// Each settle below names the take it ends (seq and deliveries) and answers a row only if that
// take still owns the task: a worker whose lease ran out and was taken over changes nothing.
const fenced = 'seq = $1::bigint AND deliveries = $2';

export const deleteTask = (take: Take): Statement => ({
  sql: `DELETE FROM email_tasks WHERE ${fenced} RETURNING 1 AS settled`,
  params: [take.seq, take.deliveries],
  what: 'Done',
});

/** The same row, due in `delayMs`, with the next attempt and its history; no lease. */
export const scheduleRetry = (
  take: Take,
  attempt: number,
  history: readonly AttemptRecord[],
  delayMs: number,
): Statement => ({
  sql: `UPDATE email_tasks
           SET attempt = $3, history = $4::jsonb, available_at = now() + ${ms('$5')},
               locked_until = NULL, locked_by = NULL
         WHERE ${fenced}
     RETURNING 1 AS settled`,
  params: [take.seq, take.deliveries, attempt, encodeHistory(history), delayMs],
  what: 'Retry',
});

/**
 * "Retry now": the waiting retry of `attempt` of email `emailId` made due now, the same row, so
 * no copy exists to drop later. Only a free row waiting for a later time moves: one a worker
 * holds is being attempted already. A scan of the tasks table (no index by email), fine for an
 * operator's click on a table of pending tasks.
 */
export const expediteRetry = (emailId: string, attempt: number): Statement => ({
  sql: `UPDATE email_tasks SET available_at = now()
         WHERE email_id = $1 AND attempt = $2 AND available_at > now()
           AND (locked_until IS NULL OR locked_until <= now())
     RETURNING 1 AS moved`,
  params: [emailId, attempt],
  what: 'expedite',
});

/** Offered again in `delayMs`, attempt and history unchanged: what a failed handler gets. */
export const releaseLater = (take: Take, delayMs: number): Statement => ({
  sql: `UPDATE email_tasks
           SET available_at = now() + ${ms('$3')}, locked_until = NULL, locked_by = NULL
         WHERE ${fenced}
     RETURNING 1 AS settled`,
  params: [take.seq, take.deliveries, delayMs],
  what: 'release after a failed handler',
});

/** Moves the task to the dead letters in one statement: it is in exactly one of the tables. */
export const moveToDeadLetters = (take: Take, info: Omit<DeadLetterInfo, 'failedAt'>) => ({
  sql: `WITH gone AS (DELETE FROM email_tasks WHERE ${fenced} RETURNING email_id, body)
        INSERT INTO email_dead_letters (email_id, body, reason, attempts, failed_at, history)
        SELECT email_id, body, $3, $4, now(), $5::jsonb FROM gone
        RETURNING 1 AS settled`,
  params: [take.seq, take.deliveries, info.reason, info.attempts, encodeHistory(info.history)],
  what: 'DeadLetter',
});

export const countPending: Statement = {
  sql: `SELECT count(*) FILTER (WHERE free AND available_at <= now())::int AS ready,
               count(*) FILTER (WHERE free AND available_at > now())::int AS scheduled,
               count(*) FILTER (WHERE NOT free)::int AS leased
          FROM (SELECT available_at, (locked_until IS NULL OR locked_until <= now()) AS free
                  FROM email_tasks) AS tasks`,
  params: [],
  what: 'count',
};

export const selectDeadLetters = (forUpdate: boolean): string =>
  `SELECT seq::text AS seq, email_id, body, reason, attempts, failed_at, history
     FROM email_dead_letters ORDER BY seq${forUpdate ? ' FOR UPDATE' : ''}`;

/** A dead-letter row in the wire form task-message's shared policies (list, replay) read. */
export function deadLetterMessage(row: DeadLetterRow): WireMessage {
  return toDeadLetter(
    { body: Buffer.from(row.body), messageId: row.email_id ?? undefined, headers: {} },
    {
      reason: row.reason,
      attempts: row.attempts,
      failedAt: new Date(row.failed_at),
      history: decodeHistory(jsonText(row.history)),
    },
  );
}

/** What `email dead-letters list` shows of a row: the same fields every box lists. */
export const describeRow = (row: DeadLetterRow): DeadLetter =>
  describeDeadLetter(deadLetterMessage(row));
