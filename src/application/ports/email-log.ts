import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId, EmailRequest } from '../../domain/email-request.js';
import type { EmailStatus, StatusName } from '../../domain/email-status.js';
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

/** The filters of `GET /emails`; every one optional, all of them together (AND). */
export interface EmailQuery {
  readonly status?: StatusName;
  /** A substring of any recipient's address, case-insensitive. */
  readonly to?: string;
  /** Emails that carry this tag. */
  readonly tag?: string;
  /** Accepted at or after this time. */
  readonly since?: Date;
  /** Accepted before this time. */
  readonly until?: Date;
  /** Opaque, from an earlier page's `nextCursor`: continue after its last email. */
  readonly cursor?: string;
  /** Emails a page, 1 to 100. */
  readonly limit: number;
}

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
   */
  apply(event: DomainEvent): TaskEither<StoreUnavailable, Applied>;
  get(id: EmailId): TaskEither<StoreUnavailable, Option<EmailStatus>>;
  /** The request as it was accepted; none for an id never recorded (or deleted by retention). */
  request(id: EmailId): TaskEither<StoreUnavailable, Option<EmailRequest>>;
  /** Newest first (by acceptance time, then id), filtered by `query`, a page at a time. */
  list(query: EmailQuery): TaskEither<StoreUnavailable, EmailPage>;
  /** Deletes up to `batchSize` emails accepted before `cutoff`; answers how many went. */
  purgeOlderThan(cutoff: Date, batchSize: number): TaskEither<StoreUnavailable, number>;
}
