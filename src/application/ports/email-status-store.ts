import type { Option } from 'fp-ts/lib/Option.js';
import type { Task } from 'fp-ts/lib/Task.js';
import type { EmailStatus } from '../../domain/email-status.js';

/** The read model behind `GET /emails/:id`, fed only by the status projection. */
export interface EmailStatusStore {
  get(id: string): Task<Option<EmailStatus>>;
  save(status: EmailStatus): Task<void>;
  /** Calls `listener` after every save of `id`; returns the function that stops it. */
  watch(id: string, listener: (status: EmailStatus) => void): () => void;
}
