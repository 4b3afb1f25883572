import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { InvalidCursor, StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  Suppression,
  SuppressionList,
  SuppressionPage as Page,
  SuppressionReason,
} from '../../application/ports/suppression-list.js';
import {
  SUPPRESSION_REASONS,
  encodeSuppressionCursor as encodeCursor,
  readSuppressionCursor,
} from '../../application/ports/suppression-list.js';
import { Batcher } from './batcher.js';
import type { SqlClient } from './sql-client.js';
import { StoreFault, attempt } from './sql-client.js';

interface SuppressionRow {
  readonly address: string;
  readonly reason: string;
  readonly detail: string | null;
  readonly created_at: Date;
}

/** The answer of almost every look-up, shared: nobody is suppressed. */
const NONE: ReadonlySet<string> = new Set();

const isReason = (s: string): s is SuppressionReason => SUPPRESSION_REASONS.some((r) => r === s);

function toSuppression(row: SuppressionRow): Suppression {
  if (!isReason(row.reason)) throw new StoreFault('a stored suppression has an unknown reason');
  return {
    address: row.address,
    reason: row.reason,
    createdAt: new Date(row.created_at),
    ...(row.detail !== null ? { detail: row.detail } : {}),
  };
}

/**
 * The suppression list in `suppressions`, one row per mailbox key. Each call is one statement:
 * of two processes adding one address, the primary key lets exactly one entry in, and the first
 * one stands. `list` pages by keyset on (created_at, address), never by offset.
 */
export class SqlSuppressionList implements SuppressionList {
  /** The look-ups of concurrent requests, as one `= ANY($1)` for all their addresses. */
  private readonly lookups: Batcher<readonly string[], ReadonlySet<string>>;

  constructor(private readonly sql: SqlClient) {
    this.lookups = new Batcher({ write: (lists) => this.lookUp(lists) });
  }

  add(entry: Suppression): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query(
        `INSERT INTO suppressions (address, reason, detail, created_at)
         VALUES ($1, $2, $3, $4::timestamptz)
         ON CONFLICT (address) DO NOTHING RETURNING address`,
        [entry.address, entry.reason, entry.detail ?? null, entry.createdAt.toISOString()],
      );
      return rows.length > 0;
    });
  }

  remove(address: string): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query(
        'DELETE FROM suppressions WHERE address = $1 RETURNING address',
        [address],
      );
      return rows.length > 0;
    });
  }

  /** One statement for the look-ups of every request made at the same time (see `Batcher`). */
  suppressed(addresses: readonly string[]): TE.TaskEither<StoreUnavailable, ReadonlySet<string>> {
    // Not an async function returning the batch's promise: that would settle through a
    // thenable job, a promise more on every send's screening.
    return attempt(() =>
      addresses.length === 0 ? Promise.resolve(new Set<string>()) : this.lookups.run(addresses),
    );
  }

  /** Each list's suppressed addresses, from one look-up of them all. */
  private async lookUp(lists: readonly (readonly string[])[]): Promise<ReadonlySet<string>[]> {
    const rows = await this.sql.query<{ address: string }>(
      'SELECT address FROM suppressions WHERE address = ANY($1::text[])',
      [[...new Set(lists.flat())]],
      { prepared: true },
    );
    if (rows.length === 0) return lists.map(() => NONE);
    const found = new Set(rows.map((row) => row.address));
    return lists.map((list) => new Set(list.filter((address) => found.has(address))));
  }

  /**
   * Every address on the list, when there are at most `max` of them; undefined when there are
   * more (one statement, reading at most `max + 1` rows). For CachedSuppressionList's copy.
   */
  addressesUpTo(max: number): TE.TaskEither<StoreUnavailable, readonly string[] | undefined> {
    return attempt(async () => {
      const rows = await this.sql.query<{ address: string }>(
        'SELECT address FROM suppressions LIMIT $1',
        [max + 1],
      );
      return rows.length > max ? undefined : rows.map((row) => row.address);
    });
  }

  /** A cursor this list never wrote is `InvalidCursor`: neither the end nor the first page. */
  list(limit: number, cursor?: string): TE.TaskEither<StoreUnavailable | InvalidCursor, Page> {
    const start = readSuppressionCursor(cursor);
    if (E.isLeft(start)) return TE.left(start.left);
    const after = start.right;
    return attempt(async (): Promise<Page> => {
      const rows = await this.sql.query<SuppressionRow>(
        `SELECT address, reason, detail, created_at FROM suppressions
          ${after === undefined ? '' : 'WHERE (created_at, address) < ($2::timestamptz, $3)'}
          ORDER BY created_at DESC, address DESC
          LIMIT $1`,
        after === undefined
          ? [limit + 1]
          : [limit + 1, after.createdAt.toISOString(), after.address],
      );
      const entries = rows.slice(0, limit).map(toSuppression);
      const last = entries.at(-1);
      return rows.length > limit && last !== undefined
        ? { entries, nextCursor: encodeCursor(last) }
        : { entries };
    });
  }
}
