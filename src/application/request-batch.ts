import { canonicalJson } from '../domain/canonical-json.js';
import { pipe } from 'fp-ts/lib/function.js';
import * as E from 'fp-ts/lib/Either.js';
import * as T from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailDraft, FieldErrors } from '../domain/email-request.js';
import { EmailId } from '../domain/email-request.js';
import type { StoreUnavailable } from './ports/email-log.js';
import type { QueueUnavailable } from './ports/email-queue.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { Clock, IdGenerator, Logger } from './ports/system.js';
import type { Accepted, IdempotencyConflict, RequestEmail } from './request-email.js';
import { completeKey } from './request-email.js';

/** Emails one batch may hold. */
export const MAX_BATCH = 100;

/** What is wrong with item `index` of a batch, field by field, as for one email. */
export interface BatchItemErrors {
  readonly index: number;
  readonly fields: FieldErrors;
}

/** Nothing was stored or queued: the batch as a whole, or some of its emails, is not valid. */
export interface InvalidBatch {
  readonly _tag: 'InvalidBatch';
  /** The batch itself is wrong (not a list, empty, too long): its items were not looked at. */
  readonly problem?: string;
  /** Every invalid item, by index, in order. */
  readonly errors: readonly BatchItemErrors[];
}

/**
 * Item `accepted.length` could not be queued. The ones before it stay accepted (nothing is
 * undone: they may already be sent); it and the ones after it were not.
 */
export interface BatchInterrupted {
  readonly _tag: 'BatchInterrupted';
  readonly accepted: readonly Accepted[];
  readonly error: QueueUnavailable | StoreUnavailable;
}

/**
 * A repeat of a batch accepted before (its key and emails): every email of it stays accepted
 * under `ids`, but the log could not be read to answer each as the first time (503, to repeat).
 */
export interface RepeatUnreadable {
  readonly _tag: 'RepeatUnreadable';
  readonly ids: readonly EmailId[];
  readonly error: StoreUnavailable;
}

export type RequestBatchError =
  InvalidBatch | BatchInterrupted | IdempotencyConflict | RepeatUnreadable;

/** The driving port for batches, as `EmailRequester` is for one email: the HTTP adapter's. */
export interface BatchRequester {
  execute(
    inputs: unknown,
    idempotencyKey?: string,
  ): TE.TaskEither<RequestBatchError, readonly Accepted[]>;
}

const BATCH_PROBLEM = `must be a list of 1 to ${MAX_BATCH} emails`;

/**
 * Accepts up to `MAX_BATCH` emails in one request: every one is checked before any is stored, so
 * an invalid batch leaves nothing behind; then each is accepted in order, as `RequestEmail` does.
 */
export class RequestBatch implements BatchRequester {
  constructor(
    private readonly requestEmail: Pick<RequestEmail, 'prepare' | 'accept' | 'repeatItem'>,
    private readonly idempotency: IdempotencyStore,
    private readonly ids: IdGenerator,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  execute(
    inputs: unknown,
    idempotencyKey?: string,
  ): TE.TaskEither<RequestBatchError, readonly Accepted[]> {
    return pipe(
      TE.fromEither(this.prepare(inputs)),
      TE.flatMap((drafts) =>
        idempotencyKey === undefined
          ? this.acceptAll(
              drafts,
              drafts.map(() => this.ids.next()),
            )
          : this.acceptOnce(drafts, idempotencyKey),
      ),
    );
  }

  private prepare(inputs: unknown): E.Either<InvalidBatch, readonly EmailDraft[]> {
    if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_BATCH) {
      const problem = Array.isArray(inputs)
        ? `${BATCH_PROBLEM}; it has ${inputs.length}`
        : BATCH_PROBLEM;
      return E.left({ _tag: 'InvalidBatch', problem, errors: [] });
    }
    const drafts: EmailDraft[] = [];
    const errors: BatchItemErrors[] = [];
    inputs.forEach((input: unknown, index) => {
      const prepared = this.requestEmail.prepare(input);
      if (E.isRight(prepared)) drafts.push(prepared.right);
      else if (prepared.left._tag === 'InvalidEmailRequest') {
        errors.push({ index, fields: prepared.left.fields });
      } else {
        // One email too large is one invalid item: the batch is refused whole, as for any other.
        const { size, limit } = prepared.left;
        errors.push({
          index,
          fields: {
            size: `the encoded message would be about ${size} bytes, over the limit of ${limit} bytes: send smaller or fewer attachments`,
          },
        });
      }
    });
    return errors.length > 0 ? E.left({ _tag: 'InvalidBatch', errors }) : E.right(drafts);
  }

