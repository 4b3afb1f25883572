import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';
import type { QueueUnavailable } from './email-queue.js';

/**
 * What a queue did to bring a waiting retry forward:
 * - `moved`: the waiting task itself is due now (the SQL queue: a row whose due time changed),
 *   so there is still one task, and nothing to drop later;
 * - `copied`: a copy of the task, marked `expedited`, is on the queue due now (RabbitMQ: a
 *   message in a TTL queue cannot be reordered), and the waiting task will still arrive at its
 *   time: the worker drops it then, since the email log lists its attempt as brought forward;
 * - `not-waiting`: no task of that attempt waits (a worker holds it right now, or it is gone).
 */
export type Expedited = 'moved' | 'copied' | 'not-waiting';

/**
 * The retries waiting in a queue, for an operator's "Retry now". Right means the queue holds
 * what it answered durably (for RabbitMQ: the copy is confirmed).
 */
export interface RetryQueue {
  /**
   * Makes attempt `attempt` of `request` due now; `history` is the earlier attempts the task
   * carries (oldest first), for a copy.
   */
  expedite(
    request: EmailRequest,
    attempt: number,
    history: readonly AttemptRecord[],
  ): TaskEither<QueueUnavailable, Expedited>;
}
