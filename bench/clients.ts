// What the bench process itself sends: the email every path carries, our own publisher (to
// pre-publish tasks exactly as `email server` would), the bare confirm-channel publisher it is
// compared with, and the bare Mailgun client. All are Operations for load.ts.
import { connect } from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import * as E from 'fp-ts/lib/Either.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../src/application/ports/system.js';
import { encodeTask, WIRE_PROPERTIES } from '../src/adapters/messaging/task-message.js';
import type { WireMessage } from '../src/adapters/messaging/task-message.js';
import { RabbitMqConnection } from '../src/adapters/rabbitmq/connection.js';
import { RabbitMqEmailQueue } from '../src/adapters/rabbitmq/rabbitmq-email-queue.js';
import { RabbitMqPublisher } from '../src/adapters/rabbitmq/rabbitmq-publisher.js';
import { randomIds } from '../src/adapters/system/system.js';
import type { EmailRequest } from '../src/domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../src/domain/email-request.js';
import type { Operation } from './load.js';

/** One recipient and a short text: the request every accept-path run sends. */
export const DRAFT = {
  to: ['Ada Lovelace <ada@example.com>'],
  subject: 'Benchmark: your order has shipped',
  text: 'Hello Ada,\n\nYour order 1234 is on its way. Thank you for shopping with us.\n',
};
export const BODY = Buffer.from(JSON.stringify(DRAFT));

/** A fresh EmailRequest (new id) built by the domain's own parser, as RequestEmail does. */
export function newRequest(): EmailRequest {
  const draft = parseEmailDraft(DRAFT, { now: new Date(), allowedFromDomains: [] });
  if (E.isLeft(draft)) throw new Error(`the bench draft is invalid: ${JSON.stringify(draft.left)}`);
  return toEmailRequest(draft.right, randomIds.next(), new Date());
}

/** The bytes and headers `email server` publishes for DRAFT: the bare paths carry the same. */
export const newTask = (): WireMessage =>
  encodeTask({ request: newRequest(), attempt: 1, history: [] });

const quiet: Logger = {
  info: () => undefined,
  warn: (fields, message) => console.error(`bench publisher: ${message}`, fields),
  error: (fields, message) => console.error(`bench publisher: ${message}`, fields),
};

export interface Publisher {
  readonly op: Operation;
  close(): Promise<void>;
}

/** Our RabbitMqEmailQueue (confirm, return tracking, timeout) on its own connection. */
export async function projectPublisher(
  url: string,
  prefix: string,
  retryDelaysMs: readonly number[],
): Promise<Publisher> {
  const connection = new RabbitMqConnection({
    url,
    topology: { prefix, retryDelaysMs },
    logger: quiet,
    name: 'bench pre-publisher',
  });
  connection.start();
  if (!(await connection.whenReady(10_000))) throw new Error('bench: RabbitMQ not reachable');
  const queue = new RabbitMqEmailQueue({
    publisher: new RabbitMqPublisher({ connection, logger: quiet }),
    prefix,
  });
  const op: Operation = async () => {
    const result = await queue.publish(newRequest())();
    return E.isRight(result) ? null : result.left.reason;
  };
  return { op, close: () => connection.close() };
}

export interface BareBroker {
  readonly model: ChannelModel;
  readonly version: string;
  /**
   * Publishes one task to `queue`: persistent, mandatory, resolved on the broker's confirm; its
   * messageId from `nextId` (a row the consumer updates), else random.
   */
  publishTo(queue: string, nextId?: () => string): Operation;
  /** A quorum queue of the bare baselines' own, emptied (it may hold an earlier run's tasks). */
  quorumQueue(name: string): Promise<void>;
  /** Empties a queue that exists (our send queue, when nothing consumes it). */
  purgeQueue(name: string): Promise<void>;
  deleteQueue(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function bareBroker(url: string): Promise<BareBroker> {
  const model = await connect(url);
  const channel: ConfirmChannel = await model.createConfirmChannel();
  const version = model.connection.serverProperties.version ?? 'unknown';
  // Built once: a bare publisher does no validation, only a fresh id per message (the consumer
  // names its file after it). The body keeps the first id inside; the broker does not look.
  const task = newTask();
  const publishTo =
    (queue: string, nextId?: () => string): Operation =>
    () =>
      new Promise((resolve) => {
        const messageId = nextId?.() ?? randomBytes(16).toString('base64url');
        const options = { ...WIRE_PROPERTIES, mandatory: true, messageId, headers: task.headers };
        channel.sendToQueue(queue, task.body, options, (err: unknown) =>
          resolve(err ? String(err) : null),
        );
      });
  return {
    model,
    version,
    publishTo,
    async quorumQueue(name) {
      await channel.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await channel.purgeQueue(name);
    },
    async purgeQueue(name) {
      await channel.purgeQueue(name);
    },
    async deleteQueue(name) {
      await channel.deleteQueue(name);
    },
    close: () => model.close(),
  };
}
