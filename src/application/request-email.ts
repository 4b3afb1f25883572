import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailDraft, EmailId, InvalidEmailRequest } from '../domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../domain/email-request.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailQueue, QueueUnavailable } from './ports/email-queue.js';
import type { IdempotencyStore, StoreUnavailable } from './ports/ledgers.js';
import type { Clock, IdGenerator } from './ports/system.js';

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

/** Validates a request, puts it durably on the queue, and announces it. */
export class RequestEmail {
  constructor(
    private readonly queue: EmailQueue,
    private readonly events: DeliveryEvents,
    private readonly idempotency: IdempotencyStore,
    private readonly ids: IdGenerator,
    private readonly clock: Clock,
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

  private enqueue(draft: EmailDraft, id: EmailId): TE.TaskEither<QueueUnavailable, Accepted> {
    const request = toEmailRequest(draft, id, this.clock.now());
    return pipe(
      this.queue.publish(request),
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
    const id = this.ids.next();
    // The payload is compared as canonical JSON: the same fields in another order are the same.
    const payload = JSON.stringify([
      draft.to,
      draft.subject,
      draft.text ?? null,
      draft.html ?? null,
    ]);
    return pipe(
      this.idempotency.claim(key, payload, id),
      TE.flatMap((claim): TE.TaskEither<RequestEmailError, Accepted> => {
        switch (claim._tag) {
          case 'Repeat':
            return TE.right({ id: claim.id, repeated: true });
          case 'Conflict':
            return TE.left({ _tag: 'IdempotencyConflict', reason: claim.reason });
          case 'New':
            return pipe(
              this.enqueue(draft, id),
              TE.orElse((error) =>
                pipe(
                  this.idempotency.release(key),
                  TE.flatMap(() => TE.left<RequestEmailError, Accepted>(error)),
                ),
              ),
              TE.tap(() => this.idempotency.complete(key)),
            );
        }
      }),
    );
  }
}
