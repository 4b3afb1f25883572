import type Router from '@koa/router';
import { MAX_BATCH } from '../../application/request-batch.js';
import { SCOPES } from '../../application/ports/api-key-store.js';
import { IDEMPOTENCY_KEY_TTL_MS } from '../../application/ports/idempotency-store.js';
import { SUPPRESSION_REASONS } from '../../application/ports/suppression-list.js';
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
import { HISTORY_NAMES, STATUS_NAMES } from '../../domain/email-status.js';
import { WEBHOOK_MAX_SKEW_MS } from './mailgun-webhook-routes.js';
import { EMAILS_PAGE_SIZE } from './email-list-routes.js';
import { MAX_DETAIL_CHARS, SUPPRESSIONS_PAGE_SIZE } from './suppression-routes.js';
import { REASON_KINDS } from './dead-letter-page.js';
import { MAX_WEBHOOK_URL_CHARS } from '../../application/webhook-subscriptions.js';
import { WEBHOOK_EVENT_TYPES } from '../../domain/webhook.js';

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

/**
 * Optional address fields take one address or a list; `to` needs at least one. No `maxItems`: the
 * same mailbox given twice counts once, so the limit is on distinct recipients (see EmailRequest).
 */
const addresses = (description: string, minItems: number): Json => ({
  description,
  oneOf: [ref('Address'), { type: 'array', items: ref('Address'), minItems }],
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
    description: `One email. Every problem is reported at once, by field (\`to[1]\`, \`attachments[0].content\`). At most ${MAX_RECIPIENTS} distinct recipients in to, cc and bcc together (the same mailbox twice counts once). Recipients on the suppression list are dropped at acceptance and listed in the answer's \`suppressed\`.`,
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
      status: {
        enum: ['queued', 'scheduled', 'suppressed'],
        description:
          '`queued`, or `scheduled` with a send_at. `suppressed` only in a batch: every recipient of that email is on the suppression list, so it is recorded and never sent (one email alone is refused with 422 instead).',
      },
      suppressed: {
        type: 'array',
        minItems: 1,
        items: { type: 'string' },
        description:
          'The recipients dropped because they are on the suppression list, as they were given; absent when none was. The email goes to the others.',
      },
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
  StatusName: {
    enum: [...STATUS_NAMES],
    description:
      '`sent`: the provider accepted it. `delivered`, `bounced`, `complained`: what the provider reported afterwards (Mailgun webhooks), per recipient, and for the email once every recipient has a report. `suppressed`: every recipient is on the suppression list, so it was never sent (a recipient alone may be `suppressed` too).',
  },
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
            status: {
              enum: [...HISTORY_NAMES],
              description:
                'The status the email took, or a note that changes none: `unconfirmed`, the provider accepted it and then reported nothing on any recipient within the confirmation deadline (an hour unless configured otherwise), the status stays `sent`; `expedited`, an operator brought the waiting retry forward to now (source `api`); `resent`, an operator sent it again as a new email (source `api`, the detail names the new id).',
            },
            source: {
              enum: ['api', 'worker', 'provider'],
              description:
                '`api` accepted it, `worker` sent it, `provider` reported on it afterwards (a Mailgun webhook).',
            },
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
      webhooks: {
        type: 'array',
        description:
          'Only in `GET /emails/{id}`: the outgoing webhook deliveries of this email, oldest first, one per subscribed endpoint and change.',
        items: {
          type: 'object',
          required: ['id', 'url', 'type', 'state', 'created_at', 'attempts'],
          additionalProperties: false,
          properties: {
            id: {
              type: 'string',
              description: 'The `webhook-id` header, the same on every attempt.',
            },
            url: { type: 'string', description: "The endpoint's URL when the delivery was made." },
            type: { type: 'string', description: 'The change, e.g. `email.delivered`.' },
            state: {
              enum: ['pending', 'delivered', 'failed'],
              description: '`failed`: every attempt of the retry schedule failed.',
            },
            created_at: time('When the change was made into a delivery.'),
            next_attempt_at: time('When it is tried again, while pending.'),
            attempts: {
              type: 'array',
              items: {
                type: 'object',
                required: ['attempt', 'at', 'duration_ms'],
                additionalProperties: false,
                properties: {
                  attempt: { type: 'integer', minimum: 1 },
                  at: time('When the request started.'),
                  duration_ms: { type: 'number', minimum: 0 },
                  status_code: { type: 'integer', description: "The receiver's answer." },
                  error: {
                    type: 'string',
                    description: 'Why there was no answer (refused, timed out, …).',
                  },
                },
              },
            },
          },
        },
      },
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
              'Stable, for programs: invalid_request, malformed_json, unauthorized, forbidden, not_found, idempotency_conflict, not_cancellable, all_recipients_suppressed, too_large, unsupported_media_type, rate_limited, queue_unavailable, store_unavailable; for the Mailgun webhook invalid_webhook, invalid_signature, stale_timestamp, replayed_token; …',
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
  AllSuppressed: {
    type: 'object',
    required: ['error'],
    additionalProperties: false,
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message', 'suppressed'],
        additionalProperties: false,
        properties: {
          code: { const: 'all_recipients_suppressed' },
          message: { type: 'string' },
          suppressed: {
            type: 'array',
            minItems: 1,
            items: { type: 'string' },
            description: 'Every recipient, as given: each is on the suppression list.',
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
  SuppressionReason: {
    enum: [...SUPPRESSION_REASONS],
    description:
      '`bounce`, `complaint`, `unsubscribe`: added by a provider report (a permanent bounce, a spam complaint, an unsubscribe); `manual`: added by an operator.',
  },
  Suppression: {
    type: 'object',
    required: ['address', 'reason', 'created_at'],
    additionalProperties: false,
    properties: {
      address: {
        type: 'string',
        description:
          'The mailbox key: the local part as given and the domain in lowercase ASCII (A-labels), so `info@Bücher.de` is `info@xn--bcher-kva.de`.',
      },
      reason: ref('SuppressionReason'),
      detail: {
        type: 'string',
        description: 'The id of the email whose report put it there, or the operator’s note.',
      },
      created_at: time('When it was added.'),
    },
  },
  NewSuppression: {
    type: 'object',
    required: ['address'],
    additionalProperties: false,
    properties: {
      address: {
        type: 'string',
        description:
          'One address, as a person types it (a display name is allowed and dropped); kept as its mailbox key.',
      },
      reason: { ...ref('SuppressionReason'), description: 'Absent: `manual`.' },
      detail: {
        type: 'string',
        maxLength: MAX_DETAIL_CHARS,
        description: `A note, at most ${MAX_DETAIL_CHARS} characters, no NUL.`,
      },
    },
  },
  SuppressionList: {
    type: 'object',
    required: ['data', 'next_cursor'],
    additionalProperties: false,
    properties: {
      data: { type: 'array', maxItems: SUPPRESSIONS_PAGE_SIZE, items: ref('Suppression') },
      next_cursor: { type: ['string', 'null'], description: 'Give as `cursor` for the next page.' },
    },
  },
  DeadLetterReasonKind: {
    enum: [...REASON_KINDS],
    description:
      'Why it is a dead letter: `permanent` (the provider refused it), `out_of_attempts` (MAX_ATTEMPTS failures that could be retried), `malformed` (a task that does not decode), `broker` (RabbitMQ dead-lettered it itself), `other`.',
  },
  DeadLetter: {
    type: 'object',
    required: ['id', 'to', 'subject', 'reason', 'reason_kind', 'attempts', 'failed_at'],
    additionalProperties: false,
    properties: {
      id: {
        type: 'string',
        description:
          'The email’s id (its page is /emails/{id}); `unknown` for a letter that does not decode.',
      },
      to: { type: 'array', items: { type: 'string' } },
      subject: { type: 'string' },
      reason: { type: 'string', description: 'The worker’s words, such as `permanent: …`.' },
      reason_kind: ref('DeadLetterReasonKind'),
      attempts: { type: 'integer', minimum: 0, description: 'Attempts of its last run.' },
      failed_at: {
        type: 'string',
        description: 'RFC 3339; empty when the letter does not say.',
      },
    },
  },
  DeadLetterList: {
    type: 'object',
    required: ['data', 'counts'],
    additionalProperties: false,
    properties: {
      data: { type: 'array', items: ref('DeadLetter'), description: 'Oldest first.' },
      counts: {
        type: 'object',
        required: ['total', 'by_reason'],
        additionalProperties: false,
        properties: {
          total: { type: 'integer', minimum: 0 },
          by_reason: {
            type: 'object',
            required: [...REASON_KINDS],
            additionalProperties: false,
            properties: Object.fromEntries(
              REASON_KINDS.map((k) => [k, { type: 'integer', minimum: 0 }]),
            ),
          },
        },
      },
    },
  },
  DeadLetterReplay: {
    oneOf: [
      {
        type: 'object',
        required: ['id'],
        additionalProperties: false,
        properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
      },
      {
        type: 'object',
        required: ['all'],
        additionalProperties: false,
        properties: {
          all: { const: true },
          reason: { ...ref('DeadLetterReasonKind'), description: 'Only the letters of this kind.' },
        },
      },
    ],
  },
  DeadLetterPurge: {
    type: 'object',
    required: ['confirm'],
    additionalProperties: false,
    properties: {
      confirm: { const: true, description: 'Required: a body without it purges nothing (400).' },
    },
  },
  Replayed: {
    type: 'object',
    required: ['replayed'],
    additionalProperties: false,
    properties: { replayed: { type: 'integer', minimum: 0 } },
  },
  Purged: {
    type: 'object',
    required: ['purged'],
    additionalProperties: false,
    properties: { purged: { type: 'integer', minimum: 0 } },
  },
  WebhookEndpoint: {
    type: 'object',
    required: ['id', 'url', 'events', 'created_at'],
    additionalProperties: false,
    description: 'An outgoing webhook endpoint, as every list shows it: never with its secret.',
    properties: {
      id: { type: 'string', pattern: '^we_[A-Za-z0-9_-]{16}$' },
      url: {
        type: 'string',
        maxLength: MAX_WEBHOOK_URL_CHARS,
        description: 'Where each change is POSTed, signed (Standard Webhooks).',
      },
      events: {
        type: 'array',
        items: { enum: [...WEBHOOK_EVENT_TYPES] },
        description: 'The types it gets; empty: every type.',
      },
      created_at: time('When it was added.'),
    },
  },
  CreatedWebhookEndpoint: {
    type: 'object',
    required: ['id', 'url', 'events', 'created_at', 'secret'],
    additionalProperties: false,
    properties: {
      id: { type: 'string', pattern: '^we_[A-Za-z0-9_-]{16}$' },
      url: { type: 'string', maxLength: MAX_WEBHOOK_URL_CHARS },
      events: { type: 'array', items: { enum: [...WEBHOOK_EVENT_TYPES] } },
      created_at: time('When it was added.'),
      secret: {
        type: 'string',
        pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$',
        description:
          'The signing secret: `whsec_` and the base64 of 24 random bytes, as the Standard Webhooks libraries take it (`new Webhook(secret).verify(body, headers)`). Shown in this answer only; to change it, add a new endpoint and remove this one.',
      },
    },
  },
  NewWebhookEndpoint: {
    type: 'object',
    required: ['url'],
    additionalProperties: false,
    properties: {
      url: {
        type: 'string',
        maxLength: MAX_WEBHOOK_URL_CHARS,
        description: `An absolute \`https:\` (or \`http:\`) URL, at most ${MAX_WEBHOOK_URL_CHARS} characters, without user:password and without a fragment; kept as the WHATWG URL parser writes it.`,
      },
      events: {
        type: 'array',
        items: { type: 'string' },
        description: `Statuses to get: ${STATUS_NAMES.join(', ')}, with or without \`email.\`, in any case. Absent or empty: every type.`,
      },
    },
  },
  WebhookEndpointList: {
    type: 'object',
    required: ['data'],
    additionalProperties: false,
    properties: {
      data: { type: 'array', items: ref('WebhookEndpoint'), description: 'Oldest first.' },
    },
  },
  SuppressedAddress: {
    type: 'object',
    required: ['address'],
    additionalProperties: false,
    properties: { address: { type: 'string', description: 'The mailbox key.' } },
  },
  MailgunWebhook: {
    type: 'object',
    required: ['signature', 'event-data'],
    description:
      'Mailgun’s event webhook as Mailgun posts it (only the fields read here are described).',
    properties: {
      signature: {
        type: 'object',
        required: ['timestamp', 'token', 'signature'],
        properties: {
          timestamp: {
            type: 'string',
            pattern: '^[0-9]{1,12}$',
            description: `Unix seconds; refused when more than ${WEBHOOK_MAX_SKEW_MS / 60_000} minutes from the server’s time.`,
          },
          token: {
            type: 'string',
            pattern: '^[\\x21-\\x7e]{1,200}$',
            description: 'Random, once: a token seen before is refused as a replay.',
          },
          signature: {
            type: 'string',
            pattern: '^[0-9a-fA-F]{64}$',
            description:
              'Hex HMAC-SHA256 of timestamp followed by token, under the domain’s webhook signing key (`MAILGUN_WEBHOOK_SIGNING_KEY`).',
          },
        },
      },
      'event-data': {
        type: 'object',
        required: ['event'],
        description:
          'Read: `event` (delivered, failed with `severity` permanent or temporary, complained, unsubscribed; any other is ignored), `id`, `timestamp` (Unix seconds, a number), `recipient`, `user-variables.email-id` (our id, sent as `v:email-id`), and for failures `delivery-status` and `reason`.',
        properties: {
          event: { type: 'string' },
          severity: { type: 'string' },
          id: { type: 'string' },
          timestamp: { type: 'number' },
          recipient: { type: 'string' },
          'user-variables': { type: 'object' },
        },
      },
    },
  },
  WebhookResult: {
    type: 'object',
    required: ['result'],
    additionalProperties: false,
    properties: {
      result: {
        enum: ['recorded', 'repeated', 'unknown', 'ignored'],
        description:
          '`recorded`: news, written; `repeated`: known already; `unknown`: not an email of this service (or one deleted since), or an address it was not sent to; `ignored`: an event this service does not follow (opened, clicked, accepted…).',
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
          ...json(
            ref('Accepted'),
            'Accepted: the queue (or the schedule) holds it. Recipients on the suppression list were dropped, and are listed in `suppressed`.',
          ),
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
        '422': json(
          ref('AllSuppressed'),
          'Every To recipient (so perhaps every recipient) is on the suppression list: nothing was accepted or kept. An email is not sent to its Cc or Bcc alone.',
        ),
        '503': response('Unavailable'),
      },
    },
    get: {
      operationId: 'listEmails',
      summary: `Emails, newest first, ${EMAILS_PAGE_SIZE} a page`,
      description:
        'JSON unless the client asks for text/html first (a browser): then the page of the same list for a person, which needs a signed-in operator where access is guarded.',
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
          ...json(
            ref('AcceptedBatch'),
            'Every email accepted, in the order sent; each lists the recipients dropped as suppressed, and one with nobody left is `suppressed` (recorded, never sent).',
          ),
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
  '/suppressions': {
    get: {
      operationId: 'listSuppressions',
      summary: `The suppression list, newest first, ${SUPPRESSIONS_PAGE_SIZE} a page`,
      description:
        'Addresses no email is sent to: dropped from an email when it is accepted, and again just before it is sent. JSON unless the client asks for text/html first without a key (a browser): then the page, which needs a signed-in operator where access is guarded.',
      security: guarded('admin'),
      parameters: [filter('cursor', 'The next_cursor of the page before.')],
      responses: {
        '200': json(ref('SuppressionList'), 'A page of entries.'),
        '400': response('Invalid'),
        ...refusals,
        '503': response('Unavailable'),
      },
    },
    post: {
      operationId: 'addSuppression',
      summary: 'Put an address on the suppression list',
      security: guarded('admin'),
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('NewSuppression') } },
      },
      responses: {
        '201': json(ref('Suppression'), 'Added.'),
        '200': json(
          ref('SuppressedAddress'),
          'On the list already: the first entry (its reason and time) stands.',
        ),
        '400': response('Invalid'),
        ...refusals,
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '503': response('Unavailable'),
      },
    },
  },
  '/suppressions/{address}': {
    parameters: [
      {
        name: 'address',
        in: 'path',
        required: true,
        schema: { type: 'string' },
        description:
          'The address, URL-encoded; any spelling of the mailbox (`info@bücher.de` or `info@xn--bcher-kva.de`).',
      },
    ],
    delete: {
      operationId: 'removeSuppression',
      summary: 'Take an address off the suppression list: email may be sent to it again',
      security: guarded('admin'),
      responses: {
        '200': json(ref('SuppressedAddress'), 'Removed.'),
        '400': response('Invalid'),
        ...refusals,
        '404': error('This address is not on the suppression list.'),
        '503': response('Unavailable'),
      },
    },
  },
  '/webhooks': {
    get: {
      operationId: 'listWebhookEndpoints',
      summary: 'The outgoing webhook endpoints, oldest first (never their secrets)',
      description:
        'JSON unless the client asks for text/html first without a key (a browser): then the page, with the recent deliveries, which needs a signed-in operator where access is guarded.',
      security: guarded('admin'),
      responses: {
        '200': json(ref('WebhookEndpointList'), 'Every endpoint.'),
        '400': response('Invalid'),
        ...refusals,
        '503': response('Unavailable'),
      },
    },
    post: {
      operationId: 'addWebhookEndpoint',
      summary: 'Add an endpoint that gets each email status change, signed (Standard Webhooks)',
      security: guarded('admin'),
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('NewWebhookEndpoint') } },
      },
      responses: {
        '201': {
          ...json(ref('CreatedWebhookEndpoint'), 'Added: the secret is in this answer only.'),
          headers: { Location: { schema: { type: 'string' }, description: '/webhooks/{id}' } },
        },
        '400': response('Invalid'),
        ...refusals,
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '503': response('Unavailable'),
      },
    },
  },
  '/webhooks/{id}': {
    parameters: [
      {
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string', pattern: '^we_[A-Za-z0-9_-]+$' },
        description: 'The endpoint’s id, `we_…`.',
      },
    ],
    delete: {
      operationId: 'removeWebhookEndpoint',
      summary: 'Remove an endpoint: nothing more is sent to it',
      security: guarded('admin'),
      responses: {
        '204': { description: 'Removed.' },
        ...refusals,
        '404': error('No webhook endpoint has this id.'),
        '503': response('Unavailable'),
      },
    },
  },
  '/dead-letters': {
    get: {
      operationId: 'listDeadLetters',
      summary: 'The dead letters (as `email dead-letters list`), with counts by reason',
      description:
        'What the worker could not deliver, left where it is. JSON unless the client asks for text/html first without a key (a browser): then the page, which needs a signed-in operator where access is guarded. While the queue does not answer: 503.',
      security: guarded('admin'),
      responses: {
        '200': json(ref('DeadLetterList'), 'Every dead letter.'),
        '400': response('Invalid'),
        ...refusals,
        '503': response('Unavailable'),
      },
    },
  },
  '/dead-letters/replay': {
    post: {
      operationId: 'replayDeadLetters',
      summary: 'Put dead letters back on the queue (as `email dead-letters replay`)',
      description:
        'One email’s letter (`id`), every letter (`all`), or every letter of one kind (`all` and `reason`). Each email is tried again from a first attempt, with a fresh attempt budget.',
      security: guarded('admin'),
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('DeadLetterReplay') } },
      },
      responses: {
        '200': json(ref('Replayed'), 'How many letters went back on the queue.'),
        '400': response('Invalid'),
        ...refusals,
        '404': error('No dead letter has this id (it may have been replayed or purged already).'),
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '503': response('Unavailable'),
      },
    },
  },
  '/dead-letters/purge': {
    post: {
      operationId: 'purgeDeadLetters',
      summary: 'Delete every dead letter for good (as `email dead-letters purge`)',
      description:
        'Only with the body `{"confirm": true}`, so that a stray POST purges nothing. The emails stay failed.',
      security: guarded('admin'),
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('DeadLetterPurge') } },
      },
      responses: {
        '200': json(ref('Purged'), 'How many letters were deleted.'),
        '400': response('Invalid'),
        ...refusals,
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '503': response('Unavailable'),
      },
    },
  },
  '/webhooks/mailgun': {
    post: {
      operationId: 'receiveMailgunEvent',
      summary: 'Mailgun’s event webhooks: delivered, failed, complained, unsubscribed',
      description: `Only with MAILGUN_WEBHOOK_SIGNING_KEY set; otherwise 404. No API key: the request is trusted once \`signature\` checks out (HMAC-SHA256 of timestamp + token under the signing key, a timestamp within ${WEBHOOK_MAX_SKEW_MS / 60_000} minutes, a token not seen before); nothing is recorded on any refusal. Counted per client address. A permanent failure puts the recipient on the suppression list (\`bounce\`), a complaint (\`complaint\`) and an unsubscribe (\`unsubscribe\`) too. Mailgun retries any answer but 200 and 406, so an email this service does not know is a 200.`,
      security: [],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('MailgunWebhook') } },
      },
      responses: {
        '200': json(ref('WebhookResult'), 'Taken: recorded, or nothing to record.'),
        '400': error('Not a Mailgun event webhook: see `error.fields`.'),
        '401': {
          ...error(
            'Not signed: `invalid_signature`, `stale_timestamp` or `replayed_token`. Nothing was recorded.',
          ),
          headers: { 'WWW-Authenticate': { schema: { const: 'Mailgun-Signature realm="email"' } } },
        },
        '404': error('Webhooks are not configured on this service.'),
        '413': response('TooLarge'),
        '415': response('UnsupportedMediaType'),
        '429': response('RateLimited'),
        '503': {
          ...error('The event could not be recorded; Mailgun sends it again later.'),
          headers: { 'Retry-After': { schema: { type: 'integer' } } },
        },
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
