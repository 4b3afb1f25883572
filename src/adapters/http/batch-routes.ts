import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context } from 'koa';
import { IN_PROGRESS_TIMEOUT_MS } from '../../application/ports/idempotency-store.js';
import type { Logger } from '../../application/ports/system.js';
import type { BatchRequester, RequestBatchError } from '../../application/request-batch.js';
import type { Accepted } from '../../application/request-email.js';
import type { Guards } from './access.js';
import type { AcceptedBody } from './api-routes.js';
import { acceptedBody, idempotencyKeyOf, requireJson, jsonBody } from './api-routes.js';
import type { ApiErrorBody, Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, requestEmailProblem, sendProblem } from './errors.js';
import { summarisedWarn } from '../logging/summarised.js';

export interface BatchRoutesOptions {
  readonly requestBatch: BatchRequester;
  readonly guards: Guards;
  /** The same limit as for one email: a batch of large emails is sent in several batches. */
  readonly bodyLimitBytes: number;
  readonly log: Logger;
}

/** As for `POST /emails`: visible ASCII, stored and compared as it is. */

export interface AcceptedBatchBody {
  readonly data: readonly AcceptedBody[];
}

/** The 503 of an interrupted batch: the error body, plus the emails that stay accepted. */
export interface InterruptedBatchBody extends ApiErrorBody {
  readonly error: ApiErrorBody['error'] & { readonly accepted: AcceptedBatchBody['data'] };
}

const asData = (accepted: readonly Accepted[]): AcceptedBatchBody['data'] =>
  accepted.map(acceptedBody);

/** What stays accepted, by index and id, and how to send the rest without sending any twice. */
function interruptedMessage(accepted: readonly Accepted[], keyed: boolean): string {
  if (accepted.length === 0) return 'No email of the batch was accepted.';
  const which = accepted.length === 1 ? 'Email 0 was' : `Emails 0 to ${accepted.length - 1} were`;
  const retry = keyed
    ? `Send only the rest again, as a new batch, or repeat this request with the same Idempotency-Key after ${IN_PROGRESS_TIMEOUT_MS / 1000} seconds: the accepted ones keep their ids and are sent once.`
    : 'Send only the rest again, as a new batch.';
  return `${which} accepted and stay${accepted.length === 1 ? 's' : ''} accepted (${accepted.map((a) => a.id).join(', ')}); email ${accepted.length} and the ones after it were not. ${retry}`;
}

/**
 * Item errors are flattened into the one error body of the API: `fields` keyed `<index>.<field>`
 * (`0.to`, `2.attachments[1].content`); a problem with the batch itself is keyed `body`.
 */
export function batchProblem(error: RequestBatchError, keyed: boolean): Problem {
  switch (error._tag) {
    case 'InvalidBatch': {
      const fields: Record<string, string> = {};
      if (error.problem !== undefined) fields.body = error.problem;
      for (const { index, fields: item } of error.errors) {
        for (const [field, message] of Object.entries(item)) fields[`${index}.${field}`] = message;
      }
      const indexes = error.errors.map((e) => e.index);
      return {
        status: 400,
        code: 'invalid_request',
        title: 'The batch is not valid',
        message:
          error.problem !== undefined
            ? `The body ${error.problem}; nothing was accepted.`
            : `Email${indexes.length > 1 ? 's' : ''} ${indexes.join(', ')} of the batch ${indexes.length > 1 ? 'are' : 'is'} not valid (see fields, keyed <index>.<field>); nothing was accepted.`,
        fields,
      };
    }
    case 'BatchInterrupted': {
      const single = requestEmailProblem(error.error);
      return {
        status: 503,
        code: single.code,
        title: 'The batch was not accepted whole',
        message: `${interruptedMessage(error.accepted, keyed)} ${single.message}`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
    }
    case 'IdempotencyConflict':
      return requestEmailProblem(error);
    case 'RepeatUnreadable':
      return {
        status: 503,
        code: requestEmailProblem(error.error).code,
        title: 'The batch was accepted before; its answer could not be read',
        message: `This Idempotency-Key and these emails were accepted before, and every email of the batch stays accepted (${error.ids.join(', ')}); their states could not be read just now to answer as the first time. Repeat this request in a few seconds; do not send the emails again without the key.`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
  }
}

/** `POST /emails/batch`: mount before any `/emails/:id` route, so `batch` is never an id. */
export function mountBatchRoutes(router: Router, options: BatchRoutesOptions): void {
  const { requestBatch, guards, bodyLimitBytes, log } = options;
  // A batch refused whole (an outage) is one line a period; one cut short after some emails
  // were accepted is logged each time, naming them.
  const notQueued = summarisedWarn(log, 'Batch request answered 503');

  router.post(
    `${API_ROUTE}accept-batch`,
    '/emails/batch',
    guards.key('send'),
    requireJson('the batch: a list of emails'),
    jsonBody(bodyLimitBytes),
    async function acceptBatch(ctx: Context): Promise<void> {
      const key = idempotencyKeyOf(ctx);
      if (E.isLeft(key)) return sendProblem(ctx, key.left);
      const result = await requestBatch.execute(ctx.request.body, key.right)();
      if (E.isLeft(result)) {
        const problem = batchProblem(result.left, key.right !== undefined);
        sendProblem(ctx, problem);
        const partial = result.left._tag === 'BatchInterrupted' && result.left.accepted.length > 0;
        if (partial) log.warn({ error: result.left }, 'Batch not queued whole');
        else if (problem.status >= 500) notQueued({ error: result.left });
        if (result.left._tag === 'BatchInterrupted') {
          // The accepted ones by id, for a program to read, besides the message for a person.
          const interrupted: InterruptedBatchBody = {
            error: {
              code: problem.code,
              message: problem.message,
              accepted: asData(result.left.accepted),
            },
          };
          ctx.body = interrupted;
        }
        return;
      }
      const body: AcceptedBatchBody = { data: asData(result.right) };
      ctx.status = 202;
      ctx.set('Cache-Control', 'no-store');
      if (result.right.some((a) => a.repeated)) ctx.set('Idempotent-Replayed', 'true');
      ctx.body = body;
    },
  );
}
