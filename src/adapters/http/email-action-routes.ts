import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { Context, Next } from 'koa';
import type { EmailLog } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import type { ResendEmail, ResendEmailError } from '../../application/resend-email.js';
import type { RetryNow, RetryNowError } from '../../application/retry-now.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import type { Guards } from './access.js';
import type { EmailCanceller } from './cancel-routes.js';
import { cancelEmailProblem } from './cancel-routes.js';
import type { Csrf } from './csrf.js';
import { csrfRejectionMessages } from './csrf.js';
import type { DoneNotice, EmailAction } from './email-message.js';
import { ACTION_APPLIES, actionPath, actionProblemPage, confirmPage } from './email-message.js';
import { RETRY_AFTER_SECONDS, requestEmailProblem } from './errors.js';
import { urlencodedBody } from './form-routes.js';
import type { Account } from './html.js';

/** Where "Retry now" goes: `RetryNow` is one. */
export type RetryNowAction = Pick<RetryNow, 'execute'>;
/** Where "Resend" goes: `ResendEmail` is one. */
export type ResendAction = Pick<ResendEmail, 'execute'>;

export interface EmailActionRoutesOptions {
  readonly emails: Pick<EmailLog, 'get'>;
  readonly csrf: Csrf;
  readonly guards: Guards;
  readonly log: Logger;
  /** "Cancel" for a scheduled email; without it, not offered. */
  readonly cancelEmail?: EmailCanceller;
  /** "Retry now" for a retrying email; without it, not offered. */
  readonly retryNow?: RetryNowAction;
  /** "Resend" for a failed, bounced, suppressed or cancelled email; without it, not offered. */
  readonly resendEmail?: ResendAction;
}

/** The forms post a token and a nonce: a few hundred bytes. */
const FORM_LIMIT_BYTES = 16_384;
const FORM_NONCE = /^[A-Za-z0-9_-]{22,64}$/;

/** What an action that was not done says: the answer's status and the page's words. */
interface Refusal {
  readonly status: number;
  readonly title: string;
  readonly message: string;
  readonly retryAfterSeconds?: number;
}

/** A resend posted without its confirmation page's one-time number (`_nonce`). */
const INCOMPLETE_RESEND: Refusal = {
  status: 400,
  title: 'The form was incomplete',
  message:
    'The form was incomplete, so nothing was resent. Open the email’s Resend page again and press Resend there.',
};

/** What an action did: the email whose page comes next, and the notice it shows. */
interface Done {
  readonly id: string;
  readonly done: DoneNotice;
}

const NOT_FOUND: Refusal = {
  status: 404,
  title: 'Email not found',
  message: 'No email with this id is known here.',
};

