import type Router from '@koa/router';
import { MAX_BATCH } from '../../application/request-batch.js';
import { SCOPES } from '../../application/ports/api-key-store.js';
import { IDEMPOTENCY_KEY_TTL_MS } from '../../application/ports/idempotency-store.js';
import { MAX_ADDRESS_OCTETS } from '../../domain/email-address.js';
import {
  MAX_ATTACHMENTS,
  MAX_BODY_OCTETS,
  MAX_HEADERS,
  MAX_METADATA,
  MAX_METADATA_KEY_CHARS,
  MAX_METADATA_VALUE_CHARS,
  MAX_RECIPIENTS,
  MAX_SCHEDULE_MS,
  MAX_SUBJECT_CHARS,
  MAX_TAGS,
} from '../../domain/email-request.js';
import { STATUS_NAMES } from '../../domain/email-status.js';
import { EMAILS_PAGE_SIZE } from './status-routes.js';

// The document is built from the constants the rules use, so a limit changed in the domain is
// changed here too. Written as JSON Schema 2020-12, which OpenAPI 3.1 uses as it is.

type Json = null | boolean | number | string | readonly Json[] | JsonObject;
interface JsonObject {
  readonly [key: string]: Json;
}

const ref = (name: string): JsonObject => ({ $ref: `#/components/schemas/${name}` });
const response = (name: string): JsonObject => ({ $ref: `#/components/responses/${name}` });
const json = (schema: Json, description: string): JsonObject => ({
  description,
  content: { 'application/json': { schema } },
});

const time = (description: string): Json => ({ type: 'string', format: 'date-time', description });
const strings = (description: string): Json => ({
  type: 'array',
  items: { type: 'string' },
  description,
});

/** Optional address fields take one address or a list; `to` needs at least one. */
const addresses = (description: string, minItems: number): Json => ({
  description,
  oneOf: [
    ref('Address'),
    { type: 'array', items: ref('Address'), minItems, maxItems: MAX_RECIPIENTS },
  ],
});

const EMAIL_ID = '^[A-Za-z0-9_-]{8,64}$';
const TAG = '^[A-Za-z0-9_-]{1,64}$';

