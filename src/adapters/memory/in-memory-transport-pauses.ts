import * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { TransportPauses } from '../../application/ports/transport-pauses.js';

/**
 * The pauses of one process: for unit tests and runs without a database. It passes the same
 * contract suite as `SqlTransportPauses`: a pause only ever moves later.
 */
export class InMemoryTransportPauses implements TransportPauses {
  private readonly ends = new Map<string, Date>();

  pause(transport: string, until: Date): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const known = this.ends.get(transport);
      if (known === undefined || known < until) this.ends.set(transport, new Date(until));
    });
  }

  pausedUntil(transport: string): TE.TaskEither<StoreUnavailable, Date | undefined> {
    return TE.fromIO(() => {
      const known = this.ends.get(transport);
      return known === undefined ? undefined : new Date(known);
    });
  }
}
