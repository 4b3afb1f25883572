import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context } from 'koa';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../application/ports/system.js';
import type { WebhookTokens } from '../../application/ports/webhook-tokens.js';
import type {
  ProviderReport,
  RecordOutcome,
  RecordProviderEvent,
} from '../../application/record-provider-event.js';
import { publicText } from '../../domain/delivery.js';
import { parseEmailAddress } from '../../domain/email-address.js';
import { EmailId } from '../../domain/email-request.js';
import type { ProviderReportKind } from '../../domain/events.js';
import type { Guards } from './access.js';
import { requireJson, jsonBody } from './api-routes.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';

/** What `POST /webhooks/mailgun` needs; without it (no MAILGUN_WEBHOOK_SIGNING_KEY) it is 404. */
export interface MailgunWebhooks {
  /** The domain's webhook signing key (not the API key), as Mailgun shows it. */
  readonly signingKey: Buffer;
  readonly record: Pick<RecordProviderEvent, 'execute'>;
  readonly tokens: WebhookTokens;
  /** The server's clock, for the timestamp's age and the token's; the system's by default. */
  readonly now?: () => Date;
}

export interface MailgunWebhookRoutesOptions {
  readonly webhooks: MailgunWebhooks;
  readonly guards: Guards;
  readonly log: Logger;
}

/** Mailgun's answer is small; anything near this is not Mailgun. */
export const WEBHOOK_BODY_LIMIT_BYTES = 1_000_000;
/** A signature older or newer than this is refused: Mailgun signs every attempt afresh. */
export const WEBHOOK_MAX_SKEW_MS = 5 * 60_000;
/** The longest reason kept from a provider's event (a receiving server's answer). */
const MAX_REASON_LENGTH = 500;

/** Mailgun's events and what they report; the others (opened, clicked, accepted…) are not ours. */
const KINDS: Readonly<Record<string, (severity: unknown) => ProviderReportKind | undefined>> = {
  delivered: () => 'delivered',
  failed: (severity) =>
    severity === 'permanent' ? 'bounced' : severity === 'temporary' ? 'deferred' : undefined,
  complained: () => 'complained',
  unsubscribed: () => 'unsubscribed',
};

/** A checked request: its token, and the report in it, or nothing to record. */
interface Signed {
  readonly token: string;
  readonly report?: ProviderReport;
  /** Why there is nothing to record (an event we do not follow, an email not ours). */
  readonly skipped?: RecordOutcome | 'ignored';
}

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === 'object' && u !== null && !Array.isArray(u);

const malformed = (fields: Record<string, string>): Problem => ({
  status: 400,
  code: 'invalid_webhook',
  title: 'The webhook is not valid',
  message: `This is not a Mailgun event webhook: ${Object.entries(fields)
    .map(([field, why]) => `${field} ${why}`)
    .join('; ')}.`,
  fields,
});

const refused = (code: string, message: string): Problem => ({
  status: 401,
  code,
  title: 'The webhook is not signed',
  message,
});

const hmac = (key: Buffer, text: string): Buffer =>
  createHmac('sha256', key).update(text, 'utf8').digest();

/**
 * The signature block: Mailgun's `{timestamp, token, signature}`, checked against the key in
 * constant time and against the clock (a captured request is worthless after five minutes; the
 * token stops it before that).
 */
function checkSignature(
  body: Record<string, unknown>,
  key: Buffer,
  now: Date,
): E.Either<Problem, string> {
  const block = body.signature;
  if (!isObject(block)) return E.left(malformed({ signature: 'must be an object' }));
  const { timestamp, token, signature } = block;
  const fields: Record<string, string> = {};
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) {
    fields['signature.timestamp'] = 'must be Unix seconds, as a string of digits';
  }
  if (typeof token !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(token)) {
    fields['signature.token'] = 'must be 1 to 200 visible ASCII characters';
  }
  if (typeof signature !== 'string' || !/^[0-9a-fA-F]{64}$/.test(signature)) {
    fields['signature.signature'] = 'must be a hex HMAC-SHA256 (64 hex digits)';
  }
  if (Object.keys(fields).length > 0) return E.left(malformed(fields));
  const [ts, tk, sig] = [timestamp as string, token as string, signature as string];
  if (!timingSafeEqual(Buffer.from(sig, 'hex'), hmac(key, ts + tk))) {
    return E.left(
      refused(
        'invalid_signature',
        'The signature does not match: the signing key this service checks with is not the HTTP webhook signing key of this Mailgun domain (its control panel shows it with the webhooks).',
      ),
    );
  }
  if (Math.abs(now.getTime() - Number(ts) * 1000) > WEBHOOK_MAX_SKEW_MS) {
    return E.left(
      refused(
        'stale_timestamp',
        'The signature is more than 5 minutes away from this server’s time: a replay, or a clock to set right.',
      ),
    );
  }
  return E.right(tk);
}

