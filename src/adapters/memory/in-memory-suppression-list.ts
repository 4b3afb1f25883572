import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { InvalidCursor, StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  Suppression,
  SuppressionList,
  SuppressionPage as Page,
  SuppressionPosition,
} from '../../application/ports/suppression-list.js';
import {
  encodeSuppressionCursor as encodeCursor,
  readSuppressionCursor,
} from '../../application/ports/suppression-list.js';

/** Newest first, ties by the addresses' code units (mailbox keys are ASCII: as SQL's "C"). */
const newestFirst = (a: SuppressionPosition, b: SuppressionPosition): number =>
  b.createdAt.getTime() - a.createdAt.getTime() ||
  (a.address < b.address ? 1 : a.address > b.address ? -1 : 0);

/**
 * The suppression list of one process: for unit tests and `memory` runs. It passes the same
 * contract suite as `SqlSuppressionList` (`test/contracts/`): the first entry of an address
 * stands, and pages follow the same order and refuse a cursor it never wrote alike.
 */
export class InMemorySuppressionList implements SuppressionList {
  private readonly entries = new Map<string, Suppression>();

  add(entry: Suppression): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      if (this.entries.has(entry.address)) return false;
      this.entries.set(entry.address, { ...entry, createdAt: new Date(entry.createdAt) });
      return true;
    });
  }

  remove(address: string): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => this.entries.delete(address));
  }

  suppressed(addresses: readonly string[]): TE.TaskEither<StoreUnavailable, ReadonlySet<string>> {
    return TE.fromIO(() => new Set(addresses.filter((a) => this.entries.has(a))));
  }

  list(limit: number, cursor?: string): TE.TaskEither<StoreUnavailable | InvalidCursor, Page> {
    const start = readSuppressionCursor(cursor);
    if (E.isLeft(start)) return TE.left(start.left);
    const after = start.right;
    return TE.fromIO((): Page => {
      const sorted = [...this.entries.values()]
        .filter((e) => after === undefined || newestFirst(after, e) < 0)
        .sort(newestFirst);
      const entries = sorted
        .slice(0, limit)
        .map((e) => ({ ...e, createdAt: new Date(e.createdAt) }));
      const last = entries.at(-1);
      return sorted.length > limit && last !== undefined
        ? { entries, nextCursor: encodeCursor(last) }
        : { entries };
    });
  }
}
