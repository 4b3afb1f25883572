import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailDraft, EmailId, InvalidEmailRequest } from '../domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../domain/email-request.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { EmailQueue, QueueUnavailable } from './ports/email-queue.js';
import type { EmailRequester } from './ports/email-requester.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { Clock, IdGenerator, Logger } from './ports/system.js';

export interface IdempotencyConflict {
  readonly _tag: 'IdempotencyConflict';
  readonly reason: 'different-payload' | 'in-progress';
}

export type RequestEmailError =
  InvalidEmailRequest | QueueUnavailable | StoreUnavailable | IdempotencyConflict;

export interface Accepted {
  readonly id: EmailId;
  /** True when an earlier request with the same idempotency key was answered instead. */
  readonly repeated: boolean;
}

/**
 * Validates a request, records it in the email log as `queued`, puts it durably on the queue,
 * and announces it. Right means the queue holds the email: the answer may say "accepted".
 */
export class RequestEmail implements EmailRequester {
  constructor(
    private readonly queue: EmailQueue,
    private readonly emails: EmailLog,
    private readonly events: DeliveryEvents,
    private readonly idempotency: IdempotencyStore,
    private readonly ids: IdGenerator,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  execute(input: unknown, idempotencyKey?: string): TE.TaskEither<RequestEmailError, Accepted> {
    return pipe(
      TE.fromEither(parseEmailDraft(input)),
      TE.flatMap((draft) =>
        idempotencyKey === undefined
          ? this.enqueue(draft, this.ids.next())
          : this.enqueueOnce(draft, idempotencyKey),
      ),
    );
  }

  /**
   * Recorded before it is published, so a worker never finds a task the log does not know; a
   * publish the queue refused is forgotten again, since the client hears 503 and it never was.
   */
  private enqueue(
    draft: EmailDraft,
    id: EmailId,
  ): TE.TaskEither<QueueUnavailable | StoreUnavailable, Accepted> {
    const request = toEmailRequest(draft, id, this.clock.now());
    return pipe(
      this.emails.record(request),
      TE.flatMap(() =>
        pipe(
          this.queue.publish(request),
          TE.orElse((refused) =>
            pipe(
              this.emails.forget(request.id),
              T.map(() => E.left<QueueUnavailable, void>(refused)),
            ),
          ),
        ),
      ),
      TE.tap(() =>
        TE.fromTask(
          this.events.publish({
            type: 'EmailRequested',
            id: request.id,
            at: request.requestedAt,
            to: request.to,
            subject: request.subject,
          }),
        ),
      ),
      TE.map(() => ({ id: request.id, repeated: false })),
    );
  }

  private enqueueOnce(draft: EmailDraft, key: string): TE.TaskEither<RequestEmailError, Accepted> {
    // The payload is compared as canonical JSON: the same fields in another order are the same.
    const payload = JSON.stringify([
      draft.to,
      draft.subject,
      draft.text ?? null,
      draft.html ?? null,
      draft.tags ?? [],
    ]);
    return pipe(
      this.idempotency.claim(key, payload, this.ids.next(), this.clock.now()),
      TE.flatMap((claim): TE.TaskEither<RequestEmailError, Accepted> => {
        switch (claim._tag) {
          case 'Repeat':
            return TE.right({ id: claim.id, repeated: true });
          case 'Conflict':
            return TE.left({ _tag: 'IdempotencyConflict', reason: claim.reason });
          case 'New':
            return pipe(
              this.enqueue(draft, claim.id),
              TE.orElse((error) =>
                pipe(
                  this.idempotency.release(key),
                  T.map(() => E.left<RequestEmailError, Accepted>(error)),
                ),
              ),
              TE.tap(() => TE.fromTask(this.completeKey(key, claim.id))),
            );
        }
      }),
    );
  }

  /**
   * The email is queued whatever happens here: a key that could not be marked complete is
   * answered `in-progress` for a while and then taken over with the same id, which the delivery
   * ledger sends only once. Never report a queued email as not sent.
   */
  private completeKey(key: string, id: EmailId): T.Task<void> {
    return pipe(
      this.idempotency.complete(key),
      T.map((done) => {
        if (E.isLeft(done)) {
          this.log.warn(
            { emailId: id, reason: done.left.reason },
            'Email queued, but its idempotency key could not be marked complete',
          );
        }
      }),
    );
  }
}
