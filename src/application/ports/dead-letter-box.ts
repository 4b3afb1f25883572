import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord } from '../../domain/delivery.js';
import type { QueueUnavailable } from './email-queue.js';

export interface DeadLetter {
  readonly id: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly reason: string;
  readonly attempts: number;
  readonly failedAt: string;
  readonly history: readonly AttemptRecord[];
}

export type ReplaySelector = { readonly id: string } | { readonly all: true };

/** Inspecting and replaying what could not be delivered (`email dead-letters …`). */
export interface DeadLetterBox {
  /** Lists without consuming: the messages stay where they are. */
  list(): TaskEither<QueueUnavailable, readonly DeadLetter[]>;
  /** Puts matching dead letters back on the tasks queue with a fresh attempt budget. */
  replay(selector: ReplaySelector): TaskEither<QueueUnavailable, number>;
  purge(): TaskEither<QueueUnavailable, number>;
}
