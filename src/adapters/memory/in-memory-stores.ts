import { createHash } from 'node:crypto';
import * as O from 'fp-ts/lib/Option.js';
import type { Task } from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailStatusStore } from '../../application/ports/email-status-store.js';
import type {
  Claim,
  DeliveryLedger,
  IdempotencyStore,
  StoreUnavailable,
} from '../../application/ports/ledgers.js';
import type { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';

/**
 * Evicts the oldest entries beyond `capacity`: these stores live in one process for as long as
 * it runs, and an unbounded map would be a slow memory leak under steady traffic.
 */
class BoundedMap<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.map.delete(oldest.value);
    }
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

export class InMemoryEmailStatusStore implements EmailStatusStore {
  private readonly statuses: BoundedMap<EmailStatus>;
  private readonly watchers = new Map<string, Set<(s: EmailStatus) => void>>();

  constructor(capacity = 100_000) {
    this.statuses = new BoundedMap(capacity);
  }

  get(id: string): Task<O.Option<EmailStatus>> {
    return async () => O.fromNullable(this.statuses.get(id));
  }

  save(status: EmailStatus): Task<void> {
    return async () => {
      this.statuses.set(status.id, status);
      // A copy: a listener may stop watching (a final status closes its stream) as it runs.
      for (const listener of [...(this.watchers.get(status.id) ?? [])]) listener(status);
    };
  }

  /** How many watchers `id` has: an open status page or event stream each hold one. */
  watcherCount(id: string): number {
    return this.watchers.get(id)?.size ?? 0;
  }

  watch(id: string, listener: (status: EmailStatus) => void): () => void {
    const set = this.watchers.get(id) ?? new Set();
    set.add(listener);
    this.watchers.set(id, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.watchers.delete(id);
    };
  }
}

interface KeyRecord {
  readonly digest: string;
  readonly id: EmailId;
  done: boolean;
}

/** Keys are kept per process: with several servers, put a shared store behind this port. */
export class InMemoryIdempotencyStore implements IdempotencyStore {
  private readonly keys: BoundedMap<KeyRecord>;

  constructor(capacity = 100_000) {
    this.keys = new BoundedMap(capacity);
  }

  claim(key: string, payload: string, id: EmailId): TE.TaskEither<StoreUnavailable, Claim> {
    return TE.fromTask(async () => {
      const digest = createHash('sha256').update(payload).digest('hex');
      const existing = this.keys.get(key);
      if (existing === undefined) {
        this.keys.set(key, { digest, id, done: false });
        return { _tag: 'New' };
      }
      if (existing.digest !== digest) return { _tag: 'Conflict', reason: 'different-payload' };
      if (!existing.done) return { _tag: 'Conflict', reason: 'in-progress' };
      return { _tag: 'Repeat', id: existing.id };
    });
  }

  complete(key: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromTask(async () => {
      const existing = this.keys.get(key);
      if (existing) existing.done = true;
    });
  }

  release(key: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromTask(async () => this.keys.delete(key));
  }
}

/** Per worker process: a redelivery to the same worker is caught; one to another worker is not. */
export class InMemoryDeliveryLedger implements DeliveryLedger {
  private readonly delivered_: BoundedMap<string>;

  constructor(capacity = 100_000) {
    this.delivered_ = new BoundedMap(capacity);
  }

  delivered(id: EmailId): TE.TaskEither<StoreUnavailable, string | undefined> {
    return TE.fromTask(async () => this.delivered_.get(id));
  }

  record(id: EmailId, providerId: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromTask(async () => this.delivered_.set(id, providerId));
  }
}
