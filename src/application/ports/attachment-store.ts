import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';
import type { StoreUnavailable } from './email-log.js';

/** What the store answers for stored bytes: their name (SHA-256, lowercase hex) and size. */
export interface StoredAttachment {
  readonly digest: string;
  /** Octets. */
  readonly size: number;
}

/**
 * The bytes of attachments, stored once whatever the number of emails that carry them
 * (content-addressed by SHA-256), so that a task on the queue carries a reference of a few
 * dozen bytes instead of megabytes, and a retry or a replay sends the same file.
 */
export interface AttachmentStore {
  /** Stores `content` (idempotent: the same bytes are one entry) and ties it to email `id`. */
  put(id: EmailId, content: Uint8Array): TaskEither<StoreUnavailable, StoredAttachment>;
  /** The bytes stored under `digest`, if any. */
  get(digest: string): TaskEither<StoreUnavailable, Option<Uint8Array>>;
  /**
   * Deletes what no email refers to any more (its emails were purged or never recorded) and was
   * stored before `cutoff`; answers how many entries.
   */
  purgeOrphans(cutoff: Date): TaskEither<StoreUnavailable, number>;
}
