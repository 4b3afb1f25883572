import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context, Next } from 'koa';
import { koaBody } from 'koa-body';
import type { Logger } from '../../application/ports/system.js';
import type { EmailRequester } from '../../application/ports/email-requester.js';
import type { Guards } from './access.js';
import type { Accepted } from '../../application/request-email.js';
import type { ApiErrorBody, Problem } from './errors.js';
import { API_ROUTE, requestEmailProblem, sendProblem } from './errors.js';
import { summarisedWarn } from '../logging/summarised.js';
import { setHeader } from './security.js';

export interface ApiRoutesOptions {
  readonly requestEmail: EmailRequester;
  readonly guards: Guards;
  readonly bodyLimitBytes: number;
  readonly log: Logger;
}

/** Visible ASCII only: the key is stored and compared as is, and may end up in logs. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

interface ApiState {
  idempotencyKey?: string;
}

export interface AcceptedBody {
  readonly id: string;
  readonly status: 'queued' | 'scheduled' | 'suppressed';
  /** The recipients dropped because they are on the suppression list, when any were. */
  readonly suppressed?: readonly string[];
}

/** The answer's body for an accepted email: `suppressed` only when someone was dropped. */
export const acceptedBody = ({ id, status, suppressed }: Accepted): AcceptedBody => ({
  id,
  status,
  ...(suppressed !== undefined && suppressed.length > 0 ? { suppressed } : {}),
});

/** The 422 of an email whose every recipient is suppressed: the error, and who they are. */
export interface SuppressedBody extends ApiErrorBody {
  readonly error: ApiErrorBody['error'] & { readonly suppressed: readonly string[] };
}

/**
 * Whether a `charset` parameter of a JSON body names UTF-8 (or is absent): JSON exchanged between
 * systems is UTF-8 (RFC 8259 §8.1), and the body parser reads nothing else faithfully; another
 * charset's bytes would be decoded as UTF-8 and its letters turned into U+FFFD.
 */
const isUtf8Charset = (charset: string): boolean =>
  charset === '' || /^utf-?8$/i.test(charset.trim());

/**
 * Every `charset` parameter of a Content-Type, as written (quotes taken off). Read by hand, not
 * by Koa's parser: that one gives no charset at all for a header it cannot parse
 * (`application/json;charset=latin1;`), which would let such a body through as UTF-8.
 */
const charsetsOf = (type: string): string[] =>
  [...type.matchAll(/;\s*charset\s*=\s*"?([^";\s]*)/gi)].map((m) => m[1] ?? '');

/**
 * Only application/json in UTF-8 is read; refusing early skips reading the body. `what` says
 * what to send: "the request", "the batch: a list of emails".
 */
export function requireJson(what = 'the request') {
  // Not async: `next()`'s promise is the answer (koa-compose turns a throw into a rejection).
  return function requireJsonBody(ctx: Context, next: Next): Promise<void> {
    if (!ctx.is('application/json')) {
      sendProblem(ctx, {
        status: 415,
        code: 'unsupported_media_type',
        title: 'Unsupported content type',
        message: `Send ${what} as application/json.`,
      });
      return Promise.resolve();
    }
    // Most clients send no parameter: the parameters are only looked at when there are some.
    const type = ctx.request.headers['content-type'] ?? '';
    if (type.includes(';') && !charsetsOf(type).every(isUtf8Charset)) {
      sendProblem(ctx, {
        status: 415,
        code: 'unsupported_media_type',
        title: 'Unsupported character set',
        message: `Send ${what} as application/json in UTF-8 (charset=utf-8, or no charset): other character sets are not read.`,
      });
      return Promise.resolve();
    }
    return next();
  };
}

/**
 * The JSON body of an API route, up to `limitBytes`. Not strict: a JSON string or number is
 * valid JSON, and deserves "must be an object" (400 with a field) rather than "malformed".
 */
export const jsonBody = (limitBytes: number) =>
  koaBody({
    json: true,
    jsonStrict: false,
    urlencoded: false,
    text: false,
    multipart: false,
    jsonLimit: limitBytes,
  });

/**
 * The `Idempotency-Key` header in the API's namespace (`api:`, so that it can never collide with
 * a form's one-time nonce, and the same key on one email and on a batch is one key), absent, or
 * the 400 it deserves.
 */
export function idempotencyKeyOf(ctx: Context): E.Either<Problem, string | undefined> {
  // Koa answers '' for an absent header; a present but empty one is as invalid as a long one.
  if (ctx.request.headers['idempotency-key'] === undefined) return E.right(undefined);
  const key = ctx.get('Idempotency-Key');
  return IDEMPOTENCY_KEY.test(key)
    ? E.right(`api:${key}`)
    : E.left({
        status: 400,
        code: 'invalid_request',
        title: 'Invalid Idempotency-Key',
        message: 'The Idempotency-Key header must be 1 to 200 visible ASCII characters.',
        fields: { 'Idempotency-Key': 'must be 1 to 200 visible ASCII characters' },
      });
}

function readIdempotencyKey() {
  // Not async: `next()`'s promise is the answer (koa-compose turns a throw into a rejection).
  return function checkIdempotencyKey(ctx: Context, next: Next): Promise<void> {
    const key = idempotencyKeyOf(ctx);
    if (E.isLeft(key)) {
      sendProblem(ctx, key.left);
      return Promise.resolve();
    }
    const state: ApiState = ctx.state;
    if (key.right !== undefined) state.idempotencyKey = key.right;
    return next();
  };
}

export function mountApiRoutes(router: Router, options: ApiRoutesOptions): void {
  const { requestEmail, guards, bodyLimitBytes, log } = options;
  const notQueued = summarisedWarn(log, 'Email request not queued');

  router.post(
    `${API_ROUTE}accept-email`,
    '/emails',
    guards.key('send'),
    requireJson(),
    readIdempotencyKey(),
    jsonBody(bodyLimitBytes),
    async function acceptEmail(ctx: Context): Promise<void> {
      const { idempotencyKey }: ApiState = ctx.state;
      const result = await requestEmail.execute(ctx.request.body, idempotencyKey)();
      if (E.isLeft(result)) {
        const problem = requestEmailProblem(result.left);
        if (problem.status >= 500) notQueued({ error: result.left });
        sendProblem(ctx, problem);
        if (result.left._tag === 'AllRecipientsSuppressed') {
          // Who, for a program to read, besides the message for a person.
          const suppressed: SuppressedBody = {
            error: {
              code: problem.code,
              message: problem.message,
              suppressed: result.left.suppressed,
            },
          };
          ctx.body = suppressed;
        }
        return;
      }
      const { id, repeated } = result.right;
      const body = acceptedBody(result.right);
      ctx.status = 202;
      setHeader(ctx, 'Location', `/emails/${id}`);
      setHeader(ctx, 'Cache-Control', 'no-store');
      if (repeated) setHeader(ctx, 'Idempotent-Replayed', 'true');
      ctx.body = body;
    },
  );
}
