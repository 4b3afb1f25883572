import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { WebhookTokens } from '../../application/ports/webhook-tokens.js';
import { WEBHOOK_TOKEN_MEMORY_MS } from '../../application/ports/webhook-tokens.js';
import type { SqlClient } from './sql-client.js';
import { attempt } from './sql-client.js';

/**
 * Webhook tokens in the `webhook_tokens` table, shared by every server. The insert decides
 * (`ON CONFLICT DO NOTHING`): of two servers handed the same request at once, one is told it is
 * new. Times come from `at`, the caller's clock, never from the database's.
 */
export class SqlWebhookTokens implements WebhookTokens {
  constructor(private readonly sql: SqlClient) {}

  remember(token: string, at: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      // Two statements, not one: a data-modifying CTE's insert would still see the rows its
      // delete removes, and call a forgotten token known.
      await this.sql.query('DELETE FROM webhook_tokens WHERE seen_at < $1::timestamptz', [
        new Date(at.getTime() - WEBHOOK_TOKEN_MEMORY_MS).toISOString(),
      ]);
      const inserted = await this.sql.query(
        `INSERT INTO webhook_tokens (token, seen_at) VALUES ($1, $2::timestamptz)
         ON CONFLICT (token) DO NOTHING RETURNING token`,
        [token, at.toISOString()],
      );
      return inserted.length > 0;
    });
  }

  forget(token: string): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query('DELETE FROM webhook_tokens WHERE token = $1', [token]);
    });
  }
}
