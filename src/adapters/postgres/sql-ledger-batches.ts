import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { Batcher } from './batcher.js';

/** A claim to take: for `holder`, when its lease ended by `now`, until `until` (ISO 8601). */
export interface ClaimWanted {
  readonly id: EmailId;
  readonly holder: string;
  readonly now: string;
  readonly until: string;
}

/** What a claim found: taken, or who has the row (a recorded send, or another live claim). */
export interface ClaimRow {
  readonly claimed: boolean;
  readonly provider_id: string | null;
  readonly claimed_by: string | null;
  readonly until_ms: number | null;
}

/** A send to record: `at` as ISO 8601. */
export interface RecordedSend {
  readonly id: EmailId;
  readonly providerId: string;
  readonly at: string;
}

/**
 * One statement for every claim of the turn: take each claim (a new row, or the row of an
 * expired or of its holder's own claim), or else say who has it. The upsert locks each row, so of
 * two workers racing exactly one gets `claimed`. The second SELECT reads the statement's
 * snapshot: a conflicting row committed by a concurrent claim after that snapshot answers
 * nothing, and that claim is asked again. Rows are taken in id order, as every batch of every
 * worker takes them, so that two batches cannot wait for each other's locks.
 */
const CLAIMS = `
  WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
      AS i(email_id, holder, now, until)
  ), taken AS (
    INSERT INTO delivery_ledger AS l (email_id, claimed_by, claimed_until)
    SELECT email_id, holder, until FROM input ORDER BY email_id
    ON CONFLICT (email_id) DO UPDATE
       SET claimed_by = EXCLUDED.claimed_by, claimed_until = EXCLUDED.claimed_until
     WHERE l.provider_id IS NULL
       AND (l.claimed_until <= (SELECT i.now FROM input i WHERE i.email_id = l.email_id)
            OR l.claimed_by = EXCLUDED.claimed_by)
    RETURNING l.email_id
  )
  SELECT email_id, true AS claimed, NULL::text AS provider_id, NULL::text AS claimed_by,
         NULL::float8 AS until_ms
    FROM taken
  UNION ALL
  SELECT l.email_id, false, l.provider_id, l.claimed_by,
         (extract(epoch FROM l.claimed_until) * 1000)::float8
    FROM delivery_ledger l JOIN input USING (email_id)
   WHERE NOT EXISTS (SELECT 1 FROM taken t WHERE t.email_id = l.email_id)`;

/** Every send of the turn; the claim's holder stays on the row, for whoever traces a duplicate. */
const RECORDS = `
  INSERT INTO delivery_ledger AS l (email_id, provider_id, sent_at)
  SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS s(email_id, provider_id, sent_at)
  ORDER BY email_id
  ON CONFLICT (email_id) DO UPDATE
     SET provider_id = EXCLUDED.provider_id, sent_at = EXCLUDED.sent_at
   WHERE l.provider_id IS NULL`;

const byId = <T extends { readonly id: EmailId }>(items: readonly T[]): T[] =>
  [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

/**
 * The ledger's two per-email statements, each gathered across the calls of one event-loop turn
 * (`Batcher`, `concurrent`): a worker's concurrent deliveries share their round trips and commits. An
 * email at most once a statement (the key), since `ON CONFLICT DO UPDATE` may not touch a row
 * twice.
 */
export class LedgerBatches {
  private readonly claims: Batcher<ClaimWanted, ClaimRow | undefined>;
  private readonly records: Batcher<RecordedSend, undefined>;

  constructor(sql: SqlClient) {
    this.claims = new Batcher<ClaimWanted, ClaimRow | undefined>({
      write: async (wanted) => {
        const sorted = byId(wanted);
        // Prepared, as every statement of a worker's sends: one text whatever the batch's size
        // (its arrays are parameters), so each connection parses it once (see EmailStateBatches).
        const rows = await sql.query<ClaimRow & { email_id: string }>(
          CLAIMS,
          [
            sorted.map((c) => c.id),
            sorted.map((c) => c.holder),
            sorted.map((c) => c.now),
            sorted.map((c) => c.until),
          ],
          { prepared: true },
        );
        const found = new Map(rows.map((row) => [row.email_id, row]));
        return wanted.map((c) => found.get(c.id));
      },
      key: (c) => c.id,
      concurrent: true,
      maxBatch: 100,
    });
    this.records = new Batcher<RecordedSend, undefined>({
      write: async (sends) => {
        const sorted = byId(sends);
        await sql.query(
          RECORDS,
          [sorted.map((s) => s.id), sorted.map((s) => s.providerId), sorted.map((s) => s.at)],
          { prepared: true },
        );
        return sends.map(() => undefined);
      },
      key: (send) => send.id,
      concurrent: true,
      maxBatch: 100,
    });
  }

  /** The claim's outcome; undefined when the row changed under the statement (ask again). */
  claim(wanted: ClaimWanted): Promise<ClaimRow | undefined> {
    return this.claims.run(wanted);
  }

  record(send: RecordedSend): Promise<undefined> {
    return this.records.run(send);
  }
}
