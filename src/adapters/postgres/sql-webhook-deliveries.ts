import * as O from 'fp-ts/lib/Option.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  NewWebhookDelivery,
  WebhookAttempt,
  WebhookAttemptResult,
  WebhookDeliveries,
  WebhookDelivery,
  WebhookDeliveryState,
} from '../../application/ports/webhook-deliveries.js';
import { EmailId } from '../../domain/email-request.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import { WEBHOOK_EVENT_TYPES } from '../../domain/webhook.js';
import type { SqlClient } from './sql-client.js';
import { StoreFault, attempt, countDeleted } from './sql-client.js';

interface DeliveryRow {
  readonly id: string;
  readonly endpoint_id: string;
  readonly url: string;
  readonly email_id: string;
  readonly type: string;
  readonly notice_key: string;
  readonly payload: string;
  readonly created_at: Date;
  readonly state: string;
  /** jsonb: both drivers hand it back parsed. */
  readonly attempts: unknown;
  readonly next_attempt_at: Date | null;
}

/** Every column, in the order of `DeliveryRow`. */
const COLUMNS = `id, endpoint_id, url, email_id, type, notice_key, payload, created_at, state,
  attempts, next_attempt_at`;

const STATES: readonly WebhookDeliveryState[] = ['pending', 'delivered', 'failed'];
const isState = (s: string): s is WebhookDeliveryState => STATES.some((state) => state === s);
const isEventType = (s: string): s is WebhookEventType =>
  WEBHOOK_EVENT_TYPES.some((type) => type === s);

/** An attempt as kept in the `attempts` array: its time as RFC 3339 (ms), absent fields left out. */
interface StoredAttempt {
  readonly attempt: number;
  readonly at: string;
  readonly durationMs: number;
  readonly statusCode?: number;
  readonly error?: string;
}

const storedAttempt = (a: WebhookAttempt): StoredAttempt => ({
  attempt: a.attempt,
  at: a.at.toISOString(),
  durationMs: a.durationMs,
  ...(a.statusCode !== undefined ? { statusCode: a.statusCode } : {}),
  ...(a.error !== undefined ? { error: a.error } : {}),
});

const BAD_ATTEMPT = 'a stored webhook delivery has an unreadable attempt';

function toAttempt(value: unknown): WebhookAttempt {
  if (typeof value !== 'object' || value === null) throw new StoreFault(BAD_ATTEMPT);
  const a = value as Partial<Record<keyof StoredAttempt, unknown>>;
  const at = typeof a.at === 'string' ? new Date(a.at) : undefined;
  if (
    typeof a.attempt !== 'number' ||
    typeof a.durationMs !== 'number' ||
    at === undefined ||
    Number.isNaN(at.getTime()) ||
    (a.statusCode !== undefined && typeof a.statusCode !== 'number') ||
    (a.error !== undefined && typeof a.error !== 'string')
  ) {
    throw new StoreFault(BAD_ATTEMPT);
  }
  return {
    attempt: a.attempt,
    at,
    durationMs: a.durationMs,
    ...(typeof a.statusCode === 'number' ? { statusCode: a.statusCode } : {}),
    ...(typeof a.error === 'string' ? { error: a.error } : {}),
  };
}

function toDelivery(row: DeliveryRow): WebhookDelivery {
  if (!isState(row.state)) throw new StoreFault('a stored webhook delivery has an unknown state');
  if (!isEventType(row.type)) throw new StoreFault('a stored webhook delivery has an unknown type');
  if (!EmailId.is(row.email_id)) {
    throw new StoreFault('a stored webhook delivery has an invalid email id');
  }
  if (!Array.isArray(row.attempts)) throw new StoreFault(BAD_ATTEMPT);
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    url: row.url,
    emailId: row.email_id,
    type: row.type,
    noticeKey: row.notice_key,
    payload: row.payload,
    createdAt: new Date(row.created_at),
    state: row.state,
    attempts: row.attempts.map(toAttempt),
    ...(row.next_attempt_at !== null ? { nextAttemptAt: new Date(row.next_attempt_at) } : {}),
  };
}

/** What names a delivery: its endpoint, its email and its notice key. */
const keyOf = (d: Pick<NewWebhookDelivery, 'endpointId' | 'emailId' | 'noticeKey'>): string =>
  JSON.stringify([d.endpointId, d.emailId, d.noticeKey]);
const rowKey = (row: DeliveryRow): string =>
  JSON.stringify([row.endpoint_id, row.email_id, row.notice_key]);

/** The same (endpoint, email, notice key) as `given`'s row `g`. */
const SAME_KEY = (alias: string) =>
  `${alias}.endpoint_id = g.endpoint_id AND ${alias}.email_id = g.email_id
   AND ${alias}.notice_key = g.notice_key`;

const UNIQUE_VIOLATION = '23505';
const sqlState = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;

/** A LIMIT PostgreSQL accepts: a negative one would fail the statement. */
const atMost = (n: number): number => Math.max(0, Math.floor(n));

/**
 * The webhook deliveries in `webhook_deliveries`, one row per delivery with its attempts in a
 * jsonb array. The unique key (endpoint, email, notice key) makes `create` idempotent across
 * workers; `recordAttempt` is one conditional UPDATE, so of two workers holding the same job
 * exactly one records the attempt. Times come from the caller, never from the database's clock.
 */
export class SqlWebhookDeliveries implements WebhookDeliveries {
  constructor(private readonly sql: SqlClient) {}

