import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * A signed-in browser. Found by `digest`, the SHA-256 (hex) of the token in its cookie: the
 * token itself is never stored, so a copy of the table signs no one in.
 */
export interface Session {
  readonly digest: string;
  readonly operator: string;
  readonly createdAt: Date;
  /** Moved forward as the session is used; idle expiry counts from here. */
  readonly lastSeenAt: Date;
}

/** The web sessions, shared by every server, so a sign-in on one is valid on all. */
export interface SessionStore {
  /**
   * Stores a new session. Its operator must exist (a removed one signs in no more): a session
   * for an operator removed meanwhile is refused as `StoreUnavailable`, so a sign-in racing a
   * removal fails (503, try again) rather than handing out a cookie that signs no one in.
   */
  create(session: Session): TaskEither<StoreUnavailable, void>;
  /** The session with this digest, whatever its age (the caller judges idle expiry). */
  find(digest: string): TaskEither<StoreUnavailable, Option<Session>>;
  /** Moves the session's `lastSeenAt` forward to `at` (never back). */
  touch(digest: string, at: Date): TaskEither<StoreUnavailable, void>;
  /** Ends the session (sign-out, rotation, expiry); absent is fine. */
  remove(digest: string): TaskEither<StoreUnavailable, void>;
  /** Forgets sessions last seen before `cutoff`; answers how many. */
  purgeIdleSince(cutoff: Date): TaskEither<StoreUnavailable, number>;
}
