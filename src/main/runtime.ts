import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import type { DeliverEmail } from '../application/deliver-email.js';
import type { TaskHandler } from '../application/ports/email-queue.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { createHttpApp } from '../adapters/http/app.js';
import type { Container } from 'inversify';
import { resolve } from './services.js';

/** Runs a task through DeliverEmail; no decision means the queue must offer the task again. */
export const deliveryHandler =
  (deliver: DeliverEmail): TaskHandler =>
  async (task) => {
    const result = await deliver.execute(task)();
    if (E.isLeft(result))
      throw new Error(`no decision for ${task.request.id}: ${result.left.reason}`);
    return result.right;
  };

/** A started role: where it listens, and how to stop it gracefully. */
export interface Running {
  readonly url: string;
  stop(): Promise<void>;
}

export interface Listening {
  readonly server: Server;
  readonly url: string;
  /** Stops accepting, lets requests in progress finish for `graceMs`, then cuts what is left. */
  close(graceMs: number): Promise<void>;
}

export async function listen(
  handler: Parameters<typeof createServer>[1],
  port: number,
  host: string,
): Promise<Listening> {
  const server = createServer(handler);
  // Slow clients must not hold sockets open forever (slowloris), but SSE streams are long-lived.
  server.headersTimeout = 20_000;
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: actual } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    url: `http://${shown}:${actual}`,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/**
 * Calls `stop` once on the first SIGINT or SIGTERM, then exits; a second signal exits at once,
 * for the person who really means it.
 */
export function onShutdownSignal(log: Logger, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'Second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal }, 'Shutting down: finishing work in flight');
    stop(signal).then(
      () => {
        log.info({}, 'Stopped cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}

/**
 * CSRF_SECRET when set, shared by every instance so a form from one server posts to another;
 * otherwise a fresh key per process, which only means forms issued before a restart are refused.
 */
export function csrfSecret(config: Config): Buffer {
  return config.csrfSecret ? Buffer.from(config.csrfSecret.reveal(), 'utf8') : randomBytes(32);
}

/** The form, the API and the status pages, as `email server` and `email dev` both serve them. */
export async function serveWeb(
  container: Container,
  config: Config,
  log: Logger,
  fields: object,
): Promise<Listening> {
  const metrics = resolve(container, 'Metrics');
  const app = createHttpApp({
    requestEmail: resolve(container, 'RequestEmail'),
    statuses: resolve(container, 'EmailStatusStore'),
    readiness: resolve(container, 'Readiness'),
    metrics: () => metrics.render(),
    csrfSecret: csrfSecret(config),
    log,
  });
  const http = await listen(app.callback(), config.port, config.host);
  log.info({ url: http.url, ...fields }, `Listening on ${http.url}`);
  return http;
}
