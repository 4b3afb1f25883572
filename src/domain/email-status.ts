import { formatDelay, isThrottledDetail } from './delivery.js';
import type { EmailAddress } from './email-address.js';
import { mailbox, mailboxKey } from './email-address.js';
import type { EmailId } from './email-request.js';
import { allRecipients } from './email-request.js';
import type { DomainEvent, ProviderReported } from './events.js';

/**
 * Where an email stands. `sent` means the provider accepted it (Mailgun's 200, SMTP's 250); a
 * provider's delivery report, when one arrives, is a later and separate step: `delivered`,
 * `bounced` or `complained`, per recipient, and for the email once every recipient has one.
 */
export type StatusName =
  | 'scheduled'
  | 'queued'
  | 'sending'
  | 'sent'
  | 'retrying'
  | 'failed'
  | 'cancelled'
  | 'suppressed'
  | 'delivered'
  | 'bounced'
  | 'complained';

export const STATUS_NAMES: readonly StatusName[] = [
  'scheduled',
  'queued',
  'sending',
  'sent',
  'retrying',
  'failed',
  'cancelled',
  'suppressed',
  'delivered',
  'bounced',
  'complained',
];

/**
 * What a line of an email's history can say: a status the email took, or a note that changes
 * none: `unconfirmed`, the watchdog's note that the provider reported nothing within
 * `CONFIRM_DEADLINE` of the send (the email stays `sent`); `expedited`, an operator's "Retry
 * now" (the email stays `retrying`, its next attempt due now); `resent`, an operator's "Resend"
 * (the email keeps its status; the new email has its own id).
 */
export type HistoryName = StatusName | 'unconfirmed' | 'expedited' | 'resent';

/** Every name a history line may carry, for the API's description of it. */
export const HISTORY_NAMES: readonly HistoryName[] = [
  ...STATUS_NAMES,
  'unconfirmed',
  'expedited',
  'resent',
];

/**
 * Who made a change: the API that accepted the email, the worker that sent it, or the provider
 * that reported on it afterwards (a webhook).
 */
export type ChangeSource = 'api' | 'worker' | 'provider';

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
  readonly status: HistoryName;
  readonly source: ChangeSource;
  readonly detail?: string;
}

/**
 * Each recipient's own state: the email's until the provider reports on that recipient
 * (`delivered`, `bounced`, `complained`), or `suppressed` when it was never sent to.
 */
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
  /**
   * The transport that took it (`mailgun`, `smtp`, `outbox`), from its `EmailSent`; absent when
   * the event did not say (older events, a send found in the ledger on a redelivery).
   */
  readonly sentBy?: string;
  readonly durationMs?: number;
  readonly failedAt?: string;
  readonly reason?: string;
  /** The email this one is a resend of (its accepted event's `resendOf`). */
  readonly resendOf?: EmailId;
  /** The emails this one was resent as, oldest first (`EmailResent`). */
  readonly resentAs?: readonly EmailId[];
  /**
   * The attempts an operator brought forward by copying their task (`EmailRetryExpedited` with
   * `copied`): the waiting task of such an attempt is a stale copy, and the worker drops it.
   */
  readonly expedited?: readonly number[];
}

/** What the provider says of a recipient after the send, each stronger than the one before. */
const REPORTED: readonly StatusName[] = ['delivered', 'bounced', 'complained'];
const isReported = (status: StatusName): boolean => REPORTED.includes(status);

/** The provider has the email: sent, or reported on since. */
const hasBeenSent = (status: StatusName): boolean => status === 'sent' || isReported(status);

/**
 * Nothing more will happen unless someone acts (replays a dead letter): pages stop updating, and
 * the retention purge may take the email. `sent` stays final although a provider's report usually
 * follows (SMTP and the outbox never send one), and so do `delivered` and `bounced` although a
 * complaint can follow a delivery days later: such a report is still folded in when it comes and
 * shows on the next look, but no page waits for it.
 */
export const isFinalStatus = (status: StatusName): boolean =>
  hasBeenSent(status) || status === 'failed' || status === 'cancelled' || status === 'suppressed';

/**
 * The provider accepted the email and has said nothing since, about any recipient, and the
 * watchdog has not flagged it yet: what `EmailUnconfirmed` applies to, and what
 * `EmailLog.unconfirmed` looks for (among the emails sent before its deadline).
 */
export const awaitsReport = (status: EmailStatus): boolean =>
  status.status === 'sent' &&
  !status.history.some((c) => c.source === 'provider' || c.status === 'unconfirmed');

/**
 * Requests come in through the API, reports from the provider; the rest is the worker's doing,
 * the watchdog's `EmailUnconfirmed` included (it runs in the workers).
 */
