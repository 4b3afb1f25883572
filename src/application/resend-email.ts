import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailAddress } from '../domain/email-address.js';
import type { AttachmentRef, EmailId, EmailRequest } from '../domain/email-request.js';
import type { InvalidEmailRequest } from '../domain/email-request.js';
import type { EmailStatus, StatusName } from '../domain/email-status.js';
import type { EmailResent } from '../domain/events.js';
import type { NotFound } from './cancel-email.js';
import { recordAndAnnounce } from './email-history.js';
import type { AttachmentStore } from './ports/attachment-store.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { QueueUnavailable } from './ports/email-queue.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { Clock, IdGenerator, Logger } from './ports/system.js';
import type {
  AllRecipientsSuppressed,
  IdempotencyConflict,
  MessageTooLarge,
  RequestEmail,
} from './request-email.js';
import type { RequestGone } from './retry-now.js';

/**
 * The statuses an email may be resent from: it will not be sent as it is (failed, cancelled),
 * or nobody took it (bounced, suppressed; the suppression list decides again who gets it). An
 * email on its way, or one that reached its recipients, is not sent twice by a click.
 */
export const RESENDABLE_STATUSES: readonly StatusName[] = [
  'failed',
  'bounced',
  'suppressed',
  'cancelled',
];

/** True when `status` allows a resend (see RESENDABLE_STATUSES). */
export const isResendable = (status: StatusName): boolean => RESENDABLE_STATUSES.includes(status);

/** The email's status does not allow a resend (see RESENDABLE_STATUSES): 409. */
export interface NotResendable {
  readonly _tag: 'NotResendable';
  readonly status: StatusName;
}

/**
 * The request no longer passes today's rules (ALLOWED_FROM_DOMAINS or MAX_MESSAGE_BYTES changed
 * since it was accepted): `problem` says which, as RequestEmail would. 409.
 */
export interface NoLongerValid {
  readonly _tag: 'NoLongerValid';
  readonly problem: InvalidEmailRequest | MessageTooLarge;
}

/** A file of the email is not in the attachment store any more: nothing can be resent. 409. */
export interface AttachmentGone {
  readonly _tag: 'AttachmentGone';
  readonly filename: string;
}

export type ResendEmailError =
  | NotFound
  | NotResendable
  | RequestGone
  | AttachmentGone
  | NoLongerValid
  | AllRecipientsSuppressed
  | IdempotencyConflict
  | QueueUnavailable
  | StoreUnavailable;

/** The new email: its id, whether a repeat of the same form found it, and who was dropped. */
export interface Resent {
  readonly id: EmailId;
  readonly repeated: boolean;
  /** Recipients left out because they are on the suppression list now; absent when none. */
  readonly suppressed?: readonly EmailAddress[];
}

/** What ResendEmail needs of RequestEmail: its rules, and its way of accepting a resend. */
export type ResendRequester = Pick<RequestEmail, 'prepare' | 'resend'>;

/**
 * `request` as the JSON API takes it (the names the rules speak of), its files as base64 from
 * `files`, and without `send_at`: a resend goes now.
 */
function apiInput(
  request: EmailRequest,
  files: readonly (readonly [AttachmentRef, Uint8Array])[],
): Record<string, unknown> {
  const { from, cc, bcc, replyTo, text, html, headers, tags, metadata } = request;
  return {
    ...(from !== undefined ? { from } : {}),
    to: request.to,
    ...(cc !== undefined ? { cc } : {}),
    ...(bcc !== undefined ? { bcc } : {}),
    ...(replyTo !== undefined ? { reply_to: replyTo } : {}),
    subject: request.subject,
    ...(text !== undefined ? { text } : {}),
    ...(html !== undefined ? { html } : {}),
    ...(headers !== undefined ? { headers } : {}),
    ...(tags !== undefined ? { tags } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
    ...(files.length > 0
      ? {
          attachments: files.map(([ref, bytes]) => ({
            filename: ref.filename,
            content: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
              'base64',
            ),
            ...(ref.contentType !== undefined ? { content_type: ref.contentType } : {}),
            ...(ref.contentId !== undefined ? { content_id: ref.contentId } : {}),
          })),
        }
      : {}),
  };
}

/**
 * An operator's "Resend": a new email with the same request under a new id, sent now. It goes
 * through RequestEmail, so today's rules apply (the sender's domain, the size, and the
 * suppression list: recipients on it are dropped, and with nobody left nothing is sent). The two
 * are linked both ways in the email log: the new email's accepted event names the old one
 * (`resendOf`), and `EmailResent` on the old one names the new one (`resentAs`).
 *
 * `key` (the confirmation form's one-time nonce) makes a repeated post of the same form answer
 * the email it made, through the IdempotencyStore, instead of sending a third copy.
 */
export class ResendEmail {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly requester: ResendRequester,
    private readonly emails: EmailLog,
    private readonly attachments: Pick<AttachmentStore, 'get'> | undefined,
    private readonly idempotency: IdempotencyStore,
    events: DeliveryEvents,
    private readonly ids: IdGenerator,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  execute(id: EmailId, key?: string): TE.TaskEither<ResendEmailError, Resent> {
    return pipe(
      this.resendable(id),
      TE.flatMap((request) =>
        key === undefined ? this.accept(request, this.ids.next()) : this.acceptOnce(request, key),
      ),
    );
  }

