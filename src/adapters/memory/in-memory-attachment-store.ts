import { createHash } from 'node:crypto';
import { pipe } from 'fp-ts/lib/function.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  AttachmentStore,
  StoredAttachment,
} from '../../application/ports/attachment-store.js';
import type { EmailLog, StoreUnavailable } from '../../application/ports/email-log.js';
import type { Clock } from '../../application/ports/system.js';
import type { EmailId } from '../../domain/email-request.js';

interface Entry {
  readonly content: Uint8Array;
  readonly createdMs: number;
}

interface Link {
  readonly id: EmailId;
  readonly digest: string;
}

/**
 * The attachments of one process: for unit tests and `memory` runs. It passes the same contract
 * suite as `SqlAttachmentStore` (`test/contracts/`).
 *
 * Which emails exist is asked of the email log (`emails.get`), the same log the process records
 * emails in, as the SQL store's purge asks the `emails` table: an email the log knows, even by
 * its events alone, keeps its attachments. A log rather than an `exists` callback, because the
 * in-memory log can only be asked through its port. The bytes are copied in and out, so that no
 * caller can change what is stored, as no caller can change a row.
 */
export class InMemoryAttachmentStore implements AttachmentStore {
  private readonly entries = new Map<string, Entry>();
  /** Per digest, the emails that carry it and when each was linked (ms). */
  private readonly links = new Map<string, Map<EmailId, number>>();

  constructor(
    private readonly emails: Pick<EmailLog, 'get'>,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  put(id: EmailId, content: Uint8Array): TE.TaskEither<StoreUnavailable, StoredAttachment> {
    return TE.fromIO(() => {
      const digest = createHash('sha256').update(content).digest('hex');
      const nowMs = this.clock.now().getTime();
      if (!this.entries.has(digest)) {
        this.entries.set(digest, { content: Uint8Array.from(content), createdMs: nowMs });
      }
      const carriers = this.links.get(digest) ?? new Map<EmailId, number>();
      if (!carriers.has(id)) carriers.set(id, nowMs);
      this.links.set(digest, carriers);
      return { digest, size: content.byteLength };
    });
  }

  get(digest: string): TE.TaskEither<StoreUnavailable, O.Option<Uint8Array>> {
    return TE.fromIO(() => {
      const entry = this.entries.get(digest);
      return entry === undefined ? O.none : O.some(Uint8Array.from(entry.content));
    });
  }

  /**
   * The same two steps as in SQL. The links are checked against the log first (the one place
   * anything is awaited); the bytes are then dropped in one synchronous step, so a `put` that
   * came in meanwhile keeps what it linked.
   */
  purgeOrphans(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    const beforeMs = cutoff.getTime();
    return pipe(
      TE.fromIO(() => this.linksBefore(beforeMs)),
      TE.flatMap(
        TE.traverseSeqArray((link) =>
          pipe(
            this.emails.get(link.id),
            TE.map((email) => (O.isNone(email) ? [link] : [])),
          ),
        ),
      ),
      TE.map((unrecorded) => {
        for (const link of unrecorded.flat()) this.links.get(link.digest)?.delete(link.id);
        return this.dropUnlinked(beforeMs);
      }),
    );
  }

  private linksBefore(beforeMs: number): readonly Link[] {
    return [...this.links].flatMap(([digest, carriers]) =>
      [...carriers]
        .filter(([, linkedMs]) => linkedMs < beforeMs)
        .map(([id]): Link => ({ id, digest })),
    );
  }

  private dropUnlinked(beforeMs: number): number {
    let dropped = 0;
    for (const [digest, entry] of this.entries) {
      if (entry.createdMs >= beforeMs || (this.links.get(digest)?.size ?? 0) > 0) continue;
      this.entries.delete(digest);
      this.links.delete(digest);
      dropped += 1;
    }
    return dropped;
  }
}