  /**
   * One statement inserts what is new and reads back every given key: the rows it inserted from
   * its own RETURNING (the statement's snapshot cannot see them), the others from the table. A
   * row another worker committed while this statement ran is in neither: those few keys are read
   * again, in a second statement that sees it. An id already taken by another delivery (a bug in
   * whoever drew it) fails the whole statement: StoreUnavailable, and none of them is stored.
   */
  create(
    deliveries: readonly NewWebhookDelivery[],
  ): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return attempt(async () => {
      if (deliveries.length === 0) return [];
      let rows: readonly (DeliveryRow & { readonly n: number })[];
      try {
        rows = await this.sql.query<DeliveryRow & { readonly n: number }>(
          `WITH given AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::timestamptz[])
               WITH ORDINALITY
               AS g(id, endpoint_id, url, email_id, type, notice_key, payload, created_at, n)
           ), inserted AS (
             INSERT INTO webhook_deliveries
               (id, endpoint_id, url, email_id, type, notice_key, payload, created_at)
             SELECT id, endpoint_id, url, email_id, type, notice_key, payload, created_at
               FROM given ORDER BY n
             ON CONFLICT (endpoint_id, email_id, notice_key) DO NOTHING
             RETURNING ${COLUMNS}
           )
           SELECT g.n::int AS n, d.* FROM given g
             CROSS JOIN LATERAL (
               SELECT ${COLUMNS} FROM inserted i WHERE ${SAME_KEY('i')}
               UNION ALL
               SELECT ${COLUMNS} FROM webhook_deliveries w WHERE ${SAME_KEY('w')}
             ) d
            ORDER BY g.n`,
          [
            deliveries.map((d) => d.id),
            deliveries.map((d) => d.endpointId),
            deliveries.map((d) => d.url),
            deliveries.map((d) => d.emailId),
            deliveries.map((d) => d.type),
            deliveries.map((d) => d.noticeKey),
            deliveries.map((d) => d.payload),
            deliveries.map((d) => d.createdAt.toISOString()),
          ],
        );
      } catch (err) {
        if (sqlState(err) === UNIQUE_VIOLATION) {
          throw new StoreFault('a webhook delivery with this id exists');
        }
        throw err;
      }
      const found = new Map<string, DeliveryRow>(rows.map((row) => [rowKey(row), row]));
      const missing = deliveries.filter((d) => !found.has(keyOf(d)));
      if (missing.length > 0) {
        const raced = await this.sql.query<DeliveryRow>(
          `SELECT ${COLUMNS} FROM webhook_deliveries
            WHERE (endpoint_id, email_id, notice_key) IN (
              SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`,
          [
            missing.map((d) => d.endpointId),
            missing.map((d) => d.emailId),
            missing.map((d) => d.noticeKey),
          ],
        );
        for (const row of raced) found.set(rowKey(row), row);
      }
      return deliveries.map((d) => {
        const row = found.get(keyOf(d));
        // Only a purge between the two statements could do this: the caller may try again.
        if (row === undefined) throw new StoreFault('a webhook delivery went as it was stored');
        return toDelivery(row);
      });
    });
  }

  get(id: string): TE.TaskEither<StoreUnavailable, O.Option<WebhookDelivery>> {
    return attempt(async () => {
      const rows = await this.sql.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM webhook_deliveries WHERE id = $1`,
        [id],
      );
      const row = rows[0];
      return row === undefined ? O.none : O.some(toDelivery(row));
    });
  }

  /**
   * One UPDATE that checks and writes: the row changes only while pending with exactly
   * `attempt.attempt - 1` attempts. The next time is kept only with a pending state.
   */
  recordAttempt(
    id: string,
    tried: WebhookAttempt,
    result: WebhookAttemptResult,
  ): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const next = result.state === 'pending' ? result.nextAttemptAt : undefined;
      const rows = await this.sql.query(
        `UPDATE webhook_deliveries
            SET attempts = attempts || jsonb_build_array($2::jsonb),
                state = $3, next_attempt_at = $4::timestamptz
          WHERE id = $1 AND state = 'pending' AND jsonb_array_length(attempts) = $5::int - 1
          RETURNING id`,
        [
          id,
          JSON.stringify(storedAttempt(tried)),
          result.state,
          next?.toISOString() ?? null,
          tried.attempt,
        ],
      );
      return rows.length > 0;
    });
  }

  forEmail(emailId: EmailId): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return attempt(async () => {
      const rows = await this.sql.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM webhook_deliveries WHERE email_id = $1 ORDER BY created_at, id`,
        [emailId],
      );
      return rows.map(toDelivery);
    });
  }

  recent(limit: number): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return attempt(async () => {
      const rows = await this.sql.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM webhook_deliveries ORDER BY created_at DESC, id DESC LIMIT $1`,
        [atMost(limit)],
      );
      return rows.map(toDelivery);
    });
  }

  overdue(
    dueBefore: Date,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return attempt(async () => {
      const rows = await this.sql.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM webhook_deliveries
         WHERE state = 'pending' AND coalesce(next_attempt_at, created_at) < $1::timestamptz
         ORDER BY coalesce(next_attempt_at, created_at), id LIMIT $2`,
        [dueBefore.toISOString(), atMost(limit)],
      );
      return rows.map(toDelivery);
    });
  }

  oldestPending(): TE.TaskEither<StoreUnavailable, O.Option<Date>> {
    return attempt(async () => {
      const rows = await this.sql.query<{ oldest: Date | null }>(
        `SELECT min(created_at) AS oldest FROM webhook_deliveries WHERE state = 'pending'`,
      );
      const oldest = rows[0]?.oldest ?? null;
      return oldest === null ? O.none : O.some(new Date(oldest));
    });
  }

  purgeOlderThan(cutoff: Date, batchSize: number): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      return countDeleted(
        this.sql,
        `DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE created_at < $1::timestamptz AND state <> 'pending'
           ORDER BY created_at, id LIMIT $2
         )`,
        [cutoff.toISOString(), atMost(batchSize)],
      );
    });
  }
}