const storeDown = (reason: string): Refusal => ({
  status: 503,
  title: 'The email log is not available',
  message: `The email log did not answer (${reason}); nothing was changed. Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

const NOT_POSSIBLE: Readonly<Record<EmailAction, (s: EmailStatus) => string>> = {
  cancel: (s) =>
    s.sendAt !== undefined
      ? `Too late to cancel: sending began (the email is ${s.status}).`
      : `Only a scheduled email can be cancelled: this one was sent at once (it is ${s.status}).`,
  retry: (s) =>
    `Only an email waiting for its next attempt (retrying) can be retried now: this one is ${s.status}.`,
  resend: (s) =>
    `Only a failed, bounced, suppressed or cancelled email can be resent: this one is ${s.status}.`,
};

const TITLES: Readonly<Record<EmailAction, string>> = {
  cancel: 'The email was not cancelled',
  retry: 'The email was not retried',
  resend: 'The email was not resent',
};

function retryRefusal(error: RetryNowError): Refusal {
  const title = TITLES.retry;
  switch (error._tag) {
    case 'NotFound':
      return NOT_FOUND;
    case 'NotRetrying':
      return {
        status: 409,
        title,
        message: `Not possible any more: it is ${error.status}, no longer waiting for its next attempt.`,
      };
    case 'NotWaiting':
      return {
        status: 409,
        title,
        message: `Attempt ${error.attempt} is being made right now (its time came): nothing was changed.`,
      };
    case 'RequestGone':
      return {
        status: 409,
        title,
        message: 'Its message is no longer kept, so there is nothing to send.',
      };
    case 'QueueUnavailable':
      return {
        status: 503,
        title,
        message: `The queue did not answer (${error.reason}); nothing was changed. Try again in a few seconds.`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
    case 'StoreUnavailable':
      return storeDown(error.reason);
  }
}

function resendRefusal(error: ResendEmailError): Refusal {
  const title = TITLES.resend;
  switch (error._tag) {
    case 'NotFound':
      return NOT_FOUND;
    case 'NotResendable':
      return {
        status: 409,
        title,
        message: `Not possible: only a failed, bounced, suppressed or cancelled email can be resent, and this one is ${error.status}.`,
      };
    case 'RequestGone':
      return {
        status: 409,
        title,
        message: 'Its message is no longer kept, so there is nothing to resend.',
      };
    case 'AttachmentGone':
      return {
        status: 409,
        title,
        message: `Its attachment ${error.filename} is no longer stored, so it cannot be resent as it was.`,
      };
    case 'NoLongerValid': {
      const problem = requestEmailProblem(error.problem);
      const fields = Object.entries(problem.fields ?? {})
        .map(([field, why]) => `${field} ${why}`)
        .join('; ');
      return {
        status: 409,
        title,
        message: `It no longer passes this service's rules, so nothing was sent: ${fields !== '' ? fields : problem.message}`,
      };
    }
    case 'AllRecipientsSuppressed':
      return {
        status: 409,
        title,
        message: `Every To recipient is on the suppression list now (${error.suppressed.join(', ')}), so nothing was sent (an email needs a To). An address removed from the list can be sent to again.`,
      };
    case 'IdempotencyConflict':
      return {
        status: 409,
        title,
        message:
          'This resend is being made right now: open the email’s page again in a moment to find the new email.',
      };
    case 'QueueUnavailable':
    case 'StoreUnavailable':
      return {
        status: 503,
        title,
        message: `${requestEmailProblem(error).title}: nothing was sent. Try again in a few seconds.`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
  }
}

/** Forms come url-encoded; anything else is refused before it is read. */
async function requireUrlEncoded(ctx: Context, next: Next): Promise<void> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    ctx.status = 415;
    ctx.type = 'text/plain';
    ctx.body = 'The form must be sent as application/x-www-form-urlencoded.';
    return;
  }
  await next();
}

const formField = (ctx: Context, name: string): unknown => {
  const body: unknown = ctx.request.body;
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)[name]
    : undefined;
};

/**
 * The actions on an email's page, each a confirmation page (`GET /emails/{id}/cancel`, `…/retry`,
 * `…/resend`) and the action itself (`POST` of the same path, with the CSRF token; the resend
 * form also with a one-time nonce, so that posting it twice sends one new email). Both need the
 * `send` scope a signed-in operator has (open in `email dev` on loopback). The action ends with
 * a 303 to the email's page (the new email's, for a resend) and a notice; an action that is not
 * possible (any more) is a page that says why, 409; an unknown email 404; a store or the queue
 * away 503. Nothing here is JSON: programs cancel with `DELETE /emails/{id}`.
 */
