import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import { storeUnavailable } from '../../application/ports/email-log.js';
import type {
  NewWebhookDelivery,
  WebhookAttempt,
  WebhookAttemptResult,
  WebhookDeliveries,
  WebhookDelivery,
} from '../../application/ports/webhook-deliveries.js';
import type {
  SigningWebhookEndpoint,
  WebhookEndpoint,
  WebhookEndpoints,
} from '../../application/ports/webhook-endpoints.js';
import type { EmailId } from '../../domain/email-request.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import { subscribes } from '../../domain/webhook.js';

/** Ids compared by their code units, as SQL's "C" collation compares their bytes (ASCII). */
const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Oldest first, ties by id: `list`, `subscribedTo`, `forEmail` and the purge. */
const oldestFirst = (
  a: { readonly createdAt: Date; readonly id: string },
  b: { readonly createdAt: Date; readonly id: string },
): number => a.createdAt.getTime() - b.createdAt.getTime() || byId(a.id, b.id);

/** An endpoint as listed: the named fields only, so that no secret rides along. */
const listed = (e: SigningWebhookEndpoint): WebhookEndpoint => ({
  id: e.id,
  url: e.url,
  events: [...e.events],
  createdAt: new Date(e.createdAt),
});

const signing = (e: SigningWebhookEndpoint): SigningWebhookEndpoint => ({
  ...listed(e),
  secret: e.secret,
});

/**
 * The webhook endpoints of one process: for unit tests and `memory` runs. It passes the same
 * contract suite as `SqlWebhookEndpoints` (`test/contracts/`). Every answer is a copy: a caller
 * changing what it got changes nothing stored.
 */
export class InMemoryWebhookEndpoints implements WebhookEndpoints {
  private readonly endpoints = new Map<string, SigningWebhookEndpoint>();

  /** A taken id is StoreUnavailable (a bug in whoever drew it), as the SQL primary key says. */
  add(endpoint: SigningWebhookEndpoint): TE.TaskEither<StoreUnavailable, void> {
    // Checked when the task runs, not when it is made, as the SQL statement checks.
    return TE.fromIOEither((): E.Either<StoreUnavailable, void> => {
      if (this.endpoints.has(endpoint.id)) {
        return E.left(storeUnavailable('a webhook endpoint with this id exists'));
      }
      this.endpoints.set(endpoint.id, signing(endpoint));
      return E.right(undefined);
    });
  }

  remove(id: string): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => this.endpoints.delete(id));
  }

  list(): TE.TaskEither<StoreUnavailable, readonly WebhookEndpoint[]> {
    return TE.fromIO(() => this.sorted().map(listed));
  }

  subscribedTo(
    type: WebhookEventType,
  ): TE.TaskEither<StoreUnavailable, readonly SigningWebhookEndpoint[]> {
    return TE.fromIO(() =>
      this.sorted()
        .filter((e) => subscribes(e.events, type))
        .map(signing),
    );
  }

  get(id: string): TE.TaskEither<StoreUnavailable, O.Option<SigningWebhookEndpoint>> {
    return TE.fromIO(() => O.map(signing)(O.fromNullable(this.endpoints.get(id))));
  }

  private sorted(): SigningWebhookEndpoint[] {
    return [...this.endpoints.values()].sort(oldestFirst);
  }
}

/** An attempt with only the fields it has: what the SQL store reads back from its JSON. */
const copyAttempt = (a: WebhookAttempt): WebhookAttempt => ({
  attempt: a.attempt,
  at: new Date(a.at),
  durationMs: a.durationMs,
  ...(a.statusCode !== undefined ? { statusCode: a.statusCode } : {}),
  ...(a.error !== undefined ? { error: a.error } : {}),
});

const copyDelivery = (d: WebhookDelivery): WebhookDelivery => ({
  id: d.id,
  endpointId: d.endpointId,
  url: d.url,
  emailId: d.emailId,
  type: d.type,
  noticeKey: d.noticeKey,
  payload: d.payload,
  createdAt: new Date(d.createdAt),
  state: d.state,
  attempts: d.attempts.map(copyAttempt),
  ...(d.nextAttemptAt !== undefined ? { nextAttemptAt: new Date(d.nextAttemptAt) } : {}),
});

/** What names a delivery: its endpoint, its email and its notice key. */
const keyOf = (d: Pick<NewWebhookDelivery, 'endpointId' | 'emailId' | 'noticeKey'>): string =>
  JSON.stringify([d.endpointId, d.emailId, d.noticeKey]);

/** Clamped as SQL's LIMIT would refuse a negative one: nothing, rather than a failure. */
const atMost = (n: number): number => Math.max(0, Math.floor(n));

