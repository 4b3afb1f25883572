import type { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import type { SqlClient } from './sql-client.js';
import { Batcher } from './batcher.js';

/** An email's folded state as read for a write: `version` is what the write must still find. */
export interface StateRow {
  readonly state: EmailStatus;
  readonly version: number;
  /** The row has its request (false: an early event created it). */
  readonly recorded: boolean;
}

/**
 * A fold to write: `state` (JSON text) replaces the row's only if it is still at `version`, and,
 * with `expected` (JSON text), only if the row's state equals it as `jsonb` (the fold was made
 * onto a state worked out rather than read: see `SqlEmailLog.recordedBasis`).
 */
export interface StateWrite {
  readonly id: EmailId;
  readonly version: number;
  readonly state: string;
  readonly expected?: string;
}

/**
 * The email log's two hot statements, each gathered across the calls of one event-loop turn
 * (`Batcher`, `concurrent`): the read of a state and its version, and the optimistic write of a fold. A
 * worker's concurrent deliveries then share their round trips and commits. Arrays travel as
 * `text[]` (the states as one JSON array) and are cast in the statement, which node-postgres and
 * PGlite pass alike. Both are prepared (PGlite ignores it): their texts do not depend on the
 * batch's size, so each connection parses them once. PostgreSQL still plans a small batch anew
 * (its generic plan is costed for ten elements an array, so for fewer a custom plan looks
 * cheaper); the generic plans it keeps for larger ones look each row up by its primary key.
 */
export class EmailStateBatches {
  private readonly reads: Batcher<EmailId, StateRow | undefined>;
  private readonly writes: Batcher<StateWrite, boolean>;

  constructor(sql: SqlClient) {
    this.reads = new Batcher<EmailId, StateRow | undefined>({
      write: async (ids) => {
        const rows = await sql.query<StateRow & { id: string }>(
          `SELECT id, state, version, request IS NOT NULL AS recorded
           FROM emails WHERE id = ANY($1::text[])`,
          [[...new Set(ids)]],
          { prepared: true },
        );
        const byId = new Map(rows.map((row) => [row.id, row]));
        return ids.map((id) => byId.get(id));
      },
      concurrent: true,
      maxBatch: 100,
    });
    // One row at most once a statement (the key): an UPDATE … FROM joining a row twice writes
    // one of the two and would report both. In id order, as the ledger's batches: rows locked
    // in one order by every worker's batches cannot leave two of them waiting for each other.
    this.writes = new Batcher({
      write: async (unsorted) => {
        const writes = [...unsorted].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        // The states go as one JSON array, joined from their JSON texts, rather than as a
        // `text[]`: the driver escapes every quote of every element of an array (a few per cent
        // of a worker's CPU), while one text parameter travels as it is.
        // The expected states likewise, JSON null where a write expects none (a state never is).
        const rows = await sql.query<{ id: string }>(
          `UPDATE emails AS e
              SET state = s.state, version = e.version + 1, updated_at = now()
             FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS w(id, version, n)
             JOIN jsonb_array_elements($3::jsonb) WITH ORDINALITY AS s(state, n) USING (n)
             JOIN jsonb_array_elements($4::jsonb) WITH ORDINALITY AS x(expected, n) USING (n)
            WHERE e.id = w.id AND e.version = w.version
              AND (x.expected = 'null'::jsonb OR e.state = x.expected)
           RETURNING e.id`,
          [
            writes.map((w) => w.id),
            writes.map((w) => w.version),
            `[${writes.map((w) => w.state).join(',')}]`,
            `[${writes.map((w) => w.expected ?? 'null').join(',')}]`,
          ],
          { prepared: true },
        );
        const written = new Set(rows.map((row) => row.id));
        return unsorted.map((w) => written.has(w.id));
      },
      key: (w) => w.id,
      concurrent: true,
      maxBatch: 100,
    });
  }

  /** The row of `id` (undefined: none), read in one statement with the others of this turn. */
  read(id: EmailId): Promise<StateRow | undefined> {
    return this.reads.run(id);
  }

  /**
   * True if the row was still at `write.version` (and held `write.expected`, when given) and now
   * holds `write.state`, one version on.
   */
  write(write: StateWrite): Promise<boolean> {
    return this.writes.run(write);
  }
}