export function mountEmailActionRoutes(router: Router, options: EmailActionRoutesOptions): void {
  const { emails, csrf, guards, log, cancelEmail, retryNow, resendEmail } = options;

  const account = (ctx: Context): Account | undefined => {
    const operator = guards.operator(ctx);
    return operator === undefined
      ? undefined
      : { operator, csrfToken: csrf.issue(csrf.ensureSession(ctx)) };
  };

  const refuse = (ctx: Context, refusal: Refusal, id?: string): void => {
    ctx.status = refusal.status;
    if (refusal.retryAfterSeconds !== undefined) {
      ctx.set('Retry-After', String(refusal.retryAfterSeconds));
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    const who = account(ctx);
    ctx.body = actionProblemPage({
      title: refusal.title,
      message: refusal.message,
      back:
        id !== undefined && refusal.status !== 404
          ? { href: `/emails/${id}`, label: 'Back to the email' }
          : { href: '/emails', label: 'To the list of emails' },
      ...(who ? { account: who } : {}),
    });
  };

  /** The email `ctx` names, or undefined once a refusal is sent. */
  const emailOf = async (ctx: Context): Promise<EmailStatus | undefined> => {
    const id: unknown = ctx.params.id;
    if (!EmailId.is(id)) {
      refuse(ctx, NOT_FOUND);
      return undefined;
    }
    const found = await emails.get(id)();
    if (E.isLeft(found)) {
      refuse(ctx, storeDown(found.left.reason), id);
      return undefined;
    }
    if (O.isNone(found.right)) {
      refuse(ctx, NOT_FOUND);
      return undefined;
    }
    return found.right.value;
  };

  const mount = (
    action: EmailAction,
    run: (ctx: Context, id: EmailId) => Promise<E.Either<Refusal, Done>>,
  ): void => {
    const path = actionPath(':id', action);

    router.get(path, guards.page('send'), async function confirmAction(ctx: Context) {
      const status = await emailOf(ctx);
      if (status === undefined) return;
      if (!ACTION_APPLIES[action](status)) {
        return refuse(
          ctx,
          { status: 409, title: TITLES[action], message: NOT_POSSIBLE[action](status) },
          status.id,
        );
      }
      const who = account(ctx);
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'html';
      ctx.body = confirmPage({
        action,
        status,
        csrfToken: csrf.issue(csrf.ensureSession(ctx)),
        ...(action === 'resend' ? { nonce: randomBytes(16).toString('base64url') } : {}),
        ...(who ? { account: who } : {}),
      });
    });

    router.post(
      path,
      guards.page('send'),
      requireUrlEncoded,
      urlencodedBody(FORM_LIMIT_BYTES),
      async function doAction(ctx: Context) {
        const id: unknown = ctx.params.id;
        if (!EmailId.is(id)) return refuse(ctx, NOT_FOUND);
        const verdict = csrf.verify(csrf.session(ctx), formField(ctx, '_csrf'));
        if (E.isLeft(verdict)) {
          log.warn(
            { emailId: id, action, reason: verdict.left },
            'Action refused: CSRF check failed',
          );
          return refuse(
            ctx,
            {
              status: 403,
              title: TITLES[action],
              message: `${csrfRejectionMessages[verdict.left]} Nothing was changed. Open the email’s page again and retry from there.`,
            },
            id,
          );
        }
        const outcome = await run(ctx, id);
        if (E.isLeft(outcome)) {
          if (outcome.left.status >= 500) {
            log.warn({ emailId: id, action, message: outcome.left.message }, 'Action not done');
          }
          return refuse(ctx, outcome.left, id);
        }
        ctx.set('Cache-Control', 'no-store');
        ctx.status = 303;
        ctx.redirect(`/emails/${outcome.right.id}?done=${outcome.right.done}`);
      },
    );
  };

  const settle = async <L, A>(
    task: TaskEither<L, A>,
    refusal: (error: L) => Refusal,
    done: (value: A) => Done,
  ): Promise<E.Either<Refusal, Done>> => {
    const result = await task();
    return E.isLeft(result) ? E.left(refusal(result.left)) : E.right(done(result.right));
  };

  if (cancelEmail !== undefined) {
    mount('cancel', (_ctx, id) =>
      settle(
        cancelEmail.execute(id),
        (error) => {
          const problem = cancelEmailProblem(error);
          return {
            status: problem.status,
            title: problem.status === 404 ? problem.title : TITLES.cancel,
            message: problem.message,
            ...(problem.retryAfterSeconds !== undefined
              ? { retryAfterSeconds: problem.retryAfterSeconds }
              : {}),
          };
        },
        () => ({ id, done: 'cancelled' }),
      ),
    );
  }
  if (retryNow !== undefined) {
    mount('retry', (_ctx, id) =>
      settle(retryNow.execute(id), retryRefusal, () => ({ id, done: 'retried' })),
    );
  }
  if (resendEmail !== undefined) {
    mount('resend', (ctx, id) => {
      const nonce = formField(ctx, '_nonce');
      // The confirmation page's one-time number is what makes a second press (a double click,
      // Back and resubmit) the same resend: without it every post would be a new email.
      if (typeof nonce !== 'string' || !FORM_NONCE.test(nonce)) {
        return Promise.resolve(E.left(INCOMPLETE_RESEND));
      }
      return settle(resendEmail.execute(id, nonce), resendRefusal, (resent) => ({
        id: resent.id,
        done: resent.suppressed !== undefined ? 'resent-partly' : 'resent',
      }));
    });
  }
}
