import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord, DeliveryOutcome, RetryPolicy } from '../domain/delivery.js';
import {
  decide,
  isNotStarted,
  outcomeDetail,
  outcomeName,
  throttlePauseMs,
} from '../domain/delivery.js';
import type { DomainToAscii, EmailAddress } from '../domain/email-address.js';
import { mailbox } from '../domain/email-address.js';
import { EmailRequest, allRecipients } from '../domain/email-request.js';
import type { EmailId } from '../domain/email-request.js';
import type { DomainEvent } from '../domain/events.js';
import { recordAllAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { DeliveryLedger, SendClaim } from './ports/delivery-ledger.js';
import type { Applied, EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { Disposition, EmailTask } from './ports/email-task-source.js';
import type { EmailSender, NamedOutcome, Throttle } from './ports/email-sender.js';
import { sendNamed, throttledBy, transportsOf } from './ports/email-sender.js';
import type { PacingObserver, SendPacer } from './ports/send-pacer.js';
import type { TransportPauses } from './ports/transport-pauses.js';
import type { SuppressionList } from './ports/suppression-list.js';
import type { Recipients, Screened } from './request-email.js';
import { screenRecipients } from './request-email.js';
import { recipientsOf } from '../domain/events.js';
import type { Clock, Logger } from './ports/system.js';
import { STORE_WAIT_LOG_EVERY_MS, Waiting, handBackDelay, later } from './delivery-waits.js';
import type { SendSlots } from './send-slots.js';

export { STORE_WAIT_LOG_EVERY_MS, handBackDelay };

/**
 * What a renewal that lost the claim logs, while the send runs or while it waits for a send
 * slot. Another worker has it: the lease ran out while the store did not answer. Already sent: a
 * provider's report recorded the send meanwhile (see RecordProviderEvent), nothing to fear.
 */
const LOST_CLAIM = {
  Busy: {
    level: 'warn',
    sending:
      'The send claim ran out during the send and another worker has it; the email may go out twice',
    waiting:
      'The send claim ran out while waiting for a send slot and another worker has it; not sending',
  },
  AlreadySent: {
    level: 'info',
    sending: 'The provider reported on the email during its send',
    waiting: 'The provider reported on the email while it waited for a send slot; not sending',
  },
} as const;

/**
 * How long a send claim lives unless renewed. The sending worker renews it every third of this
 * while the send runs, however long the send takes; so this bounds only how long an email whose
 * worker died mid-send waits before another worker takes it over (and sends it again).
 */
export const SEND_CLAIM_LEASE_MS = 15_000;

/**
 * The longest a send waits in the worker for its transport (its pace, or a pause after a
 * throttle), in milliseconds. A longer wait hands the task back to the queue, due when the wait
 * ends, so that it does not hold a prefetch slot idle meanwhile.
 */
export const MAX_WAIT_IN_HAND_MS = 1000;

/** Slots missed in a row (the worker held up past a slot's grace) before the task goes back. */
export const MAX_REBOOKS = 3;

/**
 * Slots a transport's first send in a process books (it leaves on the first, the others stay
 * empty). That send opens the connection and runs its code for the first time: it reaches the
 * provider later than the ones after it (60 to 100 ms more, with Mailgun's client, in the
 * process tests), which one empty slot behind it absorbs.
 */
export const COLD_SEND_SLOTS = 2;

/** How long a transport's pause, as read from the shared store, is trusted in this process. */
export const PAUSE_CACHE_MS = 1000;

/**
 * How long a send may run before its `sending` is written while it runs, in milliseconds. A
 * send the provider answers sooner has its `sending` (stamped when the send began) written in
 * the same write as its outcome: one UPDATE of the email's row where there were two, the
 * larger part of the database's work per email (each UPDATE of `emails` rewrites the row and
 * every index on it). What it costs: for up to this long after a send began, the email still
 * reads `queued`, and its `email.sending` event comes just before its outcome's. A send that
 * runs longer (a slow provider) reads `sending` from then until it is answered, as before.
 */
export const SENDING_MARK_AFTER_MS = 250;

const sleepFor = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The most `sending` marks kept unwritten (see SENDING_MARK_AFTER_MS): as many as sends under
 * way, and those of tasks that went back to the queue while the email log did not answer (which
 * may come back to another worker instead); past it the oldest go.
 */
const MAX_KEPT = 10_000;

/** Runs `work` every `everyMs` until the returned function is called. */
export type Every = (work: () => void, everyMs: number) => () => void;

/** Runs `work` once after `afterMs` unless the returned function is called first. */
export type After = (work: () => void, afterMs: number) => () => void;

// A `sending` not written yet never keeps a process alive: the send it belongs to does.
const afterTimeout: After = (work, afterMs) => {
  const timer = setTimeout(work, afterMs);
  timer.unref();
  return () => clearTimeout(timer);
};

// Never keeps a process alive on its own: a send has its own timeout.
const everyInterval: Every = (work, everyMs) => {
  const timer = setInterval(work, everyMs);
  timer.unref();
  return () => clearInterval(timer);
};

export interface DeliverEmailOptions {
  /** This worker's name on its send claims: unique per process, so a restart is another one. */
  readonly holder: string;
  /** Default SEND_CLAIM_LEASE_MS. */
  readonly claimLeaseMs?: number;
  /** The timer that renews claims; injected by tests. */
  readonly every?: Every;
  /** Default SENDING_MARK_AFTER_MS. */
  readonly sendingMarkAfterMs?: number;
  /** The timer that writes a long send's `sending`; injected by tests. */
  readonly after?: After;
  /** Recipients never sent to, looked up again before each send; without it, nobody is. */
  readonly suppressions?: SuppressionList;
  /** How recipients' domains are compared with the list's keys (A-labels). */
  readonly domainToAscii?: DomainToAscii;
  /**
   * Transports paused after a throttle, shared by every worker. Without it a throttle pauses
   * the transport in this process only; the email waits without spending its attempt either way.
   */
  readonly pauses?: TransportPauses;
  /** Each transport's pace (MAILGUN_RATE, SMTP_RATE); without it, nothing is paced. */
  readonly pacer?: SendPacer;
  /** Where pacing is shown (the worker's /metrics). */
  readonly pacing?: PacingObserver;
  /** Default MAX_WAIT_IN_HAND_MS. */
  readonly maxWaitInHandMs?: number;
  /** Default PAUSE_CACHE_MS. */
  readonly pauseCacheMs?: number;
  /** Waits in the worker (a pace, a short pause); injected by tests. */
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * WORKER_CONCURRENCY: how many of this worker's sends may be at the provider at once (see
   * SendSlots). A slot is taken once the send is claimed and its turn has come (the claim is
   * renewed while it waits), and given back as soon as the provider answered, so recording the
   * outcome and acking the task run outside it. Without it, no bound here: the task source's
   * alone.
   */
  readonly sendSlots?: SendSlots;
}

/**
 * Whether a send may go at `goAtMs` (monotonic ms; `skip`: the transports of a failover chain
 * that are paused, with the milliseconds each has left), or must wait `waitMs` longer than a
 * worker holds a task.
 */
type Turn =
  | {
      readonly _tag: 'Now';
      /** The transport paced (a failover chain's first one not paused). */
      readonly transport: string;
      readonly goAtMs: number;
      /** How late after `goAtMs` the send may still leave (`PaceSlot.graceMs`); none: any. */
      readonly graceMs?: number;
      /** How much before `goAtMs` the slot is now known to begin (`PaceSlot.earlierByMs`). */
      readonly earlierByMs?: () => number;
      readonly skip: ReadonlyMap<string, number>;
    }
  | {
      readonly _tag: 'Later';
      readonly transport: string;
      readonly waitMs: number;
      readonly why: 'paused' | 'paced';
    };

/** `request` addressed to `kept` only: fewer recipients, so as valid as it was. */
function addressedTo(request: EmailRequest, kept: Recipients): EmailRequest {
  const { cc: _cc, bcc: _bcc, ...rest } = request;
  const decoded = EmailRequest.decode({ ...rest, ...kept });
  if (E.isLeft(decoded)) throw new Error('a request left with fewer recipients failed to decode');
  return decoded.right;
}

/** A send the provider accepted whose ledger entry could not be written yet. */
interface UnrecordedSend {
  readonly providerId: string;
  readonly at: Date;
  readonly durationMs: number;
  /** The transport that took it (with failover, the one that answered). */
  readonly transport: string;
}

/**
 * A failed attempt decided (retry, or dead letter) whose change the email log could not take:
 * the task comes back to write it and answer `then`, not to send again.
 */
interface UnsettledOutcome {
  readonly event: DomainEvent;
  readonly then: Disposition;
}

/**
 * A send's `sending`, not written yet (see SENDING_MARK_AFTER_MS): `cancel` stops its timer;
 * `writing` is its own write, once the timer started one.
 */
interface SendingMark {
  readonly event: DomainEvent;
  cancel(): void;
  writing?: Promise<E.Either<StoreUnavailable, Applied>>;
}

/**
 * Whether `task` is the first attempt of an email sent when it was accepted, with nothing in its
 * history: its entry in the log is then most likely as `record` left it. Not a scheduled email
 * (released, its entry moved on), nor an operator's copy, nor a retry.
 */
const asRecorded = (task: EmailTask): boolean =>
  task.attempt === 1 &&
  task.history.length === 0 &&
  task.expedited !== true &&
  task.request.sendAt === undefined;

/** The throttles `task`'s attempt met before this send: its history's throttled lines of it. */
const throttledBefore = (task: EmailTask): number =>
  task.history.filter((line) => line.attempt === task.attempt && line.throttled === true).length;

/**
 * Sends one task and decides what becomes of it: done, retry after a delay, or dead-letter. Every
 * change is written to the email log before it is announced.
 *
 * Before it sends, it claims the send in the delivery ledger, which every worker shares: of two
 * workers holding tasks of one id, one sends, and the other is answered Busy and decides
 * `Redeliver`, so its queue asks again later, when the ledger says AlreadySent (done) or the
 * claim was released (a failed send: it sends). In this process, one decision per id runs at a
 * time, so a worker never finds itself Busy.
 *
 * When a store does not answer it decides `Redeliver` too. Before the send that is harmless:
 * nothing went out. After a send the provider accepted, the send is remembered here, in this
 * process, until the ledger takes it, and the Redeliver says `sent`: the task coming back (the
 * queue keeps it in this worker, even through a clean stop's grace period) records the send
 * instead of sending again. Delivery stays at least once: if this process dies after the
 * provider accepted and before the ledger recorded, the claim runs out and another worker sends
 * the email again. Likewise a failed attempt whose outcome the email log could not take is
 * remembered (`writeOutcome`): the task comes back to write it and go on to its retry or dead
 * letter, not to make the attempt again.
 *
 * The provider's limits (docs/architecture.md, "Pacing"): before the send it waits for the
 * transport's turn, a pause after a throttle (`TransportPauses`) and its pace (`SendPacer`),
 * in the worker when the wait is short and in the queue when it is long; a throttled answer
 * pauses the transport for every worker and is tried again with the same attempt. Neither
 * spends an attempt.
 */
export class DeliverEmail {
  private readonly unrecorded = new Map<EmailId, UnrecordedSend>();
  /**
   * Attempts that failed whose outcome the log has not taken yet (see `writeOutcome`), by the
   * task itself: the queue asks again with the same task after a Redeliver, and only that task
   * may be answered with it. Another task of the same email (a later attempt, an operator's
   * copy, a replayed dead letter, the same task delivered anew after a lost connection) is
   * decided afresh; an entry whose task is gone goes with it.
   */
  private readonly unsettled = new WeakMap<EmailTask, UnsettledOutcome>();
  private readonly running = new Map<EmailId, Promise<Disposition>>();
  /** The send slot a decision holds (see `sendSlots`), keyed like `running`: one per id. */
  private readonly slots = new Map<EmailId, () => void>();
  private readonly sendSlots: SendSlots | undefined;
  /** The email log's answer to a decision's last change: the next one folds onto it. */
  private readonly folded = new Map<EmailId, Applied>();
  /** Sends under way whose `sending` is not written yet, by email. */
  private readonly marks = new Map<EmailId, SendingMark>();
  private readonly change: (event: DomainEvent) => TE.TaskEither<StoreUnavailable, unknown>;
  /** Folds events of one email in one write onto its basis, then announces the news. */
  private readonly changeAll: (
    events: readonly DomainEvent[],
    basis?: Applied,
  ) => TE.TaskEither<StoreUnavailable, Applied>;
  private readonly sendingMarkAfterMs: number;
  private readonly after: After;
  private readonly holder: string;
  private readonly leaseMs: number;
  private readonly every: Every;
  private readonly storeWaits: Waiting;
  private readonly busyWaits: Waiting;
  private readonly suppressions: SuppressionList | undefined;
  private readonly domainToAscii: DomainToAscii | undefined;
  private readonly emails: EmailLog;
  private readonly pauses: TransportPauses | undefined;
  private readonly pacer: SendPacer | undefined;
  private readonly pacing: PacingObserver | undefined;
  private readonly maxWaitInHandMs: number;
  private readonly pauseCacheMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly paceWaits: Waiting;
  /**
   * Transport → the end of its latest pause this process knows of (its own throttles, and the
   * store's answer), and when the store was last read (monotonic ms; undefined: never).
   */
  private readonly knownPauses = new Map<
    string,
    { until: Date | undefined; readAtMs: number | undefined }
  >();
  /**
   * Transport → the read of its pause from the store in progress: the sends that find the known
   * pause stale at once (every slot of a busy worker, when the cache runs out) share one read
   * rather than each sending the same statement.
   */
  private readonly pauseReads = new Map<string, Promise<Date | undefined>>();
  /**
   * Transport → the earliest its next slot may be free (monotonic ms), from the pacer's last
   * answer: slots are only ever booked further ahead, so it is a bound the pacer would agree to.
   */
  private readonly knownSlots = new Map<string, number>();
  /** The transports this process has booked a send on (see COLD_SEND_SLOTS). */
  private readonly warm = new Set<string>();

  constructor(
    private readonly sender: EmailSender,
    emails: EmailLog,
    events: DeliveryEvents,
    private readonly ledger: DeliveryLedger,
    private readonly policy: RetryPolicy,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: DeliverEmailOptions,
  ) {
    // A first attempt's outcome is one write and no read (folded onto the entry as recorded,
    // see `rememberRecorded`, with its `sending` when the send was short: see `markLater`); a
    // retry's is one read and one write: see EmailLog.apply.
    this.changeAll = recordAllAndAnnounce(emails, events, (event, applied) =>
      this.folded.set(event.id, applied),
    );
    this.change = (event) => {
      const mark = this.marks.get(event.id);
      if (mark === undefined) return this.changeAll([event], this.folded.get(event.id));
      mark.cancel();
      return async () => {
        const marked = mark.writing === undefined ? undefined : await mark.writing;
        // Not written (short send), or its write failed: written now, with this change.
        const changes = marked !== undefined && E.isRight(marked) ? [event] : [mark.event, event];
        const done = await this.changeAll(changes, this.folded.get(event.id))();
        if (E.isRight(done) && this.marks.get(event.id) === mark) this.marks.delete(event.id);
        return done;
      };
    };
    this.sendingMarkAfterMs = options.sendingMarkAfterMs ?? SENDING_MARK_AFTER_MS;
    this.after = options.after ?? afterTimeout;
    this.emails = emails;
    this.holder = options.holder;
    this.leaseMs = options.claimLeaseMs ?? SEND_CLAIM_LEASE_MS;
    this.every = options.every ?? everyInterval;
    this.suppressions = options.suppressions;
    this.domainToAscii = options.domainToAscii;
    this.storeWaits = new Waiting(clock);
    this.busyWaits = new Waiting(clock);
    this.pauses = options.pauses;
    this.pacer = options.pacer;
    this.pacing = options.pacing;
    this.maxWaitInHandMs = options.maxWaitInHandMs ?? MAX_WAIT_IN_HAND_MS;
    this.pauseCacheMs = options.pauseCacheMs ?? PAUSE_CACHE_MS;
    this.sleep = options.sleep ?? sleepFor;
    this.sendSlots = options.sendSlots;
    this.paceWaits = new Waiting(clock);
  }

  execute(task: EmailTask): T.Task<Disposition> {
    return () => {
      // One decision per id at a time in this process: a task the broker hands over again
      // (a connection lost while its send was running) waits for that send, then finds it in
      // the ledger instead of being told Busy by its own claim.
      const id = task.request.id;
      const previous = this.running.get(id);
      // A bug in the first run must not become the second run's failure. With no run before it
      // (every task but a redelivery during its own send) it starts at once, without the two
      // promises of the chain.
      const next =
        previous === undefined
          ? this.decided(task)
          : previous.catch(() => undefined).then(() => this.decide(task)());
      this.running.set(id, next);
      return this.forgetWhenDone(id, next);
    };
  }

  /** `next`, whose id is forgotten once it settles unless another run took its place. */
  private async forgetWhenDone(id: EmailId, next: Promise<Disposition>): Promise<Disposition> {
    // An async function rather than `finally`: one promise rather than two, for every task.
    let disposition: Disposition | undefined;
    try {
      disposition = await next;
      return disposition;
    } finally {
      if (this.running.get(id) === next) {
        this.running.delete(id);
        this.folded.delete(id);
        // A send's `sending` not written yet is kept (its change could not be written: it goes
        // with the change the task comes back to write, whatever the queue does meanwhile) unless
        // the run failed on a bug. A written one was dropped then; a later send replaces it.
        if (disposition === undefined) this.dropMark(id);
      }
    }
  }

  /** `decide(task)()`, a bug thrown while building the decision answered as a rejection. */
  private decided(task: EmailTask): Promise<Disposition> {
    try {
      return this.decide(task)();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The worker is stopping: tasks waiting for a send slot, or inside the sender for its turn (a
   * pooled SMTP connection, see `EmailSender.stopStarting`), go back to the queue unsent (their
   * claims freed, no attempt spent) instead of starting sends the stop's grace period may cut
   * off; sends under way finish.
   */
  stopSending(): void {
    this.sendSlots?.close();
    this.sender.stopStarting?.();
    this.log.info({}, 'Starting no more sends: tasks not sent yet go back to the queue');
  }

  private decide(task: EmailTask): T.Task<Disposition> {
    const { request } = task;
    const pending = this.unrecorded.get(request.id);
    const unsettled = pending === undefined ? this.unsettled.get(task) : undefined;
    // Before any store call: a transport this worker knows is not free soon (paused, or its
    // slots booked further ahead than it waits in hand) sends the task back to the queue at
    // once, so that tasks going round while a transport is at its rate cost the database nothing.
    const known = pending === undefined && unsettled === undefined ? this.knownWait() : undefined;
    if (known !== undefined) return T.of(this.waitInQueue(task, known));
    // The steps of a send are written as async functions answering an Either rather than as
    // TaskEither pipelines: each combinator is a promise and a generator more, and this path
    // runs for every email (a few per cent of the worker's CPU in a profile). A step that ends
    // in the next one awaits it (`return await`): an async function that returns a promise
    // settles through one promise and two turns of the microtask queue more.
    const decision = pending
      ? this.recordSend(task, pending)
      : unsettled
        ? this.writeOutcome(task, unsettled.event, unsettled.then)
        : this.holdingSendSlot(request.id, async () => {
            // Asked only of a task that may have been brought forward: not a first attempt's.
            if (this.maybeSuperseded(task)) {
              const stale = await this.superseded(task)();
              if (E.isLeft(stale)) return stale;
              if (stale.right) return E.right<StoreUnavailable, Disposition>({ _tag: 'Done' });
            }
            return await this.claimAndScreen(task)();
          });
    return async () => {
      const decided = await decision();
      if (E.isRight(decided)) {
        this.storeAnswered(request.id);
        return decided.right;
      }
      const unavailable = decided.left;
      const sent = this.unrecorded.has(request.id);
      this.storeDidNotAnswer(task, unavailable.reason, sent);
      return sent
        ? { _tag: 'Redeliver', reason: unavailable.reason, sent: true }
        : { _tag: 'Redeliver', reason: unavailable.reason };
    };
  }

  /**
   * Runs `decision`, giving back at its end the send slot it may have taken (see
   * `takeSendSlot`): `sendNow` gives it back as soon as the provider answered, and every other
   * way out of the decision gives it back here.
   */
  private holdingSendSlot(
    id: EmailId,
    decision: TE.TaskEither<StoreUnavailable, Disposition>,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    if (this.sendSlots === undefined) return decision;
    return async () => {
      try {
        return await decision();
      } finally {
        this.giveBackSendSlot(id);
      }
    };
  }

  /**
   * Waits for one of the send slots (when there are any), renewing the send claim meanwhile as
   * a send does. True once the slot is this task's (or was already); false when the claim was
   * found in another worker's hands meanwhile (this one's lapsed while the store did not
   * answer: nothing has gone out, so this worker must not send) or the slots are closed (the
   * worker is stopping). Without pacing it is taken once the claim is held and its turn
   * has come, so that a task waiting here goes the moment a slot is free; with pacing, before
   * the pace slot is booked (see `send`).
   */
  private takeSendSlot(id: EmailId): true | Promise<boolean> {
    const slots = this.sendSlots;
    if (slots === undefined || this.slots.has(id)) return true;
    // A slot free now is taken at once: no claim to renew meanwhile (no timer set and
    // cleared), and no promise to wait for.
    const free = slots.tryTake();
    if (free !== undefined) {
      this.slots.set(id, free);
      return true;
    }
    return this.waitForSendSlot(id, slots);
  }

  /** `takeSendSlot` when every slot is taken: waits for one, renewing the claim meanwhile. */
  private async waitForSendSlot(id: EmailId, slots: SendSlots): Promise<boolean> {
    const { value: release, kept } = await this.holdingClaim(id, () => slots.take());
    if (release === undefined) return false;
    if (!kept) {
      release();
      return false;
    }
    this.slots.set(id, release);
    return true;
  }

  /** What a task that could not get its send slot answers: asked again later, nothing sent. */
  private noSlot(): Disposition {
    return {
      _tag: 'Redeliver',
      reason:
        this.sendSlots?.closed === true
          ? 'the worker is stopping; not sent'
          : 'its send claim passed to another worker while it waited for a send slot; not sent',
    };
  }

  private giveBackSendSlot(id: EmailId): void {
    const release = this.slots.get(id);
    if (release === undefined) return;
    this.slots.delete(id);
    release();
  }

  /**
   * True for the waiting task of an attempt an operator brought forward with a copy ("Retry
   * now" on RabbitMQ): the copy made that attempt, and this one would start a second chain of
   * retries. Only a waiting retry can be brought forward (a later attempt, or attempt 1 again
   * after a throttle), and the copy itself is marked, so a fresh first attempt or a copy costs
   * no read; a copy redelivered after a crash is still acted on.
   */
  private superseded(task: EmailTask): TE.TaskEither<StoreUnavailable, boolean> {
    if (!this.maybeSuperseded(task)) return TE.right(false);
    const { id } = task.request;
    return pipe(
      this.emails.get(id),
      TE.map((found) => {
        const stale = found._tag === 'Some' && (found.value.expedited ?? []).includes(task.attempt);
        if (stale) {
          this.log.info(
            { emailId: id, attempt: task.attempt },
            'Dropping a waiting retry: an operator brought this attempt forward with a copy, which takes its place',
          );
        }
        return stale;
      }),
    );
  }

  /** Whether `superseded` has to read: a waiting retry, not a copy. */
  private maybeSuperseded(task: EmailTask): boolean {
    // An attempt 1 waits to be retried only after a throttle (its history says so): any other
    // first attempt cannot have been brought forward, and costs no read.
    const waitedAsRetry = task.attempt > 1 || task.history.some((line) => line.throttled === true);
    return task.expedited !== true && waitedAsRetry;
  }

  /**
   * Claims the send while the suppression list is read: the two are independent, and the send
   * needs both, so they cost one round trip of the task's time, not two. (A claim that is not
   * `Claimed` leaves the list's answer unused.)
   */
  private claimAndScreen(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request } = task;
    const screening = screenRecipients(this.suppressions, request, this.domainToAscii)();
    const claiming = this.ledger.claim(request.id, this.holder, this.clock.now(), this.leaseMs);
    return async () => {
      const claim = await claiming();
      if (E.isLeft(claim)) return claim;
      return await this.onClaim(task, claim.right, () => screening)();
    };
  }

  private onClaim(
    task: EmailTask,
    claim: SendClaim,
    screened: TE.TaskEither<StoreUnavailable, Screened>,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { id } = task.request;
    switch (claim._tag) {
      case 'Claimed':
        this.busyWaits.answered(id);
        return this.screenAndSend(task, screened);
      case 'AlreadySent':
        this.busyWaits.answered(id);
        return this.alreadySent(task, claim.providerId);
      case 'Busy': {
        const until = claim.until.toISOString();
        // Once per wait, not once per ask: the queue asks every few seconds until the claim ends.
        if (this.busyWaits.waits(id).first) {
          this.log.info(
            { emailId: id, attempt: task.attempt, holder: claim.holder, until },
            'Another worker is sending this email; waiting for its outcome',
          );
        }
        return TE.right({
          _tag: 'Redeliver',
          reason: `another worker (${claim.holder}) is sending it; its claim runs until ${until}`,
        });
      }
    }
  }

  /**
   * One line per outage rather than one per task and ask: the first wait, then a summary at
   * most every STORE_WAIT_LOG_EVERY_MS with how many tasks wait. A send that went out but is
   * not recorded is named once on its own, though: it is sent again if this worker dies.
   */
  private storeDidNotAnswer(task: EmailTask, reason: string, sent: boolean): void {
    const { first, waiting, summarise } = this.storeWaits.waits(task.request.id);
    if (!summarise && !(sent && first)) return;
    this.log.warn(
      {
        emailId: task.request.id,
        attempt: task.attempt,
        reason,
        waiting,
        ...(sent ? { sent } : {}),
      },
      'A store did not answer; the task waits and is tried again',
    );
  }

  private storeAnswered(id: EmailId): void {
    if (this.storeWaits.answered(id)) {
      this.log.info({}, 'The stores answer again; no task waits for them');
    }
  }

  /** A redelivery of an email that went out: make sure the log says so, and send nothing. */
  private alreadySent(
    task: EmailTask,
    providerId: string,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    this.log.info(
      { emailId: task.request.id, providerId, attempt: task.attempt },
      'Already sent; not sending again',
    );
    return pipe(
      this.change({
        type: 'EmailSent',
        ...this.about(task, this.clock.now()),
        providerId,
        durationMs: 0,
      }),
      TE.map((): Disposition => ({ _tag: 'Done' })),
    );
  }

  /**
   * Looks the recipients up on the suppression list again (an address may have joined it since
   * the email was accepted): sends to the rest, or, with nobody left, settles the email as
   * `suppressed` without spending an attempt. The worker's events and log lines name only the
   * recipients it sends to; the task itself is left whole.
   */
  private screenAndSend(
    task: EmailTask,
    screened: TE.TaskEither<StoreUnavailable, Screened>,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request } = task;
    return async () => {
      const screen = await screened();
      if (E.isLeft(screen)) {
        // Nothing went out: another worker need not wait for this claim to run out.
        await this.release(request.id)();
        return screen;
      }
      // Before any change, and from the request as queued: a send to fewer recipients, or none,
      // is still folded onto the entry the server recorded for the whole request.
      this.rememberRecorded(task);
      const { kept, suppressed } = screen.right;
      if (suppressed.length === 0) return await this.send(task)();
      const context = {
        emailId: request.id,
        attempt: task.attempt,
        suppressed: suppressed.map(mailbox),
      };
      // As at acceptance: an email whose every To recipient is on the list is not sent at all.
      if (kept.to.length === 0) {
        this.log.info(context, 'Every To recipient is on the suppression list; not sending');
        return this.suppress(task, suppressed)();
      }
      this.log.info(context, 'Recipients on the suppression list dropped from this send');
      return this.send({ ...task, request: addressedTo(request, kept) })();
    };
  }

  /**
   * The `sending` of the send starting now, stamped now, written only if the send runs
   * SENDING_MARK_AFTER_MS (folded onto the basis `screenAndSend` remembered); otherwise the
   * outcome's change writes it (`change`). A write that fails is made again with the outcome.
   */
  private markLater(task: EmailTask): void {
    const { id } = task.request;
    const event: DomainEvent = { type: 'EmailSending', ...this.about(task, this.clock.now()) };
    const mark: SendingMark = {
      event,
      cancel: this.after(() => {
        if (this.marks.get(id) !== mark) return;
        const writing = this.changeAll([event], this.folded.get(id))();
        // Awaited by the outcome's change; until then a bug's rejection is not left unhandled.
        writing.catch(() => undefined);
        mark.writing = writing;
      }, this.sendingMarkAfterMs),
    };
    this.dropMark(id);
    this.marks.set(id, mark);
    // Kept after a Redeliver for the task's return, which may go to another worker instead
    // (a lost connection): the oldest are let go rather than kept for ever.
    if (this.marks.size > MAX_KEPT) this.dropMark(this.marks.keys().next().value!);
  }

  private dropMark(id: EmailId): void {
    this.marks.get(id)?.cancel();
    this.marks.delete(id);
  }

  /**
   * A first attempt's email is almost always as the server recorded it: its first change is
   * folded onto that without reading it first (one statement, not two; see
   * EmailLog.recordedBasis). Kept once per email, from the first task seen, so that a send
   * narrowed by the suppression list still builds on the entry of the whole request.
   */
  private rememberRecorded(task: EmailTask): void {
    if (this.folded.has(task.request.id) || !asRecorded(task)) return;
    const recorded = this.emails.recordedBasis(task.request);
    if (recorded !== undefined) this.folded.set(task.request.id, recorded);
  }

  /** Nobody left to send to: final, and the claim freed, since nothing went out. */
  private suppress(
    task: EmailTask,
    suppressed: readonly EmailAddress[],
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request } = task;
    return pipe(
      TE.fromTask(this.release(request.id)),
      TE.flatMap(() =>
        this.change({
          type: 'EmailSuppressed',
          id: request.id,
          at: this.clock.now().toISOString(),
          ...recipientsOf(request),
          subject: request.subject,
          suppressed,
        }),
      ),
      TE.map((): Disposition => ({ _tag: 'Done' })),
    );
  }

  /**
   * Waits for the transport's turn (its pace, a pause after a throttle), then sends. A wait
   * longer than MAX_WAIT_IN_HAND_MS hands the task back to the queue instead, due when the wait
   * is over, with the same attempt: waiting for a provider's limit spends no attempt.
   */
  private send(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    return async () => {
      // Paced: the send slot first, so that the pace slot booked next is not missed while
      // waiting for a send slot (it would be booked again, the first one unused at the provider).
      if (this.pacer !== undefined && !(await this.takeSendSlot(task.request.id))) {
        await this.release(task.request.id)();
        return E.right(this.noSlot());
      }
      const turn = await this.turn(task);
      if (E.isLeft(turn)) {
        // Nothing went out: another worker need not wait for this claim to run out.
        await this.release(task.request.id)();
        return turn;
      }
      return await (turn.right._tag === 'Later'
        ? this.handBack(task, turn.right)()
        : this.sendOnTurn(task, turn.right)());
    };
  }

  /**
   * Sends on the slot: `sending` is written once the send has run SENDING_MARK_AFTER_MS, or
   * with its outcome if it is answered sooner (`markLater`), never before it, so that nothing
   * but the slot stands between the turn and the send.
   */
  private sendOnTurn(
    task: EmailTask,
    turn: Extract<Turn, { _tag: 'Now' }>,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request } = task;
    this.paceWaits.answered(request.id);
    const waitMs = turn.goAtMs - this.clock.monotonicMs();
    const slot = waitMs > 0 ? this.sleep(waitMs) : undefined;
    return async () => {
      // Awaited only when it had to wait: a slot free now answers `true` at once.
      const took = this.takeSendSlot(request.id);
      if (took !== true && !(await took)) {
        await this.release(request.id)();
        return E.right(this.noSlot());
      }
      if (slot !== undefined) await slot;
      // Without a grace (no pacer) the slot is kept whenever it leaves: nothing to await.
      const ready = turn.graceMs === undefined ? E.right(turn) : await this.onTime(turn);
      if (E.isLeft(ready)) {
        await this.release(request.id)();
        return ready;
      }
      if (ready.right._tag === 'Later') return await this.handBack(task, ready.right)();
      // The worker began stopping while this send waited for its pace slot (up to a second, and
      // a rebooked slot or two): it does not start now, as one still waiting for a send slot.
      if (this.sendSlots?.closed === true) {
        await this.release(request.id)();
        return E.right(this.noSlot());
      }
      return await this.sendNow(task, ready.right)();
    };
  }

  /**
   * The booked slot, kept or replaced. A send whose worker was held up past the slot's grace
   * (a wait for a send slot longer than the wait for the pace slot, a busy event loop, a slot
   * the pacer has since placed earlier: `earlierByMs`) must not leave late, where
   * it would crowd the sends booked after it at the provider: it books the next free slot, and
   * the one it missed stays unused, a gap in the pace rather than a burst. After MAX_REBOOKS
   * missed slots in a row the task goes back to the queue, unsent (its page still says
   * `queued`: nothing is written before a send).
   */
  private async onTime(
    turn: Extract<Turn, { _tag: 'Now' }>,
  ): Promise<E.Either<StoreUnavailable, Turn>> {
    let current: Turn = turn;
    for (let rebooks = 0; current._tag === 'Now'; rebooks += 1) {
      const { transport, goAtMs, graceMs, earlierByMs, skip } = current;
      // Late by as much as the slot is now known to begin before `goAtMs`, too.
      const late = this.clock.monotonicMs() - goAtMs + (earlierByMs?.() ?? 0);
      if (graceMs === undefined || late <= graceMs) {
        return E.right(current);
      }
      if (rebooks === MAX_REBOOKS) {
        return E.right({ _tag: 'Later', transport, waitMs: graceMs, why: 'paced' });
      }
      const again = await this.book(transport, skip);
      if (E.isLeft(again)) return again;
      current = again.right;
      if (current._tag === 'Now') {
        const waitMs = current.goAtMs - this.clock.monotonicMs();
        if (waitMs > 0) await this.sleep(waitMs);
      }
    }
    return E.right(current);
  }

  private sendNow(
    task: EmailTask,
    { skip }: Extract<Turn, { _tag: 'Now' }>,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request, attempt } = task;
    const context = { emailId: request.id, attempt, transport: this.sender.name };
    return async () => {
      // Two lines an email: at a level that drops them, not even built.
      const chatty = this.log.isLevelEnabled?.('info') ?? true;
      if (chatty) {
        const to = allRecipients(request).map(mailbox);
        this.log.info({ ...context, to }, `Initiating email send to ${to.join(', ')}.`);
      }
      const started = this.clock.monotonicMs();
      this.markLater(task);
      let named: NamedOutcome;
      try {
        named = await this.sendHoldingClaim(request, skip);
      } finally {
        // The provider answered (or the send failed on a bug): `sending` waits for the outcome
        // now, stopped here rather than when the outcome is written (a throttle's pause or a
        // release may come first).
        this.marks.get(request.id)?.cancel();
      }
      // The next send may start while this one is recorded.
      this.giveBackSendSlot(request.id);
      const { outcome, transport } = named;
      if (isNotStarted(outcome)) {
        // Nothing went out: the task goes back to the queue, its claim freed for the worker that
        // takes it, and the attempt unspent.
        await this.release(request.id)();
        return E.right<StoreUnavailable, Disposition>({
          _tag: 'Redeliver',
          reason: outcome.reason,
        });
      }
      const durationMs = Math.round((this.clock.monotonicMs() - started) * 10) / 10;
      if (chatty)
        this.log.info(
          {
            ...context,
            outcome: outcome._tag,
            durationMs,
            ...(outcome._tag === 'Sent' && outcome.hint !== undefined
              ? { hint: outcome.hint }
              : {}),
          },
          `Time to send an email: ${(durationMs / 1000).toFixed(2)}s`,
        );
      this.warnHint(context, outcome);
      const throttles = throttledBy(named);
      if (throttles.length > 0) await this.pauseThrottled(task, throttles);
      return await this.settle(task, outcome, durationMs, transport)();
    };
  }

  /**
   * When the send may go. Paused transports (a throttle's Retry-After, shared by every worker)
   * are left out; with every transport paused the send waits for the soonest end. The transport
   * that will be tried (the first one not paused: a failover chain's open circuits are the
   * chain's own business) then books its slot with the pacer. A wait up to MAX_WAIT_IN_HAND_MS
   * is waited in the worker (a pause here, a slot in `sendOnTurn`), a longer one is `Later`. A
   * pause is waited in hand at most once: one that still holds after it (another worker
   * extended it) goes back to the queue.
   */
  private async turn(task: EmailTask): Promise<E.Either<StoreUnavailable, Turn>> {
    const transports = transportsOf(this.sender);
    for (let round = 0; ; round += 1) {
      const pausedSoon = this.pausedNow(task, transports);
      const paused = pausedSoon instanceof Map ? pausedSoon : await pausedSoon;
      const next = transports.find((t) => !paused.has(t));
      if (next !== undefined) {
        // Unpaced, the send goes now: no pacer to wait for.
        return this.pacer === undefined ? this.now(next, paused) : await this.book(next, paused);
      }
      const waitMs = Math.min(...paused.values());
      const transport = transports.find((t) => paused.get(t) === waitMs) ?? this.sender.name;
      if (round > 0 || waitMs > this.maxWaitInHandMs) {
        return E.right({ _tag: 'Later', transport, waitMs, why: 'paused' });
      }
      this.pacing?.pacingWaited(transport, waitMs);
      await this.sleep(waitMs);
    }
  }

  /** An unpaced send's turn: now. */
  private now(transport: string, skip: ReadonlyMap<string, number>): E.Either<never, Turn> {
    return E.right({ _tag: 'Now', transport, goAtMs: this.clock.monotonicMs(), skip });
  }

  /**
   * Books `transport`'s next slot with the pacer (COLD_SEND_SLOTS of them for its first send in
   * this process): `Now` with the time to go (the pacer's wait, counted from its answer: the
   * pacer has already taken off what of it went by before the answer was read, and says with
   * `earlierByMs` what it learns of that later), or `Later` when the slot is further than
   * MAX_WAIT_IN_HAND_MS (nothing booked).
   */
  private async book(
    transport: string,
    skip: ReadonlyMap<string, number>,
  ): Promise<E.Either<StoreUnavailable, Turn>> {
    if (this.pacer === undefined) return this.now(transport, skip);
    const slots = this.warm.has(transport) ? 1 : COLD_SEND_SLOTS;
    const slot = await this.pacer.acquire(transport, this.maxWaitInHandMs, slots)();
    if (E.isLeft(slot)) return slot;
    const now = this.clock.monotonicMs();
    const { waitMs, booked, tokens, graceMs, earlierByMs } = slot.right;
    this.knownSlots.set(transport, now + waitMs);
    if (tokens !== undefined) this.pacing?.pacingTokens(transport, tokens);
    if (!booked) return E.right({ _tag: 'Later', transport, waitMs, why: 'paced' });
    // One send is enough to warm up: the next one leaves a slot after it, when it is underway.
    this.warm.add(transport);
    if (waitMs > 0) this.pacing?.pacingWaited(transport, waitMs);
    return E.right({
      _tag: 'Now',
      transport,
      goAtMs: now + waitMs,
      skip,
      ...(graceMs === undefined ? {} : { graceMs }),
      ...(earlierByMs === undefined ? {} : { earlierByMs }),
    });
  }

  /**
   * The transports paused now, each with the milliseconds it has left: at once when every
   * transport's pause is known without the store (read at most once a PAUSE_CACHE_MS, so
   * nearly every send), else once the store answered.
   */
  private pausedNow(
    task: EmailTask,
    transports: readonly string[],
  ): Map<string, number> | Promise<Map<string, number>> {
    const paused = new Map<string, number>();
    for (const transport of transports) {
      const known = this.pauseKnownNow(transport);
      if (known === undefined) return this.pausedAfterReading(task, transports);
      this.addPause(paused, transport, known.until);
    }
    return paused;
  }

  /** `pausedNow` when a transport's pause is to be read from the store. */
  private async pausedAfterReading(
    task: EmailTask,
    transports: readonly string[],
  ): Promise<Map<string, number>> {
    const paused = new Map<string, number>();
    for (const transport of transports) {
      const known = this.pauseKnownNow(transport);
      const until = known !== undefined ? known.until : await this.knownPause(task, transport);
      this.addPause(paused, transport, until);
    }
    return paused;
  }

  private addPause(paused: Map<string, number>, transport: string, until: Date | undefined): void {
    const leftMs = until === undefined ? 0 : until.getTime() - this.clock.now().getTime();
    if (leftMs > 0) paused.set(transport, leftMs);
  }

  /**
   * `knownPause` when it needs no store: `{ until }` (`until` undefined: not paused), or
   * undefined when the store is to be read.
   */
  private pauseKnownNow(transport: string): { until: Date | undefined } | undefined {
    const known = this.knownPauses.get(transport);
    if (this.pauses === undefined) return { until: known?.until };
    if (known?.readAtMs === undefined) return undefined;
    return this.clock.monotonicMs() - known.readAtMs < this.pauseCacheMs ? known : undefined;
  }

  /**
   * The end of `transport`'s latest pause: what this process knows, read again from the shared
   * store at most every PAUSE_CACHE_MS, so that a busy worker asks once a second per transport,
   * not once per send. A store that does not answer is no reason to hold the send: what was
   * known is kept (a pause is an economy, the pacer and the provider still guard the rate).
   */
  private knownPause(task: EmailTask, transport: string): Promise<Date | undefined> {
    const known = this.knownPauses.get(transport) ?? { until: undefined, readAtMs: undefined };
    const now = this.clock.monotonicMs();
    const fresh = known.readAtMs !== undefined && now - known.readAtMs < this.pauseCacheMs;
    if (this.pauses === undefined || fresh) return Promise.resolve(known.until);
    const reading = this.pauseReads.get(transport);
    if (reading !== undefined) return reading;
    const read = this.readPause(this.pauses, task, transport).finally(() =>
      this.pauseReads.delete(transport),
    );
    this.pauseReads.set(transport, read);
    return read;
  }

  /** `knownPause`'s read of the store, for every send waiting on it; never rejects. */
  private async readPause(
    pauses: TransportPauses,
    task: EmailTask,
    transport: string,
  ): Promise<Date | undefined> {
    const now = this.clock.monotonicMs();
    const read = await pauses.pausedUntil(transport)();
    // Taken after the read: a throttle of this process heard meanwhile is kept (`later`).
    const known = this.knownPauses.get(transport) ?? { until: undefined, readAtMs: undefined };
    if (E.isLeft(read)) {
      this.log.warn(
        { emailId: task.request.id, transport, reason: read.left.reason },
        'Could not read whether the transport is paused; going by what this worker knows',
      );
      this.knownPauses.set(transport, { ...known, readAtMs: now });
      return known.until;
    }
    const until = later(known.until, read.right);
    this.knownPauses.set(transport, { until, readAtMs: now });
    if (until !== undefined && until > this.clock.now()) {
      this.pacing?.transportPaused(transport, until);
    }
    return until;
  }

  /**
   * What this worker already knows, without asking any store: `Later` when every transport is
   * paused past MAX_WAIT_IN_HAND_MS, or when the one that would be tried has its slots booked
   * that far ahead. Pauses only ever grow and slots are only ever booked further ahead, so what
   * is known is never sooner than the truth; `turn` asks the stores for the rest.
   */
  private knownWait(): Extract<Turn, { _tag: 'Later' }> | undefined {
    const transports = transportsOf(this.sender);
    const now = this.clock.now().getTime();
    const pausedMs = (t: string): number => (this.knownPauses.get(t)?.until?.getTime() ?? 0) - now;
    const next = transports.find((t) => pausedMs(t) <= 0);
    if (next === undefined) {
      const waits = transports.map(pausedMs);
      const waitMs = Math.min(...waits);
      const transport = transports[waits.indexOf(waitMs)] ?? this.sender.name;
      return waitMs > this.maxWaitInHandMs
        ? { _tag: 'Later', transport, waitMs, why: 'paused' }
        : undefined;
    }
    const freeAt = this.knownSlots.get(next);
    const waitMs = freeAt === undefined ? 0 : freeAt - this.clock.monotonicMs();
    return waitMs > this.maxWaitInHandMs
      ? { _tag: 'Later', transport: next, waitMs, why: 'paced' }
      : undefined;
  }

  /** `waitInQueue` for a task whose claim this worker holds: the claim is freed first. */
  private handBack(
    task: EmailTask,
    turn: Extract<Turn, { _tag: 'Later' }>,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    return pipe(
      TE.fromTask(this.release(task.request.id)),
      TE.map(() => this.waitInQueue(task, turn)),
    );
  }

  /**
   * The task waits in the queue, not here, with the same attempt and history: due after
   * `handBackDelay` of its wait, to ask again then (what this worker learnt meanwhile sends it
   * round once more without a store call, should its turn still be far). Logged when waits
   * begin, then summarised at most every STORE_WAIT_LOG_EVERY_MS with how many tasks wait: a
   * transport at its rate may hold back thousands of tasks, each going round the queue several
   * times (/metrics counts every wait).
   */
  private waitInQueue(task: EmailTask, turn: Extract<Turn, { _tag: 'Later' }>): Disposition {
    const { request, attempt } = task;
    const { transport, waitMs, why } = turn;
    const delayMs = handBackDelay(this.policy.delaysMs, waitMs);
    this.pacing?.pacingWaited(transport, waitMs);
    const { waiting, summarise } = this.paceWaits.waits(request.id);
    if (summarise) {
      this.log.info(
        { emailId: request.id, attempt, transport, why, delayMs, waiting },
        why === 'paused'
          ? `${transport} is paused after a throttle; the email waits in the queue, its attempt unspent`
          : `${transport} is at its rate; the email waits in the queue for its turn, its attempt unspent`,
      );
    }
    return {
      _tag: 'Retry',
      attempt,
      delayMs,
      history: task.history,
      ...(task.expedited === true ? { expedited: true as const } : {}),
    };
  }

  /**
   * Pauses each transport that throttled this send, for every worker, for its Retry-After (or
   * the first retry step: `throttlePauseMs`; at least MIN_THROTTLE_PAUSE_MS). This process
   * knows at once;
   * a store that does not take it leaves the pause to this process (logged), since the outcome
   * of the send itself must still be settled.
   */
  private async pauseThrottled(task: EmailTask, throttles: readonly Throttle[]): Promise<void> {
    for (const { transport, retryAfterMs } of throttles) {
      const pauseMs = throttlePauseMs(this.policy, retryAfterMs);
      const until = new Date(this.clock.now().getTime() + pauseMs);
      const known = this.knownPauses.get(transport);
      this.knownPauses.set(transport, {
        until: later(known?.until, until),
        readAtMs: known?.readAtMs,
      });
      this.pacing?.transportThrottled(transport);
      this.pacing?.transportPaused(transport, until);
      this.log.warn(
        { emailId: task.request.id, attempt: task.attempt, transport, pauseMs },
        `${transport} throttled us; pausing it for every worker until ${until.toISOString()}`,
      );
      if (this.pauses === undefined) continue;
      const paused = await this.pauses.pause(transport, until)();
      if (E.isLeft(paused)) {
        this.log.warn(
          { emailId: task.request.id, transport, reason: paused.left.reason },
          'Could not share the pause with the other workers; this worker keeps it',
        );
      }
    }
  }

  /**
   * The operator's half of a failure (which variable to check, the folder, the host that
   * refused): it goes to this log and nowhere else, since the attempt stored and shown on the
   * email's page keeps only the public reason (`outcomeDetail`). A send's hint (where the outbox
   * wrote the file) is news, not a warning: it rides on the "Time to send" line. No `outcome`
   * field here, so that whoever counts outcomes in the log counts one line per send.
   */
  private warnHint(
    context: { emailId: EmailId; attempt: number; transport: string },
    outcome: DeliveryOutcome,
  ): void {
    if (outcome._tag === 'Sent' || outcome.hint === undefined) return;
    this.log.warn({ ...context, reason: outcome.reason }, outcome.hint);
  }

  /**
   * Sends while renewing the claim, so that a slow send keeps it and a dead worker's claim ends
   * soon. The renewals run one after another, and the last one is over before the outcome is
   * settled: a late renewal must not bring back a claim the settle released.
   */
  private async sendHoldingClaim(
    request: EmailRequest,
    skip: ReadonlyMap<string, number>,
  ): Promise<NamedOutcome> {
    const options = skip.size > 0 ? { skip } : undefined;
    return (await this.holdingClaim(request.id, sendNamed(this.sender, request, options))).value;
  }

  /**
   * Runs `work` while renewing the send claim of `id` every third of its lease, one renewal
   * after another; the last one is over before this resolves, so that a late renewal cannot
   * bring back a claim the caller then releases. `kept`: false when a renewal found the claim
   * in another worker's hands (logged by `renew`).
   */
  private async holdingClaim<T>(
    id: EmailId,
    work: () => Promise<T>,
  ): Promise<{ value: T; kept: boolean }> {
    let kept = true;
    // Nearly every send is over long before its first renewal: no chain until there is one.
    let renewals: Promise<void> | undefined;
    const stop = this.every(() => {
      renewals = (renewals ?? Promise.resolve()).then(async () => {
        if (!(await this.renew(id))) kept = false;
      });
    }, this.leaseMs / 3);
    try {
      const value = await work();
      return { value, kept };
    } finally {
      stop();
      if (renewals !== undefined) await renewals;
    }
  }

  /** False when another worker holds the claim now (logged); a store that did not answer: true. */
  private async renew(id: EmailId): Promise<boolean> {
    const renewed = await this.ledger.claim(id, this.holder, this.clock.now(), this.leaseMs)();
    // A store that does not answer is no news: the lease outlives a few missed renewals.
    if (renewed._tag === 'Left' || renewed.right._tag === 'Claimed') return true;
    const claim = renewed.right;
    const said = LOST_CLAIM[claim._tag];
    this.log[said.level](
      {
        emailId: id,
        claim: claim._tag,
        ...(claim._tag === 'AlreadySent' ? { providerId: claim.providerId } : {}),
      },
      this.slots.has(id) ? said.sending : said.waiting,
    );
    return false;
  }

  /** Frees the claim of a send that did not go out; if the store does not answer, it runs out. */
  private release(id: EmailId): T.Task<void> {
    return pipe(
      this.ledger.release(id, this.holder),
      TE.getOrElse((): T.Task<void> => T.of(undefined)),
    );
  }

  private recordSend(
    task: EmailTask,
    send: UnrecordedSend,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { id } = task.request;
    // The ledger and the log are written at once: the task is done when both are. Should the
    // ledger fail, the task comes back to record the send (the log then has it: no news); should
    // the log fail, it comes back to find the send in the ledger (`alreadySent`).
    const recording = this.ledger.record(id, send.providerId, send.at);
    const recorded = async () => {
      const done = await recording();
      if (E.isRight(done)) this.unrecorded.delete(id);
      return done;
    };
    const logged = this.change({
      type: 'EmailSent',
      ...this.about(task, send.at),
      providerId: send.providerId,
      durationMs: send.durationMs,
      transport: send.transport,
    });
    return async () => {
      // Promise.all watches both: a port's TaskEither should not reject, but should one of them
      // (a bug), the other's rejection is never left unhandled, and the unsent entry is dropped
      // once the ledger has the send, whatever the log did.
      const [inLedger, inLog] = await Promise.all([recorded(), logged()]);
      if (E.isLeft(inLedger)) return inLedger;
      if (E.isLeft(inLog)) return inLog;
      return E.right({ _tag: 'Done' });
    };
  }

  /**
   * The attempt will be made again: the claim released (nothing went out this time), the retry
   * recorded with when and why, then `retry` answered to the queue.
   */
  private retried(
    task: EmailTask,
    about: ReturnType<DeliverEmail['about']>,
    { reason, delayMs }: { readonly reason: string; readonly delayMs: number },
    durationMs: number,
    nextAttemptAt: string,
    retry: Disposition,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    return pipe(
      TE.fromTask(this.release(about.id)),
      TE.flatMap(() =>
        this.writeOutcome(
          task,
          { type: 'EmailDeliveryRetried', ...about, reason, durationMs, delayMs, nextAttemptAt },
          retry,
        ),
      ),
    );
  }

  /**
   * Writes a failed attempt's outcome (`event`, its claim already released), then answers
   * `then`. When the log cannot take it, the outcome is kept in this process and the task asked
   * for again (`Redeliver`): it comes back to write it, not to send again, which nothing in the
   * stores would stop (a released claim guards no second send; `sending` is not written before
   * a send). As `unrecorded` for a send that went out, it is lost if this process dies.
   */
  private writeOutcome(
    task: EmailTask,
    event: DomainEvent,
    then: Disposition,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    return async () => {
      const written = await this.change(event)();
      if (E.isLeft(written)) {
        this.unsettled.set(task, { event, then });
        return written;
      }
      this.unsettled.delete(task);
      return E.right(then);
    };
  }

  private settle(
    task: EmailTask,
    outcome: DeliveryOutcome,
    durationMs: number,
    transport: string,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request, attempt } = task;
    const now = this.clock.now();
    const decision = decide(outcome, attempt, this.policy, throttledBefore(task));
    if (decision._tag === 'Delivered') {
      // Remembered first: if the ledger cannot take it now, the task comes back here to
      // record it, not to send it again. (Before the history line and the event fields the
      // other decisions need: this is every email's way out.)
      const send = { providerId: decision.providerId, at: now, durationMs, transport };
      this.unrecorded.set(request.id, send);
      return this.recordSend(task, send);
    }
    const record: AttemptRecord = {
      attempt,
      at: now.toISOString(),
      outcome: outcomeName(outcome),
      detail: outcomeDetail(outcome),
      durationMs,
    };
    const history = [...task.history, record];
    const about = this.about(task, now);
    switch (decision._tag) {
      case 'RetryLater': {
        const nextAttemptAt = new Date(now.getTime() + decision.delayMs).toISOString();
        this.log.warn(
          { emailId: request.id, attempt, reason: decision.reason, delayMs: decision.delayMs },
          `Send failed for now; attempt ${decision.nextAttempt} at ${nextAttemptAt}`,
        );
        return this.retried(task, about, decision, durationMs, nextAttemptAt, {
          _tag: 'Retry',
          attempt: decision.nextAttempt,
          delayMs: decision.delayMs,
          history,
        });
      }
      case 'Throttled': {
        // The same attempt again after the pause: the provider's limit is not the email's fault.
        const nextAttemptAt = new Date(now.getTime() + decision.delayMs).toISOString();
        this.log.warn(
          {
            emailId: request.id,
            attempt,
            transport,
            reason: decision.reason,
            delayMs: decision.delayMs,
          },
          `Throttled; attempt ${attempt} again at ${nextAttemptAt}, not counted`,
        );
        return this.retried(task, about, decision, durationMs, nextAttemptAt, {
          _tag: 'Retry',
          attempt: decision.attempt,
          delayMs: decision.delayMs,
          history: [...task.history, { ...record, detail: decision.reason, throttled: true }],
          ...(task.expedited === true ? { expedited: true as const } : {}),
        });
      }
      case 'GiveUp':
        this.log.error(
          { emailId: request.id, attempt, reason: decision.reason },
          'Giving up on email',
        );
        return pipe(
          // Released, so that a replay of the dead letter may send it.
          TE.fromTask(this.release(request.id)),
          TE.flatMap(() =>
            this.writeOutcome(
              task,
              {
                type: 'EmailDeliveryFailed',
                ...about,
                outcome: outcome._tag === 'Permanent' ? 'permanent' : 'transient',
                reason: decision.reason,
                durationMs,
              },
              { _tag: 'DeadLetter', reason: decision.reason, history },
            ),
          ),
        );
    }
  }

  private about(task: EmailTask, at: Date) {
    const { request, attempt } = task;
    return {
      id: request.id,
      at: at.toISOString(),
      ...recipientsOf(request),
      subject: request.subject,
      attempt,
    };
  }
}
