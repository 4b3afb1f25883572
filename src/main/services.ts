import type { Bind, Container } from 'inversify';
import type { DeliverEmail } from '../application/deliver-email.js';
import type { DeliveryEvents } from '../application/ports/delivery-events.js';
import type { DeadLetterBox } from '../application/ports/dead-letter-box.js';
import type { EmailQueue } from '../application/ports/email-queue.js';
import type { EmailTaskSource } from '../application/ports/email-task-source.js';
import type { EmailSender } from '../application/ports/email-sender.js';
import type { DeliveryLedger } from '../application/ports/delivery-ledger.js';
import type { EmailLog } from '../application/ports/email-log.js';
import type { IdempotencyStore } from '../application/ports/idempotency-store.js';
import type { Clock, IdGenerator, Logger } from '../application/ports/system.js';
import type { PurgeExpired } from '../application/purge-expired.js';
import type { RequestEmail } from '../application/request-email.js';
import type { CancelEmail } from '../application/cancel-email.js';
import type { RetryNow } from '../application/retry-now.js';
import type { ResendEmail } from '../application/resend-email.js';
import type { RetryQueue } from '../application/ports/retry-queue.js';
import type { ReleaseScheduled } from '../application/release-scheduled.js';
import type { ScheduledEmails } from '../application/ports/scheduled-emails.js';
import type { AttachmentStore } from '../application/ports/attachment-store.js';
import type { RequestBatch } from '../application/request-batch.js';
import type { Config } from '../adapters/config/config.js';
import type { InMemoryDeliveryEvents } from '../adapters/memory/in-memory-delivery-events.js';
import type { Metrics } from '../adapters/metrics/metrics.js';
import type { SqlEmailQueue } from '../adapters/postgres/sql-email-queue.js';
import type { RabbitMqConnection } from '../adapters/rabbitmq/connection.js';
import type { SenderHandle } from './senders.js';
import type { RetryPolicy } from '../domain/delivery.js';
import type { RabbitMqDeliveryEvents } from '../adapters/rabbitmq/rabbitmq-delivery-events.js';
import type { ApiKeys } from '../application/api-keys.js';
import type { Operators } from '../application/operators.js';
import type { ApiKeyStore } from '../application/ports/api-key-store.js';
import type { SecretTokens } from '../application/ports/credentials.js';
import type {
  WebhookEventRouting,
  WebhookJobSource,
  WebhookQueue,
} from '../application/ports/webhook-queue.js';
import type { RouteWebhookEvents } from '../application/route-webhook-events.js';
import type { HttpWebhookTransport } from '../adapters/webhooks/http-webhook-transport.js';
import type { FanOutWebhooks } from '../application/fan-out-webhooks.js';
import type { DeliverWebhook } from '../application/deliver-webhook.js';
import type { OperatorStore } from '../application/ports/operator-store.js';
import type { RateLimiter } from '../application/ports/rate-limiter.js';
import type { SessionStore } from '../application/ports/session-store.js';
import type { SuppressionList } from '../application/ports/suppression-list.js';
import type { TransportPauses } from '../application/ports/transport-pauses.js';
import type { SendPacer } from '../application/ports/send-pacer.js';
import type { WebhookTokens } from '../application/ports/webhook-tokens.js';
import type { WebhookEndpoints } from '../application/ports/webhook-endpoints.js';
import type { WebhookDeliveries } from '../application/ports/webhook-deliveries.js';
import type { WebhookSubscriptions } from '../application/webhook-subscriptions.js';
import type { RecordProviderEvent } from '../application/record-provider-event.js';
import type { WatchConfirmations } from '../application/watch-confirmations.js';

