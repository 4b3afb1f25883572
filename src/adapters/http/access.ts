import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { Context, Middleware, Next } from 'koa';
import type { ApiKeys, Principal } from '../../application/api-keys.js';
import type { Operators } from '../../application/operators.js';
import type { Scope } from '../../application/ports/api-key-store.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { RateLimiter, RateLimitState } from '../../application/ports/rate-limiter.js';
import type { Logger } from '../../application/ports/system.js';
import type { Problem } from './errors.js';
import { OPERATOR_SESSION_COOKIE } from './csrf.js';
import { RATE_LIMIT_FIELDS, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import { setHeader } from './security.js';

/** The cookie of a signed-in browser; signed with SESSION_SECRET (Koa's keys). */
export const OPERATOR_COOKIE = OPERATOR_SESSION_COOKIE;
const SESSION_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Who may do what. `open`: no key, no sign-in, no limits (`email dev` on a loopback address, a
 * local tool). `guarded`: the API needs a key with the route's scope, pages a signed-in operator,
 * and requests are counted per key (or per client address where no key is given).
 */
export type AccessPolicy =
  | { readonly mode: 'open' }
  | {
      readonly mode: 'guarded';
      readonly apiKeys: Pick<ApiKeys, 'authenticate'>;
      readonly operators: Pick<Operators, 'session' | 'signIn' | 'signOut'>;
      /** `RATE_LIMIT`: per API key, and per client address on the routes that need none. */
      readonly requests: RateLimiter;
      readonly log: Logger;
    };

/** What a route asks of its caller; each a middleware that passes in the open mode. */
export interface Guards {
  /** The JSON API: a key with `scope`, counted against its limit. */
  key(scope: Scope): Middleware;
  /**
   * A page or an event stream: a signed-in operator, or a key with `scope` (for an event
   * stream a program follows). A request that wants JSON needs a key, as every API route does.
   */
  page(scope: Scope): Middleware;
  /** A route that anyone may reach (sign-in): counted per client address. */
  open(): Middleware;
  /** The operator signed in on this request, if any (for "Signed in as …"). */
  operator(ctx: Context): string | undefined;
  readonly mode: AccessPolicy['mode'];
}

interface AccessState {
  principal?: Principal;
}

const pass: Middleware = async (_ctx, next) => next();

/**
 * The 401 of a request without a live key: `invalid`, a bearer token that is no live key;
 * `otherScheme`, an Authorization header that is not `Bearer <token>` (Basic, say), which is not
 * read; `none`, no header at all.
 */
const unauthenticated = (presented: 'invalid' | 'otherScheme' | 'none'): Problem => ({
  status: 401,
  code: 'unauthorized',
  title: 'Sign-in needed',
  message:
    presented === 'invalid'
      ? 'The API key is not valid: it may have been revoked, or copied incompletely. Send Authorization: Bearer <key> with a live key.'
      : presented === 'otherScheme'
        ? 'The Authorization header is not read: send the API key as Authorization: Bearer <key> (not Basic or another scheme).'
        : 'This route needs an API key: send Authorization: Bearer <key>. An operator creates keys with "email api-keys create".',
});

const storeDown = (reason: string): Problem => ({
  status: 503,
  code: 'store_unavailable',
  title: 'Sign-in is not available',
  message: `Credentials could not be checked (${reason}). Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

/** `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive). */
export function bearerToken(ctx: Context): string | undefined {
  const header = ctx.get('Authorization');
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return match?.[1];
}

/**
 * The `RateLimit-*` fields of draft-ietf-httpapi-ratelimit-headers (the three-field form that
 * peers and libraries send), and `Retry-After` (RFC 9110 §10.2.3) when refused.
 */
export function setRateLimitHeaders(ctx: Context, state: RateLimitState): void {
  const resetSeconds = Math.max(1, Math.ceil(state.resetMs / 1000));
  setHeader(ctx, RATE_LIMIT_FIELDS.limit, String(state.limit));
  setHeader(ctx, RATE_LIMIT_FIELDS.remaining, String(state.remaining));
  setHeader(ctx, RATE_LIMIT_FIELDS.reset, String(resetSeconds));
  if (!state.allowed) setHeader(ctx, 'Retry-After', String(resetSeconds));
}

const tooMany = (state: RateLimitState): Problem => ({
  status: 429,
  code: 'rate_limited',
  title: 'Too many requests',
  message: `Too many requests: at most ${state.limit} in this window. Try again in ${Math.max(1, Math.ceil(state.resetMs / 1000))} seconds.`,
  retryAfterSeconds: Math.max(1, Math.ceil(state.resetMs / 1000)),
});

/** The session token from the signed cookie; anything unsigned or malformed counts as none. */
export function sessionToken(ctx: Context): string | undefined {
  const value = ctx.cookies.get(OPERATOR_COOKIE, { signed: true });
  return value !== undefined && SESSION_TOKEN.test(value) ? value : undefined;
}

/** Wants a page (a browser navigating), rather than JSON or an event stream. */
const wantsPage = (ctx: Context): boolean =>
  ctx.accepts('html', 'json', 'text/event-stream') === 'html';

/** A path of ours to come back to after sign-in: never another site (`//x`, `/\x`). */
export function localPath(raw: unknown): string {
  return typeof raw === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(raw) && raw.length <= 2000
    ? raw
    : '/';
}

export function createGuards(policy: AccessPolicy): Guards {
  if (policy.mode === 'open') {
    return {
      mode: 'open',
      key: () => pass,
      page: () => pass,
      open: () => pass,
      operator: () => undefined,
    };
  }
  const { apiKeys, operators, requests } = policy;

  /** Counts one request for `key`; answers false after sending the 429 (or 503). */
  async function count(ctx: Context, key: string): Promise<boolean> {
    const state = await requests.consume(key)();
    if (E.isLeft(state)) {
      // The count is a guard against floods, not against strangers: a database that does not
      // answer is already a 503 for whatever the request wanted.
      sendProblem(ctx, storeDown(state.left.reason));
      return false;
    }
    setRateLimitHeaders(ctx, state.right);
    if (!state.right.allowed) {
      sendProblem(ctx, tooMany(state.right));
      return false;
    }
    return true;
  }

  async function refuse(ctx: Context, problem: Problem): Promise<void> {
    // Strangers are counted by address: a flood of bad keys meets the limit like any other.
    if (!(await count(ctx, `address:${ctx.ip}`))) return;
    if (problem.status === 401) {
      ctx.set(
        'WWW-Authenticate',
        bearerToken(ctx) === undefined
          ? 'Bearer realm="email"'
          : 'Bearer realm="email", error="invalid_token"',
      );
    }
    sendProblem(ctx, problem);
  }

  async function withKey(ctx: Context, next: Next, scope: Scope): Promise<void> {
    const presented = bearerToken(ctx);
    if (presented === undefined) {
      const header = ctx.get('Authorization');
      // `Bearer` with no token, or one of characters a key never has (a variable left unset in
      // `Authorization: Bearer $KEY`): a key that is not valid, not another scheme.
      const presented =
        header === '' ? 'none' : /^bearer(\s|$)/i.test(header) ? 'invalid' : 'otherScheme';
      return refuse(ctx, unauthenticated(presented));
    }
    const result = await apiKeys.authenticate(presented, scope, ctx.ip)();
    if (E.isLeft(result)) {
      const refusal = result.left;
      switch (refusal._tag) {
        case 'StoreUnavailable':
          return sendProblem(ctx, storeDown((refusal as StoreUnavailable).reason));
        case 'Unauthenticated':
          return refuse(ctx, unauthenticated('invalid'));
        case 'MissingScope':
          return refuse(ctx, {
            status: 403,
            code: 'forbidden',
            title: 'Not allowed',
            message: `The API key "${refusal.name}" does not have the ${refusal.scope} scope this route needs. Create a key with --scopes ${refusal.scope}.`,
          });
      }
    }
    const principal = result.right;
    if (!(await count(ctx, `key:${principal.id}`))) return;
    const state: AccessState = ctx.state;
    state.principal = principal;
    await next();
  }

  return {
    mode: 'guarded',
    // Not an async function of its own: the promise of `withKey` is the answer, and one
    // wrapper less on every API request.
    key: (scope) =>
      function requireKey(ctx, next) {
        return withKey(ctx, next, scope);
      },
    page: (scope) =>
      async function requireOperator(ctx, next) {
        // JSON is the API's, whoever asks: a key, as on every API route. So is any request
        // that brings a key.
        if (
          bearerToken(ctx) !== undefined ||
          ctx.accepts('html', 'json', 'text/event-stream') === 'json'
        ) {
          return withKey(ctx, next, scope);
        }
        const session = await operators.session(sessionToken(ctx))();
        if (E.isLeft(session)) return sendProblem(ctx, storeDown(session.left.reason));
        if (O.isSome(session.right)) {
          const state: AccessState = ctx.state;
          state.principal = { _tag: 'Operator', name: session.right.value };
          return next();
        }
        if (!wantsPage(ctx)) return withKey(ctx, next, scope);
        // Back to this page after sign-in; a form post cannot be replayed, so its page is the form.
        const back = ctx.method === 'GET' || ctx.method === 'HEAD' ? ctx.originalUrl : '/';
        ctx.set('Cache-Control', 'no-store');
        ctx.redirect(`/login?next=${encodeURIComponent(back)}`);
        ctx.status = 303;
      },
    open: () =>
      async function countByAddress(ctx, next) {
        if (await count(ctx, `address:${ctx.ip}`)) await next();
      },
    operator: (ctx) => {
      const { principal }: AccessState = ctx.state;
      return principal?._tag === 'Operator' ? principal.name : undefined;
    },
  };
}