export const eventSource = (event: DomainEvent): ChangeSource =>
  event.type === 'EmailRequested' ||
  event.type === 'EmailScheduled' ||
  event.type === 'EmailCancelled' ||
  event.type === 'EmailRetryExpedited' ||
  event.type === 'EmailResent'
    ? 'api'
    : event.type === 'ProviderReported'
      ? 'provider'
      : 'worker';

/**
 * Sent is final. Failed is final for anything that happened before it, but a dead letter can be
 * replayed, and what happens after the failure (a retry, a send) is news.
 */
const isSettledBefore = (status: EmailStatus, at: string): boolean =>
  hasBeenSent(status.status) ||
  status.status === 'cancelled' ||
  status.status === 'suppressed' ||
  (status.status === 'failed' && at <= (status.failedAt ?? ''));

/** The tags, metadata and origin the first event of an email carries, for its status. */
const labelsOf = (event: {
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly resendOf?: EmailId;
}): Pick<EmailStatus, 'tags' | 'metadata' | 'resendOf'> => ({
  ...(event.tags !== undefined ? { tags: event.tags } : {}),
  ...(event.metadata !== undefined ? { metadata: event.metadata } : {}),
  ...(event.resendOf !== undefined ? { resendOf: event.resendOf } : {}),
});

const byTime = <T extends { readonly at: string }>(items: readonly T[]): T[] =>
  [...items].sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));

/**
 * `byTime([...items, item])`. Items in time order and an item not older than the last, as a
 * new change nearly always is, sort to themselves with the item at the end: appended without a
 * sort (every fold of every email adds a line).
 */
const addByTime = <T extends { readonly at: string }>(items: readonly T[], item: T): T[] => {
  const last = items.at(-1);
  const inOrder =
    (last === undefined || last.at <= item.at) &&
    items.every((x, i) => i === 0 || items[i - 1]!.at <= x.at);
  return inOrder ? [...items, item] : byTime([...items, item]);
};

/**
 * The state a report puts its recipient in: an unsubscribe proves a delivery, and a deferral
 * (the provider tries again) changes nothing yet.
 */
const REPORTED_STATE: Readonly<Record<ProviderReported['kind'], StatusName | undefined>> = {
  delivered: 'delivered',
  bounced: 'bounced',
  complained: 'complained',
  unsubscribed: 'delivered',
  deferred: undefined,
};

/**
 * A recipient takes the strongest state reported for it (see `REPORTED`), whatever order the
 * reports come in: a complaint is not undone by a late delivery report. One never sent to
 * (suppressed) stays so.
 */
const withReport = (r: RecipientState, state: StatusName): RecipientState =>
  r.status === 'suppressed' || REPORTED.indexOf(r.status) >= REPORTED.indexOf(state)
    ? r
    : { ...r, status: state };

/**
 * Adds a report's line in time order. Reports of the same moment (one per recipient) go after
 * our own lines and in the order of their text, so any order of arrival gives the same history.
 */
const withReportLine = (
  history: readonly StatusChange[],
  line: StatusChange,
): readonly StatusChange[] => {
  const reported = (c: StatusChange): number => (c.source === 'provider' ? 1 : 0);
  const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...history, line].sort((x, y) =>
    x.at !== y.at
      ? x.at < y.at
        ? -1
        : 1
      : reported(x) - reported(y) ||
        (reported(x) === 1 ? byText(x.detail ?? '', y.detail ?? '') : 0),
  );
};

/**
 * The recipients of an email the provider took after all (see `ProviderReported` on a failed
 * email): those failed or still waiting here were sent to with the others.
 */
const takenAfterAll = (recipients: readonly RecipientState[]): readonly RecipientState[] =>
  recipients.map((r) =>
    r.status === 'suppressed' || isReported(r.status) ? r : { ...r, status: 'sent' },
  );

/**
 * The email's status once the provider has it: delivered (or complained) when every recipient
 * not suppressed was reached, bounced when every one bounced, and sent while reports are missing
 * or disagree.
 */
function rollUp(recipients: readonly RecipientState[]): StatusName {
  const sentTo = recipients.filter((r) => r.status !== 'suppressed');
  if (sentTo.length === 0) return 'sent';
  if (sentTo.every((r) => r.status === 'bounced')) return 'bounced';
  if (sentTo.every((r) => r.status === 'delivered' || r.status === 'complained')) {
    return sentTo.some((r) => r.status === 'complained') ? 'complained' : 'delivered';
  }
  return 'sent';
}

/**
 * `status` without the fields `keys`: `status` itself when it has none of them, as it nearly
 * always has not. A rest pattern would copy the whole state on every change of every email
 * (most of a fold's time), only for the caller to copy it once more into the new state.
 */
