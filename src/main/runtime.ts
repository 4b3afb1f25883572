import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import type { DeliverEmail } from '../application/deliver-email.js';
import { eventKey } from '../domain/events.js';
import type { TaskHandler } from '../application/ports/email-task-source.js';
import type { Logger } from '../application/ports/system.js';
import type { EmailLog } from '../application/ports/email-log.js';
import type { EmailId } from '../domain/email-request.js';
import type { Config } from '../adapters/config/config.js';
import type { AccessPolicy } from '../adapters/http/access.js';
import type { EventWatchersOptions } from '../adapters/rabbitmq/event-watchers.js';
import { EventWatchers } from '../adapters/rabbitmq/event-watchers.js';
import { mayBeRouted } from '../adapters/rabbitmq/topology.js';
import type { RawMessage } from '../adapters/http/raw-routes.js';
import type { StoredMessages } from '../adapters/http/message-routes.js';
import { clientErrorResponse } from '../adapters/http/errors.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import { Container } from 'inversify';
import type { ContainerModule } from 'inversify';
import type { OpenDatabase } from './database.js';
import { coreModule, rabbitMqModule, sqlStoresModule, useCasesModule } from './modules.js';
import type { CachedSuppressionList } from '../adapters/postgres/cached-suppression-list.js';
import { resolve } from './services.js';

/** Runs a task through DeliverEmail, which answers every expected failure with a disposition. */
export const deliveryHandler =
  (deliver: DeliverEmail): TaskHandler =>
  (task) =>
    deliver.execute(task)();

/**
 * Deletes what is older than RETENTION_DAYS now and then every `everyMs` (an hour by default);
 * returns the function that stops it. Several workers may purge at once: each deletes
 * different batches, or nothing.
 */