  /** The request of `id`, if its status allows a resend. */
  private resendable(id: EmailId): TE.TaskEither<ResendEmailError, EmailRequest> {
    return pipe(
      this.emails.get(id),
      TE.flatMap(
        O.match(
          (): TE.TaskEither<ResendEmailError, EmailStatus> => TE.left({ _tag: 'NotFound' }),
          (status): TE.TaskEither<ResendEmailError, EmailStatus> =>
            isResendable(status.status)
              ? TE.right(status)
              : TE.left({ _tag: 'NotResendable', status: status.status }),
        ),
      ),
      TE.flatMap(() => this.emails.request(id)),
      TE.flatMap(
        O.match(
          (): TE.TaskEither<ResendEmailError, EmailRequest> => TE.left({ _tag: 'RequestGone' }),
          (request) => TE.right(request),
        ),
      ),
    );
  }

  private acceptOnce(request: EmailRequest, key: string): TE.TaskEither<ResendEmailError, Resent> {
    // One key per email and form: the payload is the email's id, so it never conflicts.
    const claimed = `resend:${request.id}:${key}`;
    return pipe(
      this.idempotency.claim(claimed, request.id, this.ids.next(), this.clock.now()),
      TE.flatMap((claim): TE.TaskEither<ResendEmailError, Resent> => {
        switch (claim._tag) {
          case 'Repeat':
            // Linked again: the first time may have failed to tell the old email.
            return pipe(
              this.link(request, claim.id),
              T.map(() => E.right<ResendEmailError, Resent>({ id: claim.id, repeated: true })),
            );
          case 'Conflict':
            return TE.left({ _tag: 'IdempotencyConflict', reason: claim.reason });
          case 'New':
            return pipe(
              this.accept(request, claim.id),
              TE.orElse((error) =>
                pipe(
                  this.idempotency.release(claimed),
                  T.map(() => E.left<ResendEmailError, Resent>(error)),
                ),
              ),
              TE.tap(() =>
                TE.fromTask(
                  pipe(
                    this.idempotency.complete(claimed),
                    T.map((done) => {
                      if (E.isLeft(done)) {
                        this.log.warn(
                          { emailId: claim.id, reason: done.left.reason },
                          'Email resent, but its idempotency key could not be marked complete',
                        );
                      }
                    }),
                  ),
                ),
              ),
            );
        }
      }),
    );
  }

  /** Its files loaded, checked by today's rules, accepted under `newId`, and linked. */
  private accept(request: EmailRequest, newId: EmailId): TE.TaskEither<ResendEmailError, Resent> {
    return pipe(
      this.files(request),
      TE.flatMap((files) =>
        pipe(
          TE.fromEither(this.requester.prepare(apiInput(request, files))),
          TE.mapLeft((problem): ResendEmailError => ({ _tag: 'NoLongerValid', problem })),
        ),
      ),
      TE.flatMap((draft) =>
        pipe(
          this.requester.resend(draft, newId, request.id),
          TE.mapLeft((e): ResendEmailError => e),
        ),
      ),
      TE.tap(() => TE.fromTask(this.link(request, newId))),
      TE.map((accepted): Resent => ({
        id: accepted.id,
        repeated: false,
        ...(accepted.suppressed !== undefined ? { suppressed: accepted.suppressed } : {}),
      })),
    );
  }

  /** The bytes of every file of `request`, in its order. */
  private files(
    request: EmailRequest,
  ): TE.TaskEither<ResendEmailError, readonly (readonly [AttachmentRef, Uint8Array])[]> {
    const refs = request.attachments ?? [];
    if (refs.length === 0) return TE.right([]);
    const store = this.attachments;
    if (store === undefined) throw new Error('ResendEmail needs the attachment store');
    return TE.traverseSeqArray((ref: AttachmentRef) =>
      pipe(
        store.get(ref.digest),
        TE.mapLeft((e): ResendEmailError => e),
        TE.flatMap(
          O.match(
            (): TE.TaskEither<ResendEmailError, readonly [AttachmentRef, Uint8Array]> =>
              TE.left({ _tag: 'AttachmentGone', filename: ref.filename }),
            (bytes) => TE.right([ref, bytes] as const),
          ),
        ),
      ),
    )(refs);
  }

  /**
   * Tells the old email it was resent. The new email is accepted whatever happens here: a log
   * that could not take the note leaves only the old page without its link (logged).
   */
  private link(old: EmailRequest, newId: EmailId): T.Task<void> {
    const event: EmailResent = {
      type: 'EmailResent',
      id: old.id,
      at: this.clock.now().toISOString(),
      to: old.to,
      ...(old.cc !== undefined ? { cc: old.cc } : {}),
      ...(old.bcc !== undefined ? { bcc: old.bcc } : {}),
      subject: old.subject,
      resentAs: newId,
    };
    return pipe(
      this.change(event),
      T.map((recorded) => {
        if (E.isLeft(recorded)) {
          this.log.error(
            { emailId: old.id, resentAs: newId, reason: recorded.left.reason },
            'Email resent, but the old email could not be told: its page does not link to the new one',
          );
        } else {
          this.log.info({ emailId: old.id, resentAs: newId }, 'Email resent as a new email');
        }
      }),
    );
  }
}
