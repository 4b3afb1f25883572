import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../domain/email-request.js';
import type { EmailStatus, StatusName } from '../domain/email-status.js';
import type { EmailCancelled } from '../domain/events.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { ScheduledEmails } from './ports/scheduled-emails.js';
import type { Clock, Logger } from './ports/system.js';

/** No email with this id is known (never accepted, or deleted by retention): 404. */
export interface NotFound {
  readonly _tag: 'NotFound';
}

/**
 * Too late, or nothing to cancel: sending began (the email was released, or is being released
 * right now), or it was never scheduled. `status` is what the log says it is: 409.
 */
export interface NotCancellable {
  readonly _tag: 'NotCancellable';
  readonly status: StatusName;
  /** It had a `send_at`: sending began. Without one, it was sent at once and never held. */
  readonly wasScheduled: boolean;
}

export type CancelEmailError = NotFound | NotCancellable | StoreUnavailable;

/**
 * Cancels a scheduled email before it is released. The store of scheduled emails decides (one
 * atomic step, so a cancel and a release never both win); only then is the change written to
 * the email log and announced. Cancelling a cancelled email answers `cancelled` again.
 */
export class CancelEmail {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly scheduled: Pick<ScheduledEmails, 'cancel'>,
    private readonly emails: EmailLog,
    events: DeliveryEvents,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  execute(id: EmailId): TE.TaskEither<CancelEmailError, 'cancelled'> {
    const now = this.clock.now();
    return pipe(
      this.scheduled.cancel(id, now),
      TE.flatMap((cancelled): TE.TaskEither<CancelEmailError, 'cancelled'> =>
        cancelled ? TE.fromTask(this.recordCancelled(id, now)) : this.whyNot(id),
      ),
    );
  }

  /** Not held: the log says whether it is unknown, cancelled already, or past cancelling. */
  private whyNot(id: EmailId): TE.TaskEither<CancelEmailError, 'cancelled'> {
    return pipe(
      this.emails.get(id),
      TE.flatMap(
        O.match(
          (): TE.TaskEither<CancelEmailError, 'cancelled'> => TE.left({ _tag: 'NotFound' }),
          ({ status, sendAt }) =>
            status === 'cancelled'
              ? TE.right('cancelled' as const)
              : TE.left<CancelEmailError>({
                  _tag: 'NotCancellable',
                  status,
                  wasScheduled: sendAt !== undefined,
                }),
        ),
      ),
    );
  }

  /**
   * The email will never be sent whatever happens here: the answer is `cancelled` even when the
   * log could not be told, since that is what the client needs to know. The log then still
   * shows `scheduled`, and a repeated DELETE answers 409 (a known limit, logged as an error).
   */
  private recordCancelled(id: EmailId, now: Date): T.Task<'cancelled'> {
    return pipe(
      this.emails.get(id),
      TE.flatMap(
        O.match(
          () => {
            this.log.warn(
              { emailId: id },
              'Cancelled a scheduled email the email log does not know',
            );
            return TE.right<StoreUnavailable, void>(undefined);
          },
          (status) => pipe(this.change(cancelledEvent(status, now)), TE.asUnit),
        ),
      ),
      T.map((recorded) => {
        if (E.isLeft(recorded)) {
          this.log.error(
            { emailId: id, reason: recorded.left.reason },
            'Scheduled email cancelled (it will not be sent), but the email log could not be told: it still shows scheduled',
          );
        } else {
          this.log.info({ emailId: id }, 'Scheduled email cancelled');
        }
        return 'cancelled' as const;
      }),
    );
  }
}

const cancelledEvent = (s: EmailStatus, now: Date): EmailCancelled => ({
  type: 'EmailCancelled',
  id: s.id,
  at: now.toISOString(),
  to: s.to,
  ...(s.cc !== undefined ? { cc: s.cc } : {}),
  ...(s.bcc !== undefined ? { bcc: s.bcc } : {}),
  subject: s.subject,
});
