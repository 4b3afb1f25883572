import { PassThrough } from 'node:stream';
import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { Context } from 'koa';
import type { EmailLog, EmailQuery } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailStatus, StatusName } from '../../domain/email-status.js';
import { STATUS_NAMES, isFinalStatus } from '../../domain/email-status.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import { STATUS_SCRIPT, statusJson, statusPage } from './status-page.js';

/**
 * Calls `onChange` whenever something may have changed about email `id` (an event of this
 * process, or one relayed from another); returns the function that stops it. A hint only: the
 * route reads the email log again and sends only what differs.
 */
export type WatchEmail = (id: string, onChange: () => void) => () => void;

export interface StatusRoutesOptions {
  readonly emails: Pick<EmailLog, 'get' | 'list'>;
  readonly watch: WatchEmail;
  readonly log: Logger;
  /** Comment lines that keep idle proxies from closing a quiet event stream. */
  readonly heartbeatMs?: number;
}

/** Emails a page of `GET /emails`. */
export const EMAILS_PAGE_SIZE = 50;

const NOT_FOUND: Problem = {
  status: 404,
  code: 'not_found',
  title: 'Email not found',
  message: 'No email with this id is known here.',
};

const storeDown = (reason: string): Problem => ({
  status: 503,
  code: 'store_unavailable',
  title: 'The email log is not available',
  message: `The email log did not answer (${reason}). Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

type Lookup = { found: EmailStatus } | { problem: Problem };

async function lookup(
  emails: StatusRoutesOptions['emails'],
  id: string | undefined,
): Promise<Lookup> {
  if (id === undefined || !EmailId.is(id)) return { problem: NOT_FOUND };
  const result = await emails.get(id)();
  if (E.isLeft(result)) return { problem: storeDown(result.left.reason) };
  return O.isSome(result.right) ? { found: result.right.value } : { problem: NOT_FOUND };
}

const first = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/** `?status=&to=&tag=&since=&until=&cursor=` as a query, or every problem with them by name. */
function parseQuery(ctx: Context): E.Either<Record<string, string>, EmailQuery> {
  const errors: Record<string, string> = {};
  const status = first(ctx.query.status);
  const to = first(ctx.query.to);
  const tag = first(ctx.query.tag);
  const cursor = first(ctx.query.cursor);
  const time = (name: 'since' | 'until'): Date | undefined => {
    const raw = first(ctx.query[name]);
    if (raw === undefined || raw === '') return undefined;
    const parsed = /^\d{4}-\d\d-\d\d/.test(raw) ? new Date(raw) : new Date(NaN);
    if (Number.isNaN(parsed.getTime())) {
      errors[name] = 'must be an RFC 3339 time such as 2026-11-30T12:00:00Z';
      return undefined;
    }
    return parsed;
  };
  const since = time('since');
  const until = time('until');
  const isStatus = (s: string): s is StatusName => STATUS_NAMES.some((n) => n === s);
  if (status !== undefined && status !== '' && !isStatus(status)) {
    errors.status = `must be one of ${STATUS_NAMES.join(', ')}`;
  }
  if (to !== undefined && to.length > 254) errors.to = 'must be at most 254 characters';
  if (tag !== undefined && tag !== '' && !/^[A-Za-z0-9_-]{1,64}$/.test(tag)) {
    errors.tag = 'must be 1 to 64 of A-Z, a-z, 0-9, _ and -';
  }
  if (cursor !== undefined && !/^[A-Za-z0-9_-]{1,500}$/.test(cursor)) {
    errors.cursor = 'must be a next_cursor from an earlier page';
  }
  if (Object.keys(errors).length > 0) return E.left(errors);
  return E.right({
    limit: EMAILS_PAGE_SIZE,
    ...(status !== undefined && status !== '' && isStatus(status) ? { status } : {}),
    ...(to !== undefined && to !== '' ? { to } : {}),
    ...(tag !== undefined && tag !== '' ? { tag } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(cursor !== undefined && cursor !== '' ? { cursor } : {}),
  });
}

const sseEvent = (status: EmailStatus): string =>
  `event: status\ndata: ${JSON.stringify(statusJson(status))}\n\n`;

export function mountStatusRoutes(router: Router, options: StatusRoutesOptions): void {
  const { emails, watch, log, heartbeatMs = 15_000 } = options;

  router.get(`${API_ROUTE}list-emails`, '/emails', async function listEmails(ctx): Promise<void> {
    const query = parseQuery(ctx);
    if (E.isLeft(query)) {
      return sendProblem(ctx, {
        status: 400,
        code: 'invalid_request',
        title: 'The filters are not valid',
        message: 'Some filters are not valid; see fields.',
        fields: query.left,
      });
    }
    const page = await emails.list(query.right)();
    if (E.isLeft(page)) return sendProblem(ctx, storeDown(page.left.reason));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      data: page.right.data.map(statusJson),
      next_cursor: page.right.nextCursor ?? null,
    };
  });

  router.get('/emails/:id', async function showStatus(ctx): Promise<void> {
    const result = await lookup(emails, ctx.params.id);
    ctx.vary('Accept');
    if ('problem' in result) return sendProblem(ctx, result.problem);
    ctx.set('Cache-Control', 'no-store');
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = statusJson(result.found);
    } else {
      ctx.type = 'html';
      ctx.body = statusPage(result.found);
    }
  });

  router.get('/emails/:id/events', async function streamStatus(ctx): Promise<void> {
    const result = await lookup(emails, ctx.params.id);
    if ('problem' in result) return sendProblem(ctx, result.problem);
    const { id } = result.found;

    const stream = new PassThrough();
    let closed = false;
    let lastSent = '';
    const send = (status: EmailStatus): void => {
      const event = sseEvent(status);
      if (closed || event === lastSent) return;
      lastSent = event;
      stream.write(event);
      if (isFinalStatus(status.status)) close();
    };
    // Re-reads run one after another, so an older read never overwrites a newer one.
    let reading = Promise.resolve();
    const reread = (): void => {
      reading = reading.then(async () => {
        if (closed) return;
        const again = await emails.get(id)();
        if (E.isRight(again) && O.isSome(again.right)) send(again.right.value);
        else if (E.isLeft(again)) {
          log.warn({ emailId: id, reason: again.left.reason }, 'Could not re-read an email');
        }
      });
    };
    const unsubscribe = watch(id, reread);
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
    send(result.found);
    // A change between the first read and the subscription would otherwise go unnoticed.
    reread();
  });

  router.get('/static/status.js', async function serveStatusScript(ctx): Promise<void> {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = STATUS_SCRIPT;
  });
}
