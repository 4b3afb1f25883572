import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context, Middleware } from 'koa';
import type { EmailLog, EmailQuery } from '../../application/ports/email-log.js';
import { isListableTime } from '../../application/ports/email-log.js';
import { LONE_SURROGATE, foreignToAddresses } from '../../domain/email-address.js';
import type { StatusName } from '../../domain/email-status.js';
import { STATUS_NAMES } from '../../domain/email-status.js';
import type { Guards } from './access.js';
import type { Csrf } from './csrf.js';
import type { EmailListView, ListField, ListFilters } from './email-list-page.js';
import {
  LIST_FIELDS,
  LIST_LABELS,
  LIST_SCRIPT,
  LIST_SCRIPT_PATH,
  emailListPage,
  utcInputValue,
} from './email-list-page.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import { statusJson } from './status-page.js';
import { openEventStream } from './event-stream.js';

/**
 * Calls `onChange` with the id of any email that may have changed (an event of this process, or
 * one relayed from another), until the function it returns is called; with no id when any may
 * have (the events of other processes began to arrive only now). A hint only: the list is read
 * again from the email log.
 */
export type WatchAllEmails = (onChange: (id: string | undefined) => void) => () => void;

export interface EmailListRoutesOptions {
  readonly guards: Guards;
  /** For the sign-out button on the page. */
  readonly csrf: Csrf;
  readonly emails: Pick<EmailLog, 'list' | 'countByStatus'>;
  /** Every change to any email, for `GET /emails/events`; without it the page is not live. */
  readonly watchAll?: WatchAllEmails;
  /** Comment lines that keep idle proxies from closing a quiet event stream. */
  readonly heartbeatMs?: number;
  /** Aborted when the server stops: every event stream ends (see `HttpDeps.closing`). */
  readonly closing?: AbortSignal;
}

/** Emails a page of `GET /emails`, as JSON and as a page. */
export const EMAILS_PAGE_SIZE = 50;

/** The live stream of the list page. */
export const LIST_EVENTS_PATH = '/emails/events';

