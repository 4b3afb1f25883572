import * as O from 'fp-ts/lib/Option.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { Session, SessionStore } from '../../application/ports/session-store.js';
import type { SqlClient } from './sql-client.js';
import { attempt, StoreFault, countDeleted } from './sql-client.js';

interface SessionRow {
  readonly digest: string;
  readonly operator: string;
  readonly created_at: Date;
  readonly last_seen_at: Date;
}

const toSession = (row: SessionRow): Session => ({
  digest: row.digest,
  operator: row.operator,
  createdAt: new Date(row.created_at),
  lastSeenAt: new Date(row.last_seen_at),
});

const sqlState = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;

/** What `create` answers for an operator who does not exist (or was removed meanwhile). */
const NO_SUCH_OPERATOR = 'the operator of this session does not exist';

/**
 * The web sessions in the `sessions` table, shared by every server. Its foreign key to
 * `operators` is the rule "a removed operator signs in no more": it refuses a session for a name
 * that is not there, and `ON DELETE CASCADE` ends every session of an operator who is removed.
 */
export class SqlSessionStore implements SessionStore {
  constructor(private readonly sql: SqlClient) {}

  /**
   * A session for an operator who does not exist is not stored, and the caller is told so:
   * `StoreUnavailable` with `NO_SUCH_OPERATOR` as the reason, so that a sign-in racing the
   * operator's removal fails instead of handing out a cookie that signs no one in.
   */
  create(session: Session): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      try {
        await this.sql.query(
          `INSERT INTO sessions (digest, operator, created_at, last_seen_at)
           VALUES ($1, $2, $3::timestamptz, $4::timestamptz)`,
          [
            session.digest,
            session.operator,
            session.createdAt.toISOString(),
            session.lastSeenAt.toISOString(),
          ],
        );
      } catch (err) {
        const state = sqlState(err);
        if (state === '23503') throw new StoreFault(NO_SUCH_OPERATOR);
        // A digest is the SHA-256 of a fresh random token: a repeat is a bug, never a sign-in.
        if (state === '23505') throw new StoreFault('a session with this digest exists');
        throw err;
      }
    });
  }

  find(digest: string): TE.TaskEither<StoreUnavailable, O.Option<Session>> {
    return attempt(async () => {
      const rows = await this.sql.query<SessionRow>(
        'SELECT digest, operator, created_at, last_seen_at FROM sessions WHERE digest = $1',
        [digest],
      );
      return O.map(toSession)(O.fromNullable(rows[0]));
    });
  }

  touch(digest: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      // Two servers touching one session race harmlessly: the later time wins, whatever order.
      await this.sql.query(
        `UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2::timestamptz)
         WHERE digest = $1`,
        [digest, at.toISOString()],
      );
    });
  }

  remove(digest: string): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query('DELETE FROM sessions WHERE digest = $1', [digest]);
    });
  }

  purgeIdleSince(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      return countDeleted(this.sql, 'DELETE FROM sessions WHERE last_seen_at < $1::timestamptz', [
        cutoff.toISOString(),
      ]);
    });
  }
}
