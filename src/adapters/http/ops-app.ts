// The worker's own listener (createOpsApp) and the stack every app runs (appWith), apart from
// app.ts so that the worker, which serves nothing else, does not load the pages, the API routes
// and their parsers (Koa's body parser, the schemas, argon2): about 15 MB of its memory.
import Router from '@koa/router';
import Koa from 'koa';
import compose from 'koa-compose';
import type { Logger } from '../../application/ports/system.js';
import type { HttpDeps } from './app.js';
import { emptyStatusPages, errorHandler } from './errors.js';
import { mountOpsRoutes } from './ops-routes.js';
import { securityHeaders } from './security.js';

// HPE_INVALID_EOF_STATE: the client closed before sending the body its Content-Length promised.
const CLIENT_GONE = new Set([
  'ERR_STREAM_PREMATURE_CLOSE',
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'HPE_INVALID_EOF_STATE',
]);

const errorCode = (err: unknown): string | undefined =>
  err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;

const isClientGone = (err: unknown): boolean => CLIENT_GONE.has(errorCode(err) ?? '');

export type OpsDeps = Pick<HttpDeps, 'readiness' | 'metrics' | 'log'>;

/** The worker's own listener: `/healthz`, `/readyz` and `/metrics`, nothing a user can reach. */
export function createOpsApp(deps: OpsDeps): Koa {
  const router = new Router();
  mountOpsRoutes(router, {
    readiness: deps.readiness,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
  return appWith(router, deps.log, 0);
}

/**
 * Both apps (this one and `createHttpApp`'s) run one stack, composed once so they cannot drift apart: security headers on every
 * answer, the one error handler above everything else, a page for a bare status, then the routes.
 */
export function appWith(
  router: Router,
  log: Logger,
  bodyLimitBytes: number,
  jsonLimitBytes = bodyLimitBytes,
): Koa {
  const app = new Koa();
  app.use(
    compose([
      securityHeaders(),
      errorHandler({ log, bodyLimitBytes, jsonLimitBytes }),
      emptyStatusPages(),
      router.routes(),
      router.allowedMethods(),
    ]),
  );
  // Only what escapes the error handler lands here (a stream failing after its headers went
  // out); logging it replaces Koa's default of printing to stderr. A client that leaves an
  // event stream is how such streams normally end, not a failure.
  app.on('error', (err: unknown) => {
    if (isClientGone(err)) return;
    // Node's request timeout: a client too slow to send its request (a slowloris, or a very
    // bad line) was answered 408 and disconnected. Ours working as meant, not a failure.
    if (errorCode(err) === 'ERR_HTTP_REQUEST_TIMEOUT') {
      log.info({}, 'A request was not received in time: answered 408 and disconnected');
      return;
    }
    log.error({ err }, 'HTTP response failed after it started');
  });
  return app;
}
