import type { EmailAddress } from './email-address.js';
import type { EmailId } from './email-request.js';
import type { DomainEvent } from './events.js';

export type StatusName = 'queued' | 'retrying' | 'delivered' | 'failed';

export interface StatusAttempt {
  readonly attempt: number;
  readonly at: string;
  readonly outcome: 'sent' | 'transient' | 'permanent';
  readonly detail: string;
}

export interface StatusFailover {
  readonly at: string;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

/** What `GET /emails/:id` shows: a projection of the events, never written to directly. */
export interface EmailStatus {
  readonly id: EmailId;
  readonly status: StatusName;
  readonly to: readonly EmailAddress[];
  readonly subject: string;
  readonly requestedAt?: string;
  readonly attempts: readonly StatusAttempt[];
  /** Each move from one transport to the next while sending it. */
  readonly failovers?: readonly StatusFailover[];
  readonly nextAttemptAt?: string;
  readonly providerId?: string;
  readonly deliveredAt?: string;
  readonly durationMs?: number;
  readonly failedAt?: string;
  readonly reason?: string;
}

/** Nothing more will happen unless someone acts (replays a dead letter): pages stop updating. */
export const isFinalStatus = (status: StatusName): boolean =>
  status === 'delivered' || status === 'failed';

/**
 * Delivered is final. Failed is final for anything that happened before it, but a dead letter
 * can be replayed, and what happens after the failure (a retry, a delivery) is news.
 */
const isSettledBefore = (status: EmailStatus, at: string): boolean =>
  status.status === 'delivered' || (status.status === 'failed' && at <= (status.failedAt ?? ''));

/**
 * Folds one event into a status. Events can arrive late or twice (at-least-once everywhere), so
 * a settled state is not undone by older news and an attempt already recorded is not recorded
 * again.
 */
export function evolveStatus(current: EmailStatus | undefined, event: DomainEvent): EmailStatus {
  const base: EmailStatus = current ?? {
    id: event.id,
    status: 'queued',
    to: event.to,
    subject: event.subject,
    attempts: [],
  };
  const addAttempt = (a: StatusAttempt): readonly StatusAttempt[] =>
    base.attempts.some((x) => x.attempt === a.attempt && x.outcome === a.outcome && x.at === a.at)
      ? base.attempts
      : [...base.attempts, a].sort((x, y) =>
          x.at < y.at ? -1 : x.at > y.at ? 1 : x.attempt - y.attempt,
        );

  switch (event.type) {
    case 'EmailFailedOver': {
      const failover = {
        at: event.at,
        from: event.fromTransport,
        to: event.toTransport,
        reason: event.reason,
      };
      const known = base.failovers ?? [];
      if (known.some((f) => f.at === failover.at && f.from === failover.from)) return base;
      return { ...base, failovers: [...known, failover] };
    }
    case 'EmailRequested':
      return { ...base, requestedAt: event.at };
    case 'EmailDeliveryRetried': {
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: 'transient',
        detail: event.reason,
      });
      if (isSettledBefore(base, event.at)) return { ...base, attempts };
      const { failedAt: _f, ...rest } = base;
      return {
        ...rest,
        attempts,
        status: 'retrying',
        nextAttemptAt: event.nextAttemptAt,
        reason: event.reason,
      };
    }
    case 'EmailDelivered': {
      // The same delivery announced again (a redelivered task found in the ledger): no news.
      if (base.status === 'delivered' && base.providerId === event.providerId) return base;
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: 'sent',
        detail: event.providerId,
      });
      if (isSettledBefore(base, event.at)) return { ...base, attempts };
      const { nextAttemptAt: _n, reason: _r, failedAt: _f, ...rest } = base;
      return {
        ...rest,
        attempts,
        status: 'delivered',
        providerId: event.providerId,
        deliveredAt: event.at,
        durationMs: event.durationMs,
      };
    }
    case 'EmailDeliveryFailed': {
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: event.outcome,
        detail: event.reason,
      });
      if (isSettledBefore(base, event.at)) return { ...base, attempts };
      const { nextAttemptAt: _n, ...rest } = base;
      return { ...rest, attempts, status: 'failed', failedAt: event.at, reason: event.reason };
    }
  }
}
