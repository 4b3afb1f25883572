import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailRequest } from '../../domain/email-request.js';
import type { EmailStatus, StatusName } from '../../domain/email-status.js';
import { STATUS_NAMES } from '../../domain/email-status.js';
import type { DomainEvent } from '../../domain/events.js';

/** A store did not answer (database down, timed out). Expected, and answered with 503 or a redelivery. */
export interface StoreUnavailable {
  readonly _tag: 'StoreUnavailable';
  /** Safe to show a person: never a URL or a password. */
  readonly reason: string;
}

export const storeUnavailable = (reason: string): StoreUnavailable => ({
  _tag: 'StoreUnavailable',
  reason,
});

/**
 * A `cursor` the log did not hand out: unreadable, or pointing outside any time it can hold.
 * Expected (a client's mistake, or a cursor from an older version), and answered with 400; never
 * read as "start from the top", which would show the first page again as if it were the next.
 */
export interface InvalidCursor {
  readonly _tag: 'InvalidCursor';
}

export const invalidCursor: InvalidCursor = { _tag: 'InvalidCursor' };

/**
 * The times a query's `since` and `until`, and a cursor, may name: 1970 up to the end of 9999.
 * Every adapter can store and compare those; PostgreSQL has no year 0 and JavaScript dates end
 * in 275760, so a time outside would fail in one store and not in another.
 */
export const LISTABLE_TIMES = { fromMs: 0, untilMs: Date.UTC(10_000, 0, 1) } as const;

/** True for a whole millisecond within `LISTABLE_TIMES`. */
export const isListableTime = (ms: number): boolean =>
  Number.isInteger(ms) && ms >= LISTABLE_TIMES.fromMs && ms < LISTABLE_TIMES.untilMs;

/**
 * The cursor every EmailLog adapter writes for "after this email": its acceptance time (ms) and
 * id, as base64url JSON. One format, so a cursor means the same whichever store is behind.
 */
export const encodeEmailCursor = (createdMs: number, id: string): string =>
  Buffer.from(JSON.stringify([createdMs, id])).toString('base64url');

/**
 * The position a cursor names, or undefined when `encodeEmailCursor` could not have written it:
 * only a listable time and a well-formed id ever reach a store, so a made-up cursor is the
 * client's mistake (400), not a refused statement (503).
 */
export function decodeEmailCursor(cursor: string): readonly [number, EmailId] | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'number' &&
      isListableTime(value[0]) &&
      EmailId.is(value[1])
    ) {
      return [value[0], value[1]];
    }
  } catch {
    // not base64url JSON: as invalid as a well-formed cursor out of range
  }
  return undefined;
}

/** The filters of `GET /emails`; every one optional, all of them together (AND). */
export interface EmailQuery {
  readonly status?: StatusName;
  /**
   * A substring of any recipient's address, case-insensitive. One no address can contain (a
   * control character such as NUL or a line break, a lone surrogate: `foreignToAddresses`)
   * matches nothing.
   */
  readonly to?: string;
  /** Emails that carry this tag. */
  readonly tag?: string;
  /** Accepted at or after this time (within `LISTABLE_TIMES`). */
  readonly since?: Date;
  /** Accepted before this time (within `LISTABLE_TIMES`). */
  readonly until?: Date;
  /** Opaque, from an earlier page's `nextCursor`: continue after its last email. */
  readonly cursor?: string;
  /** Emails a page, 1 to 100. */
  readonly limit: number;
}

/**
 * The filters `countByStatus` takes: those of `EmailQuery` that choose emails, without the status
 * (every status is counted) or the page (`cursor`, `limit`): the counts are of every match.
 */
export type EmailCountQuery = Omit<EmailQuery, 'status' | 'cursor' | 'limit'>;

/** How many emails are in each status: every status is a key, 0 where there is none. */
export type StatusCounts = Readonly<Record<StatusName, number>>;

/** Every status at 0, for an adapter to add its counts to. */
export const noStatusCounts = (): Record<StatusName, number> =>
  Object.fromEntries(STATUS_NAMES.map((name) => [name, 0])) as Record<StatusName, number>;

/** One page of the log, newest first; `nextCursor` is absent on the last page. */
export interface EmailPage {
  readonly data: readonly EmailStatus[];
  readonly nextCursor?: string;
}

/** What folding one event did: the email as it is now, and whether the event was news. */
export interface Applied {
  readonly status: EmailStatus;
  /** False when the event was already known (a redelivery, an echo): announce nothing. */
  readonly changed: boolean;
  /**
   * The store's version of `status`, opaque to callers: handed back to `apply` as its `basis`,
   * it lets the store write the next fold without reading first. Absent where a store has none.
   */
  readonly version?: number;
}

/**
 * The email log: every email's request, status, recipients, attempts and history. It is the
 * source of truth for what `GET /emails` shows; events on the bus only say that something changed.
 * Every method answers `StoreUnavailable` rather than rejecting when the store cannot be reached.
 */
