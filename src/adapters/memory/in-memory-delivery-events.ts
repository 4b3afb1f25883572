import type { Task } from 'fp-ts/lib/Task.js';
import type { DeliveryEvents } from '../../application/ports/delivery-events.js';
import type { Logger } from '../../application/ports/system.js';
import type { DomainEvent } from '../../domain/events.js';

/**
 * A subscriber: a promise when it has work to finish (`publish` waits for it), nothing when it
 * was done when it returned (the metrics, the bridge to the broker), which spares the promises
 * of every event it hears.
 */
export type EventHandler = (event: DomainEvent) => Promise<void> | void;

/** What `publish` answers when every subscriber was done at once. */
const DELIVERED: Promise<void> = Promise.resolve();

export interface SubscribeOptions {
  /**
   * Also hear events relayed from other processes (through the broker). Live pages want them;
   * metrics and the bridge to the broker do not, or every event would count or travel twice.
   */
  readonly remote?: boolean;
}

/**
 * The one event path inside a process: the core publishes here, and the status pages' live
 * streams, the metrics and the bridge to RabbitMQ subscribe. It delivers each event to every
 * subscriber before `publish` resolves, so whoever saw `publish` finish can rely on every
 * subscriber having run; a failing subscriber is logged, never propagated, because an event is
 * a notification and the email log already holds the change.
 */
export class InMemoryDeliveryEvents implements DeliveryEvents {
  private readonly handlers = new Map<EventHandler, SubscribeOptions>();

  constructor(private readonly log: Logger) {}

  subscribe(handler: EventHandler, options: SubscribeOptions = {}): () => void {
    this.handlers.set(handler, options);
    return () => {
      this.handlers.delete(handler);
    };
  }

  /** An event of this process's own making. */
  publish(event: DomainEvent): Task<void> {
    return this.deliver(event, false);
  }

  /** An event another process made, brought in by a bridge: only `remote` subscribers hear it. */
  relay(event: DomainEvent): Task<void> {
    return this.deliver(event, true);
  }

  /** How many subscribers there are: each open live page holds one. */
  get subscribers(): number {
    return this.handlers.size;
  }

  private deliver(event: DomainEvent, remote: boolean): Task<void> {
    return () => {
      // A copy: a handler may unsubscribe (a stream that ends) while the others run. Every
      // handler is called before any is awaited, one after another. Each event of every email
      // passes here: a handler that is done when it returns costs no promise, and one that is
      // not, one more to log its failure.
      const targets: EventHandler[] = [];
      for (const [handler, options] of this.handlers) {
        if (!remote || options.remote === true) targets.push(handler);
      }
      let running: Promise<void>[] | undefined;
      for (const handler of targets) {
        let result: Promise<void> | void;
        try {
          result = handler(event);
        } catch (error) {
          this.failed(error, event);
          continue;
        }
        if (isPromiseLike(result)) {
          // Promise.resolve: a thenable that is not a promise (or whose `then` throws) is
          // adopted as one, so its failure is logged too, never thrown at the publisher.
          (running ??= []).push(
            Promise.resolve(result).then(undefined, (error: unknown) => this.failed(error, event)),
          );
        }
      }
      if (running === undefined) return DELIVERED;
      return running.length === 1 ? running[0]! : Promise.all(running).then(() => undefined);
    };
  }

  private failed(error: unknown, event: DomainEvent): void {
    this.log.error({ err: error, event: event.type, emailId: event.id }, 'Event handler failed');
  }
}

const isPromiseLike = (value: unknown): value is Promise<void> =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as { then?: unknown }).then === 'function';
