import { PassThrough } from 'node:stream';
import type Router from '@koa/router';
import * as O from 'fp-ts/lib/Option.js';
import type { EmailStatusStore } from '../../application/ports/email-status-store.js';
import type { Logger } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import type { Problem } from './errors.js';
import { sendProblem } from './errors.js';
import { isFinalStatus } from '../../domain/email-status.js';
import { STATUS_SCRIPT, statusJson, statusPage } from './status-page.js';

export interface StatusRoutesOptions {
  readonly statuses: EmailStatusStore;
  readonly statusWaitMs: number;
  readonly log: Logger;
  /** Comment lines that keep idle proxies from closing a quiet event stream. */
  readonly heartbeatMs?: number;
}

const NOT_FOUND: Problem = {
  status: 404,
  code: 'not_found',
  title: 'Email not found',
  message: 'No email with this id is known here.',
};

/**
 * The status of `id`, waiting up to `waitMs` for an id not known yet: the projection hears of a
 * new email through the event bus, a moment after the 202 or 303 that names it.
 */
function findStatus(
  store: EmailStatusStore,
  id: EmailId,
  waitMs: number,
): Promise<EmailStatus | undefined> {
  return store
    .get(id)()
    .then((found) => {
      if (O.isSome(found) || waitMs <= 0) return O.toUndefined(found);
      return new Promise<EmailStatus | undefined>((resolve) => {
        let settled = false;
        const finish = (status: EmailStatus | undefined): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          stop();
          resolve(status);
        };
        const timer = setTimeout(() => finish(undefined), waitMs);
        // Listeners run on later saves, never during `watch` itself, so `stop` is set by then.
        const stop = store.watch(id, finish);
        // A save between the first read and the subscription would otherwise go unnoticed.
        void store
          .get(id)()
          .then(
            (again) => O.isSome(again) && finish(again.value),
            () => undefined,
          );
      });
    });
}

const sseEvent = (status: EmailStatus): string =>
  `event: status\ndata: ${JSON.stringify(statusJson(status))}\n\n`;

export function mountStatusRoutes(router: Router, options: StatusRoutesOptions): void {
  const { statuses, statusWaitMs, log, heartbeatMs = 15_000 } = options;

  const lookup = async (id: string | undefined): Promise<EmailStatus | undefined> =>
    id !== undefined && EmailId.is(id) ? findStatus(statuses, id, statusWaitMs) : undefined;

  router.get('/emails/:id', async function showStatus(ctx): Promise<void> {
    const status = await lookup(ctx.params.id);
    ctx.vary('Accept');
    if (status === undefined) return sendProblem(ctx, NOT_FOUND);
    ctx.set('Cache-Control', 'no-store');
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = statusJson(status);
    } else {
      ctx.type = 'html';
      ctx.body = statusPage(status);
    }
  });

  router.get('/emails/:id/events', async function streamStatus(ctx): Promise<void> {
    const id = ctx.params.id;
    const found = await lookup(id);
    if (found === undefined || id === undefined) return sendProblem(ctx, NOT_FOUND);

    const stream = new PassThrough();
    let closed = false;
    let watched = false;
    const send = (status: EmailStatus): void => {
      if (closed) return;
      stream.write(sseEvent(status));
      if (isFinalStatus(status.status)) close();
    };
    const unsubscribe = statuses.watch(id, (status) => {
      watched = true;
      send(status);
    });
    const heartbeat = setInterval(() => !closed && stream.write(': keep-alive\n\n'), heartbeatMs);
    function close(): void {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      stream.end();
    }
    // The browser went away (tab closed, navigated): stop listening for its sake.
    ctx.res.once('close', close);

    ctx.status = 200;
    ctx.type = 'text/event-stream';
    ctx.set({ 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    ctx.req.socket.setNoDelay(true);
    ctx.body = stream;
    send(found);
    // What changed between the lookup and the subscription is sent once, unless a newer save
    // already went out through the watcher.
    void statuses
      .get(id)()
      .then(
        (again) => {
          if (!watched && O.isSome(again) && sseEvent(again.value) !== sseEvent(found)) {
            send(again.value);
          }
        },
        (err: unknown) => log.warn({ err, emailId: id }, 'Could not re-read status for stream'),
      );
  });

  router.get('/static/status.js', async function serveStatusScript(ctx): Promise<void> {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = STATUS_SCRIPT;
  });
}
