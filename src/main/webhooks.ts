import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { ContainerModule } from 'inversify';
import type { Container } from 'inversify';
import { DeliverWebhook } from '../application/deliver-webhook.js';
import { FanOutWebhooks } from '../application/fan-out-webhooks.js';
import { RequeueOverdueWebhooks } from '../application/requeue-overdue-webhooks.js';
import type { Logger } from '../application/ports/system.js';
import type { WebhookWork } from '../application/ports/webhook-queue.js';
import { NodeSecretTokens } from '../adapters/crypto/node-secret-tokens.js';
import { HttpWebhookTransport } from '../adapters/webhooks/http-webhook-transport.js';
import { StandardWebhookSigner } from '../adapters/webhooks/standard-webhook-signer.js';
import type { DomainEvent } from '../domain/events.js';
import type { RabbitMqConnection } from '../adapters/rabbitmq/connection.js';
import { provide, resolve } from './services.js';

/** Sent as `User-Agent` with every webhook, so a receiver's logs say who called. */
const USER_AGENT = 'queued-email-webhooks/1';

/**
 * What a role that delivers webhooks (worker, dev) needs besides the stores and the queue: the
 * HTTP transport, the signer, and the two use cases.
 */
export const webhookDeliveryModule = new ContainerModule(({ bind }) => {
  provide(bind, 'WebhookTransport', [], () => new HttpWebhookTransport());
  provide(
    bind,
    'FanOutWebhooks',
    ['WebhookEndpoints', 'WebhookDeliveries', 'EmailLog', 'WebhookJobs', 'Clock', 'Logger'],
    (endpoints, deliveries, emails, queue, clock, log) =>
      new FanOutWebhooks(endpoints, deliveries, emails, queue, new NodeSecretTokens(), clock, log),
  );
  provide(
    bind,
    'DeliverWebhook',
    [
      'WebhookEndpoints',
      'WebhookDeliveries',
      'WebhookJobs',
      'WebhookTransport',
      'Clock',
      'Logger',
      'Metrics',
      'Config',
    ],
    (endpoints, deliveries, queue, transport, clock, log, metrics, config) =>
      new DeliverWebhook(
        endpoints,
        deliveries,
        queue,
        transport,
        new StandardWebhookSigner(),
        clock,
        log,
        {
          onAttempt: (outcome) => metrics.webhookAttempt(outcome),
          userAgent: USER_AGENT,
          retryDelaysMs: config.webhookRetryDelaysMs,
        },
      ),
  );
});

/** How often a worker looks for deliveries whose job was lost (ms). */
const OVERDUE_SWEEP_MS = 60_000;

/** The longest pause between two tries of an event whose deliveries could not be made (ms). */
const MAX_FAN_OUT_PAUSE_MS = 30_000;

/**
 * How often a worker or a server makes the webhook queue's routing follow the endpoints (ms): the
 * longest a new endpoint added by `email webhooks add` (which has no broker) waits for the events
 * it wants, and a removed one goes on costing the broker its events.
 */
export const WEBHOOK_ROUTING_EVERY_MS = 10_000;

export interface WebhookRoutingOptions {
  /** Between two runs (WEBHOOK_ROUTING_EVERY_MS by default). */
  readonly everyMs?: number;
  /**
   * Registers a run after every (re)connect, and runs it now if connected; returns what
   * unregisters it. Without it, the first run is at once.
   */
  readonly onConnected?: (run: () => void) => () => void;
}

/**
 * `WebhookRoutingOptions.onConnected` for a role on RabbitMQ: a run after every (re)connect,
 * once the topology is declared, and one now if already connected.
 */
export const onEveryConnect =
  (connection: RabbitMqConnection) =>
  (run: () => void): (() => void) => {
    const unregister = connection.onReady(async () => {
      run();
    });
    if (connection.isReady()) run();
    return unregister;
  };

export interface WebhookRunner {
  stop(graceMs: number): Promise<void>;
}

/**
 * Starts delivering webhooks: consumes the webhook queue and reports its backlog in /metrics.
 * With `inProcessEvents` (`email dev`, whose queue hears no events), the changes of this process
 * are fanned out as they are announced on its bus: without holding up whoever announced them,
 * and asked again a few times, with a growing pause, while the database does not answer.
 */
