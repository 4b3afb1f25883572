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

/**
 * Correlates a `basic.return` with its publish when the message has no `messageId`; the broker
 * sends the return before the confirm (RabbitMQ, "Publisher Confirms": an unroutable mandatory
 * message is returned, then confirmed).
 */
const PUBLISH_ID = 'x-publish-id';

/**
 * What a return names its publish by: the exchange and routing key it went to and its
 * `messageId`, all three carried back by `basic.return`. Every task, event and dead letter has a
 * `messageId`, so none needs a header of its own for it: a header table costs amqplib a slow
 * encoding on every publish (it walks the table through a prototype it adds): in a CPU profile
 * of the accept load, 8.4 µs of a publish's 33, and 1.8 without the header. Two publishes
 * awaiting their confirm under one key route alike, unless the topology changed in between: then
 * both are answered as returned, a failure the caller retries, never a message said to be queued
 * that is not.
 */
const returnKey = (exchange: string, routingKey: string, messageId: string): string =>
  `${exchange}\n${routingKey}\n${messageId}`;

/** The key of a publish without a messageId: its PUBLISH_ID, apart from every `returnKey`. */
const numberedKey = (publishId: string): string => `#${publishId}`;

/** The mandatory publishes awaiting their confirm under one key; `returned` says why, if so. */
interface Awaiting {
  count: number;
  returned: string | undefined;
}

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
  /** Mandatory publishes awaiting their confirm, by `returnKey` (or `numberedKey`). */
  private readonly pending = new Map<string, Awaiting>();
  /** Numbers the mandatory publishes without a messageId: their return names them by it. */
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
        // Only a mandatory publish can come back (`basic.return`): the others need no key.
        const mandatory = options.mandatory ?? true;
        const { messageId } = message;
        const publishId =
          mandatory && messageId === undefined ? String((this.published += 1)) : undefined;
        const key = !mandatory
          ? undefined
          : publishId !== undefined
            ? numberedKey(publishId)
            : returnKey(exchange, routingKey, messageId!);
        if (key !== undefined) this.await(key);
        // The first answer stands: the broker's (confirm, nack, return), a failure, or the timeout.
        // Only once: a publish that timed out is answered again by its late confirm, and a second
        // `settle` would take the count of a later publish under the same key (a retry of the
        // same email), whose return would then find no entry and go unheard.
        let answered = false;
        const answer = (result: E.Either<QueueUnavailable, void>): void => {
          if (answered) return;
          answered = true;
          clearTimeout(timer);
          if (key !== undefined) this.settle(key);
          resolve(result);
        };
        const timer = setTimeout(
          () => answer(E.left(queueUnavailable(`no confirm from RabbitMQ within ${timeoutMs} ms`))),
          timeoutMs,
        );
        this.send(model, exchange, routingKey, message, options, key, publishId).then(
          answer,
          (err: unknown) =>
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
    key: string | undefined,
    publishId: string | undefined,
  ): Promise<E.Either<QueueUnavailable, void>> {
    const channel = await this.channel.acquire(model);
    // A full socket buffer: wait until it drains rather than pile more on.
    if (this.draining !== undefined) await this.draining;
    const confirmed = new Promise<unknown>((resolve) => {
      const written = channel.publish(
        exchange,
        routingKey,
        message.body,
        // Written out rather than spread from WIRE_PROPERTIES, every field present (undefined
        // when not set, which amqplib leaves out): V8 builds a literal that opens with a spread,
        // or spreads fields in, on a slow path, and every task and event is published here.
        {
          contentType: WIRE_PROPERTIES.contentType,
          persistent: options.persistent ?? WIRE_PROPERTIES.persistent,
          mandatory: key !== undefined,
          type: options.type,
          messageId: message.messageId,
          // The message's headers in their order, then ours (the same table, field for field).
          headers:
            publishId === undefined
              ? message.headers
              : Object.assign({}, message.headers, { [PUBLISH_ID]: publishId }),
        },
        (err: unknown) => resolve(err),
      );
      if (!written && this.draining === undefined) {
        const draining = new Promise<void>((done) => {
          // Whichever comes first takes both listeners off: a channel lives as long as its
          // connection and fills its buffer again and again, and a listener left each time
          // would pile up (Node warns past ten).
          const over = (): void => {
            channel.off('drain', over);
            channel.off('close', over);
            done();
          };
          channel.on('drain', over);
          channel.on('close', over);
        }).then(() => {
          if (this.draining === draining) this.draining = undefined;
        });
        this.draining = draining;
      }
    });
    const err = await confirmed;
    if (err) return E.left(queueUnavailable(`RabbitMQ did not confirm: ${errorText(err)}`));
    const returned = key === undefined ? undefined : this.pending.get(key)?.returned;
    if (returned !== undefined) {
      return E.left(queueUnavailable(`RabbitMQ could not route the message: ${returned}`));
    }
    return E.right(undefined);
  }

  /** One more mandatory publish awaits its confirm under `key`. */
  private await(key: string): void {
    const awaiting = this.pending.get(key);
    if (awaiting === undefined) this.pending.set(key, { count: 1, returned: undefined });
    else awaiting.count += 1;
  }

  /** One publish under `key` was answered: the key is forgotten with the last of them. */
  private settle(key: string): void {
    const awaiting = this.pending.get(key);
    if (awaiting === undefined) return;
    awaiting.count -= 1;
    if (awaiting.count === 0) this.pending.delete(key);
  }

  /** What a return says of the publishes awaiting their confirm under `key`, if any are. */
  private markReturned(key: string, why: string): void {
    const awaiting = this.pending.get(key);
    if (awaiting !== undefined) awaiting.returned = why;
  }

  /** One confirm channel per connection, opened on the first publish after it closed. */
  private async openChannel(model: ChannelModel, lost: () => void): Promise<ConfirmChannel> {
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: unknown) =>
      this.options.logger.warn({ err: errorText(err) }, 'RabbitMQ publish channel error'),
    );
    channel.on('close', lost);
    channel.on('return', (msg: Message) => {
      const publishId: unknown = msg.properties.headers?.[PUBLISH_ID];
      const messageId: unknown = msg.properties.messageId;
      const { exchange, routingKey } = msg.fields;
      const why = `no queue bound for ${exchange === '' ? '(default exchange)' : exchange} → ${routingKey}`;
      // Both keys the message may be awaited under: a header copied from an older message must
      // not hide the key it was published under.
      if (typeof publishId === 'string') this.markReturned(numberedKey(publishId), why);
      if (typeof messageId === 'string') {
        this.markReturned(returnKey(exchange, routingKey, messageId), why);
      }
    });
    return channel;
  }
}

export const errorText = (err: unknown): string =>
  err instanceof Error ? err.message : typeof err === 'string' ? err : JSON.stringify(err);
