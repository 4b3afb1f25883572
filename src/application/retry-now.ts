import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttemptRecord } from '../domain/delivery.js';
import { isThrottledDetail } from '../domain/delivery.js';
import type { EmailId, EmailRequest } from '../domain/email-request.js';
import type { EmailStatus, StatusName } from '../domain/email-status.js';
import { waitingAttempt } from '../domain/email-status.js';
import type { EmailRetryExpedited } from '../domain/events.js';
import type { NotFound } from './cancel-email.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { QueueUnavailable } from './ports/email-queue.js';
import type { RetryQueue } from './ports/retry-queue.js';
import type { Clock, Logger } from './ports/system.js';

/** Only an email waiting for its next attempt (`retrying`) can have it now; `status` is its own: 409. */
export interface NotRetrying {
  readonly _tag: 'NotRetrying';
  readonly status: StatusName;
}

/**
 * The queue has no task of that attempt waiting: a worker is making it right now (its due time
 * came), or it is over. Nothing was changed: 409.
 */
export interface NotWaiting {
  readonly _tag: 'NotWaiting';
  readonly attempt: number;
}

/**
 * The email log knows the email but not its request any more (recorded by a worker's event
 * alone, after the request was forgotten): there is nothing to send. 409.
 */
export interface RequestGone {
  readonly _tag: 'RequestGone';
}

export type RetryNowError =
  NotFound | NotRetrying | NotWaiting | RequestGone | QueueUnavailable | StoreUnavailable;

/** The attempt that is now due, and how the queue brought it forward (see `Expedited`). */
export interface RetriedNow {
  readonly attempt: number;
  readonly how: 'moved' | 'copied';
}

/**
 * The email's attempts as a task carries them: its history, oldest first, each throttle marked
 * as such (so that a copy counts them towards MAX_THROTTLES_PER_ATTEMPT as its twin does).
 */
const historyOf = (status: EmailStatus): readonly AttemptRecord[] =>
  status.attempts.map(({ attempt, at, outcome, detail, durationMs }) => ({
    attempt,
    at,
    outcome,
    detail,
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(outcome === 'transient' && isThrottledDetail(detail) ? { throttled: true as const } : {}),
  }));

/**
 * An operator's "Retry now": the next attempt of an email waiting between two attempts
 * (`retrying`) is made due at once, without a second send and without a second chain of
 * retries. On the SQL queue the waiting task itself becomes due; on RabbitMQ, whose retry
 * queues hold a message until its TTL ends, a marked copy is queued now and the waiting one is
 * dropped by DeliverEmail when it comes back, because the `EmailRetryExpedited` recorded here
 * lists its attempt. The copy is published first and the note recorded after: a note without a
 * copy would make the worker drop the only task. The delivery ledger still guards the send
 * itself: of two tasks of one id, one sends.
 *
 * The number of attempts is unchanged (the attempt brought forward is the one that was due),
 * so MAX_ATTEMPTS still bounds them.
 */
export class RetryNow {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly queue: RetryQueue,
    private readonly emails: EmailLog,
    events: DeliveryEvents,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  execute(id: EmailId): TE.TaskEither<RetryNowError, RetriedNow> {
    return pipe(
      this.emails.get(id),
      TE.flatMap(
        O.match(
          (): TE.TaskEither<RetryNowError, EmailStatus> => TE.left({ _tag: 'NotFound' }),
          (status): TE.TaskEither<RetryNowError, EmailStatus> =>
            status.status === 'retrying'
              ? TE.right(status)
              : TE.left({ _tag: 'NotRetrying', status: status.status }),
        ),
      ),
      TE.flatMap((status) =>
        pipe(
          this.emails.request(id),
          TE.flatMap(
            O.match(
              (): TE.TaskEither<RetryNowError, RetriedNow> => TE.left({ _tag: 'RequestGone' }),
              (request) => this.expedite(status, request),
            ),
          ),
        ),
      ),
    );
  }

  private expedite(
    status: EmailStatus,
    request: EmailRequest,
  ): TE.TaskEither<RetryNowError, RetriedNow> {
    const attempt = waitingAttempt(status.attempts);
    return pipe(
      this.queue.expedite(request, attempt, historyOf(status)),
      TE.flatMap((how): TE.TaskEither<RetryNowError, RetriedNow> => {
        if (how === 'not-waiting') return TE.left({ _tag: 'NotWaiting', attempt });
        return TE.fromTask(this.note(status, attempt, how));
      }),
    );
  }

  /**
   * The queue holds the attempt now whatever happens here, so that is the answer. A note the
   * log could not take leaves a copied task's waiting twin to be attempted too when it comes
   * (one more attempt, never a second send: the ledger); that is logged at error level.
   */
  private note(status: EmailStatus, attempt: number, how: 'moved' | 'copied'): T.Task<RetriedNow> {
    const event: EmailRetryExpedited = {
      type: 'EmailRetryExpedited',
      id: status.id,
      at: this.clock.now().toISOString(),
      to: status.to,
      ...(status.cc !== undefined ? { cc: status.cc } : {}),
      ...(status.bcc !== undefined ? { bcc: status.bcc } : {}),
      subject: status.subject,
      attempt,
      copied: how === 'copied',
    };
    return pipe(
      this.change(event),
      T.map((recorded) => {
        if (E.isLeft(recorded)) {
          this.log.error(
            { emailId: status.id, attempt, how, reason: recorded.left.reason },
            'Retry brought forward, but the email log could not be told: the waiting task may be attempted too',
          );
        } else {
          this.log.info({ emailId: status.id, attempt, how }, 'Retry brought forward to now');
        }
        return { attempt, how };
      }),
    );
  }
}
