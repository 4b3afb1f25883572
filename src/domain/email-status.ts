import type { EmailAddress } from './email-address.js';
import type { EmailId } from './email-request.js';
import type { DomainEvent } from './events.js';

/**
 * Where an email stands. `sent` means the provider accepted it (Mailgun's 200, SMTP's 250); a
 * provider's delivery report, when one arrives, is a later and separate step.
 */
export type StatusName =
  'scheduled' | 'queued' | 'sending' | 'sent' | 'retrying' | 'failed' | 'cancelled';

export const STATUS_NAMES: readonly StatusName[] = [
  'scheduled',
  'queued',
  'sending',
  'sent',
  'retrying',
  'failed',
  'cancelled',
];

/** Who made a change: the API that accepted the email, or the worker that sent it. */
export type ChangeSource = 'api' | 'worker';

export interface StatusAttempt {
  readonly attempt: number;
  readonly at: string;
  readonly outcome: 'sent' | 'transient' | 'permanent';
  readonly detail: string;
  /** How long the transport took to answer, in milliseconds. */
  readonly durationMs?: number;
}

export interface StatusFailover {
  readonly at: string;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

/** One line of an email's history: every change of status, when, and who made it. */
export interface StatusChange {
  readonly at: string;
  readonly status: StatusName;
  readonly source: ChangeSource;
  readonly detail?: string;
}

/** Each recipient's own state; until providers report per recipient, the email's. */
export interface RecipientState {
  readonly address: EmailAddress;
  readonly status: StatusName;
}

/**
 * What the email log keeps and `GET /emails/:id` shows: every domain event about an email, folded
 * by `evolveStatus`. The log is the source of truth; events on a bus only say "look again".
 */
export interface EmailStatus {
  readonly id: EmailId;
  readonly status: StatusName;
  readonly to: readonly EmailAddress[];
  readonly cc?: readonly EmailAddress[];
  readonly bcc?: readonly EmailAddress[];
  readonly subject: string;
  readonly requestedAt?: string;
  /** Held until then (status `scheduled`), RFC 3339. */
  readonly sendAt?: string;
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly recipients: readonly RecipientState[];
  readonly attempts: readonly StatusAttempt[];
  readonly history: readonly StatusChange[];
  /** Each move from one transport to the next while sending it. */
  readonly failovers?: readonly StatusFailover[];
  readonly nextAttemptAt?: string;
  readonly providerId?: string;
  readonly sentAt?: string;
  readonly durationMs?: number;
  readonly failedAt?: string;
  readonly reason?: string;
}

/** Nothing more will happen unless someone acts (replays a dead letter): pages stop updating. */
export const isFinalStatus = (status: StatusName): boolean =>
  status === 'sent' || status === 'failed' || status === 'cancelled';

/** Requests come in through the API; everything after that is the worker's doing. */
export const eventSource = (event: DomainEvent): ChangeSource =>
  event.type === 'EmailRequested' ||
  event.type === 'EmailScheduled' ||
  event.type === 'EmailCancelled'
    ? 'api'
    : 'worker';

/**
 * Sent is final. Failed is final for anything that happened before it, but a dead letter can be
 * replayed, and what happens after the failure (a retry, a send) is news.
 */
const isSettledBefore = (status: EmailStatus, at: string): boolean =>
  status.status === 'sent' ||
  status.status === 'cancelled' ||
  (status.status === 'failed' && at <= (status.failedAt ?? ''));

/** The tags and metadata the first event of an email carries, for its status. */
const labelsOf = (event: {
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
}): Pick<EmailStatus, 'tags' | 'metadata'> => ({
  ...(event.tags !== undefined ? { tags: event.tags } : {}),
  ...(event.metadata !== undefined ? { metadata: event.metadata } : {}),
});

const byTime = <T extends { readonly at: string }>(items: readonly T[]): T[] =>
  [...items].sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));

/**
 * Folds one event into a status. Events can arrive late or twice (at-least-once everywhere), so
 * a settled state is not undone by older news, and an attempt or change already recorded is not
 * recorded again: folding the same event twice gives the same status.
 */
