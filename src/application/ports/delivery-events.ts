import type { Task } from 'fp-ts/lib/Task.js';
import type { DomainEvent } from '../../domain/events.js';

/**
 * Where the core announces what happened. Publishing is best effort by design: an event feeds
 * status pages and metrics, and losing one must never block or undo a delivery. Adapters log
 * their own failures.
 */
export interface DeliveryEvents {
  publish(event: DomainEvent): Task<void>;
}