/** Mailgun's float seconds as RFC 3339, or undefined for anything else. */
function isoTime(seconds: unknown): string | undefined {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) return undefined;
  const date = new Date(Math.round(seconds * 1000));
  return date.getUTCFullYear() <= 9999 ? date.toISOString() : undefined;
}

/** What the receiving server said, else Mailgun's own word (`bounce`, `generic`…). */
function reasonOf(data: Record<string, unknown>): string | undefined {
  const status = isObject(data['delivery-status']) ? data['delivery-status'] : {};
  const said = [status.code, status.message || status.description]
    .filter((p) => (typeof p === 'string' && p.trim() !== '') || typeof p === 'number')
    .join(' ')
    .trim();
  const text = said !== '' ? said : typeof data.reason === 'string' ? data.reason.trim() : '';
  if (text === '') return undefined;
  // One line, no control characters: it is shown on the email's page.
  const line = publicText(text.replace(/[\p{Cc}\s]+/gu, ' '));
  return line.length > MAX_REASON_LENGTH ? `${line.slice(0, MAX_REASON_LENGTH - 1)}…` : line;
}

/** Longer than any Message-ID a sender makes (RFC 5322 §2.1.1 limits a line to 998). */
const MAX_MESSAGE_ID_LENGTH = 500;

/**
 * Mailgun's id of the message, as its send API answered it (`<…@domain>`): the event's
 * `message.headers["message-id"]`, which Mailgun gives without the angle brackets
 * (documentation.mailgun.com, "Events"), trimmed and with brackets or without; undefined when
 * missing, or when what is inside is not a msg-id's printable ASCII without spaces or angle
 * brackets (RFC 5322 §3.6.4). The report's own id stands in then (see RecordProviderEvent).
 */
function messageIdOf(data: Record<string, unknown>): string | undefined {
  const message = isObject(data.message) ? data.message : {};
  const headers = isObject(message.headers) ? message.headers : {};
  const id = headers['message-id'];
  if (typeof id !== 'string') return undefined;
  const bare = id.trim().replace(/^<(.*)>$/, '$1');
  return /^[\x21-\x3b\x3d\x3f-\x7e]+$/.test(bare) && bare.length <= MAX_MESSAGE_ID_LENGTH
    ? `<${bare}>`
    : undefined;
}

