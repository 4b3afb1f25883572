import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context } from 'koa';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import type { WebhookEndpoint } from '../../application/ports/webhook-endpoints.js';
import type {
  InvalidWebhookEndpoint,
  WebhookSubscriptions,
} from '../../application/webhook-subscriptions.js';
import type { FieldErrors } from '../../domain/email-request.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import type { Guards } from './access.js';
import { jsonBody, requireJson } from './api-routes.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';

/** What the webhook endpoint routes need. */
export interface WebhookRoutesOptions {
  readonly subscriptions: Pick<WebhookSubscriptions, 'add' | 'list' | 'remove'>;
  readonly guards: Guards;
  /** The audit lines: who added or removed which endpoint (never a secret, never a whole URL). */
  readonly log: Logger;
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
 */
export function mountWebhookRoutes(router: Router, options: WebhookRoutesOptions): void {
  const { subscriptions, guards, log } = options;

  router.get(
    `${API_ROUTE}list-webhook-endpoints`,
    '/webhooks',
    guards.key('admin'),
    async function listWebhookEndpoints(ctx: Context): Promise<void> {
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
    },
  );

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
