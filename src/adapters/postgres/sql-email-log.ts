import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  Applied,
  EmailCountQuery,
  EmailLog,
  EmailPage,
  EmailQuery,
  InvalidCursor,
  StatusCounts,
  StoreUnavailable,
} from '../../application/ports/email-log.js';
import {
  decodeEmailCursor,
  encodeEmailCursor,
  invalidCursor,
  noStatusCounts,
  sameEmailEvents,
} from '../../application/ports/email-log.js';
import { foreignToAddresses } from '../../domain/email-address.js';
import type { EmailId } from '../../domain/email-request.js';
import { EmailRequest } from '../../domain/email-request.js';
import type { EmailStatus, StatusName } from '../../domain/email-status.js';
import { STATUS_NAMES, evolveStatus, isFinalStatus } from '../../domain/email-status.js';
import type { DomainEvent } from '../../domain/events.js';
import { acceptedEvent } from '../../domain/events.js';
import { allRecipients } from '../../domain/email-request.js';
import { Batcher, isDataError } from './batcher.js';
import type { SqlClient } from './sql-client.js';
import type { StateRow } from './sql-email-log-batches.js';
import { EmailStateBatches } from './sql-email-log-batches.js';
import { attempt, sameJson, StoreFault, countDeleted, toStoreUnavailable } from './sql-client.js';

/** Lost races before `apply` stops re-reading and takes the row lock instead. */
const OPTIMISTIC_ROUNDS = 4;
/** `emails.version` of a row just inserted: the column's default (the first migration). */
const RECORDED_VERSION = 1;
/** Under the row lock a write can only lose to an insert or a delete of the same id. */
const LOCKED_ROUNDS = 3;

interface ListRow {
  readonly state: EmailStatus;
  readonly created_at: Date;
  readonly id: string;
}

/**
 * One new row of `emails`: its id and time, and its state and request as JSON, as `recordsetOf`
 * writes them into the INSERT's one parameter.
 */
type NewRow = readonly [
  id: string,
  createdAt: string,
  state: string,
  recipients: string,
  tags: readonly string[],
  request: string | null,
];

/** The stored time is cut to milliseconds: cursors carry milliseconds, as JavaScript dates do. */
const AT = (param: string): string => `date_trunc('milliseconds', ${param}::timestamptz)`;

/** Addresses contain no line break, so a match can never span two of them. */
const recipientsText = (to: readonly string[]): string => to.join('\n');

/** `%`, `_` and the escape character itself are literal in the person's substring. */
const escapeLike = (s: string): string => s.replace(/[\\%_]/g, '\\$&');

/**
 * The conditions of the filters `list` and `countByStatus` share (recipient substring, tag, time
 * range), each value added to the statement's parameters through `param`.
 */
function sharedFilters(query: EmailCountQuery, param: (value: unknown) => string): string[] {
  const where: string[] = [];
  if (query.to !== undefined) {
    // No address holds a control character or a lone surrogate, and PostgreSQL would refuse
    // a NUL in the pattern (22021): such a needle finds nothing without asking. (A line
    // break, the separator in `recipients`, would otherwise match across two addresses.)
    where.push(
      foreignToAddresses(query.to)
        ? 'false'
        : `recipients ILIKE ${param(`%${escapeLike(query.to)}%`)} ESCAPE '\\'`,
    );
  }
  if (query.tag !== undefined) where.push(`tags @> ARRAY[${param(query.tag)}::text]`);
  if (query.since !== undefined) {
    where.push(`created_at >= ${param(query.since.toISOString())}::timestamptz`);
  }
  if (query.until !== undefined) {
    where.push(`created_at < ${param(query.until.toISOString())}::timestamptz`);
  }
  return where;
}

/** A statement's parameters, and `param` that adds one and answers its placeholder (`$n`). */
function parameters(): { readonly params: unknown[]; param(value: unknown): string } {
  const params: unknown[] = [];
  return {
    params,
    param: (value) => {
      params.push(value);
      return `$${params.length}`;
    },
  };
}

