import type { Context, Next } from 'koa';
import type { Logger } from '../../application/ports/system.js';
import type { RequestEmailError } from '../../application/request-email.js';
import type { FieldErrors } from '../../domain/email-request.js';
import { problemPage } from './pages.js';
import { applySecurityHeaders } from './security.js';

/** Seconds a client should wait before trying again when the broker did not confirm. */
export const RETRY_AFTER_SECONDS = 5;

export interface Problem {
  readonly status: number;
  /** Stable, machine-readable: clients branch on it, people read `message`. */
  readonly code: string;
  readonly title: string;
  readonly message: string;
  readonly fields?: FieldErrors;
  readonly retryAfterSeconds?: number;
}

export interface ApiErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly fields?: FieldErrors;
  };
}

/** Routes of the JSON API are named with this prefix: their answers, errors too, are JSON. */
export const API_ROUTE = 'api:';

/** What @koa/router leaves on the context: every route whose path matched, whatever the method. */
function matchedRouteNames(ctx: Context): string[] {
  const matched: unknown = 'matched' in ctx ? ctx.matched : undefined;
  if (!Array.isArray(matched)) return [];
  return matched.flatMap((layer: unknown) =>
    typeof layer === 'object' && layer !== null && 'name' in layer && typeof layer.name === 'string'
      ? [layer.name]
      : [],
  );
}

/**
 * The JSON API answers in JSON whatever it is sent (a 405 on its path included); elsewhere the
 * Accept header decides.
 */
export function wantsJson(ctx: Context): boolean {
  if (matchedRouteNames(ctx).some((name) => name.startsWith(API_ROUTE))) return true;
  return ctx.accepts('html', 'json') === 'json';
}

export function sendProblem(ctx: Context, problem: Problem): void {
  ctx.status = problem.status;
  if (problem.retryAfterSeconds !== undefined) {
    ctx.set('Retry-After', String(problem.retryAfterSeconds));
  }
  ctx.set('Cache-Control', 'no-store');
  ctx.vary('Accept');
  if (wantsJson(ctx)) {
    const body: ApiErrorBody = {
      error: {
        code: problem.code,
        message: problem.message,
        ...(problem.fields ? { fields: problem.fields } : {}),
      },
    };
    ctx.body = body;
  } else {
    ctx.type = 'html';
    ctx.body = problemPage({ title: problem.title, message: problem.message });
  }
}