/** `event-data` as a report, nothing to record, or what is wrong with it. */
function readEvent(body: Record<string, unknown>): E.Either<Problem, Omit<Signed, 'token'>> {
  const data = body['event-data'];
  if (!isObject(data)) return E.left(malformed({ 'event-data': 'must be an object' }));
  if (typeof data.event !== 'string') {
    return E.left(malformed({ 'event-data.event': 'must be a string' }));
  }
  const kindOf = Object.hasOwn(KINDS, data.event) ? KINDS[data.event] : undefined;
  if (kindOf === undefined) return E.right({ skipped: 'ignored' });
  const kind = kindOf(data.severity);
  const at = isoTime(data.timestamp);
  const recipient =
    typeof data.recipient === 'string' ? parseEmailAddress(data.recipient) : undefined;
  const fields: Record<string, string> = {};
  if (kind === undefined) fields['event-data.severity'] = 'must be permanent or temporary';
  if (at === undefined) fields['event-data.timestamp'] = 'must be Unix seconds, a number';
  if (recipient === undefined || E.isLeft(recipient)) {
    fields['event-data.recipient'] = 'must be an email address';
  }
  if (typeof data.id !== 'string' || data.id === '' || data.id.length > 200) {
    fields['event-data.id'] = 'must be the event’s id, a string';
  }
  if (
    kind === undefined ||
    at === undefined ||
    recipient === undefined ||
    E.isLeft(recipient) ||
    typeof data.id !== 'string' ||
    Object.keys(fields).length > 0
  ) {
    return E.left(malformed(fields));
  }
  // Our id rides along as `v:email-id`. Without it the email was sent by something else on the
  // same Mailgun domain: nothing of ours, and nothing Mailgun should send again.
  const variables = isObject(data['user-variables']) ? data['user-variables'] : {};
  const emailId = variables['email-id'];
  if (!EmailId.is(emailId)) return E.right({ skipped: 'unknown' });
  const reason = kind === 'bounced' || kind === 'deferred' ? reasonOf(data) : undefined;
  const providerMessageId = messageIdOf(data);
  return E.right({
    report: {
      emailId,
      at,
      recipient: recipient.right,
      kind,
      ...(reason !== undefined ? { reason } : {}),
      source: 'mailgun',
      providerEventId: data.id,
      ...(providerMessageId !== undefined ? { providerMessageId } : {}),
    },
  });
}

const storeDown = (reason: string): Problem => ({
  status: 503,
  code: 'store_unavailable',
  title: 'The event could not be recorded',
  message: `The event could not be recorded (${reason}); nothing was kept. Mailgun sends it again later.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

/**
 * `POST /webhooks/mailgun`: Mailgun's event webhooks. Open (Mailgun has no API key of ours) but
 * counted per address, and trusted only once the signature, its age and its one-time token are
 * checked; nothing is recorded on any refusal. Mailgun retries any answer but 200 and 406 for
 * hours, so an email we do not know is a 200, and a store that does not answer a 503.
 */
export function mountMailgunWebhookRoutes(
  router: Router,
  options: MailgunWebhookRoutesOptions,
): void {
  const { webhooks, guards, log } = options;
  const now = webhooks.now ?? (() => new Date());

  const refuse = (ctx: Context, problem: Problem): void => {
    log.warn(
      { code: problem.code, status: problem.status, ip: ctx.ip },
      'A Mailgun webhook was refused',
    );
    if (problem.status === 401) ctx.set('WWW-Authenticate', 'Mailgun-Signature realm="email"');
    sendProblem(ctx, problem);
  };

  router.post(
    `${API_ROUTE}mailgun-webhook`,
    '/webhooks/mailgun',
    guards.open(),
    requireJson('the webhook'),
    jsonBody(WEBHOOK_BODY_LIMIT_BYTES),
    async function receiveMailgunEvent(ctx: Context): Promise<void> {
      const body: unknown = ctx.request.body;
      if (!isObject(body)) return refuse(ctx, malformed({ body: 'must be a JSON object' }));
      const at = now();
      const token = checkSignature(body, webhooks.signingKey, at);
      if (E.isLeft(token)) return refuse(ctx, token.left);
      const read = readEvent(body);
      if (E.isLeft(read)) return refuse(ctx, read.left);
      const { report, skipped } = read.right;

      const answer = (result: RecordOutcome | 'ignored'): void => {
        ctx.status = 200;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { result };
      };
      // Nothing to record: no state to protect, and nothing to remember the token for.
      if (report === undefined) return answer(skipped ?? 'ignored');

      const first = await webhooks.tokens.remember(token.right, at)();
      if (E.isLeft(first)) return refuse(ctx, storeDown(first.left.reason));
      if (!first.right) {
        return refuse(
          ctx,
          refused('replayed_token', 'This signature’s token was seen before: a replay.'),
        );
      }
      const recorded = await webhooks.record.execute(report)();
      if (E.isLeft(recorded)) {
        // Mailgun sends the same event again, signed afresh; should it reuse the token, that
        // retry must not pass for a replay of a request that changed nothing.
        const forgot = await webhooks.tokens.forget(token.right)();
        if (E.isLeft(forgot)) log.warn({ reason: forgot.left.reason }, 'Could not forget a token');
        return refuse(ctx, storeDown(recorded.left.reason));
      }
      return answer(recorded.right);
    },
  );
}
