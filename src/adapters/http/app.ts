import Router from '@koa/router';
import Koa from 'koa';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailStatusStore } from '../../application/ports/email-status-store.js';
import type { Logger } from '../../application/ports/system.js';
import type { Accepted, RequestEmailError } from '../../application/request-email.js';
import { mountApiRoutes } from './api-routes.js';
import { createCsrf } from './csrf.js';
import { emptyStatusPages, errorHandler } from './errors.js';
import { mountFormRoutes } from './form-routes.js';
import { mountOpsRoutes } from './ops-routes.js';
import { securityHeaders } from './security.js';
import { mountStatusRoutes } from './status-routes.js';

/** The RequestEmail use case as the HTTP adapter sees it. */
export interface EmailRequester {
  execute(input: unknown, idempotencyKey?: string): TaskEither<RequestEmailError, Accepted>;
}

export interface HttpDeps {
  readonly requestEmail: EmailRequester;
  /** Read model: `get` for the status page, `watch` for its live updates. */
  readonly statuses: EmailStatusStore;
  /** Answers /readyz: true only while the broker connection is up. */
  readonly readiness: () => boolean;
  /** Prometheus text for /metrics; without it /metrics is 404. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
  /** HMAC key for CSRF tokens; a new key invalidates forms already rendered, nothing else. */
  readonly csrfSecret: Buffer;
  readonly log: Logger;
  /** Largest JSON or form body accepted, in bytes. */
  readonly bodyLimitBytes?: number;
  /**
   * How long GET /emails/:id waits for an unknown id to appear before answering 404. The status
   * projection is fed by events, asynchronously, so the page a 303 leads to can be asked for a
   * moment before the id is known.
   */
  readonly statusWaitMs?: number;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1_000_000;
export const DEFAULT_STATUS_WAIT_MS = 2_000;

const CLIENT_GONE = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE', 'ECONNABORTED']);

const isClientGone = (err: unknown): boolean =>
  err instanceof Error &&
  'code' in err &&
  typeof err.code === 'string' &&
  CLIENT_GONE.has(err.code);

/** Builds the app without listening, so tests and the composition roots choose the server. */
export function createHttpApp(deps: HttpDeps): Koa {
  const bodyLimitBytes = deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const statusWaitMs = deps.statusWaitMs ?? DEFAULT_STATUS_WAIT_MS;
  const csrf = createCsrf({ secret: deps.csrfSecret });
  const router = new Router();

  mountFormRoutes(router, { requestEmail: deps.requestEmail, csrf, bodyLimitBytes, log: deps.log });
  mountApiRoutes(router, { requestEmail: deps.requestEmail, bodyLimitBytes, log: deps.log });
  mountStatusRoutes(router, { statuses: deps.statuses, statusWaitMs, log: deps.log });
  mountOpsRoutes(router, {
    readiness: deps.readiness,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });

  const app = new Koa();
  app.use(securityHeaders());
  app.use(errorHandler({ log: deps.log, bodyLimitBytes }));
  app.use(emptyStatusPages());
  app.use(router.routes());
  app.use(router.allowedMethods());
  // Only what escapes the error handler lands here (a stream failing after its headers went
  // out); logging it replaces Koa's default of printing to stderr. A client that leaves an
  // event stream is how such streams normally end, not a failure.
  app.on('error', (err: unknown) => {
    if (isClientGone(err)) return;
    deps.log.error({ err }, 'HTTP response failed after it started');
  });
  return app;
}

export type OpsDeps = Pick<HttpDeps, 'readiness' | 'metrics' | 'log'>;

/** The worker's own listener: `/healthz`, `/readyz` and `/metrics`, nothing a user can reach. */
export function createOpsApp(deps: OpsDeps): Koa {
  const router = new Router();
  mountOpsRoutes(router, {
    readiness: deps.readiness,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
  const app = new Koa();
  app.use(securityHeaders());
  app.use(errorHandler({ log: deps.log, bodyLimitBytes: 0 }));
  app.use(emptyStatusPages());
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.on('error', (err: unknown) =>
    deps.log.error({ err }, 'HTTP response failed after it started'),
  );
  return app;
}
