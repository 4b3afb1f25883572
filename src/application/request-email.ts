import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
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
import type { DomainToAscii, EmailAddress } from '../domain/email-address.js';
import { mailboxKey } from '../domain/email-address.js';
import {
  addressedTo,
  allRecipients,
  encodedSizeOf,
  parseEmailDraft,
  toEmailRequest,
} from '../domain/email-request.js';
import type { EmailRequested, EmailScheduled, EmailSuppressed } from '../domain/events.js';
import { acceptedEvent, recipientsOf } from '../domain/events.js';
import { canonicalJson } from '../domain/canonical-json.js';
import type { AttachmentStore } from './ports/attachment-store.js';
import type { ScheduledEmails } from './ports/scheduled-emails.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { EmailQueue, QueueUnavailable } from './ports/email-queue.js';
import type { EmailRequester } from './ports/email-requester.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { SuppressionList } from './ports/suppression-list.js';
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

/**
 * Every To recipient (perhaps every recipient) is on the suppression list: nothing was stored or
 * queued (422). An email needs a To, so its Cc and Bcc are not sent to alone.
 */
export interface AllRecipientsSuppressed {
  readonly _tag: 'AllRecipientsSuppressed';
  /** The recipients, as they were given. */
  readonly suppressed: readonly EmailAddress[];
}

export type RequestEmailError =
  | InvalidEmailRequest
  | MessageTooLarge
  | QueueUnavailable
  | StoreUnavailable
  | IdempotencyConflict
  | AllRecipientsSuppressed;

export interface Accepted {
  readonly id: EmailId;
  /** True when an earlier request with the same idempotency key was answered instead. */
  readonly repeated: boolean;
  /**
   * `scheduled` when it is held until its `send_at`, else `queued`; `suppressed` for an email of
   * a batch whose every recipient is on the suppression list (recorded, never sent).
   */
  readonly status: 'queued' | 'scheduled' | 'suppressed';
  /** The recipients dropped because they are on the suppression list; absent when none was. */
  readonly suppressed?: readonly EmailAddress[];
}

/** The recipient fields of a request or a draft. */
export interface Recipients {
  readonly to: readonly EmailAddress[];
  readonly cc?: readonly EmailAddress[];
  readonly bcc?: readonly EmailAddress[];
}

/** Only the recipient fields of `r`, cc and bcc when they hold anyone. */
const recipientFields = (r: Recipients): Recipients => ({
  to: r.to,
  ...(r.cc !== undefined && r.cc.length > 0 ? { cc: r.cc } : {}),
  ...(r.bcc !== undefined && r.bcc.length > 0 ? { bcc: r.bcc } : {}),
});

/** Recipients split by the suppression list: those to send to, and those dropped. */
export interface Screened {
  readonly kept: Recipients;
  readonly suppressed: readonly EmailAddress[];
}

/**
 * Splits the recipients of `r` into those on `list` and the rest, in one look-up by mailbox key,
 * so `info@Bücher.de` is found under `info@xn--bcher-kva.de`. Without a list nothing is dropped.
 */
export function screenRecipients(
  list: SuppressionList | undefined,
  r: Recipients,
  domainToAscii?: DomainToAscii,
): TE.TaskEither<StoreUnavailable, Screened> {
  return () => screen(list, r, domainToAscii);
}

