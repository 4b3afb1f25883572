import type Router from '@koa/router';
import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { Context, Middleware } from 'koa';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import type { WebhookDeliveries } from '../../application/ports/webhook-deliveries.js';
import type { WebhookEndpoint } from '../../application/ports/webhook-endpoints.js';
import type {
  InvalidWebhookEndpoint,
  WebhookSubscriptions,
} from '../../application/webhook-subscriptions.js';
import type { FieldErrors } from '../../domain/email-request.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import type { Guards } from './access.js';
import {
  answerAsPage,
  confirmationPage,
  field,
  fields as fieldValues,
  formContext,
  formOf,
  readForm,
  adminListRoute,
  problemPages,
  seeOther,
  sendPage,
} from './admin-pages.js';
import { jsonBody, requireJson } from './api-routes.js';
import type { Csrf } from './csrf.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import type { WebhookForm, WebhooksView } from './webhook-page.js';
import {
  RECENT_DELIVERIES,
  createdPage,
  removeEndpointConfirmation,
  webhooksPage,
} from './webhook-page.js';

/** What the webhook endpoint routes need. */
export interface WebhookRoutesOptions {
  readonly subscriptions: Pick<WebhookSubscriptions, 'add' | 'list' | 'remove'>;
  readonly guards: Guards;
  /** The audit lines: who added or removed which endpoint (never a secret, never a whole URL). */
  readonly log: Logger;
  /**
   * For the page (`GET /webhooks` for a browser, its add and remove forms): their CSRF tokens.
   * Without it there is no page: every request is the API's.
   */
  readonly csrf?: Csrf;
  /** The recent deliveries of every endpoint, for the page; without it, no such section. */
  readonly deliveries?: Pick<WebhookDeliveries, 'recent'>;
}

/** A body of a URL (2048 characters at most) and a dozen event names: a few kilobytes at most. */
const BODY_LIMIT_BYTES = 16 * 1024;

/** An endpoint as the API shows it, in every list and answer: never with its secret. */
export interface WebhookEndpointBody {
  /** `we_` and 16 base64url characters. */
  readonly id: string;
  readonly url: string;
  /** The types it gets (`email.sent`, …); empty: every type. */
  readonly events: readonly WebhookEventType[];
  /** RFC 3339, UTC. */
  readonly created_at: string;
}

/** `POST /webhooks`' 201: the endpoint and its signing secret, shown in this answer only. */
export interface CreatedWebhookEndpointBody extends WebhookEndpointBody {
  /** `whsec_` and the base64 of 24 random bytes: the Standard Webhooks signing secret. */
  readonly secret: string;
}

/** `GET /webhooks`: every endpoint, oldest first. */
export interface WebhookEndpointListBody {
  readonly data: readonly WebhookEndpointBody[];
}

// Field by field, so that a secret on the object (a SigningWebhookEndpoint) cannot ride along.
const asBody = (e: WebhookEndpoint): WebhookEndpointBody => ({
  id: e.id,
  url: e.url,
  events: [...e.events],
  created_at: e.createdAt.toISOString(),
});

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * 400 with `fields`; the message is the problem itself when there is one, so that a person
 * reading only `message` (a curl in a terminal) knows what to fix.
 */
function invalid(fields: FieldErrors): Problem {
  const problems = Object.values(fields);
  return {
    status: 400,
    code: 'invalid_request',
    title: 'The webhook endpoint is not valid',
    message:
      problems.length === 1 && problems[0] !== undefined
        ? problems[0]
        : `The webhook endpoint is not valid: ${problems.join('; ')}.`,
    fields,
  };
}

