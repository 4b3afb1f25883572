import { PassThrough } from 'node:stream';
import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { Context } from 'koa';
import type { EmailLog, EmailQuery } from '../../application/ports/email-log.js';
import { isListableTime } from '../../application/ports/email-log.js';
import { LONE_SURROGATE, foreignToAddresses } from '../../domain/email-address.js';
import type { Logger } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailStatus, StatusName } from '../../domain/email-status.js';
import { STATUS_NAMES, isFinalStatus } from '../../domain/email-status.js';
import type { Guards } from './access.js';
import type { Csrf } from './csrf.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import { STATUS_SCRIPT, statusJson, statusPage, webhooksJson } from './status-page.js';
import type {
  WebhookDeliveries,
  WebhookDelivery,
} from '../../application/ports/webhook-deliveries.js';

/**
 * Calls `onChange` whenever something may have changed about email `id` (an event of this
 * process, or one relayed from another); returns the function that stops it. A hint only: the
 * route reads the email log again and sends only what differs.
 */
export type WatchEmail = (id: string, onChange: () => void) => () => void;

export interface StatusRoutesOptions {
  readonly guards: Guards;
  /** For the sign-out button on the email's page. */
  readonly csrf: Csrf;
  readonly emails: Pick<EmailLog, 'get' | 'list'>;
  /** The email's webhook deliveries, shown on its page and in its JSON (none: not shown). */
  readonly webhooks?: Pick<WebhookDeliveries, 'forEmail'>;
  readonly watch: WatchEmail;
  readonly log: Logger;
  /** Comment lines that keep idle proxies from closing a quiet event stream. */
  readonly heartbeatMs?: number;
  /** Aborted when the server stops: every event stream ends (see `HttpDeps.closing`). */
  readonly closing?: AbortSignal;
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

/**
 * The email's webhook deliveries: `served: false` where webhooks are not served (no field, no
 * section), `deliveries: undefined` when the store did not answer (the page says so; the email
 * itself is still shown).
 */
async function deliveriesOf(
  options: StatusRoutesOptions,
  id: EmailStatus['id'],
): Promise<{ readonly served: boolean; readonly deliveries?: readonly WebhookDelivery[] }> {
  if (options.webhooks === undefined) return { served: false, deliveries: [] };
  const found = await options.webhooks.forEmail(id)();
  if (E.isRight(found)) return { served: true, deliveries: found.right };
  options.log.warn({ emailId: id, reason: found.left.reason }, 'Could not read webhook deliveries');
  return { served: true };
}

/** The filters `GET /emails` reads; anything else in the query string is a mistake worth naming. */
const FILTERS = ['status', 'to', 'tag', 'since', 'until', 'cursor'] as const;
type Filter = (typeof FILTERS)[number];
const isFilter = (name: string): name is Filter => FILTERS.some((f) => f === name);

const CURSOR_PROBLEM = 'must be a next_cursor from an earlier page';
const OUT_OF_RANGE = 'must be a time from 1970 to 9999';
// In a query string a bare + is a space: the message shows the offset as a client must send it.
const TIME_FORMAT =
  'must be an RFC 3339 time such as 2026-11-30T12:00:00Z or 2026-11-30T13:00:00%2B01:00, or a date such as 2026-11-30';

// A date, or a date and time; seconds, fraction and offset optional (no offset: UTC).
const TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|[+-]\d{2}:\d{2})?)?$/;

/**
 * A time of `since` or `until`, or what is wrong with it. Every part must name something that
 * exists (no 30 February rolled over into March, no 24:00) and the time must be listable (1970
 * to 9999). A fraction finer than the log's milliseconds is rounded up, which keeps "at or
 * after" and "before" exact for times stored in whole milliseconds.
 */
function parseTime(raw: string): E.Either<string, Date> {
  const m = TIME.exec(raw);
  if (m === null) return E.left(TIME_FORMAT);
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const zone = m[8] ?? 'Z';
  const sign = zone.startsWith('-') ? -1 : 1;
  const [zoneHours = 0, zoneMinutes = 0] = /^[+-]/.test(zone)
    ? zone.slice(1).split(':').map(Number)
    : [];
  // In whole nanoseconds, so that rounding up to milliseconds is exact arithmetic.
  const nanos = Number((m[7] ?? '').padEnd(9, '0'));
  if (year < 1970 || year > 9999) return E.left(OUT_OF_RANGE);
  const midnight = Date.UTC(year, month - 1, day);
  const date = new Date(midnight);
  // Date.UTC rolls 30 February over into March: only a day that comes back unchanged exists.
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day
  ) {
    return E.left(`names a day that does not exist (${raw.slice(0, 10)})`);
  }
  if (hour > 23 || minute > 59 || second > 59 || zoneHours > 23 || zoneMinutes > 59) {
    return E.left(`names a time of day that does not exist (${raw})`);
  }
  const ms =
    midnight +
    ((hour * 60 + minute) * 60 + second) * 1000 +
    Math.ceil(nanos / 1_000_000) -
    sign * (zoneHours * 60 + zoneMinutes) * 60_000;
  return isListableTime(ms) ? E.right(new Date(ms)) : E.left(OUT_OF_RANGE);
}

function toProblem(to: string): string | undefined {
  if (to.length > 254) return 'must be at most 254 characters';
  if (to.includes('\u0000')) return 'must not contain NUL characters';
  if (foreignToAddresses(to)) {
    return LONE_SURROGATE.test(to)
      ? 'is not valid Unicode (a lone surrogate)'
      : 'must not contain control characters (no address has any)';
  }
  return undefined;
}