export function evolveStatus(current: EmailStatus | undefined, event: DomainEvent): EmailStatus {
  const base: EmailStatus = current ?? {
    id: event.id,
    status: 'queued',
    to: event.to,
    ...(event.cc !== undefined ? { cc: event.cc } : {}),
    ...(event.bcc !== undefined ? { bcc: event.bcc } : {}),
    subject: event.subject,
    recipients: [...event.to, ...(event.cc ?? []), ...(event.bcc ?? [])].map((address) => ({
      address,
      status: 'queued',
    })),
    attempts: [],
    history: [],
  };
  const source = eventSource(event);
  const addAttempt = (a: StatusAttempt): readonly StatusAttempt[] =>
    base.attempts.some((x) => x.attempt === a.attempt && x.outcome === a.outcome && x.at === a.at)
      ? base.attempts
      : byTime([...base.attempts, a]).sort((x, y) => (x.at === y.at ? x.attempt - y.attempt : 0));
  const addChange = (status: StatusName, detail?: string): readonly StatusChange[] =>
    base.history.some((c) => c.at === event.at && c.status === status)
      ? base.history
      : byTime([
          ...base.history,
          { at: event.at, status, source, ...(detail !== undefined ? { detail } : {}) },
        ]);
  const become = (status: StatusName): Pick<EmailStatus, 'status' | 'recipients'> => ({
    status,
    recipients: base.recipients.map((r) => ({ ...r, status })),
  });

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
      // The first change of every email sent at once, or the release of a scheduled one; a
      // worker's news can come before it and stays current. A cancelled email stays cancelled.
      if (base.status === 'cancelled') return base;
      return {
        ...base,
        ...labelsOf(event),
        ...(base.status === 'scheduled' ? become('queued') : {}),
        requestedAt: base.requestedAt ?? event.at,
        history: addChange('queued'),
      };
    case 'EmailScheduled':
      if (base.status !== 'queued' || base.history.length > 0) {
        return {
          ...base,
          ...labelsOf(event),
          sendAt: event.sendAt,
          requestedAt: base.requestedAt ?? event.at,
        };
      }
      return {
        ...base,
        ...labelsOf(event),
        ...become('scheduled'),
        sendAt: event.sendAt,
        requestedAt: event.at,
        history: addChange('scheduled', `send at ${event.sendAt}`),
      };
    case 'EmailCancelled':
      if (base.status !== 'scheduled') return base;
      return { ...base, ...become('cancelled'), history: addChange('cancelled') };
    case 'EmailSending': {
      // Only a settled state stops it: the worker's clock may run behind the server's, so a
      // take that looks older than the acceptance is still news.
      if (isSettledBefore(base, event.at)) return base;
      const { failedAt: _f, ...rest } = base;
      return {
        ...rest,
        ...become('sending'),
        history: addChange('sending', `attempt ${event.attempt}`),
      };
    }
    case 'EmailDeliveryRetried': {
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: 'transient',
        detail: event.reason,
        durationMs: event.durationMs,
      });
      if (isSettledBefore(base, event.at)) return { ...base, attempts };
      const { failedAt: _f, ...rest } = base;
      return {
        ...rest,
        ...become('retrying'),
        attempts,
        history: addChange('retrying', event.reason),
        nextAttemptAt: event.nextAttemptAt,
        reason: event.reason,
      };
    }
    case 'EmailSent': {
      // The same send reported again (a redelivered task found in the ledger): no news.
      if (base.status === 'sent' && base.providerId === event.providerId) return base;
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: 'sent',
        detail: event.providerId,
        durationMs: event.durationMs,
      });
      if (isSettledBefore(base, event.at)) return { ...base, attempts };
      const { nextAttemptAt: _n, reason: _r, failedAt: _f, ...rest } = base;
      return {
        ...rest,
        ...become('sent'),
        attempts,
        history: addChange('sent', event.providerId),
        providerId: event.providerId,
        sentAt: event.at,
        durationMs: event.durationMs,
      };
    }
    case 'EmailDeliveryFailed': {
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: event.outcome,
        detail: event.reason,
        durationMs: event.durationMs,
      });
      if (isSettledBefore(base, event.at)) return { ...base, attempts };
      const { nextAttemptAt: _n, ...rest } = base;
      return {
        ...rest,
        ...become('failed'),
        attempts,
        history: addChange('failed', event.reason),
        failedAt: event.at,
        reason: event.reason,
      };
    }
  }
}
