import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailRequest } from '../../domain/email-request.js';

/** What the queue ports answer when the broker is out of reach or does not confirm in time. */
export interface QueueUnavailable {
  readonly _tag: 'QueueUnavailable';
  /** Safe to show a person: never a URL with credentials in it. */
  readonly reason: string;
}

export const queueUnavailable = (reason: string): QueueUnavailable => ({
  _tag: 'QueueUnavailable',
  reason,
});

/** The server's side. Right means the queue holds the request durably (for RabbitMQ: confirmed). */
export interface EmailQueue {
  publish(request: EmailRequest): TaskEither<QueueUnavailable, void>;
}
