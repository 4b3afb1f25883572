import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryLedger } from '../../application/ports/delivery-ledger.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { attempt } from './sql-client.js';

/**
 * The delivery ledger in the `delivery_ledger` table, shared by every worker: one row per email
 * a provider accepted. The primary key makes "the first entry wins" a property of the table, so
 * two workers recording the same id at once cannot both write.
 */
export class SqlDeliveryLedger implements DeliveryLedger {
  constructor(private readonly sql: SqlClient) {}

  sent(id: EmailId): TE.TaskEither<StoreUnavailable, string | undefined> {
    return attempt(async () => {
      const rows = await this.sql.query<{ provider_id: string }>(
        'SELECT provider_id FROM delivery_ledger WHERE email_id = $1',
        [id],
      );
      return rows[0]?.provider_id;
    });
  }

  record(id: EmailId, providerId: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query(
        `INSERT INTO delivery_ledger (email_id, provider_id, sent_at)
         VALUES ($1, $2, $3::timestamptz) ON CONFLICT (email_id) DO NOTHING`,
        [id, providerId, at.toISOString()],
      );
    });
  }

  purgeOlderThan(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      const rows = await this.sql.query<{ purged: number }>(
        `WITH gone AS (DELETE FROM delivery_ledger WHERE sent_at < $1::timestamptz RETURNING 1)
         SELECT count(*)::int AS purged FROM gone`,
        [cutoff.toISOString()],
      );
      return rows[0]?.purged ?? 0;
    });
  }
}
