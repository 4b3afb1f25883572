import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { Context } from 'koa';
import { EmailId } from '../../domain/email-request.js';
import type { Guards } from './access.js';
import { RETRY_AFTER_SECONDS, sendProblem } from './errors.js';

/**
 * The exact message of email `id` as its transport gets it (or will), or none for an unknown id;
 * Left is a reason fit for a person (the store or an attachment could not be read).
 */
export type RawMessage = (id: EmailId) => TaskEither<string, O.Option<Buffer>>;

export interface RawRoutesOptions {
  readonly rawMessage: RawMessage;
  readonly guards: Guards;
}

/**
 * `GET /emails/{id}/raw`: the RFC 5322 message, `message/rfc822` (RFC 2046 §5.2.1), as a download
 * named after the id. It is built the way the worker builds it, so it is what was (or will be)
 * handed to an SMTP server or written to the outbox.
 */
export function mountRawRoutes(router: Router, options: RawRoutesOptions): void {
  const { rawMessage, guards } = options;
  router.get('/emails/:id/raw', guards.page('read'), async function raw(ctx: Context) {
    const id = ctx.params.id;
    const notFound = () =>
      sendProblem(ctx, {
        status: 404,
        code: 'not_found',
        title: 'Email not found',
        message: 'No email with this id is known here.',
      });
    if (id === undefined || !EmailId.is(id)) return notFound();
    const built = await rawMessage(id)();
    if (E.isLeft(built)) {
      return sendProblem(ctx, {
        status: 503,
        code: 'store_unavailable',
        title: 'The message could not be built',
        message: `The message could not be read (${built.left}). Try again in a few seconds.`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      });
    }
    if (O.isNone(built.right)) return notFound();
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Disposition', `attachment; filename="${id}.eml"`);
    ctx.type = 'message/rfc822';
    ctx.body = built.right.value;
  });
}
