import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import * as E from 'fp-ts/lib/Either.js';
import type {
  Disposition,
  EmailTask,
  EmailTaskSource,
  TaskHandler,
} from '../../application/ports/email-task-source.js';
import { redeliverPauseMs, sentButUnrecorded } from '../../application/ports/email-task-source.js';
import type { Logger } from '../../application/ports/system.js';
import type { WireMessage } from '../messaging/task-message.js';
import {
  HEADERS,
  decodeAttempt,
  decodeTask,
  reportStop,
  undecodable,
} from '../messaging/task-message.js';
import { ChannelKeeper } from './channel-keeper.js';
import type { RabbitMqConnection } from './connection.js';
import { Dispositions } from './dispositions.js';
import type { RabbitMqPublisher } from './rabbitmq-publisher.js';
import { errorText } from './rabbitmq-publisher.js';
import { topologyNames } from './topology.js';

export interface RabbitMqEmailTaskSourceOptions {
  readonly connection: RabbitMqConnection;
  /** Carries out Retry and DeadLetter dispositions, with confirms, before the ack. */
  readonly publisher: RabbitMqPublisher;
  readonly prefix: string;
  /** Handlers in flight at once. */
  readonly concurrency: number;
  /**
   * Tasks the broker hands over ahead of a free handler (default `prefetchHeadroom`): a handler
   * that finishes starts the next task at once, not one ack-and-deliver round trip later.
   */
  readonly prefetchHeadroom?: number;
  /** RETRY_DELAYS: one retry queue each (see topology.ts). */
  readonly retryDelaysMs: readonly number[];
  readonly logger: Logger;
  /**
   * Wait before a task whose handler failed goes back (default 100 ms), doubled per earlier
   * delivery up to `maxRedeliveryDelayMs` (30 s). Each return counts toward the send queue's
   * delivery limit, so without the backoff a dependency down for two seconds would send every
   * task to the dead letters.
   */
  readonly redeliveryDelayMs?: number;
  readonly maxRedeliveryDelayMs?: number;
  /** Wait before consuming again after the channel alone failed (default 1 s). */
  readonly resubscribeDelayMs?: number;
  readonly now?: () => Date;
}

interface Subscription {
  channel?: Channel;
  consumerTag?: string;
  closed: boolean;
  /** stop() stopped waiting: whatever is still running must not touch the broker. */
  abandoned: boolean;
}

/**
 * The default headroom: a quarter of the handlers (at least one). Enough for the tasks that
 * finish during one round trip to the broker, few enough that a worker does not hoard tasks
 * another worker could start.
 */
export const prefetchHeadroom = (concurrency: number): number => Math.ceil(concurrency / 4);

/** A task still waiting for a handler when stop() began: handed back untouched, not a failure. */
const NOT_STARTED = new Error('stopped before the task was handled');

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * The worker's side. Each task is acked only after its disposition is carried out (retry or
 * dead letter published and confirmed), so a crash at any point leaves it unacked and RabbitMQ
 * delivers it again. Resumes by itself after a reconnect, through the connection's callbacks.
 */
export class RabbitMqEmailTaskSource implements EmailTaskSource {
  private handler: TaskHandler | undefined;
  /** stop() began: no new task runs, and only a Redeliver whose send went out is asked again. */
  private stopping = false;
  /** Settles when stop() begins, so that a Redeliver pause ends at once. */
  private stopped: Promise<void> = new Promise(() => undefined);
  private signalStop = (): void => undefined;
  /** Tasks whose last answer was a Redeliver whose send went out, by email id (see stop()). */
  private readonly unrecorded = new Map<ConsumeMessage, string>();
  private readonly subscription: ChannelKeeper<Subscription>;
  /** Tasks being handled, each with its message's id (the email's, as every publisher sets it). */
  private readonly inFlight = new Map<Promise<void>, string>();
  private readonly waitingForSlot: Array<() => void> = [];
  private running = 0;
  private readonly queue: string;
  private readonly dispositions: Dispositions;