/**
 * `?status=&to=&tag=&since=&until=&cursor=` as a query, or every problem with them by name: an
 * unknown parameter (`limit`, `status[]`) or one given twice is refused rather than ignored, so
 * a client never reads a list filtered differently from what it asked for.
 */
function parseQuery(ctx: Context): E.Either<Record<string, string>, EmailQuery> {
  // No prototype: a parameter named `__proto__` is a key like any other, and gets its error.
  const errors: Record<string, string> = Object.create(null) as Record<string, string>;
  const given: Partial<Record<Filter, string>> = {};
  for (const [name, value] of Object.entries(ctx.query)) {
    if (!isFilter(name)) {
      errors[name] = `is not a known filter (use ${FILTERS.join(', ')})`;
    } else if (typeof value !== 'string') {
      errors[name] = 'is given more than once; give it once';
    } else if (value !== '') {
      given[name] = value;
    }
  }
  const { status, to, tag, cursor } = given;
  const time = (name: 'since' | 'until'): Date | undefined => {
    const raw = given[name];
    if (raw === undefined) return undefined;
    const parsed = parseTime(raw);
    if (E.isLeft(parsed)) errors[name] = parsed.left;
    return E.isRight(parsed) ? parsed.right : undefined;
  };
  const since = time('since');
  const until = time('until');
  const isStatus = (s: string): s is StatusName => STATUS_NAMES.some((n) => n === s);
  if (status !== undefined && !isStatus(status)) {
    errors.status = `must be one of ${STATUS_NAMES.join(', ')}`;
  }
  const toWrong = to === undefined ? undefined : toProblem(to);
  if (toWrong !== undefined) errors.to = toWrong;
  if (tag !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(tag)) {
    errors.tag = 'must be 1 to 64 of A-Z, a-z, 0-9, _ and -';
  }
  if (cursor !== undefined && !/^[A-Za-z0-9_-]{1,500}$/.test(cursor)) {
    errors.cursor = CURSOR_PROBLEM;
  }
  if (Object.keys(errors).length > 0) return E.left(errors);
  return E.right({
    limit: EMAILS_PAGE_SIZE,
    ...(status !== undefined && isStatus(status) ? { status } : {}),
    ...(to !== undefined ? { to } : {}),
    ...(tag !== undefined ? { tag } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(cursor !== undefined ? { cursor } : {}),
  });
}

const invalidFilters = (fields: Record<string, string>): Problem => ({
  status: 400,
  code: 'invalid_request',
  title: 'The filters are not valid',
  message: 'Some filters are not valid; see fields.',
  fields,
});

const sseEvent = (status: EmailStatus): string =>
  `event: status\ndata: ${JSON.stringify(statusJson(status))}\n\n`;

export function mountStatusRoutes(router: Router, options: StatusRoutesOptions): void {
  const { guards, csrf, emails, watch, log, heartbeatMs = 15_000, closing } = options;

  router.get(
    `${API_ROUTE}list-emails`,
    '/emails',
    guards.key('read'),
    async function listEmails(ctx): Promise<void> {
      const query = parseQuery(ctx);
      if (E.isLeft(query)) return sendProblem(ctx, invalidFilters(query.left));
      const page = await emails.list(query.right)();
      if (E.isLeft(page)) {
        return sendProblem(
          ctx,
          page.left._tag === 'InvalidCursor'
            ? invalidFilters({ cursor: CURSOR_PROBLEM })
            : storeDown(page.left.reason),
        );
      }
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        data: page.right.data.map(statusJson),
        next_cursor: page.right.nextCursor ?? null,
      };
    },
  );

  router.get('/emails/:id', guards.page('read'), async function showStatus(ctx): Promise<void> {
    const result = await lookup(emails, ctx.params.id);
    ctx.vary('Accept');
    if ('problem' in result) return sendProblem(ctx, result.problem);
    ctx.set('Cache-Control', 'no-store');
    const webhooks = await deliveriesOf(options, result.found.id);
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = {
        ...statusJson(result.found),
        ...(webhooks.served && webhooks.deliveries !== undefined
          ? { webhooks: webhooksJson(webhooks.deliveries) }
          : {}),
      };
    } else {
      ctx.type = 'html';
      const operator = guards.operator(ctx);
      ctx.body = statusPage(
        result.found,
        operator === undefined
          ? undefined
          : { operator, csrfToken: csrf.issue(csrf.ensureSession(ctx)) },
        webhooks.deliveries,
      );
    }
  });

  router.get(
    '/emails/:id/events',
    guards.page('read'),
    async function streamStatus(ctx): Promise<void> {
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
        closing?.removeEventListener('abort', close);
        stream.end();
      }
      // The browser went away (tab closed, navigated): stop listening for its sake.
      ctx.res.once('close', close);
      // The server is stopping: end the stream now, so the stop need not wait for it.
      closing?.addEventListener('abort', close, { once: true });

      ctx.status = 200;
      ctx.type = 'text/event-stream';
      ctx.set({ 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
      ctx.req.socket.setNoDelay(true);
      ctx.body = stream;
      send(result.found);
      // A stream asked for while the server stops gets the status as it is, and its end.
      if (closing?.aborted) close();
      // A change between the first read and the subscription would otherwise go unnoticed.
      reread();
    },
  );

  router.get('/static/status.js', async function serveStatusScript(ctx): Promise<void> {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = STATUS_SCRIPT;
  });
}
