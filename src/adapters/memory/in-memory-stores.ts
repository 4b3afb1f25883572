import { createHash } from 'node:crypto';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryLedger } from '../../application/ports/delivery-ledger.js';
import type {
  Applied,
  EmailLog,
  EmailPage,
  EmailQuery,
  StoreUnavailable,
} from '../../application/ports/email-log.js';
import type { Claim, IdempotencyStore } from '../../application/ports/idempotency-store.js';
import {
  IDEMPOTENCY_KEY_TTL_MS,
  IN_PROGRESS_TIMEOUT_MS,
} from '../../application/ports/idempotency-store.js';
import type { EmailId, EmailRequest } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import { evolveStatus } from '../../domain/email-status.js';
import type { DomainEvent } from '../../domain/events.js';

/**
 * The in-memory stores: for unit tests, and for anything that must keep nothing. They honour the
 * same contract suites as the SQL stores (`test/contracts/`), so a test that passes on them
 * says something about PostgreSQL too.
 */

interface Entry {
  status: EmailStatus;
  request?: EmailRequest;
  /** Acceptance time in ms and a sequence, the list order (newest first). */
  readonly createdMs: number;
  readonly tags: readonly string[];
}

const cursorOf = (entry: Entry): string =>
  Buffer.from(JSON.stringify([entry.createdMs, entry.status.id])).toString('base64url');

function parseCursor(cursor: string): [number, string] | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'number' &&
      typeof value[1] === 'string'
    ) {
      return [value[0], value[1]];
    }
  } catch {
    // fall through: an unreadable cursor starts from the top, like an absent one
  }
  return undefined;
}

/** Newest first: later acceptance, then the greater id. */
const newerFirst = (a: Entry, b: Entry): number =>
  b.createdMs - a.createdMs || (a.status.id < b.status.id ? 1 : a.status.id > b.status.id ? -1 : 0);

export class InMemoryEmailLog implements EmailLog {
  private readonly entries = new Map<string, Entry>();

  record(request: EmailRequest): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const known = this.entries.get(request.id);
      if (known?.request !== undefined) return;
      const event: DomainEvent = {
        type: 'EmailRequested',
        id: request.id,
        at: request.requestedAt,
        to: request.to,
        subject: request.subject,
      };
      this.entries.set(request.id, {
        status: evolveStatus(known?.status, event),
        request,
        createdMs: Date.parse(request.requestedAt),
        tags: request.tags ?? [],
      });
    });
  }

  forget(id: EmailId): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      this.entries.delete(id);
    });
  }

  apply(event: DomainEvent): TE.TaskEither<StoreUnavailable, Applied> {
    return TE.fromIO(() => {
      const known = this.entries.get(event.id);
      const status = evolveStatus(known?.status, event);
      const changed =
        known === undefined || JSON.stringify(status) !== JSON.stringify(known.status);
      if (known) known.status = status;
      else this.entries.set(event.id, { status, createdMs: Date.parse(event.at), tags: [] });
      return { status, changed };
    });
  }

  get(id: EmailId): TE.TaskEither<StoreUnavailable, O.Option<EmailStatus>> {
    return TE.fromIO(() => O.fromNullable(this.entries.get(id)?.status));
  }

  request(id: EmailId): TE.TaskEither<StoreUnavailable, O.Option<EmailRequest>> {
    return TE.fromIO(() => O.fromNullable(this.entries.get(id)?.request));
  }

  list(query: EmailQuery): TE.TaskEither<StoreUnavailable, EmailPage> {
    return TE.fromIO(() => {
      const after = query.cursor !== undefined ? parseCursor(query.cursor) : undefined;
      const needle = query.to?.toLowerCase();
      const matches = [...this.entries.values()]
        .filter(
          (e) =>
            (query.status === undefined || e.status.status === query.status) &&
            (needle === undefined || e.status.to.some((a) => a.toLowerCase().includes(needle))) &&
            (query.tag === undefined || e.tags.includes(query.tag)) &&
            (query.since === undefined || e.createdMs >= query.since.getTime()) &&
            (query.until === undefined || e.createdMs < query.until.getTime()) &&
            (after === undefined ||
              e.createdMs < after[0] ||
              (e.createdMs === after[0] && e.status.id < after[1])),
        )
        .sort(newerFirst);
      const page = matches.slice(0, query.limit);
      const last = page.at(-1);
      return {
        data: page.map((e) => e.status),
        ...(matches.length > query.limit && last ? { nextCursor: cursorOf(last) } : {}),
      };
    });
  }

  purgeOlderThan(cutoff: Date, batchSize: number): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      // Oldest first, as the SQL log deletes: a batch never skips past older emails.
      const old = [...this.entries.values()]
        .filter((e) => e.createdMs < cutoff.getTime())
        .sort((a, b) => -newerFirst(a, b))
        .slice(0, batchSize);
      for (const e of old) this.entries.delete(e.status.id);
      return old.length;
    });
  }
}

interface KeyRecord {
  readonly digest: string;
  readonly id: EmailId;
  claimedMs: number;
  done: boolean;
}

export class InMemoryIdempotencyStore implements IdempotencyStore {
  private readonly keys = new Map<string, KeyRecord>();

  claim(
    key: string,
    payload: string,
    id: EmailId,
    now: Date,
  ): TE.TaskEither<StoreUnavailable, Claim> {
    return TE.fromIO((): Claim => {
      const digest = createHash('sha256').update(payload).digest('hex');
      const nowMs = now.getTime();
      const existing = this.keys.get(key);
      if (existing === undefined || nowMs - existing.claimedMs >= IDEMPOTENCY_KEY_TTL_MS) {
        this.keys.set(key, { digest, id, claimedMs: nowMs, done: false });
        return { _tag: 'New', id };
      }
      if (existing.digest !== digest) return { _tag: 'Conflict', reason: 'different-payload' };
      if (existing.done) return { _tag: 'Repeat', id: existing.id };
      if (nowMs - existing.claimedMs < IN_PROGRESS_TIMEOUT_MS) {
        return { _tag: 'Conflict', reason: 'in-progress' };
      }
      existing.claimedMs = nowMs;
      return { _tag: 'New', id: existing.id };
    });
  }

  complete(key: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const existing = this.keys.get(key);
      if (existing) existing.done = true;
    });
  }

  release(key: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      this.keys.delete(key);
    });
  }

  purgeOlderThan(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      let purged = 0;
      for (const [key, record] of this.keys) {
        if (record.claimedMs < cutoff.getTime()) {
          this.keys.delete(key);
          purged += 1;
        }
      }
      return purged;
    });
  }
}

export class InMemoryDeliveryLedger implements DeliveryLedger {
  private readonly sends = new Map<string, { providerId: string; atMs: number }>();

  sent(id: EmailId): TE.TaskEither<StoreUnavailable, string | undefined> {
    return TE.fromIO(() => this.sends.get(id)?.providerId);
  }

  record(id: EmailId, providerId: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      if (!this.sends.has(id)) this.sends.set(id, { providerId, atMs: at.getTime() });
    });
  }

  purgeOlderThan(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      let purged = 0;
      for (const [id, entry] of this.sends) {
        if (entry.atMs < cutoff.getTime()) {
          this.sends.delete(id);
          purged += 1;
        }
      }
      return purged;
    });
  }
}
