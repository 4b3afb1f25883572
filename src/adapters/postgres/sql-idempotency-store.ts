import { createHash } from 'node:crypto';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { Claim, IdempotencyStore } from '../../application/ports/idempotency-store.js';
import {
  IDEMPOTENCY_KEY_TTL_MS,
  IN_PROGRESS_TIMEOUT_MS,
} from '../../application/ports/idempotency-store.js';
import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { attempt, StoreFault, countDeleted } from './sql-client.js';

/** A claim re-reads after each lost race; a key cannot keep changing for longer than this. */
const CLAIM_ROUNDS = 5;

interface KeyRow {
  readonly digest: string;
  readonly email_id: EmailId;
  readonly claimed_at: Date;
  readonly completed: boolean;
}

const msBefore = (now: Date, ms: number): string => new Date(now.getTime() - ms).toISOString();

/**
 * Idempotency keys in the `idempotency_keys` table, shared by every server.
 *
 * Each way to win a key is one conditional statement, so that PostgreSQL decides the race: the
 * insert of an unknown key (`ON CONFLICT DO NOTHING`), the renewal of an expired key, and the
 * takeover of an abandoned claim (`UPDATE … WHERE claimed_at <= cutoff`: of two servers, the
 * second finds the claim already renewed and is told `in-progress`). All times come from `now`,
 * the request's time, never from the database clock.
 */
export class SqlIdempotencyStore implements IdempotencyStore {
  constructor(private readonly sql: SqlClient) {}

  claim(
    key: string,
    payload: string,
    id: EmailId,
    now: Date,
  ): TE.TaskEither<StoreUnavailable, Claim> {
    return attempt(async (): Promise<Claim> => {
      const digest = createHash('sha256').update(payload).digest('hex');
      const at = now.toISOString();
      for (let round = 0; round < CLAIM_ROUNDS; round += 1) {
        const inserted = await this.sql.query(
          `INSERT INTO idempotency_keys (key, digest, email_id, claimed_at, completed)
           VALUES ($1, $2, $3, $4::timestamptz, false)
           ON CONFLICT (key) DO NOTHING RETURNING key`,
          [key, digest, id, at],
        );
        if (inserted.length > 0) return { _tag: 'New', id };

        // Remembered for its whole TTL: past it, the key is as good as unknown.
        const renewed = await this.sql.query(
          `UPDATE idempotency_keys
           SET digest = $2, email_id = $3, claimed_at = $4::timestamptz, completed = false
           WHERE key = $1 AND claimed_at <= $5::timestamptz RETURNING key`,
          [key, digest, id, at, msBefore(now, IDEMPOTENCY_KEY_TTL_MS)],
        );
        if (renewed.length > 0) return { _tag: 'New', id };

        const rows = await this.sql.query<KeyRow>(
          `SELECT digest, email_id, claimed_at, completed FROM idempotency_keys WHERE key = $1`,
          [key],
        );
        const known = rows[0];
        if (known === undefined) continue; // released or purged meanwhile: claim it afresh
        if (known.digest !== digest) return { _tag: 'Conflict', reason: 'different-payload' };
        if (known.completed) return { _tag: 'Repeat', id: known.email_id };
        if (now.getTime() - new Date(known.claimed_at).getTime() < IN_PROGRESS_TIMEOUT_MS) {
          return { _tag: 'Conflict', reason: 'in-progress' };
        }
        // Abandoned: renew the claim and go on with the first id (the ledger sends an id once).
        const takenOver = await this.sql.query<{ email_id: EmailId }>(
          `UPDATE idempotency_keys SET claimed_at = $3::timestamptz
           WHERE key = $1 AND digest = $2 AND NOT completed AND claimed_at <= $4::timestamptz
           RETURNING email_id`,
          [key, digest, at, msBefore(now, IN_PROGRESS_TIMEOUT_MS)],
        );
        const first = takenOver[0];
        if (first !== undefined) return { _tag: 'New', id: first.email_id };
      }
      throw new StoreFault('an idempotency key kept changing while it was claimed');
    });
  }

  complete(key: string): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query('UPDATE idempotency_keys SET completed = true WHERE key = $1', [key]);
    });
  }

  release(key: string): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      await this.sql.query('DELETE FROM idempotency_keys WHERE key = $1', [key]);
    });
  }

  purgeOlderThan(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      return countDeleted(
        this.sql,
        'DELETE FROM idempotency_keys WHERE claimed_at < $1::timestamptz',
        [cutoff.toISOString()],
      );
    });
  }
}
