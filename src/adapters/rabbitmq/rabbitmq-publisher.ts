import type { ChannelModel, ConfirmChannel, Message } from 'amqplib';
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { QueueUnavailable } from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import type { Logger } from '../../application/ports/system.js';
import type { WireMessage } from '../messaging/task-message.js';
import { WIRE_PROPERTIES } from '../messaging/task-message.js';
import { ChannelKeeper } from './channel-keeper.js';
import type { RabbitMqConnection } from './connection.js';

export interface RabbitMqPublisherOptions {
  readonly connection: RabbitMqConnection;
  readonly logger: Logger;
  /** How long to wait for the broker's confirm before answering QueueUnavailable (5 s). */
  readonly confirmTimeoutMs?: number;
}

export interface PublishOptions {
  /** Unroutable = failure (default). Events turn it off: nobody listening is not an error. */
  readonly mandatory?: boolean;
  readonly persistent?: boolean;
  /** The AMQP `type` property, when a queue carries more than one kind of message. */
  readonly type?: string;
}

/** Correlates a `basic.return` with its publish; the broker sends it before the confirm. */
const PUBLISH_ID = 'x-publish-id';

/**
 * Publishes with confirms on one confirm channel per connection. Right means the broker has the
 * message in a queue: confirmed *and* not returned (a confirm alone is sent for unroutable
 * messages too). Every other path is a prompt Left: not connected, blocked by an alarm, channel
 * closed, nacked, returned, or no confirm in time. Nothing is buffered or republished here: the
 * caller (a 503 to the client, a requeue in the worker) is the retry.
 */
export class RabbitMqPublisher {
  private readonly channel: ChannelKeeper<ConfirmChannel>;
  /** While the socket buffer is full: settles once it drained (or the channel closed). */
  private draining: Promise<void> | undefined;
  /** Mandatory publishes awaiting their confirm → why the broker returned them, if it did. */
  private readonly pending = new Map<string, string | undefined>();
  /** Numbers the mandatory publishes: a return names its publish by it (`PUBLISH_ID`). */
  private published = 0;

  constructor(private readonly options: RabbitMqPublisherOptions) {
    this.channel = new ChannelKeeper(options.connection, (model, lost) =>
      this.openChannel(model, lost),
    );
  }

  get connection(): RabbitMqConnection {
    return this.options.connection;
  }

  publish(
    exchange: string,
    routingKey: string,
    message: WireMessage,
    options: PublishOptions = {},
  ): TE.TaskEither<QueueUnavailable, void> {
    return () =>
      new Promise<E.Either<QueueUnavailable, void>>((resolve) => {
        const model = this.options.connection.current();
        if (!model) return resolve(E.left(queueUnavailable('not connected to RabbitMQ')));
        if (this.options.connection.isBlocked()) {
          return resolve(
            E.left(queueUnavailable('RabbitMQ is blocking publishers (a resource alarm)')),
          );
        }
        const timeoutMs = this.options.confirmTimeoutMs ?? 5000;
        // Only a mandatory publish can come back (`basic.return`): the others need no name.
        const mandatory = options.mandatory ?? true;
        const id = mandatory ? String((this.published += 1)) : undefined;
        if (id !== undefined) this.pending.set(id, undefined);
        // The first answer stands: the broker's (confirm, nack, return), a failure, or the timeout.
        const answer = (result: E.Either<QueueUnavailable, void>): void => {
          clearTimeout(timer);
          if (id !== undefined) this.pending.delete(id);
          resolve(result);
        };
        const timer = setTimeout(
          () => answer(E.left(queueUnavailable(`no confirm from RabbitMQ within ${timeoutMs} ms`))),
          timeoutMs,
        );
        this.send(model, exchange, routingKey, message, options, id).then(answer, (err: unknown) =>
          answer(E.left(queueUnavailable(`RabbitMQ publish failed: ${errorText(err)}`))),
        );
      });
  }

  private async send(
    model: ChannelModel,
    exchange: string,
    routingKey: string,
    message: WireMessage,
    options: PublishOptions,
    id: string | undefined,
  ): Promise<E.Either<QueueUnavailable, void>> {
    const channel = await this.channel.acquire(model);
    // A full socket buffer: wait until it drains rather than pile more on.
    if (this.draining !== undefined) await this.draining;
    const confirmed = new Promise<unknown>((resolve) => {
      const written = channel.publish(
        exchange,
        routingKey,
        message.body,
        // Written out rather than spread from WIRE_PROPERTIES: V8 builds a literal that opens
        // with a spread on a slow path, and every task and event is published here.
        {
          contentType: WIRE_PROPERTIES.contentType,
          persistent: options.persistent ?? WIRE_PROPERTIES.persistent,
          mandatory: id !== undefined,
          ...(options.type !== undefined ? { type: options.type } : {}),
          ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
          // The message's headers in their order, then ours (the same table, field for field).
          headers:
            id === undefined
              ? message.headers
              : Object.assign({}, message.headers, { [PUBLISH_ID]: id }),
        },
        (err: unknown) => resolve(err),
      );
      if (!written && this.draining === undefined) {
        const draining = new Promise<void>((done) => {
          channel.once('drain', done);
          channel.once('close', done);
        }).then(() => {
          if (this.draining === draining) this.draining = undefined;
        });
        this.draining = draining;
      }
    });
    const err = await confirmed;
    if (err) return E.left(queueUnavailable(`RabbitMQ did not confirm: ${errorText(err)}`));
    const returned = id === undefined ? undefined : this.pending.get(id);
    if (returned !== undefined) {
      return E.left(queueUnavailable(`RabbitMQ could not route the message: ${returned}`));
    }
    return E.right(undefined);
  }

  /** One confirm channel per connection, opened on the first publish after it closed. */
  private async openChannel(model: ChannelModel, lost: () => void): Promise<ConfirmChannel> {
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: unknown) =>
      this.options.logger.warn({ err: errorText(err) }, 'RabbitMQ publish channel error'),
    );
    channel.on('close', lost);
    channel.on('return', (msg: Message) => {
      const key: unknown = msg.properties.headers?.[PUBLISH_ID];
      if (typeof key === 'string' && this.pending.has(key)) {
        const exchange = msg.fields.exchange === '' ? '(default exchange)' : msg.fields.exchange;
        this.pending.set(key, `no queue bound for ${exchange} → ${msg.fields.routingKey}`);
      }
    });
    return channel;
  }
}

export const errorText = (err: unknown): string =>
  err instanceof Error ? err.message : typeof err === 'string' ? err : JSON.stringify(err);
