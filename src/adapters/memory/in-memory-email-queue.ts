import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  DeadLetter,
  DeadLetterBox,
  ReplaySelector,
} from '../../application/ports/dead-letter-box.js';
import type { EmailQueue, QueueUnavailable } from '../../application/ports/email-queue.js';
import type { Expedited, RetryQueue } from '../../application/ports/retry-queue.js';
import type { AttemptRecord } from '../../domain/delivery.js';
import type {
  Disposition,
  EmailTask,
  EmailTaskSource,
  TaskHandler,
} from '../../application/ports/email-task-source.js';
import { redeliverPauseMs, sentButUnrecorded } from '../../application/ports/email-task-source.js';
import type { Logger } from '../../application/ports/system.js';
import { withJitter } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';
import type { WireMessage } from '../messaging/task-message.js';
import {
  decodeTask,
  describeDeadLetter,
  encodeNewTask,
  encodeTask,
  replayOf,
  reportStop,
  toDeadLetter,
  undecodable,
} from '../messaging/task-message.js';

/** Runs `fn` after `ms`; returns what cancels it. */
export type SetTimer = (fn: () => void, ms: number) => () => void;

export interface InMemoryEmailQueueOptions {
  /** Handlers in flight at once, like the AMQP prefetch. */
  readonly concurrency: number;
  /** Jitter source for retry delays; injected so tests can make it deterministic. */
  readonly random?: () => number;
  readonly setTimer?: SetTimer;
  readonly now?: () => Date;
  /** Wait before a task whose handler rejected is offered again, so a bug is not a hot loop. */
  readonly redeliveryDelayMs?: number;
  /** Where stop() says which sent emails it had to hand back unrecorded. */
  readonly logger?: Logger;
}

interface Stored extends WireMessage {
  readonly redelivered: boolean;
}

interface Delivery {
  readonly message: Stored;
  readonly emailId: string;
  /** Set when stop() gave up waiting: the task went back to the queue, its outcome is ignored. */
  abandoned: boolean;
  /** The handler's last answer was a Redeliver whose send went out (see Disposition). */
  sentUnrecorded: boolean;
  done?: Promise<void>;
}

// Timers never keep a process alive on their own: `email dev` must exit on SIGTERM.
const defaultSetTimer: SetTimer = (fn, ms) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

/**
 * The queue of `email dev` and of the core's tests, with RabbitMQ's semantics rather than a
 * function call's: messages are stored as the same bytes the broker would hold and decoded per
 * delivery, wait for a consumer, are offered again when a handler fails, and are never lost by
 * stop(). Retries wait in timers as they would in a TTL queue.
 */
export class InMemoryEmailQueue implements EmailQueue, RetryQueue, EmailTaskSource, DeadLetterBox {
  /** Tasks waiting for a consumer; protected, like enqueue(), for the tests' subclass. */
  protected readonly ready: Stored[] = [];
  private readonly dead: WireMessage[] = [];
  private readonly inFlight = new Set<Delivery>();
  private readonly timers = new Set<() => void>();
  private readonly random: () => number;
  private readonly setTimer: SetTimer;
  private readonly now: () => Date;
  private readonly redeliveryDelayMs: number;
  private handler: TaskHandler | undefined;
  /** Settles when stop() begins, so that a Redeliver pause ends at once. */
  private stopped: Promise<void> = new Promise(() => undefined);
  private signalStop = (): void => undefined;