const isStatusName = (name: string): name is StatusName => STATUS_NAMES.some((n) => n === name);

/** What retention may delete: only emails whose delivery is over. */
const FINAL_STATUSES: readonly string[] = STATUS_NAMES.filter(isFinalStatus);

/**
 * Whether a fold changed nothing. Nearly every change adds a history line, and a history of
 * another length is a change without serialising both states (the canonical JSON of the whole
 * state was a few per cent of a worker's CPU per email); same length: compared in full.
 */
const sameStatus = (a: EmailStatus, b: EmailStatus): boolean =>
  a === b || (a.history.length === b.history.length && sameJson(a, b));

/**
 * `events` folded in order onto `start` (undefined: no entry yet): for each, the email after it
 * and whether it changed it. No version: the caller puts the written one on the last.
 */
function foldEach(start: EmailStatus | undefined, events: readonly DomainEvent[]): Applied[] {
  let status = start;
  return events.map((event) => {
    const next = evolveStatus(status, event);
    const changed = status === undefined || !sameStatus(next, status);
    status = next;
    return { status: next, changed };
  });
}

/** `answers` (a fold's own, from `foldEach`) with the last now at `version`, the basis's. */
function atVersion(answers: Applied[], version: number): Applied[] {
  answers[answers.length - 1] = { ...answers[answers.length - 1]!, version };
  return answers;
}

const lastOf = (answers: readonly Applied[]): Applied => answers[answers.length - 1]!;

/**
 * The email log in the `emails` table (see `migrations/`): one row per email with its folded
 * status (`state`), the accepted request, and the columns `GET /emails` filters on.
 *
 * Folding is optimistic: read the state and its version, fold with `evolveStatus`, write back only
 * if the version is unchanged, and read again after a lost race; after a few lost races the row is
 * locked instead, so a hot email still settles. Two processes folding events into one email thus
 * never both build on the same old state.
 */
export class SqlEmailLog implements EmailLog {
  /**
   * The accept path's INSERTs: the records of concurrent requests go in one multi-row INSERT, one
   * round trip and one commit (see `Batcher`). A row the database refuses for its values is
   * written again alone, so it fails its own request only.
   */
  private readonly inserts: Batcher<NewRow, boolean>;
  /** Reads and writes of folds outside a transaction, shared with the calls of the same turn. */
  private readonly batches: EmailStateBatches;
  /**
   * The answers `apply` gave: a state this log read or wrote at its version. Any other basis (one
   * `recordedBasis` worked out, or a copy of an answer) is written onto only where the row's
   * state is that very one, `onto` checks: a guard that fails closed.
   */
  private readonly answers = new WeakSet<Applied>();
  /**
   * What each `recordedBasis` answer was worked out from: the request, from which an `apply` onto
   * it that finds no row at all begins the row (see `step`); and its state as JSON, which `onto`
   * compares the row with (serialised once, not again for the write).
   */
  private readonly recorded = new WeakMap<
    Applied,
    { readonly request: EmailRequest; readonly json: string }
  >();

  constructor(private readonly sql: SqlClient) {
    this.inserts = new Batcher({ write: (rows) => this.insertMany(rows), retryAlone: isDataError });
    this.batches = new EmailStateBatches(sql);
  }

