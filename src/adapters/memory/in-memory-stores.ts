import { createHash } from 'node:crypto';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryLedger, SendClaim } from '../../application/ports/delivery-ledger.js';
import type {
  Applied,
  EmailCountQuery,
  EmailLog,
  EmailPage,
  EmailQuery,
  InvalidCursor,
  StatusCounts,
  StoreUnavailable,
} from '../../application/ports/email-log.js';
import {
  decodeEmailCursor,
  encodeEmailCursor,
  invalidCursor,
  sameEmailEvents,
  noStatusCounts,
} from '../../application/ports/email-log.js';
import type { Claim, IdempotencyStore } from '../../application/ports/idempotency-store.js';
import {
  IDEMPOTENCY_KEY_TTL_MS,
  IN_PROGRESS_TIMEOUT_MS,
} from '../../application/ports/idempotency-store.js';
import { foreignToAddresses } from '../../domain/email-address.js';
import type { EmailRequest } from '../../domain/email-request.js';
import type { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import { awaitsReport, evolveStatus, isFinalStatus } from '../../domain/email-status.js';
import type { DomainEvent } from '../../domain/events.js';
import { acceptedEvent } from '../../domain/events.js';

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

/**
 * The filters `list` and `countByStatus` share (recipient substring, tag, time range), as one
 * predicate: the counts above the list must count exactly what the list would show.
 */
const matching = (query: EmailCountQuery): ((e: Entry) => boolean) => {
  const needle = query.to?.toLowerCase();
  return (e) =>
    (needle === undefined ||
      e.status.recipients.some((r) => r.address.toLowerCase().includes(needle))) &&
    (query.tag === undefined || e.tags.includes(query.tag)) &&
    (query.since === undefined || e.createdMs >= query.since.getTime()) &&
    (query.until === undefined || e.createdMs < query.until.getTime());
};

/** Newest first: later acceptance, then the greater id. */
const newerFirst = (a: Entry, b: Entry): number =>
  b.createdMs - a.createdMs || (a.status.id < b.status.id ? 1 : a.status.id > b.status.id ? -1 : 0);

export class InMemoryEmailLog implements EmailLog {
  private readonly entries = new Map<string, Entry>();

  record(request: EmailRequest): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const known = this.entries.get(request.id);
      if (known?.request !== undefined) return;
      const event: DomainEvent = acceptedEvent(request);
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

  /** None: `apply` folds onto the state held here, always current in one process. */
  recordedBasis(_request: EmailRequest): Applied | undefined {
    return undefined;
  }

  /** Folds onto the state held here: in one process it is always current, so `basis` is not needed. */
  apply(event: DomainEvent, _basis?: Applied): TE.TaskEither<StoreUnavailable, Applied> {
    return TE.fromIO(() => this.fold(event));
  }

  /** Each event folded in turn, at once: in one process nothing comes in between. */
  applyAll(
    events: readonly DomainEvent[],
    _basis?: Applied,
  ): TE.TaskEither<StoreUnavailable, readonly Applied[]> {
    const all = sameEmailEvents(events);
    return TE.fromIO(() => all.map((event) => this.fold(event)));
  }

  private fold(event: DomainEvent): Applied {
    const known = this.entries.get(event.id);
    const status = evolveStatus(known?.status, event);
    const changed = known === undefined || JSON.stringify(status) !== JSON.stringify(known.status);
    if (known) known.status = status;
    else this.entries.set(event.id, { status, createdMs: Date.parse(event.at), tags: [] });
    return { status, changed };
  }

  get(id: EmailId): TE.TaskEither<StoreUnavailable, O.Option<EmailStatus>> {
    return TE.fromIO(() => O.fromNullable(this.entries.get(id)?.status));
  }

  request(id: EmailId): TE.TaskEither<StoreUnavailable, O.Option<EmailRequest>> {
    return TE.fromIO(() => O.fromNullable(this.entries.get(id)?.request));
  }

  list(query: EmailQuery): TE.TaskEither<StoreUnavailable | InvalidCursor, EmailPage> {
    const after = query.cursor !== undefined ? decodeEmailCursor(query.cursor) : undefined;
    if (query.cursor !== undefined && after === undefined) return TE.left(invalidCursor);
    if (query.to !== undefined && foreignToAddresses(query.to)) return TE.right({ data: [] });
    return TE.fromIO(() => {
      const chosen = matching(query);
      const matches = [...this.entries.values()]
        .filter(
          (e) =>
            chosen(e) &&
            (query.status === undefined || e.status.status === query.status) &&
            (after === undefined ||
              e.createdMs < after[0] ||
              (e.createdMs === after[0] && e.status.id < after[1])),
        )
        .sort(newerFirst);
      const page = matches.slice(0, query.limit);
      const last = page.at(-1);
      return {
        data: page.map((e) => e.status),
        ...(matches.length > query.limit && last
          ? { nextCursor: encodeEmailCursor(last.createdMs, last.status.id) }
          : {}),
      };
    });
  }

  countByStatus(query: EmailCountQuery): TE.TaskEither<StoreUnavailable, StatusCounts> {
    return TE.fromIO(() => {
      const counts = noStatusCounts();
      if (query.to !== undefined && foreignToAddresses(query.to)) return counts;
      const chosen = matching(query);
      for (const e of this.entries.values()) {
        if (chosen(e)) counts[e.status.status] += 1;
      }
      return counts;
    });
  }

  purgeOlderThan(cutoff: Date, batchSize: number): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      // Oldest first, as the SQL log deletes: a batch never skips past older emails. Only final
      // ones: an email still on its way keeps its request for the worker.
      const old = [...this.entries.values()]
        .filter((e) => e.createdMs < cutoff.getTime() && isFinalStatus(e.status.status))
        .sort((a, b) => -newerFirst(a, b))
        .slice(0, batchSize);
      for (const e of old) this.entries.delete(e.status.id);
      return old.length;
    });
  }

  unconfirmed(
    transport: string,
    sentBefore: Date,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly EmailStatus[]> {
    return TE.fromIO(() => {
      const sentMs = (s: EmailStatus): number => Date.parse(s.sentAt ?? '');
      // Oldest send first, then the id in byte order, as the SQL log orders them.
      return [...this.entries.values()]
        .map((e) => e.status)
        .filter(
          (s) => s.sentBy === transport && sentMs(s) < sentBefore.getTime() && awaitsReport(s),
        )
        .sort((a, b) => sentMs(a) - sentMs(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .slice(0, limit);
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

/** A ledger row: a claim until the provider accepted the email, then the send. */
type LedgerEntry =
  | { readonly _tag: 'Claim'; readonly holder: string; readonly untilMs: number }
  | { readonly _tag: 'Sent'; readonly providerId: string; readonly atMs: number };

/**
 * The delivery ledger of one process. Each call runs to its end before another starts (no await
 * inside), which makes a claim as atomic here as the upsert makes it in SQL.
 */
export class InMemoryDeliveryLedger implements DeliveryLedger {
  private readonly entries = new Map<string, LedgerEntry>();

  claim(
    id: EmailId,
    holder: string,
    now: Date,
    leaseMs: number,
  ): TE.TaskEither<StoreUnavailable, SendClaim> {
    return TE.fromIO((): SendClaim => {
      const entry = this.entries.get(id);
      if (entry?._tag === 'Sent') return { _tag: 'AlreadySent', providerId: entry.providerId };
      if (entry && entry.holder !== holder && entry.untilMs > now.getTime()) {
        return { _tag: 'Busy', holder: entry.holder, until: new Date(entry.untilMs) };
      }
      this.entries.set(id, { _tag: 'Claim', holder, untilMs: now.getTime() + leaseMs });
      return { _tag: 'Claimed' };
    });
  }

  record(id: EmailId, providerId: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      if (this.entries.get(id)?._tag === 'Sent') return;
      this.entries.set(id, { _tag: 'Sent', providerId, atMs: at.getTime() });
    });
  }

  release(id: EmailId, holder: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      const entry = this.entries.get(id);
      if (entry?._tag === 'Claim' && entry.holder === holder) this.entries.delete(id);
    });
  }

  purgeOlderThan(cutoff: Date): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      let purged = 0;
      for (const [id, entry] of this.entries) {
        if ((entry._tag === 'Sent' ? entry.atMs : entry.untilMs) < cutoff.getTime()) {
          this.entries.delete(id);
          purged += 1;
        }
      }
      return purged;
    });
  }

  /** The provider's id of a recorded send, without claiming anything: for tests. */
  sent(id: EmailId): TE.TaskEither<StoreUnavailable, string | undefined> {
    return TE.fromIO(() => {
      const entry = this.entries.get(id);
      return entry?._tag === 'Sent' ? entry.providerId : undefined;
    });
  }
}