/** Everything the container can hand out, by name: the one map from token to type. */
export interface Services {
  Config: Config;
  Logger: Logger;
  Clock: Clock;
  IdGenerator: IdGenerator;
  RetryPolicy: RetryPolicy;
  EmailQueue: EmailQueue;
  EmailTaskSource: EmailTaskSource;
  DeadLetterBox: DeadLetterBox;
  DeliveryEvents: DeliveryEvents;
  /** The same bus as DeliveryEvents, with its subscribe and relay sides. */
  EventBus: InMemoryDeliveryEvents;
  /** Events to and from the broker: fed from the bus by the roles that have a broker. */
  BrokerEvents: RabbitMqDeliveryEvents;
  EmailLog: EmailLog;
  IdempotencyStore: IdempotencyStore;
  DeliveryLedger: DeliveryLedger;
  EmailSender: EmailSender;
  SenderHandle: SenderHandle;
  RequestEmail: RequestEmail;
  DeliverEmail: DeliverEmail;
  PurgeExpired: PurgeExpired;
  /** Emails held until their `send_at`, shared by every worker on the database. */
  ScheduledEmails: ScheduledEmails;
  /** Attachment bytes, stored once by digest. */
  AttachmentStore: AttachmentStore;
  /** Addresses no email is sent to, shared by every server and worker on the database. */
  SuppressionList: SuppressionList;
  /** Transports paused after a provider's throttle, shared by every worker on the database. */
  TransportPauses: TransportPauses;
  /** MAILGUN_RATE and SMTP_RATE, held across every worker on the database. */
  SendPacer: SendPacer;
  /** One-time tokens of signed webhooks seen lately, shared by every server. */
  WebhookTokens: WebhookTokens;
  /** The outgoing webhook endpoints (with their secrets), shared by every server and worker. */
  WebhookEndpoints: WebhookEndpoints;
  /** Every outgoing webhook delivery and its attempts, shared by every worker. */
  WebhookDeliveries: WebhookDeliveries;
  /** Operators' management of the endpoints: the admin API's `/webhooks` routes. */
  WebhookSubscriptions: WebhookSubscriptions;
  /** A provider's report (Mailgun's webhooks) into the email log and the suppression list. */
  RecordProviderEvent: RecordProviderEvent;
  RequestBatch: RequestBatch;
  ReleaseScheduled: ReleaseScheduled;
  CancelEmail: CancelEmail;
  /** The queue's waiting retries, for "Retry now": the same instance as EmailQueue. */
  RetryQueue: RetryQueue;
  /** An operator's "Retry now" on a `retrying` email. */
  RetryNow: RetryNow;
  /** An operator's "Resend": the same request as a new email. */
  ResendEmail: ResendEmail;
  /** The watchdog's sweep: emails a provider accepted and never reported on (CONFIRM_DEADLINE). */
  WatchConfirmations: WatchConfirmations;
  Metrics: Metrics;
  /** True while the stores can be used (database reachable and migrated). */
  StoreReadiness: () => boolean;
  /** True while the queue can take work (the broker connection is up). */
  BrokerReadiness: () => boolean;
  RabbitMqConnection: RabbitMqConnection;
  /** The embedded queue of `email dev`, for what the ports do not say (tasks left waiting). */
  SqlEmailQueue: SqlEmailQueue;
  SecretTokens: SecretTokens;
  /** The webhook queue: where jobs are published and, in a worker, consumed. */
  WebhookJobs: WebhookQueue & WebhookJobSource;
  /** Which changes the webhook queue hears (RabbitMQ's bindings; nothing to do in `email dev`). */
  WebhookEventRouting: WebhookEventRouting;
  /** The webhook queue's routing made to follow the endpoints. */
  RouteWebhookEvents: RouteWebhookEvents;
  WebhookTransport: HttpWebhookTransport;
  FanOutWebhooks: FanOutWebhooks;
  DeliverWebhook: DeliverWebhook;
  ApiKeyStore: ApiKeyStore;
  OperatorStore: OperatorStore;
  SessionStore: SessionStore;
  /** `RATE_LIMIT`: requests per API key, or per client address where no key is given. */
  RequestLimiter: RateLimiter;
  /** Failed sign-ins per user name and per client address. */
  SignInFailures: RateLimiter;
  ApiKeys: ApiKeys;
  Operators: Operators;
}

export type ServiceName = keyof Services;

/** The `Symbol.for` token of a service, derived from its name in `Services` above. */
export const token = (name: ServiceName): symbol => Symbol.for(`email.${name}`);

type Resolved<D extends readonly ServiceName[]> = { [I in keyof D]: Services[D[I] & ServiceName] };

/**
 * Binds `name` to what `factory` builds from the named dependencies, as a singleton. The
 * dependency names and the factory's parameters are checked against each other by the compiler,
 * which plain `toResolvedValue` with symbol tokens cannot do.
 */
export function provide<K extends ServiceName, const D extends readonly ServiceName[]>(
  bind: Bind,
  name: K,
  deps: D,
  factory: (...args: Resolved<D>) => Services[K],
): void {
  bind<Services[K]>(token(name))
    .toResolvedValue(
      // inversify hands the resolved dependencies over untyped; `Resolved<D>` above is what they are.
      (...args: unknown[]) => factory(...(args as unknown as Resolved<D>)),
      deps.map(token),
    )
    .inSingletonScope();
}

export function constant<K extends ServiceName>(bind: Bind, name: K, value: Services[K]): void {
  bind<Services[K]>(token(name)).toConstantValue(value);
}

export const resolve = <K extends ServiceName>(container: Container, name: K): Services[K] =>
  container.get<Services[K]>(token(name));
