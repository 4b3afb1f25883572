import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailQueue, QueueUnavailable } from '../../application/ports/email-queue.js';
import type { Expedited, RetryQueue } from '../../application/ports/retry-queue.js';
import type { AttemptRecord } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';
import { encodeNewTask, encodeTask } from '../messaging/task-message.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import { SEND_ROUTING_KEY, topologyNames } from './topology.js';

export interface RabbitMqEmailQueueOptions {
  readonly publisher: RabbitMqPublisher;
  /** QUEUE_PREFIX: the tasks exchange is `<prefix>.tasks`. */
  readonly prefix: string;
}

/**
 * The server's side of the queue. Right only once RabbitMQ confirmed the task and routed it to
 * the send queue, so a 202 is never a promise the broker did not make.
 */
export class RabbitMqEmailQueue implements EmailQueue, RetryQueue {
  private readonly exchange: string;

  constructor(private readonly options: RabbitMqEmailQueueOptions) {
    this.exchange = topologyNames(options.prefix).tasksExchange;
  }

  publish(request: EmailRequest): TE.TaskEither<QueueUnavailable, void> {
    return this.options.publisher.publish(this.exchange, SEND_ROUTING_KEY, encodeNewTask(request));
  }

  /**
   * "Retry now": a message waiting out its TTL in a retry queue cannot be reached or reordered,
   * so a copy of the task, marked expedited, goes to the send queue now (confirmed); the worker
   * drops the waiting one when it comes back, by the email log's note (see DeliverEmail).
   */
  expedite(
    request: EmailRequest,
    attempt: number,
    history: readonly AttemptRecord[],
  ): TE.TaskEither<QueueUnavailable, Expedited> {
    return pipe(
      this.options.publisher.publish(
        this.exchange,
        SEND_ROUTING_KEY,
        encodeTask({ request, attempt, history, expedited: true }),
      ),
      TE.map((): Expedited => 'copied'),
    );
  }
}