export interface EmailLog {
  /**
   * Records an accepted request as `queued`, keeping the whole request so it can be shown and
   * sent again. Recording an id that is already there changes nothing.
   */
  record(request: EmailRequest): TaskEither<StoreUnavailable, void>;
  /** Removes a recorded email the queue then refused (the client was told 503: it never was). */
  forget(id: EmailId): TaskEither<StoreUnavailable, void>;
  /**
   * Folds `event` into its email with `evolveStatus`, atomically per email, so two workers'
   * events never read the same old state. An event for an unknown id starts a new entry.
   *
   * `basis`, when given, is what this process's last `apply` for the same email answered: a hint
   * only. The store may fold onto it without reading, in one conditional write that succeeds only
   * if the email is still at `basis.version`; otherwise (another writer moved it, or no version)
   * it reads and folds as without a basis. The answer is the same either way.
   */
  apply(event: DomainEvent, basis?: Applied): TaskEither<StoreUnavailable, Applied>;
  /**
   * Folds `events` (at least one, every one of the same email) in order, as `apply` would one
   * after the other, but atomically and in one write: for changes known together, such as a
   * short send's `sending` and its outcome (see DeliverEmail), one write where `apply` makes one
   * each. Answers one `Applied` per event, in order: the email after it, and whether it was news
   * (announce those); only the last carries the store's `version`, and it alone is a `basis`
   * for the next fold. `basis` is as for `apply`. Throws (a bug) for no events, or events of
   * two emails.
   */
  applyAll(
    events: readonly DomainEvent[],
    basis?: Applied,
  ): TaskEither<StoreUnavailable, readonly Applied[]>;
  /**
   * A `basis` for `apply` without reading: the entry `record(request)` makes when nothing came
   * before it and nothing changed it since (as `record` leaves a request accepted whole, with no
   * recipient dropped and no email it resends). Undefined where the store keeps no versions.
   * Worked out, not read, so `apply` folds onto it only while the entry is exactly that (the same
   * version and the same status); an entry that is not (moved on since, or recorded from another
   * request under the same id, or begun by an event) costs the one conditional write that finds
   * nothing, then the read: worth it only where the entry is almost always as recorded, a first
   * attempt.
   */
  recordedBasis(request: EmailRequest): Applied | undefined;
  get(id: EmailId): TaskEither<StoreUnavailable, Option<EmailStatus>>;
  /** The request as it was accepted; none for an id never recorded (or deleted by retention). */
  request(id: EmailId): TaskEither<StoreUnavailable, Option<EmailRequest>>;
  /**
   * Newest first (by acceptance time, then id), filtered by `query`, a page at a time. A cursor
   * that is not one this log's `nextCursor` could have been answers `InvalidCursor`.
   */
  list(query: EmailQuery): TaskEither<StoreUnavailable | InvalidCursor, EmailPage>;
  /**
   * How many emails in each status match `query`, with the same rules as `list` for each filter
   * (a recipient substring no address can hold matches none): the counts above the list of
   * emails, where each status links to its own list.
   */
  countByStatus(query: EmailCountQuery): TaskEither<StoreUnavailable, StatusCounts>;
  /**
   * Deletes up to `batchSize` emails accepted before `cutoff` that are in a final status (`sent`,
   * `failed`), oldest first; answers how many went. An email still `queued`, `sending` or
   * `retrying` is kept however old it is: its task may still be on the queue, and deleting it
   * would lose its request while the worker later wrote a new entry without one.
   */
  purgeOlderThan(cutoff: Date, batchSize: number): TaskEither<StoreUnavailable, number>;
  /**
   * The emails the confirmation watchdog flags: up to `limit` whose status is `sent`, which
   * `transport` took (`EmailStatus.sentBy`) before `sentBefore` (their `sentAt`), and whose
   * history has no provider line (no report on any recipient) and no `unconfirmed` line yet
   * (`awaitsReport`); oldest send first, then by id.
   */
  unconfirmed(
    transport: string,
    sentBefore: Date,
    limit: number,
  ): TaskEither<StoreUnavailable, readonly EmailStatus[]>;
}

/**
 * `events` checked for `EmailLog.applyAll`: at least one, all of one email. Throws otherwise: a
 * caller that mixes emails or passes none has a bug, not an expected failure.
 */
export function sameEmailEvents(
  events: readonly DomainEvent[],
): readonly [DomainEvent, ...DomainEvent[]] {
  const first = events[0];
  if (first === undefined) throw new Error('applyAll needs at least one event');
  // Checked, not copied: every change of every email a worker makes passes here.
  for (let i = 1; i < events.length; i += 1) {
    if (events[i]!.id !== first.id) {
      throw new Error(`applyAll folds the events of one email; got ${first.id} and others`);
    }
  }
  return events as readonly [DomainEvent, ...DomainEvent[]];
}
