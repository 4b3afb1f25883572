// A SqlClient that notes what it is asked, for tests that count round trips.
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';

export interface Statement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** A SqlClient that notes every statement sent outside a transaction, then sends it on. */
export function recording(inner: SqlClient): { client: SqlClient; statements: Statement[] } {
  const statements: Statement[] = [];
  return {
    statements,
    client: {
      query: (sql, params = [], options) => {
        statements.push({ sql, params });
        return inner.query(sql, params, options);
      },
      transaction: (work) => inner.transaction(work),
    },
  };
}