/** `screenRecipients`, run: plain async code, since every accepted email passes here. */
async function screen(
  list: SuppressionList | undefined,
  r: Recipients,
  domainToAscii?: DomainToAscii,
): Promise<E.Either<StoreUnavailable, Screened>> {
  if (list === undefined) return E.right({ kept: recipientFields(r), suppressed: [] });
  const everyone = allRecipients(r);
  // Each address's key worked out once: it is looked up, then asked about for every field.
  const keys = everyone.map((a) => mailboxKey(a, domainToAscii));
  const found = await list.suppressed(keys.length === 1 ? keys : [...new Set(keys)])();
  if (E.isLeft(found)) return found;
  // Nobody listed (the usual case): the fields as they came.
  if (found.right.size === 0) return E.right({ kept: recipientFields(r), suppressed: [] });
  const keyOf = new Map(everyone.map((a, i) => [a, keys[i]!]));
  const isListed = (a: EmailAddress): boolean => found.right.has(keyOf.get(a)!);
  const keep = (field: readonly EmailAddress[] = []) => field.filter((a) => !isListed(a));
  const suppressed = everyone.filter(isListed);
  return E.right({
    kept:
      suppressed.length === 0
        ? recipientFields(r)
        : recipientFields({ to: keep(r.to), cc: keep(r.cc), bcc: keep(r.bcc) }),
    suppressed,
  });
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
  /** Recipients never sent to; without it, nobody is suppressed. */
  readonly suppressions?: SuppressionList;
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
    // Plain async code rather than a pipe: this runs for every request the API accepts, and each
    // step of a pipe costs closures and promises of its own.
    return async () => {
      const draft = this.prepare(input);
      if (E.isLeft(draft)) return draft;
      return idempotencyKey === undefined
        ? this.accepting(draft.right, this.ids.next(), 'refuse')
        : this.enqueueOnce(draft.right, idempotencyKey)();
    };
  }

  /**
   * Every rule a request must pass before anything is stored: its fields, and the size of the
   * message it makes. For a batch, which checks every email before accepting any.
   */
  prepare(input: unknown): E.Either<InvalidEmailRequest | MessageTooLarge, EmailDraft> {
    const { allowedFromDomains = [], domainToAscii, maxMessageBytes } = this.options;
    const draft = parseEmailDraft(input, {
      now: this.clock.now(),
      allowedFromDomains,
      ...(domainToAscii !== undefined ? { domainToAscii } : {}),
    });
    if (E.isLeft(draft)) return draft;
    const size = encodedSizeOf(draft.right);
    const limit = maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    return size > limit ? E.left({ _tag: 'MessageTooLarge', size, limit }) : draft;
  }

  /**
   * Accepts a prepared draft under `id`: the recipients on the suppression list dropped, its
   * files stored, recorded, then queued (or held until its `sendAt`), then announced. Recorded
   * before it is published, so a worker never finds a task the log does not know; a publish the
   * queue refused is forgotten again, since the client hears 503 and it never was.
   *
   * For a batch, where one email cannot refuse the rest: an email whose every recipient is
   * suppressed is recorded as `suppressed` and never queued. One email alone is refused instead.
   */
  accept(
    draft: EmailDraft,
    id: EmailId,
  ): TE.TaskEither<QueueUnavailable | StoreUnavailable, Accepted> {
    return () => this.accepting(draft, id, 'record');
  }

  /**
   * Accepts `draft` under `id` as a resend of email `resendOf` (an operator's "Resend", see
   * ResendEmail): as `execute` accepts a request, recipients on the suppression list dropped and
   * nobody left refused, and its accepted event names `resendOf`, which the new email's status
   * keeps. The draft should have passed `prepare`.
   */
  resend(
    draft: EmailDraft,
    id: EmailId,
    resendOf: EmailId,
  ): TE.TaskEither<QueueUnavailable | StoreUnavailable | AllRecipientsSuppressed, Accepted> {
    return this.acceptOrRefuse(draft, id, resendOf);
  }

  /** As `accept`, but an email whose every To recipient is suppressed is refused, nothing kept. */
  private acceptOrRefuse(
    draft: EmailDraft,
    id: EmailId,
    resendOf?: EmailId,
  ): TE.TaskEither<QueueUnavailable | StoreUnavailable | AllRecipientsSuppressed, Accepted> {
    return () => this.accepting(draft, id, 'refuse', resendOf);
  }

  /**
   * `accept` (`nobodyLeft` = 'record') and `acceptOrRefuse` ('refuse'), run: the draft screened,
   * then stored and queued under `id`, or, with every recipient suppressed, recorded as such or
   * refused.
   */
  private accepting(
    draft: EmailDraft,
    id: EmailId,
    nobodyLeft: 'record',
  ): Promise<E.Either<QueueUnavailable | StoreUnavailable, Accepted>>;
  private accepting(
    draft: EmailDraft,
    id: EmailId,
    nobodyLeft: 'refuse',
    resendOf?: EmailId,
  ): Promise<E.Either<QueueUnavailable | StoreUnavailable | AllRecipientsSuppressed, Accepted>>;
  private async accepting(
    draft: EmailDraft,
    id: EmailId,
    nobodyLeft: 'record' | 'refuse',
    resendOf?: EmailId,
  ): Promise<E.Either<QueueUnavailable | StoreUnavailable | AllRecipientsSuppressed, Accepted>> {
    const screened = await screen(this.options.suppressions, draft, this.options.domainToAscii);
    if (E.isLeft(screened)) return screened;
    const { kept, suppressed } = screened.right;
    // An email needs a To: with every To recipient on the list it is not sent at all, its Cc and
    // Bcc with it, rather than sent without a To field (which Mailgun's API refuses, and which
    // the recipients left would see as an email addressed to nobody).
    if (kept.to.length === 0) {
      return nobodyLeft === 'refuse'
        ? E.left({ _tag: 'AllRecipientsSuppressed', suppressed })
        : this.recordSuppressed(draft, id, suppressed)();
    }
    const addressed = addressedTo(draft, kept);
    const files = addressed.attachments ?? [];
    let refs: readonly AttachmentRef[] = [];
    if (files.length > 0) {
      const stored = await this.storeAttachments(addressed, id)();
      if (E.isLeft(stored)) return stored;
      refs = stored.right;
    }
    return this.enqueue(
      toEmailRequest(addressed, id, this.clock.now(), refs),
      suppressed,
      resendOf,
    );
  }

  /**
   * An email of a batch with nobody left to send to: kept whole in the log (its request can be
   * shown, and sent again once the list allows), settled as `suppressed` at once, never queued.
   */
  private recordSuppressed(
    draft: EmailDraft,
    id: EmailId,
    suppressed: readonly EmailAddress[],
  ): TE.TaskEither<StoreUnavailable, Accepted> {
    return pipe(
      this.storeAttachments(draft, id),
      TE.map((refs) => toEmailRequest(draft, id, this.clock.now(), refs)),
      TE.flatMap((request) => {
        const settled: EmailSuppressed = {
          type: 'EmailSuppressed',
          id,
          at: this.clock.now().toISOString(),
          ...recipientsOf(request),
          subject: request.subject,
          suppressed,
        };
        return pipe(
          this.emails.record(request),
          TE.flatMap(() => this.emails.apply(settled)),
          TE.orElse((refused) => this.forgetThen(id, refused)),
          TE.tap(() => TE.fromTask(this.events.publish(acceptedEvent(request)))),
          TE.tap(() => TE.fromTask(this.events.publish(settled))),
          TE.map((): Accepted => ({ id, repeated: false, status: 'suppressed', suppressed })),
        );
      }),
    );
  }

  /** Forgets `id` again (the client is told it never was), then answers `error`. */
  private forgetThen<L, A>(id: EmailId, error: L): TE.TaskEither<L, A> {
    return pipe(
      this.emails.forget(id),
      T.map(() => E.left<L, A>(error)),
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

  private async enqueue(
    request: EmailRequest,
    suppressed: readonly EmailAddress[],
    resendOf?: EmailId,
  ): Promise<E.Either<QueueUnavailable | StoreUnavailable, Accepted>> {
    const scheduled = request.sendAt !== undefined;
    const accepted = acceptedEvent(request, suppressed, resendOf);
    const recorded = await this.record(request, accepted)();
    if (E.isLeft(recorded)) return recorded;
    const queued: E.Either<QueueUnavailable | StoreUnavailable, void> = await (
      scheduled ? this.hold(request) : this.queue.publish(request)
    )();
    if (E.isLeft(queued)) {
      await this.emails.forget(request.id)();
      return queued;
    }
    await this.events.publish(accepted)();
    return E.right({
      id: request.id,
      repeated: false,
      status: scheduled ? ('scheduled' as const) : ('queued' as const),
      ...(suppressed.length > 0 ? { suppressed } : {}),
    });
  }

  /**
   * Records the request, and the recipients dropped from it. The log's `record` builds the first
   * status from the request alone, which no longer names them (nor the email it resends); so the
   * entry is begun by the accepted event, which lists them as `suppressed` (and names
   * `resendOf`), and `record` completes it with the request, as it does when a worker's event
   * got there first.
   */
  private record(
    request: EmailRequest,
    accepted: EmailRequested | EmailScheduled,
  ): TE.TaskEither<StoreUnavailable, void> {
    if (accepted.suppressed === undefined && accepted.resendOf === undefined) {
      return this.emails.record(request);
    }
    return pipe(
      this.emails.request(request.id),
      TE.flatMap(
        O.match(
          () =>
            pipe(
              this.emails.apply(accepted),
              TE.flatMap(() => this.emails.record(request)),
              TE.orElse((refused) => this.forgetThen<StoreUnavailable, void>(request.id, refused)),
            ),
          // An abandoned key taken over under the same id: recorded already, and as `record`
          // would, this changes nothing (a second accepted event would add to its history).
          () => TE.right<StoreUnavailable, void>(undefined),
        ),
      ),
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
            return this.repeat(draft, claim.id, { id: claim.id, repeated: true, status });
          case 'Conflict':
            return TE.left({ _tag: 'IdempotencyConflict', reason: claim.reason });
          case 'New':
            return pipe(
              this.acceptOrRefuse(draft, claim.id),
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
   * The answer to a repeat of a batch's item: `draft`, accepted before under `id`. An item the
   * log holds as `suppressed` (recorded so at acceptance, every To recipient on the list; or so
   * settled by a worker since, which sends it no more than the batch did) is answered
   * `suppressed`, naming the recipients on the list as it is now: the log keeps the outcome, not
   * the list it was read from. Any other item as `repeat` answers a single email.
   */
  repeatItem(draft: EmailDraft, id: EmailId): TE.TaskEither<StoreUnavailable, Accepted> {
    const status = draft.sendAt === undefined ? ('queued' as const) : ('scheduled' as const);
    const answer: Accepted = { id, repeated: true, status };
    // Without a suppression list nobody was dropped and no item was suppressed: nothing to read.
    if (this.options.suppressions === undefined) return TE.right(answer);
    return async () => {
      const found = await this.emails.get(id)();
      if (E.isLeft(found)) return found;
      if (found.right._tag === 'None' || found.right.value.status !== 'suppressed') {
        return this.repeat(draft, id, answer)();
      }
      const screened = await screen(this.options.suppressions, draft, this.options.domainToAscii);
      if (E.isLeft(screened)) return screened;
      const { suppressed } = screened.right;
      return E.right({
        ...answer,
        status: 'suppressed',
        ...(suppressed.length > 0 ? { suppressed } : {}),
      });
    };
  }

  /**
   * A repeat is answered as the first time, the recipients dropped then included: those of the
   * draft the recorded request no longer names. (Looked up again, the list might say otherwise.)
   */
  private repeat(
    draft: EmailDraft,
    id: EmailId,
    answer: Accepted,
  ): TE.TaskEither<StoreUnavailable, Accepted> {
    if (this.options.suppressions === undefined) return TE.right(answer);
    const key = (address: EmailAddress): string => mailboxKey(address, this.options.domainToAscii);
    return pipe(
      this.emails.request(id),
      TE.map(
        O.match(
          () => answer,
          (request) => {
            const kept = new Set(allRecipients(request).map(key));
            const dropped = allRecipients(draft).filter((a) => !kept.has(key(a)));
            return dropped.length > 0 ? { ...answer, suppressed: dropped } : answer;
          },
        ),
      ),
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
