import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  AttachmentRef,
  DraftOptions,
  EmailDraft,
  EmailId,
  EmailRequest,
  InvalidEmailRequest,
} from '../domain/email-request.js';
import { encodedSizeOf, parseEmailDraft, toEmailRequest } from '../domain/email-request.js';
import { acceptedEvent } from '../domain/events.js';
import { canonicalJson } from '../domain/canonical-json.js';
import type { AttachmentStore } from './ports/attachment-store.js';
import type { ScheduledEmails } from './ports/scheduled-emails.js';
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

/** The encoded message would be larger than `MAX_MESSAGE_BYTES`: 413, naming both. */
export interface MessageTooLarge {
  readonly _tag: 'MessageTooLarge';
  /** Octets, as estimated by `encodedSizeOf`. */
  readonly size: number;
  readonly limit: number;
}

export type RequestEmailError =
  InvalidEmailRequest | MessageTooLarge | QueueUnavailable | StoreUnavailable | IdempotencyConflict;

export interface Accepted {
  readonly id: EmailId;
  /** True when an earlier request with the same idempotency key was answered instead. */
  readonly repeated: boolean;
  /** `scheduled` when it is held until its `send_at`, else `queued`. */
  readonly status: 'queued' | 'scheduled';
}

/** What the rules need from configuration, and the stores beyond the always-needed ones. */
export interface RequestEmailOptions {
  /** `ALLOWED_FROM_DOMAINS`, lowercase A-labels. */
  readonly allowedFromDomains?: readonly string[];
  readonly domainToAscii?: DraftOptions['domainToAscii'];
  /** `MAX_MESSAGE_BYTES`: the largest encoded message accepted (default 10 MiB). */
  readonly maxMessageBytes?: number;
  /** Where attachment bytes go; without it, a request with attachments is a bug to configure. */
  readonly attachments?: AttachmentStore;
  /** Where scheduled emails wait; without it, `send_at` cannot be honoured. */
  readonly scheduled?: ScheduledEmails;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

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
    private readonly options: RequestEmailOptions = {},
  ) {}

  execute(input: unknown, idempotencyKey?: string): TE.TaskEither<RequestEmailError, Accepted> {
    return pipe(
      TE.fromEither(this.prepare(input)),
      TE.flatMap((draft) =>
        idempotencyKey === undefined
          ? this.accept(draft, this.ids.next())
          : this.enqueueOnce(draft, idempotencyKey),
      ),
    );
  }

  /**
   * Every rule a request must pass before anything is stored: its fields, and the size of the
   * message it makes. For a batch, which checks every email before accepting any.
   */
  prepare(input: unknown): E.Either<InvalidEmailRequest | MessageTooLarge, EmailDraft> {
    const { allowedFromDomains = [], domainToAscii, maxMessageBytes } = this.options;
    return pipe(
      parseEmailDraft(input, {
        now: this.clock.now(),
        allowedFromDomains,
        ...(domainToAscii !== undefined ? { domainToAscii } : {}),
      }),
      E.flatMap((draft): E.Either<InvalidEmailRequest | MessageTooLarge, EmailDraft> => {
        const size = encodedSizeOf(draft);
        const limit = maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
        return size > limit ? E.left({ _tag: 'MessageTooLarge', size, limit }) : E.right(draft);
      }),
    );
  }

  /**
   * Accepts a prepared draft under `id`: its files stored, recorded, then queued (or held until
   * its `sendAt`), then announced. Recorded before it is published, so a worker never finds a
   * task the log does not know; a publish the queue refused is forgotten again, since the client
   * hears 503 and it never was.
   */
  accept(
    draft: EmailDraft,
    id: EmailId,
  ): TE.TaskEither<QueueUnavailable | StoreUnavailable, Accepted> {
    return pipe(
      this.storeAttachments(draft, id),
      TE.flatMap((refs) => this.enqueue(toEmailRequest(draft, id, this.clock.now(), refs))),
    );
  }

  private storeAttachments(
    draft: EmailDraft,
    id: EmailId,
  ): TE.TaskEither<StoreUnavailable, readonly AttachmentRef[]> {
    const files = draft.attachments ?? [];
    if (files.length === 0) return TE.right([]);
    const store = this.options.attachments;
    if (store === undefined) throw new Error('RequestEmail needs an attachment store');
    return TE.sequenceSeqArray(
      files.map((file) =>
        pipe(
          store.put(id, Buffer.from(file.content, 'base64')),
          TE.map((stored): AttachmentRef => ({
            filename: file.filename,
            digest: stored.digest,
            size: stored.size,
            ...(file.contentType !== undefined ? { contentType: file.contentType } : {}),
            ...(file.contentId !== undefined ? { contentId: file.contentId } : {}),
          })),
        ),
      ),
    );
  }

  private enqueue(
    request: EmailRequest,
  ): TE.TaskEither<QueueUnavailable | StoreUnavailable, Accepted> {
    const scheduled = request.sendAt !== undefined;
    return pipe(
      this.emails.record(request),
      TE.flatMap(() =>
        pipe(
          scheduled ? this.hold(request) : this.queue.publish(request),
          TE.orElse((refused: QueueUnavailable | StoreUnavailable) =>
            pipe(
              this.emails.forget(request.id),
              T.map(() => E.left<QueueUnavailable | StoreUnavailable, void>(refused)),
            ),
          ),
        ),
      ),
      TE.tap(() => TE.fromTask(this.events.publish(acceptedEvent(request)))),
      TE.map(() => ({
        id: request.id,
        repeated: false,
        status: scheduled ? ('scheduled' as const) : ('queued' as const),
      })),
    );
  }

  private hold(request: EmailRequest): TE.TaskEither<StoreUnavailable, void> {
    const store = this.options.scheduled;
    if (store === undefined) throw new Error('RequestEmail needs a store of scheduled emails');
    return store.hold(request.id, new Date(request.sendAt ?? request.requestedAt));
  }

  private enqueueOnce(draft: EmailDraft, key: string): TE.TaskEither<RequestEmailError, Accepted> {
    // The payload is compared as canonical JSON: the same fields in another order are the same.
    const payload = canonicalJson(draft);
    const status = draft.sendAt === undefined ? ('queued' as const) : ('scheduled' as const);
    return pipe(
      this.idempotency.claim(key, payload, this.ids.next(), this.clock.now()),
      TE.flatMap((claim): TE.TaskEither<RequestEmailError, Accepted> => {
        switch (claim._tag) {
          case 'Repeat':
            return TE.right({ id: claim.id, repeated: true, status });
          case 'Conflict':
            return TE.left({ _tag: 'IdempotencyConflict', reason: claim.reason });
          case 'New':
            return pipe(
              this.accept(draft, claim.id),
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
    return completeKey(this.idempotency, this.log, key, { emailId: id }, 'Email queued');
  }
}

/**
 * Marks `key` complete; a failure is only logged (`what`, "but its idempotency key could not be
 * marked complete"), since what it guards was accepted already and must be reported so.
 */
export function completeKey(
  idempotency: IdempotencyStore,
  log: Logger,
  key: string,
  fields: object,
  what: string,
): T.Task<void> {
  return pipe(
    idempotency.complete(key),
    T.map((done) => {
      if (E.isLeft(done)) {
        log.warn(
          { ...fields, reason: done.left.reason },
          `${what}, but its idempotency key could not be marked complete`,
        );
      }
    }),
  );
}
