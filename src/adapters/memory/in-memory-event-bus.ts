import type { Task } from 'fp-ts/lib/Task.js';
import type { DeliveryEvents } from '../../application/ports/delivery-events.js';
import type { Logger } from '../../application/ports/system.js';
import type { DomainEvent } from '../../domain/events.js';

export type EventHandler = (event: DomainEvent) => Promise<void>;

/**
 * Delivers each event to every subscriber before `publish` resolves. Unlike a fire-and-forget
 * emitter it waits for the handlers, so a test (or `email dev`) that saw `publish` finish can
 * rely on the status page already showing it; a failing handler is logged, never propagated,
 * exactly like the RabbitMQ events exchange cannot fail a delivery.
 */
export class InMemoryEventBus implements DeliveryEvents {
  private readonly handlers = new Set<EventHandler>();

  constructor(private readonly log: Logger) {}

  subscribe(handler: EventHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  publish(event: DomainEvent): Task<void> {
    return async () => {
      await Promise.all(
        [...this.handlers].map((handler) =>
          handler(event).catch((error: unknown) =>
            this.log.error(
              { err: error, event: event.type, emailId: event.id },
              'Event handler failed',
            ),
          ),
        ),
      );
    };
  }
}