  constructor(private readonly options: InMemoryEmailQueueOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new Error(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    this.random = options.random ?? Math.random;
    this.setTimer = options.setTimer ?? defaultSetTimer;
    this.now = options.now ?? (() => new Date());
    this.redeliveryDelayMs = options.redeliveryDelayMs ?? 100;
  }

  publish(request: EmailRequest): TE.TaskEither<QueueUnavailable, void> {
    return TE.rightIO(() => this.enqueue(encodeNewTask(request)));
  }

  /** As RabbitMQ does it: a marked copy due now, the waiting retry left to its timer. */
  expedite(
    request: EmailRequest,
    attempt: number,
    history: readonly AttemptRecord[],
  ): TE.TaskEither<QueueUnavailable, Expedited> {
    return TE.rightIO(() => {
      this.enqueue(encodeTask({ request, attempt, history, expedited: true }));
      return 'copied';
    });
  }

  // async so that a misuse rejects, as RabbitMQ's consume() does, instead of throwing.
  async consume(handler: TaskHandler): Promise<void> {
    if (this.handler) throw new Error('InMemoryEmailQueue: already consuming');
    this.handler = handler;
    this.stopped = new Promise((resolve) => (this.signalStop = resolve));
    this.pump();
  }

  async stop(graceMs: number): Promise<void> {
    this.handler = undefined;
    this.signalStop();
    const pending = [...this.inFlight];
    if (pending.length > 0) {
      let cancel = (): void => undefined;
      const grace = new Promise<void>((resolve) => {
        cancel = this.setTimer(resolve, graceMs);
      });
      await Promise.race([Promise.allSettled(pending.map((d) => d.done)), grace]);
      cancel();
    }
    // What did not finish goes back to the head of the queue, as a closed AMQP channel would.
    const unrecorded: string[] = [];
    const cut: string[] = [];
    for (const delivery of [...this.inFlight].reverse()) {
      delivery.abandoned = true;
      this.inFlight.delete(delivery);
      this.ready.unshift({ ...delivery.message, redelivered: true });
      if (delivery.sentUnrecorded) unrecorded.unshift(delivery.emailId);
      else cut.unshift(delivery.emailId);
    }
    reportStop(this.options.logger, unrecorded, cut, graceMs);
  }

  /** Forgets pending retries and redeliveries: the end of the queue's life, not a pause. */
  close(): void {
    for (const cancel of this.timers) cancel();
    this.timers.clear();
  }

  list(): TE.TaskEither<QueueUnavailable, readonly DeadLetter[]> {
    return TE.rightIO(() => this.dead.map(describeDeadLetter));
  }

  replay(selector: ReplaySelector): TE.TaskEither<QueueUnavailable, number> {
    return TE.rightIO(() => {
      let replayed = 0;
      for (const letter of [...this.dead]) {
        const task = replayOf(letter, selector);
        if (task === undefined) continue;
        this.dead.splice(this.dead.indexOf(letter), 1);
        this.enqueue(task);
        replayed += 1;
      }
      return replayed;
    });
  }

  purge(): TE.TaskEither<QueueUnavailable, number> {
    return TE.rightIO(() => this.dead.splice(0).length);
  }

  protected enqueue(message: WireMessage, front = false, redelivered = false): void {
    const stored = { ...message, redelivered };
    if (front) this.ready.unshift(stored);
    else this.ready.push(stored);
    this.pump();
  }

  private later(fn: () => void, ms: number): void {
    const cancel = this.setTimer(() => {
      this.timers.delete(cancel);
      fn();
    }, ms);
    this.timers.add(cancel);
  }

  private pump(): void {
    while (this.handler && this.inFlight.size < this.options.concurrency) {
      const message = this.ready.shift();
      if (!message) return;
      this.deliver(message, this.handler);
    }
  }

  private deliver(message: Stored, handler: TaskHandler): void {
    const decoded = decodeTask(message.body, message.headers);
    if (E.isLeft(decoded)) {
      this.dead.push(
        toDeadLetter(message, {
          ...undecodable(message.headers, decoded.left),
          failedAt: this.now(),
        }),
      );
      return;
    }
    const task = decoded.right;
    const delivery: Delivery = {
      message,
      emailId: task.request.id,
      abandoned: false,
      sentUnrecorded: false,
    };
    this.inFlight.add(delivery);
    const stopped = this.stopped;
    delivery.done = Promise.resolve()
      .then(() => this.decide(task, handler, delivery, stopped))
      .then(
        (disposition) => ({ ok: true as const, disposition }),
        () => ({ ok: false as const }),
      )
      .then((result) => {
        if (delivery.abandoned) return;
        this.inFlight.delete(delivery);
        if (result.ok) this.carryOut(message, task, result.disposition);
        else this.later(() => this.enqueue(message, true, true), this.redeliveryDelayMs);
        this.pump();
      });
  }

  /**
   * Runs the handler until it decides. `Redeliver` (a store down) keeps the task here, in hand,
   * and asks again after a growing pause, as the RabbitMQ consumer does: the task neither spins
   * nor spends an attempt while the database is away. Once stop() began, a Redeliver goes back
   * at once, unless its send went out: that one is asked until stop() gives up on it.
   */
  private async decide(
    task: EmailTask,
    handler: TaskHandler,
    delivery: Delivery,
    stopped: Promise<void>,
  ): Promise<Disposition> {
    for (let earlier = 0; ; earlier += 1) {
      const disposition = await handler(task);
      delivery.sentUnrecorded = sentButUnrecorded(disposition);
      const leaving = this.handler !== handler && !delivery.sentUnrecorded;
      if (disposition._tag !== 'Redeliver' || delivery.abandoned || leaving) return disposition;
      const pauseMs = redeliverPauseMs(this.redeliveryDelayMs, earlier);
      let cancel = (): void => undefined;
      const pause = new Promise<void>((resolve) => (cancel = this.setTimer(resolve, pauseMs)));
      // A stop ends the pause of a task that goes back; one whose send went out keeps its pace.
      await Promise.race(delivery.sentUnrecorded ? [pause] : [pause, stopped]);
      cancel();
      if (delivery.abandoned || (this.handler !== handler && !delivery.sentUnrecorded)) {
        return disposition;
      }
    }
  }

  private carryOut(message: Stored, task: EmailTask, disposition: Disposition): void {
    switch (disposition._tag) {
      case 'Done':
        return;
      case 'Redeliver':
        // Stopped while waiting for a store: back to the head of the queue, as a closed
        // channel hands an unacked task back.
        this.enqueue(message, true, true);
        return;
      case 'Retry': {
        const next = encodeTask({
          request: task.request,
          attempt: disposition.attempt,
          history: disposition.history,
          ...(disposition.expedited === true ? { expedited: true as const } : {}),
        });
        this.later(() => this.enqueue(next), withJitter(disposition.delayMs, this.random));
        return;
      }
      case 'DeadLetter':
        this.dead.push(
          toDeadLetter(message, {
            reason: disposition.reason,
            attempts: task.attempt,
            failedAt: this.now(),
            history: disposition.history,
          }),
        );
        return;
    }
  }
}
