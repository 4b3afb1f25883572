import * as O from 'fp-ts/lib/Option.js';
import type { Task } from 'fp-ts/lib/Task.js';
import { evolveStatus } from '../domain/email-status.js';
import type { DomainEvent } from '../domain/events.js';
import type { EmailStatusStore } from './ports/email-status-store.js';

/**
 * Keeps the status read model in step with the events. One email's events are applied one at a
 * time, in arrival order, so two events for the same id never read the same old state.
 */
export class ProjectEmailStatus {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly store: EmailStatusStore) {}

  apply(event: DomainEvent): Task<void> {
    return () => {
      const previous = this.chains.get(event.id) ?? Promise.resolve();
      const next = previous.then(async () => {
        const current = await this.store.get(event.id)();
        await this.store.save(evolveStatus(O.toUndefined(current), event))();
      });
      this.chains.set(event.id, next);
      void next.finally(() => {
        if (this.chains.get(event.id) === next) this.chains.delete(event.id);
      });
      return next;
    };
  }
}
