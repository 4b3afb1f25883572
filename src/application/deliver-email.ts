import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord, DeliveryOutcome, RetryPolicy } from '../domain/delivery.js';
import { decide, outcomeDetail, outcomeName } from '../domain/delivery.js';
import type { DomainToAscii, EmailAddress } from '../domain/email-address.js';
import { mailbox } from '../domain/email-address.js';
import { EmailRequest, allRecipients } from '../domain/email-request.js';
import type { EmailId } from '../domain/email-request.js';
import type { DomainEvent } from '../domain/events.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { DeliveryLedger, SendClaim } from './ports/delivery-ledger.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { Disposition, EmailTask } from './ports/email-task-source.js';
import type { EmailSender, NamedOutcome } from './ports/email-sender.js';
import { sendNamed } from './ports/email-sender.js';
import type { SuppressionList } from './ports/suppression-list.js';
import type { Recipients } from './request-email.js';
import { screenRecipients } from './request-email.js';
import { recipientsOf } from '../domain/events.js';
import type { Clock, Logger } from './ports/system.js';

/**
 * How long a send claim lives unless renewed. The sending worker renews it every third of this
 * while the send runs, however long the send takes; so this bounds only how long an email whose
 * worker died mid-send waits before another worker takes it over (and sends it again).
 */
export const SEND_CLAIM_LEASE_MS = 15_000;

/** A waiting task is summarised in at most one log line this often. */
export const STORE_WAIT_LOG_EVERY_MS = 10_000;

/** Runs `work` every `everyMs` until the returned function is called. */
export type Every = (work: () => void, everyMs: number) => () => void;

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
  /** Recipients never sent to, looked up again before each send; without it, nobody is. */
  readonly suppressions?: SuppressionList;
  /** How recipients' domains are compared with the list's keys (A-labels). */
  readonly domainToAscii?: DomainToAscii;
}

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
 * the email again.
 */
