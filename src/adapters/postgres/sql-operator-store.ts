import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  Operator,
  OperatorExists,
  OperatorStore,
} from '../../application/ports/operator-store.js';
import type { SqlClient } from './sql-client.js';
import { attempt } from './sql-client.js';

interface OperatorRow {
  readonly name: string;
  readonly password_hash: string;
  readonly created_at: Date;
}

const toOperator = (row: OperatorRow): Operator => ({
  name: row.name,
  passwordHash: row.password_hash,
  createdAt: new Date(row.created_at),
});

/**
 * The operators in the `operators` table, shared by every server. Names are the primary key
 * (compared exactly). Removing an operator ends their sessions through the foreign key of
 * `sessions` (`ON DELETE CASCADE`), in the same statement: no session outlives its operator, even
 * one created on another server at that moment.
 */
export class SqlOperatorStore implements OperatorStore {
  constructor(private readonly sql: SqlClient) {}

  add(operator: Operator): TE.TaskEither<StoreUnavailable | OperatorExists, void> {
    return pipe(
      // A taken name is an answer, not a failure: the insert does nothing and returns no row.
      attempt(() =>
        this.sql.query(
          `INSERT INTO operators (name, password_hash, created_at)
           VALUES ($1, $2, $3::timestamptz)
           ON CONFLICT (name) DO NOTHING RETURNING name`,
          [operator.name, operator.passwordHash, operator.createdAt.toISOString()],
        ),
      ),
      TE.flatMap((rows) =>
        rows.length > 0
          ? TE.right(undefined)
          : TE.left<OperatorExists>({ _tag: 'OperatorExists', name: operator.name }),
      ),
    );
  }

  find(name: string): TE.TaskEither<StoreUnavailable, O.Option<Operator>> {
    return attempt(async () => {
      const rows = await this.sql.query<OperatorRow>(
        'SELECT name, password_hash, created_at FROM operators WHERE name = $1',
        [name],
      );
      return O.map(toOperator)(O.fromNullable(rows[0]));
    });
  }

  list(): TE.TaskEither<StoreUnavailable, readonly Operator[]> {
    return attempt(async () => {
      // By the names' bytes, whatever the database's collation: as the in-memory store sorts.
      const rows = await this.sql.query<OperatorRow>(
        'SELECT name, password_hash, created_at FROM operators ORDER BY name COLLATE "C"',
      );
      return rows.map(toOperator);
    });
  }

  remove(name: string): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query('DELETE FROM operators WHERE name = $1 RETURNING name', [
        name,
      ]);
      return rows.length > 0;
    });
  }
}