  /**
   * Committed when Right. One multi-row INSERT for every request recorded at the same time, when
   * the ids are new (the accept path). When a worker's event got there first, the row is completed
   * with the request and the `EmailRequested` fold, under the same optimistic rule as `apply`.
   */
  record(request: EmailRequest): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      const event = acceptedEvent(request);
      const row = newRow(evolveStatus(undefined, event), event, request);
      if (await this.inserts.run(row)) return;
      await this.fold([event], request);
    });
  }

  /**
   * The row `insertMany` writes for `request` (`newRow`'s state, from the same `acceptedEvent`)
   * at the version every INSERT gives (`RECORDED_VERSION`, the column's default). A guess: `onto`
   * writes onto it only where the row still holds that very state (compared as `jsonb`), since a
   * row at that version may hold another (an abandoned idempotency key taken over under the same
   * id with a later request; a row an event created; a request whose recipients the worker then
   * screened).
   *
   * An `apply` onto this basis that finds no row at all writes the whole row, the request
   * included, as `record` would have begun it and then folded; one that finds a row an event
   * began without its request fills the request in: the request of a server that writes behind
   * (WRITE_BEHIND_MS) may come after the task, or, if that server died first, never.
   */
  recordedBasis(request: EmailRequest): Applied {
    // Through JSON, as a read would give it: what is compared is what was stored.
    const json = JSON.stringify(evolveStatus(undefined, acceptedEvent(request)));
    const basis = {
      status: JSON.parse(json) as EmailStatus,
      changed: true,
      version: RECORDED_VERSION,
    };
    this.recorded.set(basis, { request, json });
    return basis;
  }

  forget(id: EmailId): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query('DELETE FROM emails WHERE id = $1', [id]);
    });
  }

  /** With a `basis` still current, one conditional UPDATE; otherwise read-fold-write. */
  apply(event: DomainEvent, basis?: Applied): TE.TaskEither<StoreUnavailable, Applied> {
    const applying = this.applyAll([event], basis);
    return async () => {
      const answers = await applying();
      return E.isRight(answers) ? E.right(lastOf(answers.right)) : answers;
    };
  }

  /** As `apply`, the events' states worked out in turn and the last one written. */
  applyAll(
    events: readonly DomainEvent[],
    basis?: Applied,
  ): TE.TaskEither<StoreUnavailable, readonly Applied[]> {
    const all = sameEmailEvents(events);
    // `attempt` written out: one async function rather than two, for every change of every
    // email a worker makes.
    return async () => {
      try {
        const known = basis === undefined ? undefined : await this.onto(all, basis);
        const answers =
          known ??
          (await this.fold(
            all,
            undefined,
            basis === undefined ? undefined : this.recorded.get(basis)?.request,
          ));
        this.answers.add(lastOf(answers));
        return E.right(answers);
      } catch (err) {
        return E.left(toStoreUnavailable(err));
      }
    };
  }

  get(id: EmailId): TE.TaskEither<StoreUnavailable, O.Option<EmailStatus>> {
    return attempt(async () => {
      const rows = await this.sql.query<{ state: EmailStatus }>(
        'SELECT state FROM emails WHERE id = $1',
        [id],
      );
      return O.fromNullable(rows[0]?.state);
    });
  }

  request(id: EmailId): TE.TaskEither<StoreUnavailable, O.Option<EmailRequest>> {
    return attempt(async () => {
      const rows = await this.sql.query<{ request: unknown }>(
        'SELECT request FROM emails WHERE id = $1',
        [id],
      );
      const stored = rows[0]?.request;
      if (stored === undefined || stored === null) return O.none;
      // Decoding re-grants the brands (addresses, subject, id): jsonb gives back plain strings.
      const decoded = EmailRequest.decode(stored);
      if (E.isLeft(decoded)) throw new StoreFault('a stored email request does not decode');
      return O.some(decoded.right);
    });
  }

  list(query: EmailQuery): TE.TaskEither<StoreUnavailable | InvalidCursor, EmailPage> {
    const after = query.cursor !== undefined ? decodeEmailCursor(query.cursor) : undefined;
    if (query.cursor !== undefined && after === undefined) return TE.left(invalidCursor);
    return attempt(async () => {
      const { params, param } = parameters();
      const where: string[] = [];
      if (query.status !== undefined) where.push(`status = ${param(query.status)}`);
      where.push(...sharedFilters(query, param));
      if (after !== undefined) {
        const at = param(new Date(after[0]).toISOString());
        where.push(`(created_at, id) < (${at}::timestamptz, ${param(after[1])})`);
      }
      // One row more than the page tells whether there is a next page, without a count.
      const rows = await this.sql.query<ListRow>(
        `SELECT state, created_at, id FROM emails
         ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC
         LIMIT ${param(query.limit + 1)}`,
        params,
      );
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return {
        data: page.map((row) => row.state),
        ...(rows.length > query.limit && last !== undefined
          ? { nextCursor: encodeEmailCursor(new Date(last.created_at).getTime(), last.id) }
          : {}),
      };
    });
  }

  /**
   * One `GROUP BY status` over the rows `list` would show. Unfiltered, it reads the index
   * `emails_status_newest` (status first) rather than the table; the time filters are its second
   * column. Either way it counts every email the log keeps, which retention bounds
   * (`RETENTION_DAYS`).
   */
  countByStatus(query: EmailCountQuery): TE.TaskEither<StoreUnavailable, StatusCounts> {
    return attempt(async () => {
      const { params, param } = parameters();
      const where = sharedFilters(query, param);
      const rows = await this.sql.query<{ status: string; count: number }>(
        `SELECT status, count(*)::int AS count FROM emails
         ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         GROUP BY status`,
        params,
      );
      const counts = noStatusCounts();
      for (const row of rows) {
        if (isStatusName(row.status)) counts[row.status] += Number(row.count);
      }
      return counts;
    });
  }

  purgeOlderThan(cutoff: Date, batchSize: number): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      return countDeleted(
        this.sql,
        `DELETE FROM emails WHERE id IN (
           SELECT id FROM emails WHERE created_at < $1::timestamptz AND status = ANY($3::text[])
           ORDER BY created_at, id LIMIT $2
         )`,
        [cutoff.toISOString(), batchSize, FINAL_STATUSES],
      );
    });
  }

  /**
   * One index range scan: the conditions are written as the partial index
   * `emails_awaiting_report` states them (migrations/1768348800000_unconfirmed.sql), which the
   * planner needs in order to use it. `awaitsReport` is the same rule in the domain.
   */
  unconfirmed(
    transport: string,
    sentBefore: Date,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly EmailStatus[]> {
    return attempt(async () => {
      const rows = await this.sql.query<{ state: EmailStatus }>(
        `SELECT state FROM emails
         WHERE status = 'sent'
           AND NOT (state -> 'history' @> '[{"source": "provider"}]'::jsonb)
           AND NOT (state -> 'history' @> '[{"status": "unconfirmed"}]'::jsonb)
           AND state ->> 'sentBy' = $1
           AND (state ->> 'sentAt') COLLATE "C" < $2
         ORDER BY (state ->> 'sentAt') COLLATE "C", id
         LIMIT $3`,
        [transport, sentBefore.toISOString(), limit],
      );
      return rows.map((row) => row.state);
    });
  }

  /**
   * Folds `event` onto `basis` without reading: the write succeeds only while the row is still at
   * `basis.version`, and, for a basis that is not one of this log's answers (`recordedBasis`),
   * only while the row's state equals `basis.status` as `jsonb`. Undefined when it is not
   * (another writer moved it, the row is gone, or it holds another state), or when the event is
   * no news to the basis: the caller then reads, as without a basis.
   */
  private async onto(
    events: readonly [DomainEvent, ...DomainEvent[]],
    basis: Applied,
  ): Promise<Applied[] | undefined> {
    const id = events[0].id;
    if (basis.version === undefined || basis.status.id !== id) return undefined;
    const answers = foldEach(basis.status, events);
    if (!answers.some((answer) => answer.changed)) return undefined;
    const { status } = lastOf(answers);
    const { version } = basis;
    const written = await this.batches.write({
      id,
      version,
      state: JSON.stringify(status),
      ...(this.answers.has(basis)
        ? {}
        : { expected: this.recorded.get(basis)?.json ?? JSON.stringify(basis.status) }),
    });
    return written ? atVersion(answers, version + 1) : undefined;
  }

  /**
   * Folds `event` (and, from `record`, fills the request of a row an early event created).
   * Optimistic rounds first, then the same step under `SELECT … FOR UPDATE`. `recorded`: the
   * request a `recordedBasis` was worked out from, which begins a row that is not there.
   */
  private async fold(
    events: readonly [DomainEvent, ...DomainEvent[]],
    request: EmailRequest | undefined,
    recorded?: EmailRequest,
  ): Promise<Applied[]> {
    for (let round = 0; round < OPTIMISTIC_ROUNDS; round += 1) {
      const applied = await this.step(this.sql, events, request, false, recorded);
      if (applied !== undefined) return applied;
    }
    return this.sql.transaction(async (tx) => {
      for (let round = 0; round < LOCKED_ROUNDS; round += 1) {
        const applied = await this.step(tx, events, request, true, recorded);
        if (applied !== undefined) return applied;
      }
      throw new StoreFault('the email log could not settle concurrent writes to one email');
    });
  }

  /** One read-fold-write; undefined when another writer got there first (read again). */
  private async step(
    sql: SqlClient,
    events: readonly [DomainEvent, ...DomainEvent[]],
    request: EmailRequest | undefined,
    lock: boolean,
    recorded?: EmailRequest,
  ): Promise<Applied[] | undefined> {
    const event = events[0];
    // Outside a transaction, the read and the write are batched with this turn's others.
    const batched = sql === this.sql && !lock;
    const row = batched
      ? await this.batches.read(event.id)
      : (
          await sql.query<StateRow>(
            `SELECT state, version, request IS NOT NULL AS recorded FROM emails WHERE id = $1
             ${lock ? 'FOR UPDATE' : ''}`,
            [event.id],
          )
        )[0];
    if (row === undefined) {
      // No row yet: begun from the recorded request when there is one (a worker ahead of a
      // server that writes behind, or after it died), as `record` then this fold would have.
      const begun =
        request === undefined && recorded !== undefined
          ? evolveStatus(undefined, acceptedEvent(recorded))
          : undefined;
      const answers = foldEach(begun, events);
      if (begun !== undefined) answers[0] = { ...answers[0]!, changed: true };
      return (await this.insert(sql, lastOf(answers).status, event, request ?? recorded))
        ? atVersion(answers, 1)
        : undefined;
    }
    const { version } = row;
    // Recording an id already recorded changes nothing, whatever the request says.
    if (request !== undefined && row.recorded)
      return [{ status: row.state, changed: false, version }];
    // A row an event began that still lacks its request (the server wrote that event through
    // and holds the request behind, or died holding it): filled from the recorded request. An
    // id reused with a later request (an abandoned idempotency key taken over) may so keep the
    // request of the task that was sent rather than the later one: the same draft either way.
    const filling = request ?? (row.recorded ? undefined : recorded);
    // Filled from a worker's recorded request, the row also gains the `queued` line that request
    // would have begun it with (as `record` folds its accepted event): a row a report or an
    // operator began lacks it. One the accepted event began has it at the same moment already.
    const start =
      request === undefined && filling !== undefined
        ? evolveStatus(row.state, acceptedEvent(filling))
        : row.state;
    const answers = foldEach(start, events);
    const { status } = lastOf(answers);
    if (!answers.some((answer) => answer.changed) && filling === undefined) {
      return atVersion(answers, version);
    }
    const state = JSON.stringify(status);
    if (filling === undefined && batched) {
      const written = await this.batches.write({ id: event.id, version, state });
      return written ? atVersion(answers, version + 1) : undefined;
    }
    const updated =
      filling === undefined
        ? await sql.query(
            `UPDATE emails SET state = $3::jsonb, version = version + 1, updated_at = now()
             WHERE id = $1 AND version = $2 RETURNING id`,
            [event.id, row.version, state],
          )
        : await sql.query(
            `UPDATE emails SET state = $3::jsonb, version = version + 1, updated_at = now(),
               created_at = ${AT('$4')}, recipients = $5, tags = $6::text[], request = $7::jsonb
             WHERE id = $1 AND version = $2 AND request IS NULL RETURNING id`,
            [
              event.id,
              row.version,
              state,
              filling.requestedAt,
              recipientsText(allRecipients(filling)),
              filling.tags ?? [],
              JSON.stringify(filling),
            ],
          );
    return updated.length > 0 ? atVersion(answers, version + 1) : undefined;
  }

  /** Inserts a new row unless the id exists; true if this call created it. */
  private async insert(
    sql: SqlClient,
    status: EmailStatus,
    event: DomainEvent,
    request: EmailRequest | undefined,
  ): Promise<boolean> {
    // The batched INSERT's own statement, with one row: one text for every new row.
    const rows = await sql.query(INSERT_ROWS, [recordsetOf([newRow(status, event, request)])]);
    return rows.length > 0;
  }

  /**
   * Inserts the rows whose id is new, in one statement; for each row, true if it created it. Of
   * two rows with one id, the first is the one created: the other was not, as if it came later.
   *
   * The rows travel as one JSON array (`jsonb_to_recordset`), so the statement is the same text
   * whatever their number: prepared once per connection and planned generically after its first
   * executions. A VALUES list of six parameters a row was a new statement for every batch size
   * on every pooled connection, each re-planned for its first five executions; measured on 10
   * connections with batches of 20 to 60 rows, the backends spent 40 to 107 µs a row on it,
   * against 28 to 50 so.
   */
  private async insertMany(rows: readonly NewRow[]): Promise<boolean[]> {
    const created = await this.sql.query<{ id: string }>(INSERT_ROWS, [recordsetOf(rows)], {
      prepared: true,
    });
    const fresh = new Set(created.map((row) => row.id));
    return rows.map(([id]) => fresh.delete(id));
  }
}

