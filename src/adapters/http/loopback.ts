import { isIP } from 'node:net';
import type { Context, Next } from 'koa';
import { sendProblem } from './errors.js';

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, `localhost`. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/**
 * The host name of a `Host` header (`name`, `name:port`, `[v6]`, `[v6]:port`), lower-cased;
 * undefined when there is none or it is not one (RFC 9110 §7.2: `uri-host [ ":" port ]`).
 */
export function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  try {
    const { hostname, username, password, pathname, search, hash } = new URL(`http://${header}`);
    // Anything the URL parser read as more than a host and port was not a Host header.
    if (username || password || pathname !== '/' || search || hash) return undefined;
    return hostname;
  } catch {
    return undefined;
  }
}

/** How much of a refused Host header the answer quotes back. */
const QUOTED_HOST_CHARS = 80;

/**
 * For the open mode (`email dev` on a loopback address, with nothing to sign in to): answers only
 * requests whose `Host` names a loopback address, and refuses the rest with a 403.
 *
 * Binding to 127.0.0.1 keeps other machines out, but not other websites: a page the developer
 * visits can point a name it controls at 127.0.0.1 (DNS rebinding) and then post to the API and
 * read every email as a same-origin request. The browser still sends that name as `Host`, so
 * requiring a loopback `Host` closes it; tools that serve on localhost do the same (Vite's
 * `server.allowedHosts`, webpack-dev-server's `allowedHosts`).
 */
export function loopbackHostsOnly() {
  // Not async: `next()`'s promise is the answer (koa-compose turns a throw into a rejection).
  return function requireLoopbackHost(ctx: Context, next: Next): Promise<void> {
    const header = ctx.request.headers.host;
    const name = hostName(header);
    if (name !== undefined && isLoopback(name)) return next();
    const quoted = (header ?? '').slice(0, QUOTED_HOST_CHARS);
    sendProblem(ctx, {
      status: 403,
      code: 'forbidden',
      title: 'Not addressed to this machine',
      message:
        header === undefined
          ? 'This development server needs a Host header naming a loopback address (localhost, 127.0.0.1 or [::1]).'
          : `This development server answers only requests addressed to localhost, 127.0.0.1 or [::1], not to ${JSON.stringify(quoted)}: open it by one of those names. To reach it from elsewhere, run it on a reachable address: it then asks for API keys and a sign-in, as email server does.`,
    });
    return Promise.resolve();
  };
}