const schemas: Record<string, Json> = {
  Address: {
    type: 'string',
    minLength: 3,
    description: `One mailbox: \`ada@example.com\` or \`Ada Lovelace <ada@example.com>\`; a display name with a comma or a dot is quoted (\`"Lovelace, Ada" <ada@example.org>\`). The address itself is at most ${MAX_ADDRESS_OCTETS} octets; a domain may be internationalised.`,
    examples: ['ada@example.com', 'Ada Lovelace <ada@example.com>'],
  },
  Attachment: {
    type: 'object',
    required: ['filename', 'content'],
    additionalProperties: false,
    properties: {
      filename: { type: 'string', minLength: 1, maxLength: 255, description: 'Without / or \\.' },
      content: {
        type: 'string',
        minLength: 4,
        contentEncoding: 'base64',
        description: 'The file, standard base64 with padding (RFC 4648 §4); line breaks allowed.',
      },
      content_type: {
        type: 'string',
        description: 'A media type such as image/png or text/csv; charset=utf-8.',
      },
      content_id: {
        type: 'string',
        pattern: "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$",
        description: 'Makes the part inline, for `cid:<content_id>` in html; unique per email.',
      },
    },
  },
  EmailRequest: {
    type: 'object',
    description: `One email. Every problem is reported at once, by field (\`to[1]\`, \`attachments[0].content\`). At most ${MAX_RECIPIENTS} distinct recipients in to, cc and bcc together.`,
    required: ['to', 'subject'],
    // A body that is more than white space: text, html or both.
    anyOf: ['text', 'html'].map((body) => ({
      required: [body],
      properties: { [body]: { type: 'string', pattern: '\\S' } },
    })),
    additionalProperties: false,
    properties: {
      from: {
        ...ref('Address'),
        description: 'A domain this service may send from; absent: the configured sender.',
      },
      to: addresses('Recipients.', 1),
      cc: addresses('Copies.', 0),
      bcc: addresses('Blind copies: in the envelope only, never in a header.', 0),
      reply_to: addresses('Where replies go.', 0),
      subject: {
        type: 'string',
        minLength: 1,
        maxLength: MAX_SUBJECT_CHARS,
        pattern: '^[^\\r\\n]*$',
        description: `One line, at most ${MAX_SUBJECT_CHARS} characters, no control characters.`,
      },
      text: {
        type: 'string',
        maxLength: MAX_BODY_OCTETS,
        description: `Plain text body, at most ${MAX_BODY_OCTETS} octets in UTF-8. Text or html (or both) is required.`,
      },
      html: {
        type: 'string',
        maxLength: MAX_BODY_OCTETS,
        description: `HTML body, at most ${MAX_BODY_OCTETS} octets in UTF-8; a text part is made from it when text is absent.`,
      },
      headers: {
        type: 'object',
        maxProperties: MAX_HEADERS,
        additionalProperties: { type: 'string', maxLength: MAX_SUBJECT_CHARS },
        description: `Up to ${MAX_HEADERS} extra header fields: any X-… (but X-Email-Id), List-Unsubscribe, List-Unsubscribe-Post, In-Reply-To, References. One line each.`,
      },
      attachments: { type: 'array', maxItems: MAX_ATTACHMENTS, items: ref('Attachment') },
      tags: {
        type: 'array',
        maxItems: MAX_TAGS,
        items: { type: 'string', pattern: TAG },
        description: 'Labels to find the email again (`GET /emails?tag=`).',
      },
      metadata: {
        type: 'object',
        maxProperties: MAX_METADATA,
        propertyNames: { type: 'string', pattern: `^[A-Za-z0-9_.-]{1,${MAX_METADATA_KEY_CHARS}}$` },
        additionalProperties: { type: 'string', maxLength: MAX_METADATA_VALUE_CHARS },
        description:
          'String pairs kept with the email and shown in its status; `email-id` is ours.',
      },
      send_at: time(
        `Hold the email until then (status \`scheduled\`): after now, at most ${MAX_SCHEDULE_MS / 86_400_000} days ahead, with its offset.`,
      ),
    },
  },
  Batch: {
    type: 'array',
    minItems: 1,
    maxItems: MAX_BATCH,
    items: ref('EmailRequest'),
    description: `1 to ${MAX_BATCH} emails, each as for \`POST /emails\`. All are checked before any is accepted.`,
  },
  Accepted: {
    type: 'object',
    required: ['id', 'status'],
    additionalProperties: false,
    properties: {
      id: ref('EmailId'),
      status: { enum: ['queued', 'scheduled'] },
    },
  },
  AcceptedBatch: {
    type: 'object',
    required: ['data'],
    additionalProperties: false,
    properties: {
      data: { type: 'array', items: ref('Accepted'), description: 'In the order sent.' },
    },
  },
  EmailId: { type: 'string', pattern: EMAIL_ID },
  StatusName: { enum: [...STATUS_NAMES] },
  EmailStatus: {
    type: 'object',
    required: ['id', 'status', 'to', 'subject', 'recipients', 'attempts', 'events'],
    additionalProperties: false,
    properties: {
      id: ref('EmailId'),
      status: ref('StatusName'),
      to: strings('Recipients, as accepted.'),
      cc: strings('Copies.'),
      bcc: strings('Blind copies.'),
      subject: { type: 'string' },
      tags: strings('Its tags.'),
      metadata: { type: 'object', additionalProperties: { type: 'string' } },
      created_at: time('When it was accepted.'),
      send_at: time('When a scheduled email is sent.'),
      recipients: {
        type: 'array',
        items: {
          type: 'object',
          required: ['address', 'status'],
          additionalProperties: false,
          properties: { address: { type: 'string' }, status: ref('StatusName') },
        },
      },
      attempts: {
        type: 'array',
        items: {
          type: 'object',
          required: ['attempt', 'at', 'outcome', 'detail'],
          additionalProperties: false,
          properties: {
            attempt: { type: 'integer', minimum: 1 },
            at: time('When it ended.'),
            outcome: { enum: ['sent', 'transient', 'permanent'] },
            detail: { type: 'string' },
            duration_ms: { type: 'number', minimum: 0 },
          },
        },
      },
      events: {
        type: 'array',
        description: 'Every change of status, oldest first.',
        items: {
          type: 'object',
          required: ['at', 'status', 'source'],
          additionalProperties: false,
          properties: {
            at: time('When.'),
            status: ref('StatusName'),
            source: { enum: ['api', 'worker'] },
            detail: { type: 'string' },
          },
        },
      },
      failovers: {
        type: 'array',
        items: {
          type: 'object',
          required: ['at', 'from', 'to', 'reason'],
          additionalProperties: false,
          properties: {
            at: time('When.'),
            from: { type: 'string' },
            to: { type: 'string' },
            reason: { type: 'string' },
          },
        },
      },
      provider_id: { type: 'string' },
      sent_at: time('When the provider accepted it.'),
      duration_ms: { type: 'number', minimum: 0 },
      next_attempt_at: time('When it is tried again.'),
      failed_at: time('When it failed for good.'),
      reason: { type: 'string' },
    },
  },
  EmailList: {
    type: 'object',
    required: ['data', 'next_cursor'],
    additionalProperties: false,
    properties: {
      data: { type: 'array', maxItems: EMAILS_PAGE_SIZE, items: ref('EmailStatus') },
      next_cursor: { type: ['string', 'null'], description: 'Give as `cursor` for the next page.' },
    },
  },
  Cancelled: {
    type: 'object',
    required: ['id', 'status'],
    additionalProperties: false,
    properties: { id: ref('EmailId'), status: { const: 'cancelled' } },
  },
  Error: {
    type: 'object',
    required: ['error'],
    additionalProperties: false,
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        additionalProperties: false,
        properties: {
          code: {
            type: 'string',
            description:
              'Stable, for programs: invalid_request, malformed_json, unauthorized, forbidden, not_found, idempotency_conflict, not_cancellable, too_large, unsupported_media_type, rate_limited, queue_unavailable, store_unavailable, …',
          },
          message: { type: 'string', description: 'For people: what happened and what to do.' },
          fields: {
            type: 'object',
            additionalProperties: { type: 'string' },
            description:
              'What is wrong, by field: `to[1]`, `attachments[0].content`; in a batch `<index>.<field>` (`0.to`, `2.subject`, `1.size` for an email over the message size limit), and `body` for the batch itself.',
          },
        },
      },
    },
  },
  BatchInterrupted: {
    type: 'object',
    required: ['error'],
    additionalProperties: false,
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message', 'accepted'],
        additionalProperties: false,
        properties: {
          code: { enum: ['queue_unavailable', 'store_unavailable'] },
          message: { type: 'string' },
          accepted: {
            type: 'array',
            items: ref('Accepted'),
            description:
              'The emails before the one that failed: they stay accepted, and will be sent.',
          },
        },
      },
    },
  },
  Health: {
    type: 'object',
    required: ['status'],
    additionalProperties: false,
    properties: { status: { const: 'ok' } },
  },
  Readiness: {
    type: 'object',
    required: ['status'],
    additionalProperties: false,
    properties: { status: { enum: ['ready', 'unavailable'] } },
  },
};