  constructor(private readonly options: RabbitMqEmailTaskSourceOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new Error(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    this.queue = topologyNames(options.prefix).sendQueue;
    this.dispositions = new Dispositions(options);
    this.subscription = new ChannelKeeper(
      options.connection,
      (model, lost) => this.open(model, lost),
      {
        reopenDelayMs: options.resubscribeDelayMs ?? 1000,
        onOpenFailed: (err) =>
          options.logger.warn({ err: errorText(err) }, 'Could not start consuming tasks'),
      },
    );
  }

  async consume(handler: TaskHandler): Promise<void> {
    if (this.handler) throw new Error('RabbitMqEmailTaskSource: already consuming');
    this.handler = handler;
    this.stopped = new Promise((resolve) => (this.signalStop = resolve));
    await this.subscription.keepOpen();
  }

  /**
   * Cancels the consumer and waits up to `graceMs` for the tasks in hand. A task answered
   * Redeliver goes back at once, unless its send went out and is not recorded: that one is asked
   * until it is done or the grace period ends, so that a database back within it records the
   * send instead of another worker repeating it. Then the channel closes and the broker hands
   * what is left to the next consumer.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.signalStop();
    const sub = await this.subscription.release()?.catch(() => undefined);
    if (sub) {
      if (sub.channel && sub.consumerTag && !sub.closed) {
        await sub.channel.cancel(sub.consumerTag).catch(() => undefined);
      }
    }
    if (this.inFlight.size > 0) {
      await Promise.race([Promise.allSettled([...this.inFlight.keys()]), sleep(graceMs)]);
    }
    const unrecorded = [...this.unrecorded.values()];
    this.unrecorded.clear();
    const cut = [...this.inFlight.values()].filter((id) => !unrecorded.includes(id));
    reportStop(this.options.logger, unrecorded, cut, graceMs);
    if (sub) {
      sub.abandoned = true;
      // Closing the channel hands every unacked task back to the broker for the next consumer.
      if (sub.channel && !sub.closed) await sub.channel.close().catch(() => undefined);
    }
    this.handler = undefined;
    this.stopping = false;
  }

  private async open(model: ChannelModel, lost: () => void): Promise<Subscription> {
    const sub: Subscription = { closed: false, abandoned: false };
    try {
      const channel = await model.createChannel();
      sub.channel = channel;
      channel.on('error', (err: unknown) =>
        this.options.logger.warn({ err: errorText(err) }, 'RabbitMQ consumer channel error'),
      );
      channel.on('close', () => {
        sub.closed = true;
        lost();
      });
      const { concurrency } = this.options;
      await channel.prefetch(
        concurrency + (this.options.prefetchHeadroom ?? prefetchHeadroom(concurrency)),
      );
      const { consumerTag } = await channel.consume(this.queue, (msg) => this.onMessage(sub, msg), {
        noAck: false,
      });
      sub.consumerTag = consumerTag;
    } catch (err) {
      sub.closed = true;
      throw err;
    }
    this.options.logger.info(
      { queue: this.queue, concurrency: this.options.concurrency },
      'Consuming email tasks',
    );
    return sub;
  }

  private onMessage(sub: Subscription, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled us (the queue was deleted): start over on a fresh channel.
      this.options.logger.warn({ queue: this.queue }, 'RabbitMQ cancelled the consumer');
      void sub.channel?.close().catch(() => undefined);
      return;
    }
    const work: Promise<void> = this.handleLogged(sub, msg, () => this.inFlight.delete(work));
    this.inFlight.set(work, String(msg.properties.messageId ?? 'unknown'));
  }

  /**
   * `handle`, a bug it throws logged, then `done` (which drops it from `inFlight`; it runs after
   * an await, so after the caller added it). One async function rather than `catch` and
   * `finally`: two promises less for every task.
   */
  private async handleLogged(
    sub: Subscription,
    msg: ConsumeMessage,
    done: () => void,
  ): Promise<void> {
    try {
      await this.handle(sub, msg);
    } catch (err) {
      this.options.logger.error({ err: errorText(err) }, 'Bug while handling a task');
    } finally {
      done();
    }
  }

  private async handle(sub: Subscription, msg: ConsumeMessage): Promise<void> {
    const headers = msg.properties.headers ?? {};
    const wire: WireMessage = {
      body: msg.content,
      messageId:
        typeof msg.properties.messageId === 'string' ? msg.properties.messageId : undefined,
      headers: { [HEADERS.attempt]: decodeAttempt(headers[HEADERS.attempt]) },
    };
    const decoded = decodeTask(msg.content, headers);
    if (E.isLeft(decoded)) {
      this.options.logger.warn(
        { messageId: wire.messageId, reason: decoded.left },
        'Dead-lettering a task that does not decode',
      );
      const done = await this.dispositions.deadLetter(wire, undecodable(headers, decoded.left))();
      return await this.settle(sub, msg, done);
    }
    const task = decoded.right;
    let outcome = await this.run(task);
    // Redeliver: a store is down. The task stays here, unacked, and is tried again after a
    // growing pause; rejecting it would count toward the queue's delivery limit and could
    // dead-letter a good email during a long database outage. At a stop only a task whose send
    // went out stays (see stop()).
    try {
      for (let earlier = 0; isRedeliver(outcome); earlier += 1) {
        const sent = E.isRight(outcome) && sentButUnrecorded(outcome.right);
        if (sent) this.unrecorded.set(msg, task.request.id);
        else this.unrecorded.delete(msg);
        if (sub.abandoned || sub.closed || (this.stopping && !sent)) break;
        const pause = sleep(redeliverPauseMs(this.options.redeliveryDelayMs ?? 100, earlier));
        await Promise.race(sent ? [pause] : [pause, this.stopped]);
        if (sub.abandoned || sub.closed || (this.stopping && !sent)) break;
        outcome = await this.run(task, true);
      }
    } finally {
      this.unrecorded.delete(msg);
    }
    // Stopping: closing the channel hands it back at once, with no pause before a reject.
    if (sub.abandoned || (this.stopping && (isRedeliver(outcome) || isNotStarted(outcome)))) {
      return;
    }
    if (isRedeliver(outcome)) return await this.settle(sub, msg, E.left(undefined));
    if (E.isLeft(outcome)) {
      this.options.logger.warn(
        { emailId: task.request.id, attempt: task.attempt, err: errorText(outcome.left) },
        'Task handler failed; the task will be delivered again',
      );
      return await this.settle(sub, msg, E.left(undefined));
    }
    const done = await this.dispositions.carryOut(wire, task, outcome.right)();
    if (E.isLeft(done)) {
      this.options.logger.warn(
        { emailId: task.request.id, reason: done.left.reason },
        `Could not carry out ${outcome.right._tag}; the task will be delivered again`,
      );
    }
    // Awaited: an async function that returns a promise settles a promise and two turns later.
    return await this.settle(sub, msg, done);
  }

  /**
   * Runs the handler within the concurrency bound, even across a reconnect's overlap. Once
   * stop() began, only a task already in hand (`again`) is handled.
   */
  private async run(task: EmailTask, again = false): Promise<E.Either<unknown, Disposition>> {
    if (this.running >= this.options.concurrency) {
      await new Promise<void>((resolve) => this.waitingForSlot.push(resolve));
    }
    this.running += 1;
    try {
      const handler = this.handler;
      if (!handler || (this.stopping && !again)) {
        return E.left(NOT_STARTED);
      }
      return E.right(await handler(task));
    } catch (err) {
      return E.left(err);
    } finally {
      this.running -= 1;
      this.waitingForSlot.shift()?.();
    }
  }

  private redeliveryDelay(msg: ConsumeMessage): number {
    // Quorum queues count earlier deliveries in this header (absent on the first one).
    const count: unknown = msg.properties.headers?.['x-delivery-count'];
    const earlier = typeof count === 'number' && count > 0 ? Math.min(count, 20) : 0;
    return Math.min(
      (this.options.redeliveryDelayMs ?? 100) * 2 ** earlier,
      this.options.maxRedeliveryDelayMs ?? 30_000,
    );
  }

  /** Ack when the disposition is safe with the broker; otherwise hand the task back. */
  private async settle(
    sub: Subscription,
    msg: ConsumeMessage,
    done: E.Either<unknown, unknown>,
  ): Promise<void> {
    if (E.isLeft(done)) await sleep(this.redeliveryDelay(msg));
    // On a closed channel the broker has already taken the task back: nothing left to do.
    if (sub.closed || sub.abandoned || !sub.channel) return;
    try {
      // reject, not nack: on RabbitMQ ≥ 4.3 only reject counts toward the delivery limit.
      if (E.isRight(done)) sub.channel.ack(msg);
      else sub.channel.reject(msg, true);
    } catch (err) {
      this.options.logger.warn(
        { err: errorText(err) },
        'Could not settle a task; the broker will redeliver it',
      );
    }
  }
}

const isNotStarted = (outcome: E.Either<unknown, Disposition>): boolean =>
  E.isLeft(outcome) && outcome.left === NOT_STARTED;

const isRedeliver = (outcome: E.Either<unknown, Disposition>): boolean =>
  E.isRight(outcome) && outcome.right._tag === 'Redeliver';
