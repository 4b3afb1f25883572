import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  ApiKeyRecord,
  ApiKeyStore,
  KeyNameTaken,
} from '../../application/ports/api-key-store.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import { storeUnavailable } from '../../application/ports/email-log.js';
import type {
  Operator,
  OperatorExists,
  OperatorStore,
} from '../../application/ports/operator-store.js';
import type { Session, SessionStore } from '../../application/ports/session-store.js';

/**
 * The authentication stores of one process: for unit tests and `memory` runs. They pass the same
 * contract suites as the SQL stores (`test/contracts/`). Each call runs to its end before another
 * starts (nothing is awaited inside), which makes every check-then-write here as atomic as the
 * single statements of the SQL stores.
 */

/** Strings by their code units, as `ORDER BY … COLLATE "C"` orders the SQL stores' lists. */
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface KeyEntry {
  readonly record: ApiKeyRecord;
  /** Kept, revoked, for the record, as the SQL table keeps the row: its key id stays taken. */
  readonly revoked: boolean;
}

export class InMemoryApiKeyStore implements ApiKeyStore {
  private readonly keys = new Map<string, KeyEntry>();
  /** `keyId` and address pairs seen, as JSON (an address may hold any character). */
  private readonly addresses = new Set<string>();

  create(record: ApiKeyRecord): TE.TaskEither<StoreUnavailable | KeyNameTaken, void> {
    // Checked when the task runs, not when it is made: a task made early and run late must see
    // the keys created meanwhile, as the SQL statement does.
    return TE.fromIOEither((): E.Either<StoreUnavailable | KeyNameTaken, void> => {
      if (this.keys.has(record.keyId)) {
        // A bug in whoever made the id, as the SQL store's primary key says.
        return E.left(storeUnavailable('an API key with this key id exists'));
      }
      if (this.live().some((r) => r.name === record.name)) {
        return E.left({ _tag: 'KeyNameTaken', name: record.name });
      }
      this.keys.set(record.keyId, {
        record: { ...record, scopes: [...record.scopes] },
        revoked: false,
      });
      return E.right(undefined);
    });
  }

  find(keyId: string): TE.TaskEither<StoreUnavailable, O.Option<ApiKeyRecord>> {
    return TE.fromIO(() => O.fromNullable(this.liveEntry(keyId)?.record));
  }

  list(): TE.TaskEither<StoreUnavailable, readonly ApiKeyRecord[]> {
    return TE.fromIO(() =>
      this.live().sort(
        (a, b) => a.createdAt.getTime() - b.createdAt.getTime() || byString(a.keyId, b.keyId),
      ),
    );
  }

  revoke(name: string, _at: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      const record = this.live().find((r) => r.name === name);
      if (record === undefined) return false;
      this.keys.set(record.keyId, { record, revoked: true });
      return true;
    });
  }

  touch(keyId: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const entry = this.liveEntry(keyId);
      if (entry === undefined) return;
      const last = entry.record.lastUsedAt;
      if (last !== undefined && last.getTime() >= at.getTime()) return;
      this.keys.set(keyId, { record: { ...entry.record, lastUsedAt: at }, revoked: false });
    });
  }

  /** A key that is not live remembers nothing and answers false, as in SQL. */
  noteAddress(keyId: string, address: string, _at: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      const pair = JSON.stringify([keyId, address]);
      if (this.liveEntry(keyId) === undefined || this.addresses.has(pair)) return false;
      this.addresses.add(pair);
      return true;
    });
  }

  private liveEntry(keyId: string): KeyEntry | undefined {
    const entry = this.keys.get(keyId);
    return entry !== undefined && !entry.revoked ? entry : undefined;
  }

  private live(): ApiKeyRecord[] {
    return [...this.keys.values()].filter((e) => !e.revoked).map((e) => e.record);
  }
}

/**
 * The operators. Sessions belong to them as rows of `sessions` belong to `operators` in SQL: an
 * `InMemorySessionStore` is built on this store, asks it whether an operator exists (the foreign
 * key) and is told when one is removed (`ON DELETE CASCADE`).
 */
export class InMemoryOperatorStore implements OperatorStore {
  private readonly operators = new Map<string, Operator>();
  private readonly cascades: ((name: string) => void)[] = [];

  add(operator: Operator): TE.TaskEither<StoreUnavailable | OperatorExists, void> {
    return TE.fromIOEither((): E.Either<OperatorExists, void> => {
      if (this.operators.has(operator.name)) {
        return E.left({ _tag: 'OperatorExists', name: operator.name });
      }
      this.operators.set(operator.name, operator);
      return E.right(undefined);
    });
  }

  find(name: string): TE.TaskEither<StoreUnavailable, O.Option<Operator>> {
    return TE.fromIO(() => O.fromNullable(this.operators.get(name)));
  }

  list(): TE.TaskEither<StoreUnavailable, readonly Operator[]> {
    return TE.fromIO(() => [...this.operators.values()].sort((a, b) => byString(a.name, b.name)));
  }

  remove(name: string): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      if (!this.operators.delete(name)) return false;
      for (const cascade of this.cascades) cascade(name);
      return true;
    });
  }

  /** Whether `name` is an operator now: what the sessions' foreign key checks. */
  has(name: string): boolean {
    return this.operators.has(name);
  }

  /** Calls `cascade` with the name of every operator removed from now on. */
  onRemove(cascade: (name: string) => void): void {
    this.cascades.push(cascade);
  }
}

/** What `create` answers for an operator who does not exist; the SQL store says the same. */
const NO_SUCH_OPERATOR = 'the operator of this session does not exist';

/**
 * The sessions, over the operators of `operators` (see `InMemoryOperatorStore`): a session for
 * an operator who does not exist is refused with `StoreUnavailable`, as the SQL store's foreign
 * key refuses it, and removing an operator ends their sessions.
 */
export class InMemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly operators: InMemoryOperatorStore) {
    operators.onRemove((name) => {
      for (const [digest, session] of this.sessions) {
        if (session.operator === name) this.sessions.delete(digest);
      }
    });
  }

  create(session: Session): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIOEither((): E.Either<StoreUnavailable, void> => {
      if (!this.operators.has(session.operator)) return E.left(storeUnavailable(NO_SUCH_OPERATOR));
      if (this.sessions.has(session.digest)) {
        return E.left(storeUnavailable('a session with this digest exists'));
      }
      this.sessions.set(session.digest, session);
      return E.right(undefined);
    });
  }

  find(digest: string): TE.TaskEither<StoreUnavailable, O.Option<Session>> {
    return TE.fromIO(() => O.fromNullable(this.sessions.get(digest)));
  }

  touch(digest: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const session = this.sessions.get(digest);
      if (session === undefined || session.lastSeenAt.getTime() >= at.getTime()) return;
      this.sessions.set(digest, { ...session, lastSeenAt: at });
    });
  }

  remove(digest: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      this.sessions.delete(digest);
    });
  }

  purgeIdleSince(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      let purged = 0;
      for (const [digest, session] of this.sessions) {
        if (session.lastSeenAt.getTime() < cutoff.getTime()) {
          this.sessions.delete(digest);
          purged += 1;
        }
      }
      return purged;
    });
  }
}
