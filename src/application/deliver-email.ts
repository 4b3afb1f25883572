import { pipe } from 'fp-ts/lib/function.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord, DeliveryOutcome, RetryPolicy } from '../domain/delivery.js';
import { decide, outcomeDetail, outcomeName } from '../domain/delivery.js';
import { mailbox } from '../domain/email-address.js';
import type { EmailId } from '../domain/email-request.js';
import type { DomainEvent } from '../domain/events.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { DeliveryLedger } from './ports/delivery-ledger.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { Disposition, EmailTask } from './ports/email-task-source.js';
import type { EmailSender } from './ports/email-sender.js';
import type { Clock, Logger } from './ports/system.js';

/** A send the provider accepted whose ledger entry could not be written yet. */
interface UnrecordedSend {
  readonly providerId: string;
  readonly at: Date;
  readonly durationMs: number;
}

/**
 * Sends one task and decides what becomes of it: done, retry after a delay, or dead-letter. Every
 * change is written to the email log before it is announced.
 *
 * When a store does not answer it decides `Redeliver`, and the queue offers the same task again
 * later. Before the send that is harmless: nothing went out. After a send the provider accepted,
 * the send is remembered here, in this process, until the ledger takes it, so the task coming
 * back (the queue keeps it in this worker) records the send instead of sending again. Only if
 * this process dies in that window can another worker send it a second time (at least once).
 */
export class DeliverEmail {
  private readonly unrecorded = new Map<EmailId, UnrecordedSend>();
  private readonly running = new Map<EmailId, Promise<Disposition>>();
  private readonly change: (event: DomainEvent) => TE.TaskEither<StoreUnavailable, unknown>;

  constructor(
    private readonly sender: EmailSender,
    emails: EmailLog,
    events: DeliveryEvents,
    private readonly ledger: DeliveryLedger,
    private readonly policy: RetryPolicy,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  execute(task: EmailTask): T.Task<Disposition> {
    return () => {
      // One decision per id at a time in this process: a task the broker hands over again
      // (a connection lost while its send was running) waits for that send, then finds it in
      // the ledger instead of sending a second time.
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
          this.ledger.sent(request.id),
          TE.flatMap((providerId) =>
            providerId === undefined ? this.send(task) : this.alreadySent(task, providerId),
          ),
        );
    return pipe(
      decision,
      TE.getOrElse((unavailable) => {
        this.log.warn(
          { emailId: request.id, attempt: task.attempt, reason: unavailable.reason },
          'A store did not answer; the task waits and is tried again',
        );
        return T.of<Disposition>({ _tag: 'Redeliver', reason: unavailable.reason });
      }),
    );
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

  private send(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request, attempt } = task;
    const context = { emailId: request.id, attempt, transport: this.sender.name };
    return pipe(
      this.change({ type: 'EmailSending', ...this.about(task, this.clock.now()) }),
      TE.flatMap(() =>
        TE.fromTask(async () => {
          this.log.info(
            { ...context, to: request.to.map(mailbox) },
            `Initiating email send to ${request.to.map(mailbox).join(', ')}.`,
          );
          const started = this.clock.monotonicMs();
          const outcome = await this.sender.send(request)();
          const durationMs = Math.round((this.clock.monotonicMs() - started) * 10) / 10;
          this.log.info(
            { ...context, outcome: outcome._tag, durationMs },
            `Time to send an email: ${(durationMs / 1000).toFixed(2)}s`,
          );
          return { outcome, durationMs };
        }),
      ),
      TE.flatMap(({ outcome, durationMs }) => this.settle(task, outcome, durationMs)),
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
        });
      }),
      TE.map((): Disposition => ({ _tag: 'Done' })),
    );
  }

  private settle(
    task: EmailTask,
    outcome: DeliveryOutcome,
    durationMs: number,
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
        const send = { providerId: decision.providerId, at: now, durationMs };
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
          this.change({
            type: 'EmailDeliveryRetried',
            ...about,
            reason: decision.reason,
            durationMs,
            delayMs: decision.delayMs,
            nextAttemptAt,
          }),
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
          this.change({
            type: 'EmailDeliveryFailed',
            ...about,
            outcome: outcome._tag === 'Permanent' ? 'permanent' : 'transient',
            reason: decision.reason,
            durationMs,
          }),
          TE.map((): Disposition => ({ _tag: 'DeadLetter', reason: decision.reason, history })),
        );
    }
  }

  private about(task: EmailTask, at: Date) {
    const { request, attempt } = task;
    return {
      id: request.id,
      at: at.toISOString(),
      to: request.to,
      subject: request.subject,
      attempt,
    };
  }
}
