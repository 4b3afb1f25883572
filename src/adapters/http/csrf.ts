import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { Context } from 'koa';

export const SESSION_COOKIE = 'sid';

/**
 * The signed-in operator's session cookie (see access.ts `OPERATOR_COOKIE`, which re-exports
 * this), named here so that the CSRF tokens can be bound to it without an import cycle.
 */
export const OPERATOR_SESSION_COOKIE = 'email_session';
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
const TOKEN_NONCE = /^[A-Za-z0-9_-]{22}$/;
const ISSUED_AT = /^\d{1,15}$/;
const MAX_TOKEN_CHARS = 256;
// A token issued "later" than now by more than this was not issued by a server with our clock.
const CLOCK_SKEW_MS = 60_000;

export type CsrfRejection =
  'missing-session' | 'missing-token' | 'malformed-token' | 'expired-token' | 'wrong-token';

/** Words for the 403 page: what happened and what the person can do about it. */
export const csrfRejectionMessages: Readonly<Record<CsrfRejection, string>> = {
  'missing-session':
    'Your browser did not send the session cookie that goes with this form. Cookies must be enabled for this site.',
  'missing-token': 'The form was sent without its security token.',
  'malformed-token': 'The form’s security token is damaged.',
  'expired-token': 'The form was opened too long ago and its security token has expired.',
  'wrong-token': 'The form’s security token does not belong to this browser session.',
};

export interface CsrfOptions {
  readonly secret: Buffer;
  /** How long a rendered form stays usable. */
  readonly ttlMs?: number;
  readonly now?: () => number;
}

/**
 * Session-bound CSRF tokens (the "signed double-submit" pattern): the token is an HMAC over a
 * random session id kept in an HttpOnly, SameSite=Strict cookie, so a page on another site can
 * neither read a valid token nor make the browser send the cookie with a forged post.
 */
export interface Csrf {
  /** The session id of this browser, set as a cookie first when it has none. */
  ensureSession(ctx: Context): string;
  session(ctx: Context): string | undefined;
  issue(sessionId: string): string;
  verify(sessionId: string | undefined, token: unknown): E.Either<CsrfRejection, void>;
}

const base64url = (bytes: Buffer): string => bytes.toString('base64url');

export function createCsrf({ secret, ttlMs = 2 * 3_600_000, now = Date.now }: CsrfOptions): Csrf {
  const mac = (sessionId: string, issuedAt: string, nonce: string): Buffer =>
    createHmac('sha256', secret).update(`${sessionId}|${issuedAt}|${nonce}`).digest();

  /**
   * What a token is bound to: the browser's `sid`, and the signed-in operator's session cookie
   * when there is one. A token handed to a signed-out visitor (say, an attacker who planted the
   * same `sid` in an operator's browser, from a sibling subdomain or over plain http) then
   * verifies for nobody signed in, and signing in (a new operator cookie) voids older tokens.
   */
  const bound = (ctx: Context, sid: string): string => {
    const operator = ctx.cookies.get(OPERATOR_SESSION_COOKIE);
    return operator === undefined || operator === '' ? sid : `${sid}.${operator}`;
  };

  const session = (ctx: Context): string | undefined => {
    const value = ctx.cookies.get(SESSION_COOKIE);
    return value !== undefined && SESSION_ID.test(value) ? bound(ctx, value) : undefined;
  };

  return {
    session,
    ensureSession(ctx) {
      const existing = session(ctx);
      if (existing !== undefined) return existing;
      const created = base64url(randomBytes(32));
      ctx.cookies.set(SESSION_COOKIE, created, {
        httpOnly: true,
        sameSite: 'strict',
        path: '/',
        secure: ctx.secure,
        signed: false,
        overwrite: true,
      });
      return bound(ctx, created);
    },
    issue(sessionId) {
      const issuedAt = String(now());
      const nonce = base64url(randomBytes(16));
      const payload = `${issuedAt}.${nonce}.${base64url(mac(sessionId, issuedAt, nonce))}`;
      return Buffer.from(payload, 'utf8').toString('base64url');
    },
    verify(sessionId, token) {
      if (sessionId === undefined) return E.left('missing-session');
      if (typeof token !== 'string' || token === '') return E.left('missing-token');
      if (token.length > MAX_TOKEN_CHARS) return E.left('malformed-token');
      const [issuedAt, nonce, given, ...rest] = Buffer.from(token, 'base64url')
        .toString('utf8')
        .split('.');
      if (
        issuedAt === undefined ||
        nonce === undefined ||
        given === undefined ||
        rest.length > 0 ||
        !ISSUED_AT.test(issuedAt) ||
        !TOKEN_NONCE.test(nonce)
      ) {
        return E.left('malformed-token');
      }
      const expected = mac(sessionId, issuedAt, nonce);
      const actual = Buffer.from(given, 'base64url');
      if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
        return E.left('wrong-token');
      }
      const age = now() - Number(issuedAt);
      if (age < -CLOCK_SKEW_MS) return E.left('malformed-token');
      if (age > ttlMs) return E.left('expired-token');
      return E.right(undefined);
    },
  };
}
