import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryLedger, SendClaim } from '../../application/ports/delivery-ledger.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { attempt, StoreFault, countDeleted } from './sql-client.js';
import { LedgerBatches } from './sql-ledger-batches.js';

/** Rounds of a claim that lost a race to a row it could not see yet; one more always does. */
const CLAIM_ROUNDS = 5;

/**
 * The delivery ledger in the `delivery_ledger` table, shared by every worker: one row per email,
 * a claim until the provider accepted it, then the send (see `migrations/`). The primary key
 * makes "one holder at a time" and "the first entry wins" properties of the table.
 */
export class SqlDeliveryLedger implements DeliveryLedger {
  /** Claims and records, each batched with the calls of the same event-loop turn. */
  private readonly batches: LedgerBatches;

  constructor(private readonly sql: SqlClient) {
    this.batches = new LedgerBatches(sql);
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
        const row = await this.batches.claim({
          id,
          holder,
          now: now.toISOString(),
          until: until.toISOString(),
        });
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
    return attempt(() => this.batches.record({ id, providerId, at: at.toISOString() }));
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