/** What each failure of the RequestEmail use case means to a client of the API. */
export function requestEmailProblem(error: RequestEmailError): Problem {
  switch (error._tag) {
    case 'InvalidEmailRequest':
      return {
        status: 400,
        code: 'invalid_request',
        title: 'The email request is not valid',
        message: 'Some fields are missing or not valid; see fields.',
        fields: error.fields,
      };
    case 'MessageTooLarge':
      return {
        status: 413,
        code: 'too_large',
        title: 'The email is too large',
        message: `The encoded message would be about ${error.size} bytes, over the limit of ${error.limit} bytes (attachments count as base64, a third larger than the files). Send a shorter body, or smaller or fewer attachments.`,
      };
    case 'QueueUnavailable':
      return {
        status: 503,
        code: 'queue_unavailable',
        title: 'The email could not be queued',
        // "Not confirmed", not "not sent": a connection lost mid-publish can leave the broker
        // holding a message whose confirm never arrived. Rare, and at least once either way.
        message: `The queue did not confirm the email (${error.reason}), so it was not accepted. Try again in a few seconds.`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
    case 'StoreUnavailable':
      return {
        status: 503,
        code: 'store_unavailable',
        title: 'The email could not be queued',
        message: 'The request could not be recorded; nothing was sent. Try again in a few seconds.',
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
    case 'AllRecipientsSuppressed':
      return {
        status: 422,
        code: 'all_recipients_suppressed',
        title: 'Every To recipient is on the suppression list',
        message: `Every To recipient is on the suppression list (${error.suppressed.join(', ')}), so the email was not accepted: an email needs a To, and is not sent to its Cc or Bcc alone. An operator can remove an address from the list if it should get email again.`,
      };
    case 'IdempotencyConflict':
      return {
        status: 409,
        code: 'idempotency_conflict',
        title: 'This request was already made',
        message:
          error.reason === 'different-payload'
            ? 'This Idempotency-Key was already used for a different request.'
            : 'A request with this Idempotency-Key is still being handled; try again in a moment.',
      };
  }
}

interface HttpErrorLike {
  readonly status?: unknown;
  readonly expose?: unknown;
  readonly type?: unknown;
  readonly message?: unknown;
  readonly code?: unknown;
}

const asHttpError = (err: unknown): HttpErrorLike =>
  typeof err === 'object' && err !== null ? (err as HttpErrorLike) : {};

/**
 * zlib's own errors, raised while koa-body inflates a `Content-Encoding: gzip`, `deflate` or `br`
 * body that is not what its header says (`Z_DATA_ERROR`, a truncated `Z_BUF_ERROR`, brotli's
 * `ERR__ERROR_FORMAT_…`): the client's data, not our bug.
 */
const isDecompressionError = (e: HttpErrorLike): boolean =>
  e.status === undefined && typeof e.code === 'string' && /^(Z_|ERR__ERROR_)/.test(e.code);

/** inflation's words for an encoding it does not know; the encoding is the client's header. */
const UNSUPPORTED_ENCODING = /^Unsupported Content-Encoding: /;

/** @hapi/bourne's error (lib/index.js) for a `__proto__` key, with `protoAction: 'error'`. */
const PROTO_KEY_REFUSED = 'Object contains forbidden prototype property';

/** Maps what libraries throw at bad input to a problem; anything else is a bug: 500. */
function classify(err: unknown, bodyLimitBytes: number): Problem {
  const e = asHttpError(err);
  if (isDecompressionError(e)) {
    return {
      status: 400,
      code: 'malformed_body',
      title: 'The request body could not be decompressed',
      message:
        'The body could not be decompressed: it is not valid data for its Content-Encoding. Send it uncompressed, or compressed whole with gzip, deflate or br.',
    };
  }
  const status = typeof e.status === 'number' ? e.status : 500;
  if (status === 415 && typeof e.message === 'string' && UNSUPPORTED_ENCODING.test(e.message)) {
    return {
      status: 415,
      code: 'unsupported_encoding',
      title: 'Unsupported content encoding',
      message:
        'This Content-Encoding is not supported: send the body uncompressed, or with gzip, deflate or br.',
    };
  }
  // Valid JSON, refused by the parser (@hapi/bourne, under koa-body) because a `__proto__` key
  // could poison an object's prototype: not "malformed", and what to rename is said.
  if (err instanceof SyntaxError && status === 400 && err.message === PROTO_KEY_REFUSED) {
    return {
      status: 400,
      code: 'invalid_request',
      title: 'A key is not accepted',
      message:
        'The request has a key named "__proto__", which is not accepted anywhere in a request (it could change how the server reads the other keys): rename or remove it.',
    };
  }
  // koa-body raises a bare SyntaxError, status 400 and not exposed, for a body that is not JSON.
  if (err instanceof SyntaxError && status === 400) {
    return {
      status: 400,
      code: 'malformed_json',
      title: 'The request is not valid JSON',
      message: 'The request body is not valid JSON.',
    };
  }
  if (status === 413) {
    return {
      status: 413,
      code: 'too_large',
      title: 'The request is too large',
      message: `The request body is larger than the limit of ${bodyLimitBytes} bytes.`,
    };
  }
  if (status === 415) {
    return {
      status: 415,
      code: 'unsupported_media_type',
      title: 'Unsupported content type',
      message:
        e.expose === true && typeof e.message === 'string' ? e.message : 'Unsupported content.',
    };
  }
  if (status >= 400 && status < 500) {
    return {
      status,
      code: 'bad_request',
      title: 'The request could not be understood',
      message: e.expose === true && typeof e.message === 'string' ? e.message : 'Bad request.',
    };
  }
  return {
    status: 500,
    code: 'internal_error',
    title: 'Something went wrong',
    message: 'Something went wrong on our side; it has been logged. Please try again later.',
  };
}

export interface ErrorHandlerOptions {
  readonly log: Logger;
  readonly bodyLimitBytes: number;
  /** The JSON API's own limit (it carries attachments), when it differs from forms'. */
  readonly jsonLimitBytes?: number;
}

/**
 * The one place thrown errors become answers. Expected failures never get here (they are values
 * handled by each route); what does is bad input caught by a library, or a bug, which is logged
 * with its stack and answered without a word about our internals.
 */
export function errorHandler({ log, bodyLimitBytes, jsonLimitBytes }: ErrorHandlerOptions) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      const limit = ctx.is('application/json')
        ? (jsonLimitBytes ?? bodyLimitBytes)
        : bodyLimitBytes;
      const problem = classify(err, limit);
      if (problem.status >= 500) {
        log.error(
          { err, method: ctx.method, path: ctx.path },
          'Unexpected error in an HTTP request',
        );
      } else {
        // The client's mistake, answered in full: worth a line for whoever helps them, but no
        // stack and no alarm (and never the body, which may hold anything).
        log.info(
          { code: problem.code, status: problem.status, method: ctx.method, path: ctx.path },
          'HTTP request refused',
        );
      }
      if (ctx.headerSent || !ctx.writable) return;
      // Headers a route set before it failed (a content type, a stream's) must not leak into
      // this answer; the rate-limit fields stay, since the request was counted all the same.
      for (const name of ctx.res.getHeaderNames()) {
        if (!KEPT_ON_ERROR.has(name)) ctx.res.removeHeader(name);
      }
      applySecurityHeaders(ctx);
      sendProblem(ctx, problem);
    }
  };
}

