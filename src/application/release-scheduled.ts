import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailId, EmailRequest } from '../domain/email-request.js';
import type { EmailRequested } from '../domain/events.js';
import { recipientsOf } from '../domain/events.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { EmailQueue } from './ports/email-queue.js';
import type { ScheduledEmails } from './ports/scheduled-emails.js';
import type { Clock, Logger } from './ports/system.js';

export interface ReleaseOptions {
  /**
   * How long a taken email is ours to publish. Longer than a publish can take (RabbitMQ's
   * confirm gives up after 5 s), or two workers would publish it; a publish the queue refused
   * waits this long for its next try.
   */
  readonly leaseMs: number;
  /** Emails taken at once: a run publishes them together. */
  readonly limit: number;
}

export const DEFAULT_RELEASE_OPTIONS: ReleaseOptions = { leaseMs: 30_000, limit: 100 };

/** What became of one taken email; only `Released` went on the queue. */
type Outcome = 'Released' | 'Kept' | 'Missing';

/**
 * Puts the scheduled emails that are due on the queue. Each is taken under a lease, published,
 * released from the store of scheduled emails, and only then recorded as `queued`: a worker that
 * dies half-way leaves it leased, and another publishes it once the lease is over. At least once,
 * then; the delivery ledger sends an id once.
 */
export class ReleaseScheduled {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly scheduled: ScheduledEmails,
    private readonly emails: EmailLog,
    private readonly queue: EmailQueue,
    events: DeliveryEvents,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: ReleaseOptions = DEFAULT_RELEASE_OPTIONS,
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  /** Releases what is due now; answers how many emails went on the queue. */
  execute(): TE.TaskEither<StoreUnavailable, number> {
    return pipe(
      this.scheduled.takeDue(this.clock.now(), this.options.leaseMs, this.options.limit),
      TE.flatMap((ids) => TE.fromTask(T.sequenceArray(ids.map((id) => this.releaseOne(id))))),
      TE.map((outcomes) => outcomes.filter((o) => o === 'Released').length),
    );
  }

  /** Never fails: whatever goes wrong leaves the email leased, for another try after the lease. */
  private releaseOne(id: EmailId): T.Task<Outcome> {
    return pipe(
      this.emails.request(id),
      TE.matchEW(
        (down): T.Task<Outcome> => {
          this.log.warn(
            { emailId: id, reason: down.reason },
            'Scheduled email not released: its request could not be read; trying again after the lease',
          );
          return T.of('Kept');
        },
        O.match(
          () => this.releaseMissing(id),
          (request) => this.publish(request),
        ),
      ),
    );
  }

  private publish(request: EmailRequest): T.Task<Outcome> {
    return pipe(
      this.queue.publish(request),
      TE.matchEW(
        (refused): T.Task<Outcome> => {
          this.log.warn(
            { emailId: request.id, reason: refused.reason },
            'Scheduled email not released: the queue refused it; trying again after the lease',
          );
          return T.of('Kept');
        },
        () => this.recordReleased(request),
      ),
    );
  }

  /**
   * The email is on the queue whatever happens here, so it counts as released. A `released` that
   * did not reach the store only means it is published again after the lease; a change not
   * written leaves its page at `scheduled` until the worker's own news moves it on.
   */
  private recordReleased(request: EmailRequest): T.Task<Outcome> {
    const now = this.clock.now();
    const event: EmailRequested = {
      type: 'EmailRequested',
      id: request.id,
      at: now.toISOString(),
      ...recipientsOf(request),
      subject: request.subject,
    };
    return pipe(
      this.scheduled.released(request.id),
      T.flatMap((released) => {
        if (E.isLeft(released)) {
          this.log.warn(
            { emailId: request.id, reason: released.left.reason },
            'Scheduled email queued, but not marked released: it may be queued again after the lease',
          );
        }
        return this.change(event);
      }),
      T.map((recorded): Outcome => {
        if (E.isLeft(recorded)) {
          this.log.warn(
            { emailId: request.id, reason: recorded.left.reason },
            'Scheduled email queued, but its release could not be written to the email log',
          );
        }
        const lateMs =
          request.sendAt === undefined ? 0 : now.getTime() - Date.parse(request.sendAt);
        this.log.info(
          { emailId: request.id, sendAt: request.sendAt, lateMs },
          'Scheduled email released to the queue',
        );
        return 'Released';
      }),
    );
  }

  /**
   * Held, but the log no longer has its request (deleted by hand, or a bug): there is nothing to
   * send, and keeping it would only take it again every lease.
   */
  private releaseMissing(id: EmailId): T.Task<Outcome> {
    this.log.error(
      { emailId: id },
      'Scheduled email has no request in the email log: released without sending',
    );
    return pipe(
      this.scheduled.released(id),
      T.map((released): Outcome => {
        if (E.isLeft(released)) {
          this.log.warn(
            { emailId: id, reason: released.left.reason },
            'Scheduled email without a request could not be released; trying again after the lease',
          );
        }
        return 'Missing';
      }),
    );
  }
}
