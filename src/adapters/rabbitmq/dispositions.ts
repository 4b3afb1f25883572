import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { QueueUnavailable } from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import type { Disposition, EmailTask } from '../../application/ports/email-task-source.js';
import { retryStep } from '../../domain/delivery.js';
import type { DeadLetterInfo, WireMessage } from '../messaging/task-message.js';
import { encodeTask, toDeadLetter } from '../messaging/task-message.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import type { TopologyNames } from './topology.js';
import { topologyNames } from './topology.js';

export interface DispositionsOptions {
  readonly publisher: RabbitMqPublisher;
  readonly prefix: string;
  readonly retryDelaysMs: readonly number[];
  readonly now?: () => Date;
}

/**
 * Turns a worker's decision into broker state: a copy in the retry queue of that delay, or in
 * the dead queue with why. Right only once the broker confirmed (and routed) that copy, which is
 * what allows the consumer to ack the original.
 */
export class Dispositions {
  private readonly names: TopologyNames;
  private readonly steps: readonly [number, ...number[]];

  constructor(private readonly options: DispositionsOptions) {
    const [first, ...rest] = options.retryDelaysMs;
    if (first === undefined) throw new Error('retryDelaysMs must not be empty');
    this.steps = [first, ...rest];
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
        // The core's delay is already one of these steps (one RETRY_DELAYS feeds the policy and
        // the topology); rounding with the same rule keeps any other delay off a missing queue.
        const step = retryStep(this.steps, disposition.delayMs);
        const next = encodeTask({
          request: task.request,
          attempt: disposition.attempt,
          history: disposition.history,
          ...(disposition.expedited === true ? { expedited: true as const } : {}),
        });
        // Through the default exchange, straight to the queue of that delay (see topology.ts).
        return this.options.publisher.publish('', this.names.retryQueue(step), next);
      }
      case 'Redeliver':
        // The consumer holds a Redeliver itself; one that gets here goes back to the broker.
        return () => Promise.resolve(E.left(queueUnavailable(disposition.reason)));
      case 'DeadLetter':
        return this.deadLetter(original, {
          reason: disposition.reason,
          attempts: task.attempt,
          history: disposition.history,
        });
    }
  }

  deadLetter(
    original: WireMessage,
    info: Omit<DeadLetterInfo, 'failedAt'>,
  ): TE.TaskEither<QueueUnavailable, void> {
    const letter = toDeadLetter(original, {
      ...info,
      failedAt: (this.options.now ?? (() => new Date()))(),
    });
    return this.options.publisher.publish(this.names.deadExchange, '', letter);
  }
}
