import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context } from 'koa';
import type { CancelEmail, CancelEmailError } from '../../application/cancel-email.js';
import type { Logger } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';
import type { Guards } from './access.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';

/** What the API asks of the core to cancel a scheduled email; `CancelEmail` is one. */
export type EmailCanceller = Pick<CancelEmail, 'execute'>;

export interface CancelRoutesOptions {
  readonly cancelEmail: EmailCanceller;
  readonly guards: Guards;
  readonly log: Logger;
}

export interface CancelledBody {
  readonly id: string;
  readonly status: 'cancelled';
}

const NOT_FOUND: Problem = {
  status: 404,
  code: 'not_found',
  title: 'Email not found',
  message: 'No email with this id is known here.',
};

/** What each refusal of `CancelEmail` means to a client of the API. */
export function cancelEmailProblem(error: CancelEmailError): Problem {
  switch (error._tag) {
    case 'NotFound':
      return NOT_FOUND;
    case 'NotCancellable':
      return {
        status: 409,
        code: 'not_cancellable',
        title: 'The email cannot be cancelled',
        message: error.wasScheduled
          ? `Too late to cancel: sending began (the email is ${error.status === 'scheduled' ? 'being released right now' : error.status}).`
          : `Only a scheduled email can be cancelled: this one was not scheduled (it is ${error.status}).`,
      };
    case 'StoreUnavailable':
      return {
        status: 503,
        code: 'store_unavailable',
        title: 'The email could not be cancelled',
        message: `The store did not answer (${error.reason}); nothing was changed. Try again in a few seconds.`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
  }
}

/** `DELETE /emails/:id`: cancels a scheduled email, with the `send` scope that scheduled it. */
export function mountCancelRoutes(router: Router, options: CancelRoutesOptions): void {
  const { cancelEmail, guards, log } = options;

  router.delete(
    `${API_ROUTE}cancel-email`,
    '/emails/:id',
    guards.key('send'),
    async function cancelScheduledEmail(ctx: Context): Promise<void> {
      const id: unknown = ctx.params.id;
      if (!EmailId.is(id)) return sendProblem(ctx, NOT_FOUND);
      const result = await cancelEmail.execute(id)();
      if (E.isLeft(result)) {
        const problem = cancelEmailProblem(result.left);
        if (problem.status >= 500) log.warn({ error: result.left }, 'Email not cancelled');
        return sendProblem(ctx, problem);
      }
      const body: CancelledBody = { id, status: result.right };
      ctx.set('Cache-Control', 'no-store');
      ctx.body = body;
    },
  );
}