export function startRetention(container: Container, log: Logger, everyMs = 3_600_000): () => void {
  const purge = resolve(container, 'PurgeExpired');
  let running: Promise<void> | undefined;
  const run = (): void => {
    if (running) return;
    running = purge
      .execute()()
      .then((result) => {
        if (E.isLeft(result)) {
          log.warn({ reason: result.left.reason }, 'Retention purge did not run; trying later');
        } else if (Object.values(result.right).some((n) => n > 0)) {
          log.info(result.right, 'Deleted what is older than the retention period');
        }
      })
      .finally(() => {
        running = undefined;
      });
  };
  run();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The container of a role on RabbitMQ and PostgreSQL (`email server`, `email worker`): the
 * shared modules over `db`, and whatever the role adds (the worker's sender). `suppressions`:
 * the role's copy of the suppression list in memory (see `suppressionCopy`), which its
 * `/metrics` then shows; without one (the worker), look-ups ask PostgreSQL.
 */
export function brokerRoleContainer(
  config: Config,
  log: Logger,
  role: 'server' | 'worker',
  db: OpenDatabase,
  suppressions: CachedSuppressionList | undefined,
  emails: EmailLog | undefined,
  ...extra: ContainerModule[]
): Container {
  const container = new Container();
  container.load(
    coreModule(config, log, role),
    useCasesModule,
    sqlStoresModule(db, suppressions, emails),
    rabbitMqModule(config, log, role),
    ...extra,
  );
  if (suppressions !== undefined) {
    // Whether look-ups are served from memory, for an operator: -1 while they ask PostgreSQL.
    resolve(container, 'Metrics').watchSuppressionCopy(() =>
      suppressions.mode() === 'memory' ? suppressions.size() : undefined,
    );
  }
  return container;
}

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

/**
 * Why a listener could not start, in words that name the variable to change: the bare
 * `EADDRINUSE` of Node tells a newcomer nothing.
 */
export function listenProblem(
  error: unknown,
  host: string,
  port: number,
  variable: string,
): string {
  const code = error instanceof Error && 'code' in error ? String(error.code) : '';
  switch (code) {
    case 'EADDRINUSE':
      return `${host}:${port} is already in use: stop what listens there, or set ${variable} to another port (0 picks a free one)`;
    case 'EACCES':
      return `${host}:${port} needs privileges this process does not have: set ${variable} to a port above 1023`;
    case 'EADDRNOTAVAIL':
      return `HOST ${host} is not an address of this machine: set HOST to one (127.0.0.1, or 0.0.0.0 for every interface)`;
    default:
      return `could not listen on ${host}:${port} (${code || String(error)})`;
  }
}

/**
 * How long a client may take to send one whole request, headers and body (a slowloris trickling
 * a body is cut after it, with a 408). Only the request: an answer may stream for as long as it
 * likes, so the status pages' event streams are not cut by it.
 */
export const REQUEST_TIMEOUT_MS = 30_000;
/** The part of `REQUEST_TIMEOUT_MS` the headers alone may take. */
const HEADERS_TIMEOUT_MS = 20_000;

export interface ListenOptions {
  /** `REQUEST_TIMEOUT_MS` unless a test needs a shorter one. */
  readonly requestTimeoutMs?: number;
}

/**
 * Why `host:port` could not be listened on now (`listenProblem`'s words), or undefined when it
 * can: a listener opened and closed at once, before the slow part of a start (`email dev` opens
 * its embedded database first, seconds on a fresh checkout, and creates DATA_DIR), so that a
 * taken port is said at once and leaves nothing behind. Port 0 (a free one) is not tried. The
 * port may still be taken between this and the real `listen`, which then says so itself.
 */
export async function portProblem(
  port: number,
  host: string,
  variable: 'PORT' | 'WORKER_PORT' = 'PORT',
): Promise<string | undefined> {
  if (port === 0) return undefined;
  const probe = createNetServer();
  return new Promise((resolve) => {
    probe.once('error', (error) => resolve(listenProblem(error, host, port, variable)));
    probe.listen(port, host, () => probe.close(() => resolve(undefined)));
  });
}

/** Listens on `host:port`; `variable` names the setting to change when the port is taken. */
export async function listen(
  handler: Parameters<typeof createServer>[1],
  port: number,
  host: string,
  variable: 'PORT' | 'WORKER_PORT' = 'PORT',
  options: ListenOptions = {},
): Promise<Listening> {
  const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const server = createServer(
    {
      requestTimeout,
      // Node requires headers to be due no later than the whole request.
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout),
      // Node looks for late requests this often (30 s by default, which would double the limit).
      connectionsCheckingInterval: Math.min(1_000, requestTimeout),
    },
    handler,
  );
  // Node's own answer to a request it refuses before the app sees it has an empty body; ours
  // says what went wrong in the JSON error form. As Node does: only on a connection that has
  // written nothing yet (nothing half-sent to corrupt), and the connection closed after it.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable && socket.bytesWritten === 0) socket.write(clientErrorResponse(error.code));
    socket.destroy(error);
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (error: unknown): void =>
      reject(new Error(listenProblem(error, host, port, variable)));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
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
        // A connection whose answer ends after the close (an event stream ended because the
        // server is stopping) only becomes idle then: close it as soon as it is, rather than
        // waiting for the grace period or its keep-alive timeout.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        force.unref();
        idle.unref();
        server.close(() => {
          clearTimeout(force);
          clearInterval(idle);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/** A second signal this soon after the first is the same request to stop, not an insistence. */
export const REPEATED_SIGNAL_MS = 1_000;

/**
 * What a SIGINT or SIGTERM does: the first calls `stop` once, then `exit`s (0, or 1 if the stop
 * failed); another one more than `REPEATED_SIGNAL_MS` later exits at once (130), for the person
 * who really means it. One within that moment is ignored: `timeout -s INT` signals both the
 * process and its group, and so does Ctrl-C under `npm start` (the terminal signals the group,
 * npm passes its own on), so one request to stop arrives twice and must not skip the stop.
 */
export function shutdownSignalHandler(
  log: Logger,
  stop: (signal: string) => Promise<void>,
  exit: (code: number) => void,
  now: () => number = Date.now,
): (signal: NodeJS.Signals) => void {
  let firstAt: number | undefined;
  return (signal) => {
    if (firstAt !== undefined) {
      if (now() - firstAt < REPEATED_SIGNAL_MS) {
        log.info({ signal }, 'Signal repeated at once: still stopping gracefully');
        return;
      }
      log.warn({ signal }, 'Second signal: exiting now');
      exit(130);
      return;
    }
    firstAt = now();
    log.info({ signal }, 'Shutting down: finishing work in flight');
    stop(signal).then(
      () => {
        log.info({}, 'Stopped cleanly');
        exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'Shutdown failed');
        exit(1);
      },
    );
  };
}

/** Stops the role gracefully on SIGINT or SIGTERM; see `shutdownSignalHandler`. */
export function onShutdownSignal(log: Logger, stop: (signal: string) => Promise<void>): void {
  const handle = shutdownSignalHandler(log, stop, (code) => process.exit(code));
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

/**
 * Sends this process's own events to the broker's events exchange, for other processes' live
 * pages and the webhooks queue: only those some queue may take (`mayBeRouted`: the webhook
 * types the endpoints want, as RouteWebhookEvents last read them, and whether a live page is
 * open anywhere, as EventWatchers last checked), since an event no queue takes still costs the
 * broker a receive, a confirm and a drop. Not awaited: the change is in the email log already,
 * and a 202 must not wait for an event's confirm. The check of live pages is shown by
 * `email_live_page_watchers`. Returns the function that stops both.
 *
 * `afterWritten`: for a server that writes its rows behind (WriteBehindEmailLog), where the
 * change is *not* in the log yet: an event of an email it holds goes out once the row is
 * written, since what hears it (the `requested` webhook, another server's live page) reads the
 * row. True when it took the publish over.
 */
export function bridgeToBroker(
  container: Container,
  config: Config,
  log: Logger,
  afterWritten?: (id: EmailId, publish: () => void) => boolean,
  watchersOptions: Partial<EventWatchersOptions> = {},
): () => Promise<void> {
  const broker = resolve(container, 'BrokerEvents');
  const route = resolve(container, 'RouteWebhookEvents');
  const watchers = new EventWatchers({
    connection: resolve(container, 'RabbitMqConnection'),
    prefix: config.queuePrefix,
    logger: log,
    ...watchersOptions,
  });
  resolve(container, 'Metrics').watchLivePages(() => watchers.consumers());
  watchers.start();
  // Not async: done when it returns (the publish is not awaited), so the bus spends no promise
  // on it for every event.
  const unsubscribe = resolve(container, 'EventBus').subscribe((event) => {
    if (!mayBeRouted(eventKey(event), route.wanted, watchers.watched())) return;
    if (afterWritten === undefined) {
      void broker.publish(event)();
      return;
    }
    const publish = () => void broker.publish(event)();
    if (!afterWritten(event.id, publish)) publish();
  });
  return async () => {
    unsubscribe();
    await watchers.stop();
  };
}

/** Ready while both the queue and the stores can be used: what /readyz answers. */
export function readiness(container: Container): () => boolean {
  const broker = resolve(container, 'BrokerReadiness');
  const stores = resolve(container, 'StoreReadiness');
  return () => broker() && stores();
}

/**
 * `GET /emails/{id}/raw`: the request from the email log and its files from the attachment
 * store, built by the same composer the SMTP and outbox senders use.
 */
function rawMessageOf(container: Container, config: Config): RawMessage {
  const emails = resolve(container, 'EmailLog');
  const attachments = resolve(container, 'AttachmentStore');
  return (id) =>
    pipe(
      emails.request(id),
      TE.mapLeft((e) => e.reason),
      TE.flatMap(
        O.match(
          () => TE.right(O.none),
          (request) =>
            pipe(
              // The composer (nodemailer's) is loaded on the first raw message asked for: the
              // server sends nothing itself and needs it for this page alone.
              TE.fromTask(() => import('../adapters/mime/mime-message.js')),
              TE.flatMap(({ composeMessage }) =>
                composeMessage(attachments, request, config.mailFrom),
              ),
              TE.mapLeft((failure) =>
                failure._tag === 'StoreUnavailable'
                  ? failure.reason
                  : failure._tag === 'Uncomposable'
                    ? // A bug the worker would meet too; the page says so in plain words.
                      'the message could not be composed'
                    : 'an attachment is missing',
              ),
              TE.map(O.some),
            ),
        ),
      ),
    );
}

/** An email's message for its page and `GET /emails/{id}/html`: the log's request, the files. */
function messagesOf(container: Container, config: Config): StoredMessages {
  const emails = resolve(container, 'EmailLog');
  const attachments = resolve(container, 'AttachmentStore');
  return {
    request: (id) => emails.request(id),
    attachment: (digest) => attachments.get(digest),
    defaultFrom: config.mailFrom,
  };
}

/**
 * The events of other processes, for the live pages: held while a page's stream is open (see
 * OnDemandEventFeed); `onBound` is called when they begin to arrive only then, for the stream
 * to read again what it read before. `email dev` has none: its bus hears every change.
 */
export interface RemoteEvents {
  hold(onBound: () => void): () => void;
}

/**
 * The form, the API and the status pages, as `email server` and `email dev` both serve them.
 * Its `close` first ends the live event streams (see `HttpDeps.closing`), so a stop with status
 * pages open takes no longer than one without. `remote` (`email server`) brings other processes'
 * events to the live pages while they are open.
 */
export async function serveWeb(
  container: Container,
  config: Config,
  log: Logger,
  fields: object,
  access: AccessPolicy = { mode: 'open' },
  remote?: RemoteEvents,
): Promise<Listening> {
  const metrics = resolve(container, 'Metrics');
  const bus = resolve(container, 'EventBus');
  const closing = new AbortController();
  // Loaded here, not at the top: the worker shares this module and serves none of it (the pages,
  // the API and their parsers, argon2 for sign-ins).
  const [{ createHttpApp }, { sessionSecret }] = await Promise.all([
    import('../adapters/http/app.js'),
    import('./access.js'),
  ]);
  const app = createHttpApp({
    requestEmail: resolve(container, 'RequestEmail'),
    cancelEmail: resolve(container, 'CancelEmail'),
    requestBatch: resolve(container, 'RequestBatch'),
    suppressions: resolve(container, 'SuppressionList'),
    webhookSubscriptions: resolve(container, 'WebhookSubscriptions'),
    rawMessage: rawMessageOf(container, config),
    messages: messagesOf(container, config),
    retryNow: resolve(container, 'RetryNow'),
    resendEmail: resolve(container, 'ResendEmail'),
    // Attachments travel as base64 (a third larger), with the rest of the JSON around them.
    jsonLimitBytes: Math.ceil(config.maxMessageBytes * 1.5),
    emails: resolve(container, 'EmailLog'),
    webhookDeliveries: resolve(container, 'WebhookDeliveries'),
    recentWebhookDeliveries: resolve(container, 'WebhookDeliveries'),
    // RabbitMQ's dead queue in `email server`, the embedded queue's table in `email dev`.
    deadLetters: resolve(container, 'DeadLetterBox'),
    // Remote events too: the worker that sent an email is usually another process. Its own
    // changes reach the page through the bus, the others' once the feed is bound.
    watch: (id, onChange) => {
      const unsubscribe = bus.subscribe(
        async (event) => {
          if (event.id === id) onChange();
        },
        { remote: true },
      );
      const release = remote?.hold(onChange);
      return () => {
        unsubscribe();
        release?.();
      };
    },
    // The list of emails follows every email, remote events too, as the status pages do.
    watchAll: (onChange) => {
      const unsubscribe = bus.subscribe(async (event) => onChange(event.id), { remote: true });
      const release = remote?.hold(() => onChange(undefined));
      return () => {
        unsubscribe();
        release?.();
      };
    },
    readiness: readiness(container),
    metrics: () => metrics.render(),
    csrfSecret: csrfSecret(config),
    log,
    closing: closing.signal,
    access,
    sessionSecret: sessionSecret(config),
    trustProxy: config.trustProxy,
    ...(config.mailgunWebhookSigningKey
      ? {
          mailgunWebhooks: {
            signingKey: Buffer.from(config.mailgunWebhookSigningKey.reveal(), 'utf8'),
            record: resolve(container, 'RecordProviderEvent'),
            tokens: resolve(container, 'WebhookTokens'),
          },
        }
      : {}),
  });
  const http = await listen(app.callback(), config.port, config.host);
  log.info({ url: http.url, ...fields }, `Listening on ${http.url}`);
  return {
    ...http,
    close: (graceMs) => {
      closing.abort();
      return http.close(graceMs);
    },
  };
}
