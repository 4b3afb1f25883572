import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { Context } from 'koa';
import type { EmailLog } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import type { Guards } from './access.js';
import type { Csrf } from './csrf.js';
import type { Problem } from './errors.js';
import { RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import type { StatusNotice } from './status-page.js';
import { STATUS_SCRIPT, statusJson, statusPage, watchedLive, webhooksJson } from './status-page.js';
import type { PageSections } from './message-routes.js';
import type {
  WebhookDeliveries,
  WebhookDelivery,
} from '../../application/ports/webhook-deliveries.js';
import { openEventStream } from './event-stream.js';

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
  readonly emails: Pick<EmailLog, 'get'>;
  /** The email's webhook deliveries, shown on its page and in its JSON (none: not shown). */
  readonly webhooks?: Pick<WebhookDeliveries, 'forEmail'>;
  readonly watch: WatchEmail;
  readonly log: Logger;
  /** Comment lines that keep idle proxies from closing a quiet event stream. */
  readonly heartbeatMs?: number;
  /** Aborted when the server stops: every event stream ends (see `HttpDeps.closing`). */
  readonly closing?: AbortSignal;
  /** The message and the actions on the email's page (see message-routes.ts); none: not shown. */
  readonly sections?: PageSections;
}

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

/**
 * A notice for the next rendering of one email's page, in a cookie scoped to that page's path
 * that lives a minute and is cleared once shown: the redirect that leads there keeps the page's
 * own URL (a repeated form submit answers with the very same Location as the first).
 */
const NOTICE_COOKIE = 'email_notice';
const NOTICE_MAX_AGE_MS = 60_000;

const noticeCookie = (ctx: Context, id: string) =>
  ({
    httpOnly: true,
    sameSite: 'strict',
    path: `/emails/${id}`,
    secure: ctx.secure,
    maxAge: NOTICE_MAX_AGE_MS,
  }) as const;

/** The page of email `id`, next time this browser opens it, says the form was sent already. */
export function flashAlreadySent(ctx: Context, id: EmailStatus['id']): void {
  const notice: StatusNotice = 'already-sent';
  ctx.cookies.set(NOTICE_COOKIE, notice, noticeCookie(ctx, id));
}

/** The notice waiting for this page, if any, cleared as it is read. */
function takeNotice(ctx: Context, id: EmailStatus['id']): StatusNotice | undefined {
  if (ctx.cookies.get(NOTICE_COOKIE) !== 'already-sent') return undefined;
  ctx.cookies.set(NOTICE_COOKIE, null, { ...noticeCookie(ctx, id), maxAge: 0 });
  return 'already-sent';
}

const sseEvent = (status: EmailStatus): string =>
  `event: status\ndata: ${JSON.stringify(statusJson(status))}\n\n`;

export function mountStatusRoutes(router: Router, options: StatusRoutesOptions): void {
  const { guards, csrf, emails, watch, log, heartbeatMs = 15_000, closing } = options;

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
      const notice = takeNotice(ctx, result.found.id);
      ctx.body = statusPage(
        result.found,
        operator === undefined
          ? undefined
          : { operator, csrfToken: csrf.issue(csrf.ensureSession(ctx)) },
        webhooks.deliveries,
        notice !== undefined ? { notice } : {},
        options.sections !== undefined ? await options.sections(ctx, result.found) : {},
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

      const events = openEventStream(ctx, { heartbeatMs, closing });
      let lastSent = '';
      const send = (status: EmailStatus): void => {
        const event = sseEvent(status);
        if (events.closed || event === lastSent) return;
        lastSent = event;
        events.write(event);
        if (!watchedLive(status.status)) events.close();
      };
      // Re-reads run one after another, so an older read never overwrites a newer one.
      let reading = Promise.resolve();
      const reread = (): void => {
        reading = reading.then(async () => {
          if (events.closed) return;
          const again = await emails.get(id)();
          if (E.isRight(again) && O.isSome(again.right)) send(again.right.value);
          else if (E.isLeft(again)) {
            log.warn({ emailId: id, reason: again.left.reason }, 'Could not re-read an email');
          }
        });
      };
      events.onClose(watch(id, reread));
      send(result.found);
      // A stream asked for while the server stops gets the status as it is, and its end.
      if (closing?.aborted) events.close();
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