const storeDown = (reason: string): Problem => ({
  status: 503,
  code: 'store_unavailable',
  title: 'The webhook endpoints are not available',
  message: `The webhook endpoints did not answer (${reason}); nothing was changed. Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

const NOT_FOUND: Problem = {
  status: 404,
  code: 'not_found',
  title: 'No such webhook endpoint',
  message:
    'No webhook endpoint has this id (it may have been removed already). GET /webhooks lists them.',
};

const FIELDS = ['url', 'events'];

/** Defined, not assigned: `fields.__proto__ = '…'` would be dropped without a word. */
const put = (fields: Record<string, string>, name: string, message: string): void => {
  Object.defineProperty(fields, name, { value: message, enumerable: true, writable: true });
};

/**
 * `POST /webhooks`' body, its shape checked whole (every problem at once, by field); what the
 * URL and the events say is the use case's to check.
 */
function parseBody(
  body: unknown,
): E.Either<FieldErrors, { readonly url: string; readonly events: readonly string[] }> {
  if (!isRecord(body)) {
    return E.left({
      body: 'The body must be a JSON object such as {"url": "https://example.com/webhooks/email", "events": ["sent", "bounced"]}.',
    });
  }
  const fields: Record<string, string> = {};
  for (const name of Object.keys(body)) {
    if (!FIELDS.includes(name)) {
      put(fields, name, `${name} is not a known field: use ${FIELDS.join(' and ')}.`);
    }
  }
  const { url, events = [] } = body;
  if (typeof url !== 'string') {
    put(
      fields,
      'url',
      url === undefined
        ? 'url is required: the endpoint’s absolute URL, such as https://example.com/webhooks/email.'
        : 'url must be a string: the endpoint’s absolute URL, such as https://example.com/webhooks/email.',
    );
  }
  const names = Array.isArray(events) && events.every((e) => typeof e === 'string') ? events : [];
  if (names !== events) {
    put(
      fields,
      'events',
      'events must be a list of event names, such as ["sent", "bounced"]; leave it out for every event.',
    );
  }
  if (Object.keys(fields).length > 0 || typeof url !== 'string') return E.left(fields);
  return E.right({ url, events: names });
}

const refusal = (e: StoreUnavailable | InvalidWebhookEndpoint): Problem =>
  e._tag === 'StoreUnavailable' ? storeDown(e.reason) : invalid({ [e.field]: e.message });

/** Who asked, for the audit line: the key's name, or the signed-in operator's. */
function principalName(ctx: Context): string | undefined {
  const { principal }: { principal?: unknown } = ctx.state;
  return isRecord(principal) && typeof principal.name === 'string' ? principal.name : undefined;
}

/** The host alone, for a log line: a receiver's URL may carry a token in its path or query. */
const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
};

/**
 * The outgoing webhook endpoints over the API, for the `admin` scope: `GET /webhooks` (every
 * endpoint, oldest first, without secrets), `POST /webhooks` (201 with the signing secret, the
 * one time it is shown, and `Location: /webhooks/{id}`), `DELETE /webhooks/{id}` (204; 404 when
 * there is none). Bad input is 400 `invalid_request` with a message saying what to fix; a body
 * that is not JSON is 415; a store that does not answer is 503 with Retry-After.
 *
 * The id route matches `we_…` only, so that `/webhooks/mailgun` (Mailgun's own route, or its 404
 * when that is not configured) is never taken for an id.
 *
 * With `csrf`, a browser's `GET /webhooks` (see `wantsAdminPage`) is the page, for a signed-in
 * operator: the endpoints, an add form (`POST /webhooks/add`, answered with the new secret once),
 * a remove button each (`GET /webhooks/remove?id=` confirms, `POST /webhooks/remove` removes and
 * `303`s back with a notice), and the recent deliveries when `deliveries` is given.
 */
export function mountWebhookRoutes(router: Router, options: WebhookRoutesOptions): void {
  const { subscriptions, guards, log } = options;

  const listWebhookEndpoints = async function listWebhookEndpoints(ctx: Context): Promise<void> {
    const unknown = Object.keys(ctx.query);
    if (unknown.length > 0) {
      const fields: Record<string, string> = {};
      for (const name of unknown) {
        put(fields, name, `${name} is not a known parameter: GET /webhooks takes none.`);
      }
      return sendProblem(ctx, invalid(fields));
    }
    const all = await subscriptions.list()();
    if (E.isLeft(all)) return sendProblem(ctx, storeDown(all.left.reason));
    const body: WebhookEndpointListBody = { data: all.right.map(asBody) };
    ctx.set('Cache-Control', 'no-store');
    ctx.body = body;
  };

  // A browser's GET is the page (a signed-in operator); everything else the API (an admin key).
  const pages = options.csrf === undefined ? undefined : webhookPages(options, options.csrf);
  router.get(
    `${API_ROUTE}list-webhook-endpoints`,
    '/webhooks',
    ...adminListRoute(guards, pages?.show, listWebhookEndpoints),
  );
  if (pages !== undefined) {
    // Paths of their own: the API's POST /webhooks answers 415 to a form, as it always has.
    router.get('/webhooks/remove', answerAsPage(), guards.page('admin'), pages.confirmRemove);
    router.post('/webhooks/add', answerAsPage(), guards.page('admin'), pages.form, pages.add);
    router.post('/webhooks/remove', answerAsPage(), guards.page('admin'), pages.form, pages.remove);
  }

  router.post(
    `${API_ROUTE}add-webhook-endpoint`,
    '/webhooks',
    guards.key('admin'),
    requireJson('the webhook endpoint'),
    jsonBody(BODY_LIMIT_BYTES),
    async function addWebhookEndpoint(ctx: Context): Promise<void> {
      const input = parseBody(ctx.request.body);
      if (E.isLeft(input)) return sendProblem(ctx, invalid(input.left));
      const added = await subscriptions.add(input.right.url, input.right.events)();
      if (E.isLeft(added)) {
        if (added.left._tag === 'StoreUnavailable') {
          log.warn({ reason: added.left.reason }, 'Webhook endpoint not added');
        }
        return sendProblem(ctx, refusal(added.left));
      }
      const { endpoint, secret } = added.right;
      log.info(
        {
          audit: 'webhook-endpoint-added',
          id: endpoint.id,
          host: hostOf(endpoint.url),
          events: endpoint.events,
          by: principalName(ctx),
        },
        'Webhook endpoint added',
      );
      const body: CreatedWebhookEndpointBody = { ...asBody(endpoint), secret };
      // The secret is in this answer alone: no cache along the way may keep it.
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Location', `/webhooks/${endpoint.id}`);
      ctx.status = 201;
      ctx.body = body;
    },
  );

  router.delete(
    `${API_ROUTE}remove-webhook-endpoint`,
    '/webhooks/we_:rest',
    guards.key('admin'),
    async function removeWebhookEndpoint(ctx: Context): Promise<void> {
      const id = `we_${String(ctx.params.rest)}`;
      const removed = await subscriptions.remove(id)();
      if (E.isLeft(removed)) {
        log.warn({ reason: removed.left.reason }, 'Webhook endpoint not removed');
        return sendProblem(ctx, storeDown(removed.left.reason));
      }
      if (!removed.right) return sendProblem(ctx, NOT_FOUND);
      log.info(
        { audit: 'webhook-endpoint-removed', id, by: principalName(ctx) },
        'Webhook endpoint removed',
      );
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 204;
    },
  );
}

/** The page's handlers: the list, the add form and its one-time answer, and the removal. */
interface WebhookPages {
  readonly show: Middleware;
  readonly confirmRemove: Middleware;
  /** Reads a form and checks its CSRF token, for `add` and `remove`. */
  readonly form: Middleware;
  readonly add: Middleware;
  readonly remove: Middleware;
}

const FORM_NONCE = /^[A-Za-z0-9_-]{22}$/;
const newNonce = (): string => randomBytes(16).toString('base64url');

/** How long, and how many, add forms this process remembers as used. */
const USED_NONCE_MS = 2 * 3_600_000;
const USED_NONCE_MAX = 10_000;

/**
 * The add forms this process has carried out, by their one-time key: the answer to an add holds
 * the secret and cannot be a redirect, so a reload of it posts the form again, which must not
 * add a second endpoint. Kept for as long as a CSRF token lives; per process (a reload behind a
 * load balancer that lands on another instance is not caught: docs/architecture.md, Known
 * limits).
 */
class UsedNonces {
  private readonly used = new Map<string, number>();

  /** Marks `nonce` used; false when it was already. */
  take(nonce: string, now = Date.now()): boolean {
    for (const [key, at] of this.used) {
      if (now - at < USED_NONCE_MS && this.used.size < USED_NONCE_MAX) break;
      this.used.delete(key);
    }
    if (this.used.has(nonce)) return false;
    this.used.set(nonce, now);
    return true;
  }

  /** Makes `nonce` usable again (the add did not happen). */
  release(nonce: string): void {
    this.used.delete(nonce);
  }
}

/** A query parameter given once, or undefined. */
const queryValue = (ctx: Context, name: string): string | undefined => {
  const value = ctx.query[name];
  return typeof value === 'string' ? value : undefined;
};

const ENDPOINT_ID = /^we_[A-Za-z0-9_-]{16}$/;

/** The sentence a 303 back to the page carries: `?removed=we_…` or `?absent=we_…`. */
function webhookNotice(ctx: Context): string | undefined {
  const removed = queryValue(ctx, 'removed');
  if (removed !== undefined && ENDPOINT_ID.test(removed)) {
    return `Removed the endpoint ${removed}: nothing more is sent to it.`;
  }
  const absent = queryValue(ctx, 'absent');
  if (absent !== undefined && ENDPOINT_ID.test(absent)) {
    return `There was no endpoint ${absent} (it may have been removed already).`;
  }
  return undefined;
}

function webhookPages(options: WebhookRoutesOptions, csrf: Csrf): WebhookPages {
  const { subscriptions, guards, log, deliveries } = options;
  const nonces = new UsedNonces();
  const back = { href: '/webhooks', label: 'Back to the webhooks' };
  const problem = problemPages(guards, csrf, 'webhooks', back);

  /** The page with `extra`; the endpoints must answer (503 page otherwise), deliveries may not. */
  async function render(
    ctx: Context,
    status: number,
    extra: Partial<Pick<WebhooksView, 'notice' | 'form' | 'nonce'>> = {},
  ): Promise<void> {
    const endpoints = await subscriptions.list()();
    if (E.isLeft(endpoints)) {
      log.warn({ reason: endpoints.left.reason }, 'Webhook endpoints not read');
      return problem(ctx, storeDown(endpoints.left.reason));
    }
    let recent: WebhooksView['deliveries'];
    if (deliveries !== undefined) {
      const read = await deliveries.recent(RECENT_DELIVERIES)();
      if (E.isRight(read)) recent = read.right;
      else log.warn({ reason: read.left.reason }, 'Recent webhook deliveries not read');
    }
    const { csrfToken, account } = formContext(ctx, guards, csrf);
    sendPage(
      ctx,
      status,
      webhooksPage({
        endpoints: endpoints.right,
        deliveries: recent,
        showDeliveries: deliveries !== undefined,
        nonce: newNonce(),
        ...extra,
        csrfToken,
        ...(account ? { account } : {}),
      }),
    );
  }

  /** The endpoint `id` names, or the page (400, 404, 503) already sent. */
  async function endpointFor(
    ctx: Context,
    id: string | undefined,
  ): Promise<WebhookEndpoint | undefined> {
    const all = await subscriptions.list()();
    if (E.isLeft(all)) {
      problem(ctx, storeDown(all.left.reason));
      return undefined;
    }
    const endpoint = all.right.find((e) => e.id === id);
    if (endpoint === undefined) problem(ctx, NOT_FOUND);
    return endpoint;
  }

  return {
    show: async function showWebhooks(ctx: Context): Promise<void> {
      const notice = webhookNotice(ctx);
      await render(ctx, 200, notice !== undefined ? { notice } : {});
    },

    confirmRemove: async function confirmEndpointRemoval(ctx: Context): Promise<void> {
      const endpoint = await endpointFor(ctx, queryValue(ctx, 'id'));
      if (endpoint === undefined) return;
      const { csrfToken, account } = formContext(ctx, guards, csrf);
      sendPage(
        ctx,
        200,
        confirmationPage(removeEndpointConfirmation(endpoint), 'webhooks', csrfToken, account),
      );
    },

    form: readForm({
      csrf,
      guards,
      section: 'webhooks',
      back,
      onRefused: (reason) => log.warn({ reason }, 'Webhook form refused: CSRF check failed'),
    }),

    add: async function addFromForm(ctx: Context): Promise<void> {
      const form = formOf(ctx);
      const url = field(form, 'url') ?? '';
      const events = fieldValues(form, 'events');
      const nonce = field(form, '_nonce');
      if (nonce === undefined || !FORM_NONCE.test(nonce)) {
        return render(ctx, 400, {
          form: {
            url,
            events,
            errors: {
              form: 'The form was incomplete, so nothing was added: press Add endpoint again.',
            },
          },
        });
      }
      if (!nonces.take(nonce)) {
        return problem(ctx, {
          status: 409,
          code: 'already_added',
          title: 'This form was sent already',
          message:
            'The endpoint of this form was added when it was first sent, and its secret was shown then, once. It is in the list of endpoints; if its secret was not copied, remove it and add it again.',
        });
      }
      const added = await subscriptions.add(url, events)();
      if (E.isLeft(added)) {
        // Nothing was added under this key: the corrected form may reuse it.
        nonces.release(nonce);
        if (added.left._tag === 'StoreUnavailable') {
          log.warn({ reason: added.left.reason }, 'Webhook endpoint not added');
          return problem(ctx, storeDown(added.left.reason));
        }
        const errors: WebhookForm['errors'] = { [added.left.field]: added.left.message };
        return render(ctx, 400, { form: { url, events, errors }, nonce });
      }
      const { endpoint, secret } = added.right;
      log.info(
        {
          audit: 'webhook-endpoint-added',
          id: endpoint.id,
          host: hostOf(endpoint.url),
          events: endpoint.events,
          by: principalName(ctx),
        },
        'Webhook endpoint added',
      );
      const { account } = formContext(ctx, guards, csrf);
      // The secret is in this answer alone: sendPage forbids every cache to keep it.
      sendPage(ctx, 201, createdPage(endpoint, secret, account));
    },

    remove: async function removeFromForm(ctx: Context): Promise<void> {
      const form = formOf(ctx);
      const id = field(form, 'id') ?? '';
      // Not confirmed (a hand-made post): the confirmation first.
      if (field(form, 'confirm') !== 'yes') {
        return seeOther(ctx, `/webhooks/remove?id=${encodeURIComponent(id)}`);
      }
      const removed = await subscriptions.remove(id)();
      if (E.isLeft(removed)) {
        log.warn({ reason: removed.left.reason }, 'Webhook endpoint not removed');
        return problem(ctx, storeDown(removed.left.reason));
      }
      if (!removed.right) return seeOther(ctx, `/webhooks?absent=${encodeURIComponent(id)}`);
      log.info(
        { audit: 'webhook-endpoint-removed', id, by: principalName(ctx) },
        'Webhook endpoint removed',
      );
      seeOther(ctx, `/webhooks?removed=${encodeURIComponent(id)}`);
    },
  };
}