/**
 * `rows` as the JSON array `INSERT_ROWS` reads: one object a row, its state and request spliced
 * in as the JSON `newRow` already made of them (valid JSON, so the whole is), and a request not
 * known as JSON `null`, which `jsonb_to_recordset` gives as SQL NULL.
 */
const recordsetOf = (rows: readonly NewRow[]): string =>
  `[${rows
    .map(
      ([id, createdAt, state, recipients, tags, request]) =>
        `{"id":${JSON.stringify(id)},"created_at":${JSON.stringify(createdAt)},"state":${state},` +
        `"recipients":${JSON.stringify(recipients)},"tags":${JSON.stringify(tags)},` +
        `"request":${request ?? 'null'}}`,
    )
    .join(',')}]`;

/** The multi-row INSERT of `insertMany`, from `recordsetOf`'s JSON array in `$1`. */
const INSERT_ROWS = `INSERT INTO emails (id, created_at, state, recipients, tags, request)
  SELECT r.id, ${AT('r.created_at')}, r.state, r.recipients, r.tags, r.request
  FROM jsonb_to_recordset($1::jsonb) AS r(
    id text, created_at timestamptz, state jsonb, recipients text, tags text[], request jsonb)
  ON CONFLICT (id) DO NOTHING RETURNING id`;

/** The values of a new row: the request's when there is one, else what the event says. */
function newRow(
  status: EmailStatus,
  event: DomainEvent,
  request: EmailRequest | undefined,
): NewRow {
  return [
    event.id,
    request?.requestedAt ?? event.at,
    JSON.stringify(status),
    recipientsText(allRecipients(request ?? event)),
    request?.tags ?? [],
    request === undefined ? null : JSON.stringify(request),
  ];
}