/**
 * The webhook deliveries of one process: for unit tests and `memory` runs. It passes the same
 * contract suite as `SqlWebhookDeliveries` (`test/contracts/`): one delivery per endpoint, email
 * and notice key, attempts recorded only in order and only while pending, the same orders, and a
 * purge that takes only finished deliveries. Every answer is a copy.
 */
export class InMemoryWebhookDeliveries implements WebhookDeliveries {
  private readonly deliveries = new Map<string, WebhookDelivery>();
  /** keyOf(delivery) → its id. */
  private readonly ids = new Map<string, string>();

  /**
   * All or nothing, as the SQL statement is: an id already taken by another delivery (a bug in
   * whoever drew it) is StoreUnavailable and stores none of `deliveries`.
   */
  create(
    deliveries: readonly NewWebhookDelivery[],
  ): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return TE.fromIOEither((): E.Either<StoreUnavailable, readonly WebhookDelivery[]> => {
      const fresh = new Map<string, WebhookDelivery>();
      for (const d of deliveries) {
        const key = keyOf(d);
        if (this.ids.has(key) || fresh.has(key)) continue;
        const taken =
          this.deliveries.has(d.id) || [...fresh.values()].some((other) => other.id === d.id);
        if (taken) return E.left(storeUnavailable('a webhook delivery with this id exists'));
        fresh.set(key, copyDelivery({ ...d, state: 'pending', attempts: [] }));
      }
      for (const [key, d] of fresh) {
        this.deliveries.set(d.id, d);
        this.ids.set(key, d.id);
      }
      return E.right(deliveries.map((d) => copyDelivery(this.stored(keyOf(d)))));
    });
  }

  get(id: string): TE.TaskEither<StoreUnavailable, O.Option<WebhookDelivery>> {
    return TE.fromIO(() => O.map(copyDelivery)(O.fromNullable(this.deliveries.get(id))));
  }

  /** The next time is kept only with a pending state: a finished delivery has none. */
  recordAttempt(
    id: string,
    attempt: WebhookAttempt,
    result: WebhookAttemptResult,
  ): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      const d = this.deliveries.get(id);
      if (d === undefined || d.state !== 'pending') return false;
      if (d.attempts.length !== attempt.attempt - 1) return false;
      const { nextAttemptAt: _before, ...rest } = d;
      this.deliveries.set(id, {
        ...rest,
        state: result.state,
        attempts: [...d.attempts, copyAttempt(attempt)],
        ...(result.state === 'pending' && result.nextAttemptAt !== undefined
          ? { nextAttemptAt: new Date(result.nextAttemptAt) }
          : {}),
      });
      return true;
    });
  }

  forEmail(emailId: EmailId): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return TE.fromIO(() =>
      [...this.deliveries.values()]
        .filter((d) => d.emailId === emailId)
        .sort(oldestFirst)
        .map(copyDelivery),
    );
  }

  recent(limit: number): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return TE.fromIO(() =>
      [...this.deliveries.values()]
        .sort((a, b) => oldestFirst(b, a))
        .slice(0, atMost(limit))
        .map(copyDelivery),
    );
  }

  overdue(
    dueBefore: Date,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly WebhookDelivery[]> {
    return TE.fromIO(() => {
      const due = (d: WebhookDelivery): number => (d.nextAttemptAt ?? d.createdAt).getTime();
      return [...this.deliveries.values()]
        .filter((d) => d.state === 'pending' && due(d) < dueBefore.getTime())
        .sort((a, b) => due(a) - due(b) || byId(a.id, b.id))
        .slice(0, Math.max(0, limit))
        .map(copyDelivery);
    });
  }

  oldestPending(): TE.TaskEither<StoreUnavailable, O.Option<Date>> {
    return TE.fromIO(() => {
      let oldest: number | undefined;
      for (const d of this.deliveries.values()) {
        const ms = d.createdAt.getTime();
        if (d.state === 'pending' && (oldest === undefined || ms < oldest)) oldest = ms;
      }
      return oldest === undefined ? O.none : O.some(new Date(oldest));
    });
  }

  purgeOlderThan(cutoff: Date, batchSize: number): TE.TaskEither<StoreUnavailable, number> {
    return TE.fromIO(() => {
      // Oldest first, as the SQL store deletes: a batch never skips past older deliveries.
      const old = [...this.deliveries.values()]
        .filter((d) => d.state !== 'pending' && d.createdAt.getTime() < cutoff.getTime())
        .sort(oldestFirst)
        .slice(0, atMost(batchSize));
      for (const d of old) {
        this.deliveries.delete(d.id);
        this.ids.delete(keyOf(d));
      }
      return old.length;
    });
  }

  private stored(key: string): WebhookDelivery {
    const id = this.ids.get(key);
    const d = id === undefined ? undefined : this.deliveries.get(id);
    // Unreachable: `create` stored every key it was given, or found it stored.
    if (d === undefined) throw new Error('a webhook delivery just stored is missing');
    return d;
  }
}