export class DeliverEmail {
  private readonly unrecorded = new Map<EmailId, UnrecordedSend>();
  private readonly running = new Map<EmailId, Promise<Disposition>>();
  private readonly change: (event: DomainEvent) => TE.TaskEither<StoreUnavailable, unknown>;
  private readonly holder: string;
  private readonly leaseMs: number;
  private readonly every: Every;
  private readonly storeWaits: Waiting;
  private readonly busyWaits: Waiting;
  private readonly suppressions: SuppressionList | undefined;
  private readonly domainToAscii: DomainToAscii | undefined;

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
    this.change = recordAndAnnounce(emails, events);
    this.holder = options.holder;
    this.leaseMs = options.claimLeaseMs ?? SEND_CLAIM_LEASE_MS;
    this.every = options.every ?? everyInterval;
    this.suppressions = options.suppressions;
    this.domainToAscii = options.domainToAscii;
    this.storeWaits = new Waiting(clock);
    this.busyWaits = new Waiting(clock);
  }

  execute(task: EmailTask): T.Task<Disposition> {
    return () => {
      // One decision per id at a time in this process: a task the broker hands over again
      // (a connection lost while its send was running) waits for that send, then finds it in
      // the ledger instead of being told Busy by its own claim.
      const id = task.request.id;
      const previous = this.running.get(id) ?? Promise.resolve();
      // A bug in the first run must not become the second run's failure.
      const next = previous.catch(() => undefined).then(() => this.decide(task)());
      this.running.set(id, next);
      return next.finally(() => {
        if (this.running.get(id) === next) this.running.delete(id);
      });
    };
  }

  private decide(task: EmailTask): T.Task<Disposition> {
    const { request } = task;
    const pending = this.unrecorded.get(request.id);
    const decision = pending
      ? this.recordSend(task, pending)
      : pipe(
          this.ledger.claim(request.id, this.holder, this.clock.now(), this.leaseMs),
          TE.flatMap((claim) => this.onClaim(task, claim)),
        );
    return pipe(
      decision,
      TE.match(
        (unavailable): Disposition => {
          const sent = this.unrecorded.has(request.id);
          this.storeDidNotAnswer(task, unavailable.reason, sent);
          return sent
            ? { _tag: 'Redeliver', reason: unavailable.reason, sent: true }
            : { _tag: 'Redeliver', reason: unavailable.reason };
        },
        (disposition) => {
          this.storeAnswered(request.id);
          return disposition;
        },
      ),
    );
  }

  private onClaim(task: EmailTask, claim: SendClaim): TE.TaskEither<StoreUnavailable, Disposition> {
    const { id } = task.request;
    switch (claim._tag) {
      case 'Claimed':
        this.busyWaits.answered(id);
        return this.screenAndSend(task);
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
  private screenAndSend(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request } = task;
    return pipe(
      screenRecipients(this.suppressions, request, this.domainToAscii),
      // Nothing went out: another worker need not wait for this claim to run out.
      TE.tapError(() => TE.fromTask(this.release(request.id))),
      TE.flatMap(({ kept, suppressed }) => {
        if (suppressed.length === 0) return this.send(task);
        const context = {
          emailId: request.id,
          attempt: task.attempt,
          suppressed: suppressed.map(mailbox),
        };
        if (allRecipients(kept).length === 0) {
          this.log.info(context, 'Every recipient is on the suppression list; not sending');
          return this.suppress(task, suppressed);
        }
        this.log.info(context, 'Recipients on the suppression list dropped from this send');
        return this.send({ ...task, request: addressedTo(request, kept) });
      }),
    );
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

  private send(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request, attempt } = task;
    const context = { emailId: request.id, attempt, transport: this.sender.name };
    return pipe(
      this.change({ type: 'EmailSending', ...this.about(task, this.clock.now()) }),
      // Nothing went out: another worker need not wait for this claim to run out.
      TE.tapError(() => TE.fromTask(this.release(request.id))),
      TE.flatMap(() =>
        TE.fromTask(async () => {
          this.log.info(
            { ...context, to: allRecipients(request).map(mailbox) },
            `Initiating email send to ${allRecipients(request).map(mailbox).join(', ')}.`,
          );
          const started = this.clock.monotonicMs();
          const { outcome, transport } = await this.sendHoldingClaim(request);
          const durationMs = Math.round((this.clock.monotonicMs() - started) * 10) / 10;
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
          return { outcome, durationMs, transport };
        }),
      ),
      TE.flatMap(({ outcome, durationMs, transport }) =>
        this.settle(task, outcome, durationMs, transport),
      ),
    );
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
  private async sendHoldingClaim(request: EmailRequest): Promise<NamedOutcome> {
    let renewals: Promise<void> = Promise.resolve();
    const stop = this.every(() => {
      renewals = renewals.then(() => this.renew(request.id));
    }, this.leaseMs / 3);
    try {
      return await sendNamed(this.sender, request)();
    } finally {
      stop();
      await renewals;
    }
  }

  private async renew(id: EmailId): Promise<void> {
    const renewed = await this.ledger.claim(id, this.holder, this.clock.now(), this.leaseMs)();
    // A store that does not answer is no news: the lease outlives a few missed renewals.
    if (renewed._tag === 'Left' || renewed.right._tag === 'Claimed') return;
    this.log.warn(
      { emailId: id, claim: renewed.right._tag },
      'The send claim ran out during the send and another worker has it; the email may go out twice',
    );
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
    return pipe(
      this.ledger.record(id, send.providerId, send.at),
      TE.tap(() => {
        this.unrecorded.delete(id);
        return this.change({
          type: 'EmailSent',
          ...this.about(task, send.at),
          providerId: send.providerId,
          durationMs: send.durationMs,
          transport: send.transport,
        });
      }),
      TE.map((): Disposition => ({ _tag: 'Done' })),
    );
  }

  private settle(
    task: EmailTask,
    outcome: DeliveryOutcome,
    durationMs: number,
    transport: string,
  ): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request, attempt } = task;
    const now = this.clock.now();
    const record: AttemptRecord = {
      attempt,
      at: now.toISOString(),
      outcome: outcomeName(outcome),
      detail: outcomeDetail(outcome),
      durationMs,
    };
    const history = [...task.history, record];
    const about = this.about(task, now);
    const decision = decide(outcome, attempt, this.policy);
    switch (decision._tag) {
      case 'Delivered': {
        // Remembered first: if the ledger cannot take it now, the task comes back here to
        // record it, not to send it again.
        const send = { providerId: decision.providerId, at: now, durationMs, transport };
        this.unrecorded.set(request.id, send);
        return this.recordSend(task, send);
      }
      case 'RetryLater': {
        const nextAttemptAt = new Date(now.getTime() + decision.delayMs).toISOString();
        this.log.warn(
          { emailId: request.id, attempt, reason: decision.reason, delayMs: decision.delayMs },
          `Send failed for now; attempt ${decision.nextAttempt} at ${nextAttemptAt}`,
        );
        return pipe(
          TE.fromTask(this.release(request.id)),
          TE.flatMap(() =>
            this.change({
              type: 'EmailDeliveryRetried',
              ...about,
              reason: decision.reason,
              durationMs,
              delayMs: decision.delayMs,
              nextAttemptAt,
            }),
          ),
          TE.map((): Disposition => ({
            _tag: 'Retry',
            attempt: decision.nextAttempt,
            delayMs: decision.delayMs,
            history,
          })),
        );
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
            this.change({
              type: 'EmailDeliveryFailed',
              ...about,
              outcome: outcome._tag === 'Permanent' ? 'permanent' : 'transient',
              reason: decision.reason,
              durationMs,
            }),
          ),
          TE.map((): Disposition => ({ _tag: 'DeadLetter', reason: decision.reason, history })),
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

/** A task asks again within a few seconds while it waits; one silent this long went elsewhere. */
const FORGET_WAITING_AFTER_MS = 60_000;

/**
 * The tasks waiting for something (a store, another worker's send), for logging: whether a task
 * just began to wait, how many wait, and whether the next summary line is due.
 */
class Waiting {
  /** Task id → when it last asked (monotonic ms). */
  private readonly tasks = new Map<EmailId, number>();
  private lastSummaryMs: number | undefined;

  constructor(private readonly clock: Clock) {}

  waits(id: EmailId): { first: boolean; waiting: number; summarise: boolean } {
    const now = this.clock.monotonicMs();
    this.forgetSilent(now);
    const first = !this.tasks.has(id);
    this.tasks.set(id, now);
    const summarise =
      this.lastSummaryMs === undefined || now - this.lastSummaryMs >= STORE_WAIT_LOG_EVERY_MS;
    if (summarise) this.lastSummaryMs = now;
    return { first, waiting: this.tasks.size, summarise };
  }

  /** The task waits no more; true when that ends a wait that was logged. */
  answered(id: EmailId): boolean {
    const waited = this.tasks.delete(id);
    this.forgetSilent(this.clock.monotonicMs());
    if (!waited || this.tasks.size > 0 || this.lastSummaryMs === undefined) return false;
    this.lastSummaryMs = undefined;
    return true;
  }

  // A task handed back to the queue (a stop, a lost channel) may never ask here again.
  private forgetSilent(now: number): void {
    for (const [id, seen] of this.tasks) {
      if (now - seen > FORGET_WAITING_AFTER_MS) this.tasks.delete(id);
    }
  }
}