const error = (description: string): JsonObject => json(ref('Error'), description);

const responses: Record<string, Json> = {
  Invalid: error('Not valid: see `error.fields`. Nothing was accepted.'),
  Unauthorized: {
    ...error('No API key, or not a live one.'),
    headers: { 'WWW-Authenticate': { schema: { type: 'string' } } },
  },
  Forbidden: error('The key lacks the scope this route needs.'),
  NotFound: error('No email with this id.'),
  Conflict: error('This Idempotency-Key was used for another request, or is still in progress.'),
  TooLarge: error('The body, or the message it makes, is over the limit.'),
  UnsupportedMediaType: error('Send application/json.'),
  RateLimited: {
    ...error('Too many requests for this key; see Retry-After.'),
    headers: { 'Retry-After': { schema: { type: 'integer' } } },
  },
  Unavailable: {
    ...error('The queue or the store did not answer; nothing was accepted. Try again.'),
    headers: { 'Retry-After': { schema: { type: 'integer' } } },
  },
};

const guarded = (scope: (typeof SCOPES)[number]): Json => [{ apiKey: [scope] }];
const refusals = {
  '401': response('Unauthorized'),
  '403': response('Forbidden'),
  '429': response('RateLimited'),
};

const emailIdParameter: Json = {
  name: 'id',
  in: 'path',
  required: true,
  schema: ref('EmailId'),
};

