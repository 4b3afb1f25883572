import type { Channel, GetMessage } from 'amqplib';
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  DeadLetter,
  DeadLetterBox,
  ReplaySelector,
} from '../../application/ports/dead-letter-box.js';
import type { QueueUnavailable } from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import type { WireMessage } from '../messaging/task-message.js';
import { describeDeadLetter, replayOf } from '../messaging/task-message.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import { errorText } from './rabbitmq-publisher.js';
import type { TopologyNames } from './topology.js';
import { SEND_ROUTING_KEY, topologyNames } from './topology.js';

export interface RabbitMqDeadLetterBoxOptions {
  /** Replays go out through it, confirmed, before the dead letter is acked. */
  readonly publisher: RabbitMqPublisher;
  readonly prefix: string;
}

const wireOf = (msg: GetMessage): WireMessage => ({
  body: msg.content,
  messageId: typeof msg.properties.messageId === 'string' ? msg.properties.messageId : undefined,
  headers: msg.properties.headers ?? {},
});

/**
 * `email dead-letters …` on the dead queue. A queue cannot be browsed, so listing takes every
 * message unacked on a channel of its own and closes it: RabbitMQ puts them all back, in their
 * order (checked on 3.10), and nothing is ever acked. The same trick leaves alone the letters a
 * replay did not select.
 */
export class RabbitMqDeadLetterBox implements DeadLetterBox {
  private readonly names: TopologyNames;

  constructor(private readonly options: RabbitMqDeadLetterBoxOptions) {
    this.names = topologyNames(options.prefix);
  }

  list(): TE.TaskEither<QueueUnavailable, readonly DeadLetter[]> {
    return this.withChannel(async (channel) =>
      E.right((await this.takeAll(channel)).map((msg) => describeDeadLetter(wireOf(msg)))),
    );
  }

  replay(selector: ReplaySelector): TE.TaskEither<QueueUnavailable, number> {
    return this.withChannel(async (channel) => {
      let replayed = 0;
      for (const msg of await this.takeAll(channel)) {
        const task = replayOf(wireOf(msg), selector);
        // Not taken: it goes back to the dead queue, in its place, when the channel closes.
        if (task === undefined) continue;
        const published = await this.options.publisher.publish(
          this.names.tasksExchange,
          SEND_ROUTING_KEY,
          task,
        )();
        // Not confirmed: stop here; this letter and the rest go back when the channel closes.
        if (E.isLeft(published)) return published;
        channel.ack(msg);
        replayed += 1;
      }
      return E.right(replayed);
    });
  }

  purge(): TE.TaskEither<QueueUnavailable, number> {
    return this.withChannel(async (channel) =>
      E.right((await channel.purgeQueue(this.names.deadQueue)).messageCount),
    );
  }

  private async takeAll(channel: Channel): Promise<GetMessage[]> {
    const taken: GetMessage[] = [];
    for (;;) {
      const msg = await channel.get(this.names.deadQueue, { noAck: false });
      if (msg === false) return taken;
      taken.push(msg);
    }
  }

  private withChannel<A>(
    use: (channel: Channel) => Promise<E.Either<QueueUnavailable, A>>,
  ): TE.TaskEither<QueueUnavailable, A> {
    return async () => {
      const model = this.options.publisher.connection.current();
      if (!model) return E.left(queueUnavailable('not connected to RabbitMQ'));
      let channel: Channel | undefined;
      try {
        channel = await model.createChannel();
        channel.on('error', () => undefined); // the failed call rejects, handled below
        return await use(channel);
      } catch (err) {
        return E.left(queueUnavailable(`RabbitMQ dead-letter queue: ${errorText(err)}`));
      } finally {
        // Unacked letters return to the queue now, before the caller looks again.
        await channel?.close().catch(() => undefined);
      }
    };
  }
}
