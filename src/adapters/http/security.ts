import type { Context, Next } from 'koa';
import { STYLE_HASH } from './html.js';

/**
 * Nothing but our own script file and our one inline stylesheet may run or apply, so even an
 * escaping bug could not turn into script execution; forms may only post back to us.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  `style-src '${STYLE_HASH}'`,
  "connect-src 'self'",
  "img-src 'self'",
  // An email's html part, in a sandboxed frame on its page (message-routes.ts), is ours.
  "frame-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS: readonly (readonly [string, string])[] = [
  ['Content-Security-Policy', CONTENT_SECURITY_POLICY],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'same-origin'],
  ['X-Frame-Options', 'DENY'],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
];

/**
 * Sets a response header whose value is a string, as `ctx.set(name, value)` does, without the
 * arrays and closures Koa's `set` builds on every call (for the form taking an object): every
 * answer carries a dozen headers, and the accept path is measured against bare Koa. Like
 * `ctx.set`, does nothing once the headers are sent. Throws, as Node's `setHeader` does, on a
 * name or value with characters a header may not hold (a bug: callers pass fixed names and
 * values they built).
 */
export function setHeader(ctx: Context, name: string, value: string): void {
  if (!ctx.headerSent) ctx.res.setHeader(name, value);
}

/** Also called by the error handler, which starts its answer from a clean set of headers. */
export function applySecurityHeaders(ctx: Context): void {
  for (const [name, value] of HEADERS) setHeader(ctx, name, value);
}

/** Sent on every answer: JSON and event streams gain nothing from exceptions to the rule. */
export function securityHeaders() {
  // Not async: `next()`'s promise is the answer (koa-compose turns a throw into a rejection).
  return function securityHeadersMiddleware(ctx: Context, next: Next): Promise<void> {
    applySecurityHeaders(ctx);
    return next();
  };
}