/**
 * The `RateLimit-*` fields of draft-ietf-httpapi-ratelimit-headers (the three-field form), as
 * `setRateLimitHeaders` (access.ts) sets them on a request the guard counted.
 */
export const RATE_LIMIT_FIELDS = {
  limit: 'RateLimit-Limit',
  remaining: 'RateLimit-Remaining',
  reset: 'RateLimit-Reset',
} as const;

/**
 * The headers an error answer keeps from before the error (lower case, as `getHeaderNames` gives
 * them): the rate-limit fields, which a client paces itself by whatever the answer.
 */
const KEPT_ON_ERROR: ReadonlySet<string> = new Set(
  Object.values(RATE_LIMIT_FIELDS).map((name) => name.toLowerCase()),
);

const FALLBACKS: Readonly<Record<number, Problem>> = {
  404: {
    status: 404,
    code: 'not_found',
    title: 'Page not found',
    message: 'There is nothing at this address.',
  },
  405: {
    status: 405,
    code: 'method_not_allowed',
    title: 'Method not allowed',
    message: 'This address does not accept this method; the Allow header lists those it does.',
  },
  501: {
    status: 501,
    code: 'not_implemented',
    title: 'Method not implemented',
    message: 'This server does not implement this method.',
  },
};

/** Gives the router's bare 404, 405 and 501 answers a body in the format the client reads. */
export function emptyStatusPages() {
  return async function fillEmptyStatus(ctx: Context, next: Next): Promise<void> {
    await next();
    const fallback = FALLBACKS[ctx.status];
    if (fallback !== undefined && (ctx.body === undefined || ctx.body === null)) {
      sendProblem(ctx, fallback);
    }
  };
}

/** What `clientErrorResponse` answers for each of Node's client errors, by its code. */
const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string, string, string]>> = {
  HPE_HEADER_OVERFLOW: [
    431,
    'Request Header Fields Too Large',
    'headers_too_large',
    "The request's header fields (its URL included) are larger than this server reads (16 KB): shorten them.",
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'Request Timeout',
    'request_timeout',
    'The request did not arrive in time: send it again, whole.',
  ],
};
const MALFORMED: readonly [number, string, string, string] = [
  400,
  'Bad Request',
  'malformed_request',
  'The request is not valid HTTP/1.1: check the request line and the header fields.',
];

/**
 * The whole HTTP/1.1 answer to a request Node refused before any route saw it (its `clientError`:
 * header fields over its limit, a request not in time, bytes that are not HTTP), in the API's
 * JSON error form rather than Node's empty body, and closing the connection as Node does.
 */
export function clientErrorResponse(code: string | undefined): string {
  const [status, reason, errorCode, message] =
    (code === undefined ? undefined : CLIENT_ERRORS[code]) ?? MALFORMED;
  const body = JSON.stringify({ error: { code: errorCode, message } });
  return [
    `HTTP/1.1 ${status} ${reason}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}
