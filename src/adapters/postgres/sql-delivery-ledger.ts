import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryLedger, SendClaim } from '../../application/ports/delivery-ledger.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { attempt, StoreFault, countDeleted } from './sql-client.js';
import { TickBatcher } from './tick-batcher.js';

interface ClaimRow {
  readonly claimed: boolean;
  readonly provider_id: string | null;
  readonly claimed_by: string | null;
  readonly until_ms: number | null;
}

/**
 * One statement: take the claim (a new row, or the row of an expired or of our own claim), or
 * else say who has it. The upsert locks the row, so of two workers racing exactly one gets
 * `claimed`. The second SELECT reads the statement's snapshot: when the conflicting row was
 * committed by a concurrent claim after that snapshot, it answers nothing, and claim() asks again.
 */
const CLAIM = `
  WITH taken AS (
    INSERT INTO delivery_ledger AS l (email_id, claimed_by, claimed_until)
    VALUES ($1, $2, $4::timestamptz)
    ON CONFLICT (email_id) DO UPDATE
       SET claimed_by = EXCLUDED.claimed_by, claimed_until = EXCLUDED.claimed_until
     WHERE l.provider_id IS NULL AND (l.claimed_until <= $3::timestamptz OR l.claimed_by = $2)
    RETURNING 1
  )
  SELECT true AS claimed, NULL::text AS provider_id, NULL::text AS claimed_by,
         NULL::float8 AS until_ms
    FROM taken
  UNION ALL
  SELECT false, provider_id, claimed_by, (extract(epoch FROM claimed_until) * 1000)::float8
    FROM delivery_ledger
   WHERE email_id = $1 AND NOT EXISTS (SELECT 1 FROM taken)`;

/** A send to record: `at` as ISO 8601. */
interface RecordedSend {
  readonly id: EmailId;
  readonly providerId: string;
  readonly at: string;
}

/** Rounds of a claim that lost a race to a row it could not see yet; one more always does. */
const CLAIM_ROUNDS = 5;

/**
 * The delivery ledger in the `delivery_ledger` table, shared by every worker: one row per email,
 * a claim until the provider accepted it, then the send (see `migrations/`). The primary key
 * makes "one holder at a time" and "the first entry wins" properties of the table.
 */
export class SqlDeliveryLedger implements DeliveryLedger {
  /**
   * The sends recorded within one turn of the event loop, in one statement (`TickBatcher`): a
   * worker's concurrent deliveries share the round trip and the commit. An email at most once a
   * statement, since `ON CONFLICT DO UPDATE` may not touch a row twice.
   */
  private readonly records: TickBatcher<RecordedSend, undefined>;

  constructor(private readonly sql: SqlClient) {
    this.records = new TickBatcher<RecordedSend, undefined>(
      async (sends) => {
        // The claim's holder stays on the row: who sent it, for whoever traces a duplicate.
        await this.sql.query(
          `INSERT INTO delivery_ledger AS l (email_id, provider_id, sent_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
           ON CONFLICT (email_id) DO UPDATE
              SET provider_id = EXCLUDED.provider_id, sent_at = EXCLUDED.sent_at
            WHERE l.provider_id IS NULL`,
          [sends.map((s) => s.id), sends.map((s) => s.providerId), sends.map((s) => s.at)],
        );
        return sends.map(() => undefined);
      },
      { key: (send) => send.id },
    );
  }

  claim(
    id: EmailId,
    holder: string,
    now: Date,
    leaseMs: number,
  ): TE.TaskEither<StoreUnavailable, SendClaim> {
    const until = new Date(now.getTime() + leaseMs);
    return attempt(async () => {
      for (let round = 0; round < CLAIM_ROUNDS; round += 1) {
        const [row] = await this.sql.query<ClaimRow>(CLAIM, [
          id,
          holder,
          now.toISOString(),
          until.toISOString(),
        ]);
        if (row === undefined) continue;
        if (row.claimed) return { _tag: 'Claimed' };
        if (row.provider_id !== null) return { _tag: 'AlreadySent', providerId: row.provider_id };
        return {
          _tag: 'Busy',
          holder: row.claimed_by ?? 'unknown',
          until: new Date(Math.round(row.until_ms ?? 0)),
        };
      }
      throw new StoreFault('a send claim kept changing while it was taken');
    });
  }

  record(id: EmailId, providerId: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return attempt(() => this.records.add({ id, providerId, at: at.toISOString() }));
  }

  release(id: EmailId, holder: string): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query(
        `DELETE FROM delivery_ledger
          WHERE email_id = $1 AND claimed_by = $2 AND provider_id IS NULL`,
        [id, holder],
      );
    });
  }

  purgeOlderThan(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      return countDeleted(
        this.sql,
        `DELETE FROM delivery_ledger
          WHERE sent_at < $1::timestamptz
             OR (provider_id IS NULL AND claimed_until < $1::timestamptz)`,
        [cutoff.toISOString()],
      );
    });
  }

  /** The provider's id of a recorded send, without claiming anything: for tests and operators. */
  sent(id: EmailId): TE.TaskEither<StoreUnavailable, string | undefined> {
    return attempt(async () => {
      const rows = await this.sql.query<{ provider_id: string | null }>(
        'SELECT provider_id FROM delivery_ledger WHERE email_id = $1',
        [id],
      );
      return rows[0]?.provider_id ?? undefined;
    });
  }
}