export async function startWebhooks(
  container: Container,
  log: Logger,
  options: {
    readonly inProcessEvents: boolean;
    /**
     * For a queue that hears events itself (RabbitMQ): keep its routing following the endpoints
     * (RouteWebhookEvents), at once, on every connect and every `everyMs`.
     */
    readonly routeEvents?: WebhookRoutingOptions;
  },
): Promise<WebhookRunner> {
  const jobs = resolve(container, 'WebhookJobs');
  const fanOut = resolve(container, 'FanOutWebhooks');
  const deliver = resolve(container, 'DeliverWebhook');
  const deliveries = resolve(container, 'WebhookDeliveries');
  resolve(container, 'Metrics').watchWebhookBacklog(async () => {
    const oldest = await deliveries.oldestPending()();
    if (E.isLeft(oldest)) throw new Error(oldest.left.reason);
    return O.toUndefined(oldest.right);
  });
  await jobs.consume({
    job: (job) => deliver.handle(job),
    event: (event) => fanOut.handle(event),
  });
  const requeue = new RequeueOverdueWebhooks(deliveries, jobs, resolve(container, 'Clock'), log);
  let sweeping: Promise<number> | undefined;
  const sweeper = setInterval(() => {
    sweeping ??= requeue.sweep().finally(() => (sweeping = undefined));
  }, OVERDUE_SWEEP_MS);
  sweeper.unref();
  const stopRouting = options.routeEvents
    ? keepRoutingWebhookEvents(container, log, options.routeEvents)
    : undefined;

  const fanningOut = new Set<Promise<void>>();
  let stopping = false;
  const unsubscribe = options.inProcessEvents
    ? resolve(container, 'EventBus').subscribe((event) => {
        const work = fanOutInProcess(event).finally(() => fanningOut.delete(work));
        fanningOut.add(work);
        return Promise.resolve();
      })
    : () => undefined;

  async function fanOutInProcess(event: DomainEvent): Promise<void> {
    // Until it is done or the process stops: the change is in no queue but this one.
    for (let tries = 0; !stopping; tries += 1) {
      if (tries > 0) {
        const pause = Math.min(250 * 2 ** Math.min(tries, 10), MAX_FAN_OUT_PAUSE_MS);
        await new Promise((r) => setTimeout(r, pause).unref());
        if (stopping) break;
      }
      const work: WebhookWork = await fanOut.handle(event).catch(() => 'redeliver' as const);
      if (work === 'done') return;
    }
    log.error(
      { emailId: event.id, event: event.type },
      'Stopped before the webhook deliveries of a change could be made: the database did not answer',
    );
  }

  return {
    async stop(graceMs) {
      clearInterval(sweeper);
      await stopRouting?.();
      await sweeping;
      unsubscribe();
      stopping = true;
      await Promise.allSettled([...fanningOut]);
      await jobs.stop(graceMs);
      resolve(container, 'WebhookTransport').close();
    },
  };
}

/**
 * Runs RouteWebhookEvents at once (or on connecting), after every connect and every `everyMs`,
 * until the function it returns is called (which waits for a run in progress). A failure is
 * logged once until a run succeeds again: while the broker is away every run fails the same way.
 */
export function keepRoutingWebhookEvents(
  container: Container,
  log: Logger,
  options: WebhookRoutingOptions,
): () => Promise<void> {
  const route = resolve(container, 'RouteWebhookEvents');
  let failing = false;
  let last: Promise<void> = Promise.resolve();
  const run = (): void => {
    last = route
      .execute()()
      .then((routed) => {
        if (routed._tag === 'Left') {
          if (!failing) {
            log.warn(
              { reason: routed.left.reason },
              'Could not route the webhook events to the endpoints; trying again',
            );
          }
          failing = true;
        } else {
          if (failing) log.info({ types: routed.right }, 'Routed the webhook events again');
          failing = false;
        }
      });
  };
  const timer = setInterval(run, options.everyMs ?? WEBHOOK_ROUTING_EVERY_MS);
  timer.unref();
  // A role that connects later runs on connecting, not now to fail and say so.
  const unregister = options.onConnected ? options.onConnected(run) : (run(), undefined);
  return async () => {
    clearInterval(timer);
    unregister?.();
    await last;
  };
}
