import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  Disposition,
  EmailTask,
  QueueUnavailable,
} from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import type { Logger } from '../../application/ports/system.js';
import type { WireMessage } from '../messaging/task-message.js';
import { encodeTask, toDeadLetter } from '../messaging/task-message.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import type { TopologyNames } from './topology.js';
import { retryStep, topologyNames } from './topology.js';

export interface DispositionsOptions {
  readonly publisher: RabbitMqPublisher;
  readonly prefix: string;
  readonly retryDelaysMs: readonly number[];
  readonly logger: Logger;
  readonly now?: () => Date;
}

/**
 * Turns a worker's decision into broker state: a copy in the retry queue of that delay, or in
 * the dead queue with why. Right only once the broker confirmed (and routed) that copy, which is
 * what allows the consumer to ack the original.
 */
export class Dispositions {
  private readonly names: TopologyNames;

  constructor(private readonly options: DispositionsOptions) {
    if (options.retryDelaysMs.length === 0) throw new Error('retryDelaysMs must not be empty');
    this.names = topologyNames(options.prefix);
  }

  carryOut(
    original: WireMessage,
    task: EmailTask,
    disposition: Disposition,
  ): TE.TaskEither<QueueUnavailable, void> {
    switch (disposition._tag) {
      case 'Done':
        return () => Promise.resolve(E.right(undefined));
      case 'Retry': {
        const step = retryStep(this.options.retryDelaysMs, disposition.delayMs);
        if (step < disposition.delayMs) {
          this.options.logger.warn(
            { emailId: task.request.id, askedMs: disposition.delayMs, stepMs: step },
            'Retry delay longer than the longest retry queue; using the longest',
          );
        }
        const next = encodeTask({
          request: task.request,
          attempt: disposition.attempt,
          history: disposition.history,
        });
        // Through the default exchange, straight to the queue of that delay (see topology.ts).
        return this.options.publisher.publish('', this.names.retryQueue(step), next);
      }
      case 'Redeliver':
        // The consumer holds a Redeliver itself; one that gets here goes back to the broker.
        return () => Promise.resolve(E.left(queueUnavailable(disposition.reason)));
      case 'DeadLetter':
        return this.deadLetter(original, disposition.reason, task.attempt, disposition.history);
    }
  }

  deadLetter(
    original: WireMessage,
    reason: string,
    attempts: number,
    history: EmailTask['history'],
  ): TE.TaskEither<QueueUnavailable, void> {
    const letter = toDeadLetter(original, {
      reason,
      attempts,
      failedAt: (this.options.now ?? (() => new Date()))(),
      history,
    });
    return this.options.publisher.publish(this.names.deadExchange, '', letter);
  }
}
