import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord, DeliveryOutcome, RetryPolicy } from '../domain/delivery.js';
import { decide, outcomeDetail, outcomeName } from '../domain/delivery.js';
import { mailbox } from '../domain/email-address.js';
import type { DomainEvent } from '../domain/events.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { Disposition, EmailTask } from './ports/email-queue.js';
import type { EmailSender } from './ports/email-sender.js';
import type { DeliveryLedger, StoreUnavailable } from './ports/ledgers.js';
import type { Clock, Logger } from './ports/system.js';

/**
 * Sends one task and decides what becomes of it: done, retry after a delay, or dead-letter.
 * It answers Left only when it could not reach a decision (the ledger is down); the queue then
 * offers the task again, which is safe because nothing was sent.
 */
export class DeliverEmail {
  constructor(
    private readonly sender: EmailSender,
    private readonly events: DeliveryEvents,
    private readonly ledger: DeliveryLedger,
    private readonly policy: RetryPolicy,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  execute(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request } = task;
    return pipe(
      this.ledger.delivered(request.id),
      TE.flatMap((providerId) => {
        if (providerId === undefined) return this.send(task);
        this.log.info(
          { emailId: request.id, providerId, attempt: task.attempt },
          'Already delivered; not sending again',
        );
        // Announced again: the first announcement may be what failed before this redelivery,
        // and a status page must not stay 'queued' for an email that went out.
        return pipe(
          this.announce({
            type: 'EmailDelivered',
            id: request.id,
            at: this.clock.now().toISOString(),
            to: request.to,
            subject: request.subject,
            attempt: task.attempt,
            providerId,
            durationMs: 0,
          }),
          TE.map((): Disposition => ({ _tag: 'Done' })),
        );
      }),
    );
  }

  private send(task: EmailTask): TE.TaskEither<StoreUnavailable, Disposition> {
    const { request, attempt } = task;
    const context = { emailId: request.id, attempt, transport: this.sender.name };
    return pipe(
      TE.fromTask(async () => {
        this.log.info(
          { ...context, to: request.to.map(mailbox) },
          `Initiating email send to ${request.to.map(mailbox).join(', ')}.`,
        );
        const started = this.clock.monotonicMs();
        const outcome = await this.sender.send(request, attempt)();
        const durationMs = this.clock.monotonicMs() - started;
        this.log.info(
          { ...context, outcome: outcome._tag, durationMs },
          `Time to send an email: ${(durationMs / 1000).toFixed(2)}s`,
        );
        return { outcome, durationMs };
      }),
      TE.flatMap(({ outcome, durationMs }) => this.settle(task, outcome, durationMs)),
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
    const about = {
      id: request.id,
      at: record.at,
      to: request.to,
      subject: request.subject,
      attempt,
    };
    const decision = decide(outcome, attempt, this.policy);
    switch (decision._tag) {
      case 'Delivered':
        return pipe(
          this.ledger.record(request.id, decision.providerId),
          TE.tap(() =>
            this.announce({
              type: 'EmailDelivered',
              ...about,
              providerId: decision.providerId,
              durationMs,
            }),
          ),
          TE.map((): Disposition => ({ _tag: 'Done' })),
        );
      case 'RetryLater': {
        const nextAttemptAt = new Date(now.getTime() + decision.delayMs).toISOString();
        this.log.warn(
          { emailId: request.id, attempt, reason: decision.reason, delayMs: decision.delayMs },
          `Send failed for now; attempt ${decision.nextAttempt} at ${nextAttemptAt}`,
        );
        return pipe(
          this.announce({
            type: 'EmailDeliveryRetried',
            ...about,
            reason: decision.reason,
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
          this.announce({
            type: 'EmailDeliveryFailed',
            ...about,
            outcome: outcome._tag === 'Permanent' ? 'permanent' : 'transient',
            reason: decision.reason,
          }),
          TE.map((): Disposition => ({ _tag: 'DeadLetter', reason: decision.reason, history })),
        );
    }
  }

  private announce(event: DomainEvent): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromTask(this.events.publish(event));
  }
}