const idempotencyKey: Json = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,200}$' },
  description: `A repeat within ${IDEMPOTENCY_KEY_TTL_MS / 3_600_000} hours with the same body answers as the first time and sends nothing again; with another body it is 409.`,
};

const filter = (name: string, description: string, schema: Json = { type: 'string' }): Json => ({
  name,
  in: 'query',
  required: false,
  schema,
  description,
});

const paths: Record<string, Json> = {
  '/emails': {
    post: {
      operationId: 'acceptEmail',
      summary: 'Queue one email (or hold it until send_at)',
      security: guarded('send'),
      parameters: [idempotencyKey],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('EmailRequest') } },
      },
      responses: {
        '202': {
          ...json(ref('Accepted'), 'Accepted: the queue (or the schedule) holds it.'),
          headers: {
            Location: { schema: { type: 'string' }, description: '/emails/{id}' },
            'Idempotent-Replayed': {
              schema: { const: 'true' },
              description: 'A repeat, answered as the first time.',
            },
          },
        },
        '400': response('Invalid'),
        ...refusals,
        '409': response('Conflict'),
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '503': response('Unavailable'),
      },
    },
    get: {
      operationId: 'listEmails',
      summary: `Emails, newest first, ${EMAILS_PAGE_SIZE} a page`,
      security: guarded('read'),
      parameters: [
        filter('status', 'Only emails in this status.', ref('StatusName')),
        filter('to', 'A part of any recipient address, ignoring case.'),
        filter('tag', 'Only emails with this tag.', { type: 'string', pattern: TAG }),
        filter('since', 'Accepted at or after: an RFC 3339 time, or a date (UTC).'),
        filter('until', 'Accepted before: an RFC 3339 time, or a date (UTC).'),
        filter('cursor', 'The next_cursor of the page before.'),
      ],
      responses: {
        '200': json(ref('EmailList'), 'A page of emails.'),
        '400': response('Invalid'),
        ...refusals,
        '503': response('Unavailable'),
      },
    },
  },
  '/emails/batch': {
    post: {
      operationId: 'acceptBatch',
      summary: `Queue 1 to ${MAX_BATCH} emails in one request`,
      description:
        'Every email is checked first: if any is invalid, none is accepted (400, with fields keyed `<index>.<field>`). Then each is accepted in order. If one cannot be queued, the answer is 503 and lists the emails accepted before it, which stay accepted. With an Idempotency-Key the key covers the whole batch, and the item ids derive from one id (`<id>-<index>`).',
      security: guarded('send'),
      parameters: [idempotencyKey],
      requestBody: { required: true, content: { 'application/json': { schema: ref('Batch') } } },
      responses: {
        '202': {
          ...json(ref('AcceptedBatch'), 'Every email accepted, in the order sent.'),
          headers: { 'Idempotent-Replayed': { schema: { const: 'true' } } },
        },
        '400': response('Invalid'),
        ...refusals,
        '409': response('Conflict'),
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '503': {
          ...json(
            ref('BatchInterrupted'),
            'Not accepted whole: `accepted` lists the ones that were.',
          ),
          headers: { 'Retry-After': { schema: { type: 'integer' } } },
        },
      },
    },
  },
  '/emails/{id}': {
    parameters: [emailIdParameter],
    get: {
      operationId: 'getEmail',
      summary: 'An email and how its delivery goes',
      description:
        'JSON for a program (Accept: application/json); a page for a signed-in operator.',
      security: guarded('read'),
      responses: {
        '200': {
          description: 'The email.',
          content: {
            'application/json': { schema: ref('EmailStatus') },
            'text/html': { schema: { type: 'string' } },
          },
        },
        ...refusals,
        '404': response('NotFound'),
        '503': response('Unavailable'),
      },
    },
    delete: {
      operationId: 'cancelEmail',
      summary: 'Cancel a scheduled email before it is sent',
      security: guarded('send'),
      responses: {
        '200': json(ref('Cancelled'), 'Cancelled: it will never be sent.'),
        ...refusals,
        '404': response('NotFound'),
        '409': error('Not scheduled, or sending already began.'),
        '503': response('Unavailable'),
      },
    },
  },
  '/emails/{id}/raw': {
    parameters: [emailIdParameter],
    get: {
      operationId: 'getRawEmail',
      summary: 'The MIME message as it is sent (without Bcc)',
      security: guarded('read'),
      responses: {
        '200': {
          description: 'The message.',
          content: { 'message/rfc822': { schema: { type: 'string' } } },
        },
        ...refusals,
        '404': response('NotFound'),
        '503': response('Unavailable'),
      },
    },
  },
  '/emails/{id}/events': {
    parameters: [emailIdParameter],
    get: {
      operationId: 'followEmail',
      summary: 'Server-sent events: `status` with the email as JSON, at each change',
      security: guarded('read'),
      responses: {
        '200': {
          description: 'Until the email reaches a final status.',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...refusals,
        '404': response('NotFound'),
      },
    },
  },
  '/healthz': {
    get: {
      operationId: 'health',
      summary: 'The process answers',
      security: [],
      responses: { '200': json(ref('Health'), 'Alive.') },
    },
  },
  '/readyz': {
    get: {
      operationId: 'readiness',
      summary: 'The broker and the database are reachable',
      security: [],
      responses: {
        '200': json(ref('Readiness'), 'Ready.'),
        '503': json(ref('Readiness'), 'Not ready: take it out of rotation.'),
      },
    },
  },
  '/openapi.json': {
    get: {
      operationId: 'openApi',
      summary: 'This document',
      security: [],
      responses: {
        '200': {
          description: 'OpenAPI 3.1.',
          content: { 'application/json': { schema: { type: 'object' } } },
        },
      },
    },
  },
};

/** The JSON API as OpenAPI 3.1: served at `/openapi.json`, checked against the app by its test. */
export const OPENAPI_DOCUMENT: JsonObject = {
  openapi: '3.1.0',
  info: {
    title: 'Queued email',
    version: '1',
    description:
      'Accepts email over HTTP, queues it, and sends it in the background. Every answer of the API, errors too, is JSON.',
  },
  security: [{ apiKey: [] }],
  paths,
  components: {
    securitySchemes: {
      apiKey: {
        type: 'http',
        scheme: 'bearer',
        description: `An API key (\`Authorization: Bearer em_…\`), made with \`email api-keys create --scopes …\`. Scopes: ${SCOPES.join(', ')}; each operation names the one it needs. A service started open (\`email dev\` on loopback) needs none.`,
      },
    },
    schemas,
    responses,
  },
};

/** `GET /openapi.json`, open to anyone: it describes the API, it grants nothing. */
export function mountOpenApiRoute(router: Router): void {
  const body = JSON.stringify(OPENAPI_DOCUMENT);
  router.get('/openapi.json', async function serveOpenApi(ctx): Promise<void> {
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = body;
  });
}