  /** Accepts each draft in order under its id, stopping at the first that cannot be queued. */
  private acceptAll(
    drafts: readonly EmailDraft[],
    ids: readonly EmailId[],
  ): TE.TaskEither<BatchInterrupted, readonly Accepted[]> {
    return async () => {
      const accepted: Accepted[] = [];
      for (const [index, draft] of drafts.entries()) {
        const id = ids[index];
        if (id === undefined) throw new Error('a batch was given fewer ids than emails');
        const result = await this.requestEmail.accept(draft, id)();
        if (E.isLeft(result)) {
          return E.left({ _tag: 'BatchInterrupted', accepted, error: result.left });
        }
        accepted.push(result.right);
      }
      return E.right(accepted);
    };
  }

  /**
   * One key for the whole batch: its payload is every draft, so a repeat is the same emails in
   * the same order, and the items' ids derive from the claimed id, so a repeat (or a takeover of
   * an abandoned claim) names the same emails again.
   */
  private acceptOnce(
    drafts: readonly EmailDraft[],
    key: string,
  ): TE.TaskEither<RequestBatchError, readonly Accepted[]> {
    const itemIds = (id: EmailId): readonly EmailId[] => drafts.map((_, i) => itemId(id, i));
    return pipe(
      this.idempotency.claim(key, canonicalJson(drafts), this.ids.next(), this.clock.now()),
      TE.mapLeft((error): RequestBatchError => ({ _tag: 'BatchInterrupted', accepted: [], error })),
      TE.flatMap((claim): TE.TaskEither<RequestBatchError, readonly Accepted[]> => {
        switch (claim._tag) {
          case 'Repeat':
            // Answered as the first time: each item's status and the recipients it dropped.
            return pipe(
              TE.sequenceSeqArray(
                itemIds(claim.id).map((id, i) => this.requestEmail.repeatItem(drafts[i]!, id)),
              ),
              TE.mapLeft((error): RequestBatchError => ({
                _tag: 'RepeatUnreadable',
                ids: itemIds(claim.id),
                error,
              })),
            );
          case 'Conflict':
            return TE.left({ _tag: 'IdempotencyConflict', reason: claim.reason });
          case 'New':
            return pipe(
              this.acceptAll(drafts, itemIds(claim.id)),
              TE.orElse((interrupted) =>
                pipe(
                  this.settleInterrupted(key, interrupted),
                  T.map(() => E.left<RequestBatchError, readonly Accepted[]>(interrupted)),
                ),
              ),
              TE.tap(() => TE.fromTask(this.completeKey(key, claim.id))),
            );
        }
      }),
    );
  }

  /**
   * Nothing accepted: the key is released, and a retry starts afresh. Some accepted: the key is
   * left in progress, neither released (a retry would queue them again under new ids) nor
   * completed (a repeat would claim the rest were accepted). A retry with the same key and body
   * is refused as in progress for a while, then takes the claim over with the same ids: the
   * accepted emails are recorded already, and the delivery ledger sends an id once.
   */
  private settleInterrupted(key: string, interrupted: BatchInterrupted): T.Task<void> {
    if (interrupted.accepted.length > 0) {
      this.log.warn(
        {
          accepted: interrupted.accepted.map((a) => a.id),
          reason: interrupted.error.reason,
        },
        'Batch interrupted: the emails accepted before it stay accepted; its key stays in progress',
      );
      return T.of(undefined);
    }
    return pipe(
      this.idempotency.release(key),
      T.map(() => undefined),
    );
  }

  /** As for one email: the batch is accepted whatever happens here; never report otherwise. */
  private completeKey(key: string, id: EmailId): T.Task<void> {
    return completeKey(this.idempotency, this.log, key, { batchId: id }, 'Batch accepted');
  }
}

/** `<claimed id>-<index>`; the generator's ids leave room for it (22 of 64 characters). */
function itemId(id: EmailId, index: number): EmailId {
  const derived = `${id}-${index}`;
  if (!EmailId.is(derived)) throw new Error(`the batch id ${id} leaves no room for item ids`);
  return derived;
}