function without<K extends keyof EmailStatus>(
  status: EmailStatus,
  ...keys: readonly K[]
): Omit<EmailStatus, K> {
  if (!keys.some((key) => key in status)) return status;
  const copy: Partial<EmailStatus> = { ...status };
  for (const key of keys) delete copy[key];
  return copy as Omit<EmailStatus, K>;
}

/**
 * `{ ...rest, ...became, ...fields }`: the same keys in the same order with the same values, built
 * by `Object.assign`. A literal that spreads a state and then adds a field the state has not (the
 * first `providerId`, `sentAt`, `nextAttemptAt`…) has V8 derive a new hidden class for every
 * state it builds: 2.8 us a fold against 0.15 us, and the JSON.stringify of the result that the
 * email log writes 1 us slower (warm microbenchmark). A worker folds such a change per email.
 */
function extended<A extends object, B extends object, C extends object>(
  rest: A,
  became: B,
  fields: C,
): A & B & C {
  return Object.assign({}, rest, became, fields);
}

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
    recipients: [
      ...allRecipients(event).map((address): RecipientState => ({ address, status: 'queued' })),
      ...('suppressed' in event && event.suppressed !== undefined ? event.suppressed : []).map(
        (address): RecipientState => ({ address, status: 'suppressed' }),
      ),
    ],
    attempts: [],
    history: [],
  };
  const source = eventSource(event);
  const addAttempt = (a: StatusAttempt): readonly StatusAttempt[] =>
    base.attempts.some((x) => x.attempt === a.attempt && x.outcome === a.outcome && x.at === a.at)
      ? base.attempts
      : base.attempts.length === 0
        ? [a]
        : byTime([...base.attempts, a]).sort((x, y) => (x.at === y.at ? x.attempt - y.attempt : 0));
  const addChange = (status: HistoryName, detail?: string): readonly StatusChange[] =>
    base.history.some((c) => c.at === event.at && c.status === status)
      ? base.history
      : addByTime(
          base.history,
          // Two literals rather than a spread of an optional field: a line per fold of every email.
          detail !== undefined
            ? { at: event.at, status, source, detail }
            : { at: event.at, status, source },
        );
  // A recipient dropped as suppressed stays so, whatever happens to the email, and so does what
  // the provider reported (a report can be recorded before the worker's `sent`).
  const become = (status: StatusName): Pick<EmailStatus, 'status' | 'recipients'> => ({
    status,
    recipients: base.recipients.map((r) =>
      r.status === 'suppressed' || isReported(r.status) ? r : { ...r, status },
    ),
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
      // Object.assign, in the order a spread would: V8 builds a literal that opens with a
      // spread on a slow path, and every accepted email is folded here.
      return Object.assign(
        {},
        base,
        labelsOf(event),
        base.status === 'scheduled' ? become('queued') : {},
        { requestedAt: base.requestedAt ?? event.at, history: addChange('queued') },
      );
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
    case 'EmailSuppressed': {
      if (isSettledBefore(base, event.at)) return base;
      const rest = without(base, 'nextAttemptAt');
      return {
        ...rest,
        ...become('suppressed'),
        history: addChange(
          'suppressed',
          `not sent: every To recipient is suppressed (${event.suppressed.join(', ')})`,
        ),
      };
    }
    case 'EmailCancelled':
      if (base.status !== 'scheduled') return base;
      return { ...base, ...become('cancelled'), history: addChange('cancelled') };
    case 'EmailSending': {
      // Only a settled state stops it: the worker's clock may run behind the server's, so a
      // take that looks older than the acceptance is still news.
      if (isSettledBefore(base, event.at)) return base;
      const rest = without(base, 'failedAt');
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
      const rest = without(base, 'failedAt');
      return extended(rest, become('retrying'), {
        attempts,
        history: addChange('retrying', event.reason),
        nextAttemptAt: event.nextAttemptAt,
        reason: event.reason,
      });
    }
    case 'EmailSent': {
      // The same send reported again (a redelivered task found in the ledger): no news.
      if (hasBeenSent(base.status) && base.providerId === event.providerId) return base;
      const attempts = addAttempt({
        attempt: event.attempt,
        at: event.at,
        outcome: 'sent',
        detail: event.providerId,
        durationMs: event.durationMs,
      });
      if (isSettledBefore(base, event.at)) {
        // A provider's report rolled it up as sent before any send was recorded (its sends
        // timed out although the provider had taken one): the ledger's record names the send.
        return hasBeenSent(base.status) && base.providerId === undefined
          ? extended(base, {}, { attempts, providerId: event.providerId })
          : { ...base, attempts };
      }
      const rest = without(base, 'nextAttemptAt', 'reason', 'failedAt');
      const sent = become('sent');
      // Fields the state had not (providerId, sentAt…): see `extended`.
      return extended(rest, sent, {
        // Reports that came first count from now on.
        status: rollUp(sent.recipients),
        attempts,
        history: addChange('sent', event.providerId),
        providerId: event.providerId,
        sentAt: event.at,
        durationMs: event.durationMs,
        ...(event.transport !== undefined ? { sentBy: event.transport } : {}),
      });
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
      if (base.history.some((c) => c.source === 'provider')) {
        // The provider reported on an earlier send (a deferral too: it retries only what it
        // took), which it had taken after all (that attempt timed out here): the email went
        // out, whatever this attempt says.
        const recipients = takenAfterAll(base.recipients);
        return {
          ...without(base, 'nextAttemptAt', 'reason'),
          status: rollUp(recipients),
          recipients,
          attempts,
          history: addChange('failed', event.reason),
        };
      }
      const rest = without(base, 'nextAttemptAt');
      return extended(rest, become('failed'), {
        attempts,
        history: addChange('failed', event.reason),
        failedAt: event.at,
        reason: event.reason,
      });
    }
    case 'ProviderReported': {
      const state = REPORTED_STATE[event.kind];
      const key = mailboxKey(event.recipient);
      const recipients =
        state === undefined
          ? base.recipients
          : base.recipients.map((r) => (mailboxKey(r.address) === key ? withReport(r, state) : r));
      // Before the worker's `sent` is recorded the email keeps its status: `sent` rolls it up. A
      // report on a failed email, a deferral too (a provider reports, and retries, only what it
      // accepted), shows the provider had taken a send that timed out here: the email went out,
      // and is rolled up as sent (its other recipients sent, not failed).
      const takenAfterFailing = base.status === 'failed';
      const settled = takenAfterFailing ? takenAfterAll(recipients) : recipients;
      const status = hasBeenSent(base.status) || takenAfterFailing ? rollUp(settled) : base.status;
      // Its line says what the report says, whatever came before, so a repeat finds it.
      const change: StatusChange = {
        at: event.at,
        status: state ?? 'sent',
        source,
        detail: `${mailbox(event.recipient)} ${event.kind}${event.reason !== undefined ? `: ${event.reason}` : ''}`,
      };
      const known = base.history.some(
        (c) => c.at === change.at && c.source === change.source && c.detail === change.detail,
      );
      return {
        ...(takenAfterFailing ? without(base, 'failedAt', 'reason') : base),
        status,
        recipients: settled,
        history: known ? base.history : withReportLine(base.history, change),
      };
    }
    case 'EmailRetryExpedited': {
      // The stale copy is marked whatever came since: it may still be waiting in its queue.
      const known = base.expedited ?? [];
      const expedited =
        event.copied && !known.includes(event.attempt)
          ? [...known, event.attempt].sort((a, b) => a - b)
          : known;
      // Due now only while that attempt is still the next one: the copy may have been taken,
      // and its outcome recorded, before this note was.
      const waiting = base.status === 'retrying' && waitingAttempt(base.attempts) <= event.attempt;
      return {
        ...base,
        ...(expedited.length > 0 ? { expedited } : {}),
        ...(waiting ? { nextAttemptAt: event.at } : {}),
        history: addChange('expedited', `attempt ${event.attempt} brought forward to now`),
      };
    }
    case 'EmailResent': {
      const known = base.resentAs ?? [];
      if (known.includes(event.resentAs)) return base;
      return {
        ...base,
        resentAs: [...known, event.resentAs],
        history: addChange('resent', `as ${event.resentAs}`),
      };
    }
    case 'EmailUnconfirmed': {
      // News only while the silence lasts: once any recipient has a report, or the email left
      // `sent`, there is nothing to flag; and one note is enough, whichever worker's sweep (and
      // clock) made the second one.
      if (!awaitsReport(base)) return base;
      return {
        ...base,
        history: addChange(
          'unconfirmed',
          `no report from ${event.transport} on any recipient within ${formatDelay(event.deadlineMs)}`,
        ),
      };
    }
  }
}

/**
 * The attempt an email that is `retrying` waits to make, from its `attempts`: the one after its
 * last recorded (`retrying` is recorded with the attempt that failed), except after a throttle,
 * which spends no attempt: the same attempt is made again (`decide`, "Throttled"). A throttle's
 * line is known by its detail (`isThrottledDetail`), the one place the email log keeps it.
 */
export function waitingAttempt(attempts: readonly StatusAttempt[]): number {
  const last = Math.max(0, ...attempts.map((a) => a.attempt));
  const isThrottle = (a: StatusAttempt): boolean =>
    a.outcome === 'transient' && isThrottledDetail(a.detail);
  const ofLast = attempts.filter((a) => a.attempt === last);
  return last > 0 && ofLast.length > 0 && ofLast.every(isThrottle) ? last : last + 1;
}