const storeDown = (reason: string): Problem => ({
  status: 503,
  code: 'store_unavailable',
  title: 'The email log is not available',
  message: `The email log did not answer (${reason}). Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

/** The filters `GET /emails` reads; anything else in the query string is a mistake worth naming. */
const FILTERS = ['status', 'to', 'tag', 'since', 'until', 'cursor'] as const;
type Filter = (typeof FILTERS)[number];
const isFilter = (name: string): name is Filter => FILTERS.some((f) => f === name);

const CURSOR_PROBLEM = 'must be a next_cursor from an earlier page';
const OUT_OF_RANGE = 'must be a time from 1970 to 9999';
// In a query string a bare + is a space: the message shows the offset as a client must send it.
const TIME_FORMAT =
  'must be an RFC 3339 time such as 2026-11-30T12:00:00Z or 2026-11-30T13:00:00%2B01:00, or a date such as 2026-11-30';
/** TIME_FORMAT in the words of the page's form, whose time fields take UTC. */
const FORM_TIME_FORMAT =
  'must be a date and time in UTC such as 2026-11-30T12:00, or a date such as 2026-11-30';

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

/**
 * A page only for a client that names `text/html` before JSON (a browser navigating). Anything
 * else, no `Accept` and `*\/*` included, gets the JSON `GET /emails` has always answered:
 * programs written against the API see no change.
 */
const wantsPage = (ctx: Context): boolean => ctx.accepts('json', 'html') === 'html';

const isListField = (name: string): name is ListField => LIST_FIELDS.some((f) => f === name);

/** The query's values for the page's form and links: the first of each, as given. */
function givenFilters(ctx: Context): ListFilters {
  const filters: Partial<Record<ListField, string>> = {};
  for (const name of LIST_FIELDS) {
    const value = ctx.query[name];
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined && first !== '') filters[name] = first;
  }
  return filters;
}

/**
 * The form's values: a valid time as a UTC `datetime-local` value (an offset converted, a date
 * at its midnight); a time that is not valid stays out of its control, which could not show it,
 * and its error message repeats it instead. Everything else as given.
 */
function formValues(filters: ListFilters): ListFilters {
  const { since, until, ...rest } = filters;
  const asInput = (raw: string | undefined): string | undefined => {
    if (raw === undefined) return undefined;
    const parsed = parseTime(raw);
    return E.isRight(parsed) ? utcInputValue(parsed.right) : undefined;
  };
  const [sinceValue, untilValue] = [asInput(since), asInput(until)];
  return {
    ...rest,
    ...(sinceValue !== undefined ? { since: sinceValue } : {}),
    ...(untilValue !== undefined ? { until: untilValue } : {}),
  };
}

/**
 * The API's field messages, in the page's words: a field's message starts with its label (and
 * a bad time repeats what was given, which a `datetime-local` control cannot show); a parameter
 * the form does not have goes to the summary at the top.
 */
function pageErrors(
  fields: Readonly<Record<string, string>>,
  filters: ListFilters,
): Pick<EmailListView, 'errors' | 'banner'> {
  const errors: Partial<Record<ListField, string>> = {};
  const banner: string[] = [];
  for (const [name, message] of Object.entries(fields)) {
    if (name === 'cursor') {
      banner.push(
        'The link to this page is out of date or damaged: start again from the newest emails.',
      );
    } else if (isListField(name)) {
      const given = filters[name];
      const words = message === TIME_FORMAT ? FORM_TIME_FORMAT : message;
      errors[name] =
        (name === 'since' || name === 'until') && given !== undefined && !words.includes(given)
          ? `${LIST_LABELS[name]} ${words} (given: ${given})`
          : `${LIST_LABELS[name]} ${words}`;
    } else {
      banner.push(`The address has a parameter the list does not take: "${name}" ${message}.`);
    }
  }
  return {
    ...(Object.keys(errors).length > 0 ? { errors } : {}),
    ...(banner.length > 0 ? { banner } : {}),
  };
}

export function mountEmailListRoutes(router: Router, options: EmailListRoutesOptions): void {
  const { guards, csrf, emails, watchAll, heartbeatMs = 15_000, closing } = options;

  // The page needs a signed-in operator (or a key); JSON stays with API keys, as it always was:
  // a program without a key is told 401, not sent to a sign-in page.
  const pageGuard = guards.page('read');
  const keyGuard = guards.key('read');
  const readGuard: Middleware = (ctx, next) =>
    wantsPage(ctx) ? pageGuard(ctx, next) : keyGuard(ctx, next);

  async function listJson(ctx: Context): Promise<void> {
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
  }

  async function listPage(ctx: Context): Promise<void> {
    const operator = guards.operator(ctx);
    const account =
      operator === undefined
        ? {}
        : { account: { operator, csrfToken: csrf.issue(csrf.ensureSession(ctx)) } };
    const filters = givenFilters(ctx);
    const answer = (status: number, view: Omit<EmailListView, 'filters' | 'account'>): void => {
      ctx.status = status;
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'html';
      ctx.body = emailListPage({ filters, ...account, ...view });
    };
    const values = formValues(filters);
    const unavailable = (reason: string): void => {
      const problem = storeDown(reason);
      ctx.set('Retry-After', String(problem.retryAfterSeconds));
      answer(problem.status, { values, banner: [problem.message], title: problem.title });
    };
    const query = parseQuery(ctx);
    if (E.isLeft(query)) return answer(400, { values, ...pageErrors(query.left, filters) });
    // The counts are of every status: the status filter, and the page, are the list's own.
    const { status: _status, cursor, limit: _limit, ...others } = query.right;
    const [page, counts] = await Promise.all([
      emails.list(query.right)(),
      emails.countByStatus(others)(),
    ]);
    if (E.isLeft(page)) {
      return page.left._tag === 'InvalidCursor'
        ? answer(400, { values, ...pageErrors({ cursor: CURSOR_PROBLEM }, filters) })
        : unavailable(page.left.reason);
    }
    if (E.isLeft(counts)) return unavailable(counts.left.reason);
    answer(200, {
      values,
      result: {
        emails: page.right.data,
        counts: counts.right,
        ...(cursor !== undefined ? { cursor } : {}),
        ...(page.right.nextCursor !== undefined ? { nextCursor: page.right.nextCursor } : {}),
      },
      // Only the newest page follows the changes: an older one would shift under its reader.
      ...(cursor === undefined && watchAll !== undefined ? { events: LIST_EVENTS_PATH } : {}),
    });
  }

  router.get(
    `${API_ROUTE}list-emails`,
    '/emails',
    readGuard,
    async function listEmails(ctx): Promise<void> {
      // The same URL answers a page or JSON: caches must keep them apart.
      ctx.vary('Accept');
      return wantsPage(ctx) ? listPage(ctx) : listJson(ctx);
    },
  );

  if (watchAll !== undefined) {
    // Before `/emails/:id` (status-routes.ts), which would take `events` for an id.
    router.get(
      LIST_EVENTS_PATH,
      guards.page('read'),
      async function streamEmailChanges(ctx): Promise<void> {
        const events = openEventStream(ctx, { heartbeatMs, closing });
        events.onClose(
          watchAll((id) => {
            // No id: whatever the page shows may be out of date.
            const data = JSON.stringify(id === undefined ? {} : { id });
            events.write(`event: change\ndata: ${data}\n\n`);
          }),
        );
        // Something to send at once: the headers go out with it, and the browser's `open` fires.
        events.write(': listening\n\n');
        if (closing?.aborted) events.close();
      },
    );
  }

  router.get(LIST_SCRIPT_PATH, async function serveListScript(ctx): Promise<void> {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = LIST_SCRIPT;
  });
}
