import { createHash } from 'node:crypto';
import * as O from 'fp-ts/lib/Option.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  AttachmentStore,
  StoredAttachment,
} from '../../application/ports/attachment-store.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { Clock } from '../../application/ports/system.js';
import type { EmailId } from '../../domain/email-request.js';
import type { SqlClient } from './sql-client.js';
import { attempt, StoreFault, countDeleted } from './sql-client.js';

/** A `put` or a purge batch tries again when the other one won a race; never this many times. */
const RACE_ROUNDS = 5;

/** Rows one purge statement deletes: small, so that a purge never holds long locks. */
const PURGE_BATCH = 500;

const FOREIGN_KEY_VIOLATION = '23503';

const sqlState = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;

/**
 * Runs `statement` again while it fails on the foreign key from links to bytes: the sign that a
 * `put` and a purge of the same bytes crossed. Each round runs with a fresh snapshot, in which
 * the other one's work is done.
 */
async function settlingRaces<A>(statement: () => Promise<A>, what: string): Promise<A> {
  for (let round = 1; ; round += 1) {
    try {
      return await statement();
    } catch (err) {
      if (sqlState(err) !== FOREIGN_KEY_VIOLATION) throw err;
      if (round >= RACE_ROUNDS) throw new StoreFault(`${what} kept racing a concurrent write`);
    }
  }
}

/**
 * node-postgres gives a Buffer, and so does PGlite behind `PgliteDatabase` (it adopts
 * node-postgres's parsers), where PGlite alone would give a Uint8Array: either way, a plain
 * Uint8Array over the same memory, so that every adapter answers the same type.
 */
const plainBytes = (value: Uint8Array): Uint8Array =>
  new Uint8Array(value.buffer, value.byteOffset, value.byteLength);

/**
 * Attachments in `attachments` (the bytes, once per digest) and `email_attachments` (which email
 * carries which), shared by every server; see the migration for why a link may name an email not
 * recorded yet. Times come from `clock` (the port's `put` takes none), like every time the other
 * stores are given, never from the database's clock.
 *
 * A `put` and a purge of the same bytes may race: the foreign key from links to bytes (no
 * cascade) makes the loser fail, and it tries again. A purge never deletes bytes a new link names,
 * and a `put` never answers for bytes that were deleted under it.
 */
export class SqlAttachmentStore implements AttachmentStore {
  constructor(
    private readonly sql: SqlClient,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly batchSize: number = PURGE_BATCH,
  ) {}

  put(id: EmailId, content: Uint8Array): TE.TaskEither<StoreUnavailable, StoredAttachment> {
    return attempt(async () => {
      const digest = createHash('sha256').update(content).digest('hex');
      const at = this.clock.now().toISOString();
      // One statement: the link's foreign key is checked at its end, when the bytes are in.
      await settlingRaces(
        () =>
          this.sql.query(
            `WITH stored AS (
               INSERT INTO attachments (digest, content, size, created_at)
               VALUES ($2, $3, $4, $5::timestamptz)
               ON CONFLICT (digest) DO NOTHING
             )
             INSERT INTO email_attachments (email_id, digest, linked_at)
             VALUES ($1, $2, $5::timestamptz)
             ON CONFLICT (email_id, digest) DO NOTHING`,
            [id, digest, content, content.byteLength, at],
          ),
        'storing an attachment',
      );
      return { digest, size: content.byteLength };
    });
  }

  get(digest: string): TE.TaskEither<StoreUnavailable, O.Option<Uint8Array>> {
    return attempt(async () => {
      const rows = await this.sql.query<{ content: Uint8Array }>(
        'SELECT content FROM attachments WHERE digest = $1',
        [digest],
      );
      const row = rows[0];
      return row === undefined ? O.none : O.some(plainBytes(row.content));
    });
  }

  /**
   * First the links of emails that are not in `emails` (purged, or never recorded), made before
   * `cutoff`; then the bytes no link names any more, stored before `cutoff`. Batch by batch,
   * each its own statement. Bytes locked by a `put` linking them right now are skipped.
   */
  purgeOrphans(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return attempt(async () => {
      const before = cutoff.toISOString();
      await this.inBatches(
        `DELETE FROM email_attachments WHERE (email_id, digest) IN (
           SELECT l.email_id, l.digest FROM email_attachments AS l
            WHERE l.linked_at < $1::timestamptz
              AND NOT EXISTS (SELECT 1 FROM emails AS e WHERE e.id = l.email_id)
            ORDER BY l.linked_at
            LIMIT $2
              FOR UPDATE SKIP LOCKED
         )`,
        before,
      );
      return this.inBatches(
        `DELETE FROM attachments WHERE digest IN (
           SELECT a.digest FROM attachments AS a
            WHERE a.created_at < $1::timestamptz
              AND NOT EXISTS (SELECT 1 FROM email_attachments AS l WHERE l.digest = a.digest)
            ORDER BY a.created_at
            LIMIT $2
              FOR UPDATE SKIP LOCKED
         )`,
        before,
      );
    });
  }

  /** Runs a counting DELETE until a batch comes back short; answers the rows deleted. */
  /** Runs `deleteStatement` (`$1` the cutoff, `$2` the batch size) until a batch comes up short. */
  private async inBatches(deleteStatement: string, before: string): Promise<number> {
    let total = 0;
    for (;;) {
      const purged = await settlingRaces(
        () => countDeleted(this.sql, deleteStatement, [before, this.batchSize]),
        'purging attachments',
      );
      total += purged;
      if (purged < this.batchSize) return total;
    }
  }
}
