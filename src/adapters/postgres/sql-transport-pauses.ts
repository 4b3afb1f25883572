import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { TransportPauses } from '../../application/ports/transport-pauses.js';
import type { SqlClient } from './sql-client.js';
import { attempt } from './sql-client.js';

/**
 * The pauses in `transport_pauses`, one row per transport, shared by every worker on the
 * database. A pause is one upsert that only ever moves the end later, so two workers throttled at
 * once leave the longer pause, in whichever order their statements run.
 */
export class SqlTransportPauses implements TransportPauses {
  constructor(private readonly sql: SqlClient) {}

  pause(transport: string, until: Date): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query(
        `INSERT INTO transport_pauses (transport, paused_until) VALUES ($1, $2::timestamptz)
         ON CONFLICT (transport) DO UPDATE SET paused_until = EXCLUDED.paused_until
          WHERE transport_pauses.paused_until < EXCLUDED.paused_until`,
        [transport, until.toISOString()],
      );
    });
  }

  pausedUntil(transport: string): TE.TaskEither<StoreUnavailable, Date | undefined> {
    return attempt(async () => {
      const rows = await this.sql.query<{ paused_until: Date }>(
        'SELECT paused_until FROM transport_pauses WHERE transport = $1',
        [transport],
      );
      const row = rows[0];
      return row === undefined ? undefined : new Date(row.paused_until);
    });
  }
}
