import type { ChannelModel } from 'amqplib';
import { connect } from 'amqplib';
import type { Logger } from '../../application/ports/system.js';
import { withJitter } from '../../domain/delivery.js';
import { corkWrites } from './cork-writes.js';
import type { TopologyOptions } from './topology.js';
import { declareTopology } from './topology.js';

export interface RabbitMqConnectionOptions {
  /** `amqp://user:pass@host:5672/vhost`; only its redacted form is ever logged. */
  readonly url: string;
  readonly topology: TopologyOptions;
  readonly logger: Logger;
  /** Heartbeat in seconds (default 30): a dead peer is noticed after two missed beats. */
  readonly heartbeatSeconds?: number;
  /** First reconnect delay (default 250 ms), doubled per failure up to `maxBackoffMs` (30 s). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** TCP connect plus AMQP handshake (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Shown by `rabbitmqctl list_connections name` and the management UI. */
  readonly name?: string;
  readonly random?: () => number;
}

/** Runs after every (re)connect, once the topology is declared. Must be idempotent per model. */
export type ReadyCallback = (model: ChannelModel) => Promise<void>;

/** `amqp://guest:***@host:5672/`: a URL fit for a log line. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an AMQP URL that does not parse)';
  }
}

/**
 * One long-lived connection per process, as RabbitMQ recommends (the original opened one per
 * request). When it closes for any reason but close(), it reconnects with exponential backoff
 * and jitter, declares the topology again (a restarted broker without durable state would have
 * lost it) and re-runs the registered callbacks, which is how consumers resume.
 *
 * Written on plain amqplib rather than its `recovery` option: we need the topology declared
 * before any callback runs and a readiness flag for /readyz, and recovery gives neither a place
 * nor a republish of unconfirmed messages, which the publisher handles by failing them.
 */
export class RabbitMqConnection {
  readonly redactedUrl: string;
  private model: ChannelModel | undefined;
  private started = false;
  private closed = false;
  private blocked = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly callbacks = new Set<ReadyCallback>();
  private readonly waiters = new Set<(ready: boolean) => void>();

  constructor(private readonly options: RabbitMqConnectionOptions) {
    this.redactedUrl = redactUrl(options.url);
  }

  /** Starts connecting in the background; see whenReady(). Idempotent. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.attempt();
  }

  /** True while connected with the topology declared: what /readyz reports. */
  isReady(): boolean {
    return this.model !== undefined;
  }

  /** A resource alarm (disk, memory) stops publishes until it clears. */
  isBlocked(): boolean {
    return this.blocked;
  }

  /** The live connection, or undefined while down. */
  current(): ChannelModel | undefined {
    return this.model;
  }

  /** Resolves true once ready, false after `timeoutMs` or on close(). */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.model) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ready: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(ready);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      timer.unref();
      this.waiters.add(done);
    });
  }

  /** Registers `callback` for every future (re)connect; returns what unregisters it. */
  onReady(callback: ReadyCallback): () => void {
    this.callbacks.add(callback);
    return () => this.callbacks.delete(callback);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const waiter of [...this.waiters]) waiter(false);
    const model = this.model;
    this.model = undefined;
    if (model) await model.close().catch(() => undefined);
  }

  private async attempt(): Promise<void> {
    let model: ChannelModel | undefined;
    try {
      model = await connect(this.urlWithHeartbeat(), {
        timeout: this.options.connectTimeoutMs ?? 10_000,
        clientProperties: { connection_name: this.options.name ?? 'queued-email' },
      });
      this.watch(model);
      // The publishes of one event-loop turn leave in one socket write.
      corkWrites(model);
      const channel = await model.createChannel();
      channel.on('error', () => undefined); // the failed call rejects; that is reported below
      await declareTopology(channel, this.options.topology).catch((err: unknown) => {
        throw new TopologyRefused(err);
      });
      await channel.close();
    } catch (err) {
      await model?.close().catch(() => undefined);
      this.scheduleReconnect(err);
      return;
    }
    if (this.closed) {
      await model.close().catch(() => undefined);
      return;
    }
    this.model = model;
    this.failures = 0;
    this.blocked = false;
    this.options.logger.info({ url: this.redactedUrl }, 'Connected to RabbitMQ');
    for (const waiter of [...this.waiters]) waiter(true);
    for (const callback of [...this.callbacks]) {
      if (this.model !== model) return;
      await callback(model).catch((err: unknown) =>
        this.options.logger.error(
          { url: this.redactedUrl, err: this.describe(err) },
          'RabbitMQ setup after connect failed',
        ),
      );
    }
  }

  private watch(model: ChannelModel): void {
    // amqplib emits 'error' before 'close' on a non-graceful close; 'close' alone is enough to
    // act on, but an 'error' without a listener would crash the process.
    model.on('error', () => undefined);
    model.on('blocked', (reason: string) => {
      this.blocked = true;
      this.options.logger.warn({ reason }, 'RabbitMQ blocked publishing (resource alarm)');
    });
    model.on('unblocked', () => {
      this.blocked = false;
      this.options.logger.info({}, 'RabbitMQ unblocked publishing');
    });
    model.on('close', (err?: Error) => {
      if (this.model !== model) return; // a connect attempt that failed reports itself
      this.model = undefined;
      if (this.closed) return;
      this.options.logger.warn(
        { url: this.redactedUrl, err: this.describe(err) },
        'Lost the RabbitMQ connection; reconnecting',
      );
      this.scheduleReconnect(undefined);
    });
  }

  private scheduleReconnect(err: unknown): void {
    if (this.closed) return;
    const initial = this.options.initialBackoffMs ?? 250;
    const max = this.options.maxBackoffMs ?? 30_000;
    const delayMs = withJitter(
      Math.min(max, initial * 2 ** Math.min(this.failures, 20)),
      this.options.random ?? Math.random,
    );
    this.failures += 1;
    if (err instanceof TopologyRefused) {
      // Connected, but a queue or exchange of this prefix exists with other arguments: no
      // retry fixes that by itself, and a person has to act.
      this.options.logger.error(
        { url: this.redactedUrl, err: this.describe(err.cause), attempt: this.failures, delayMs },
        'RabbitMQ refused the topology: a queue or exchange under QUEUE_PREFIX exists with other arguments; delete it or use another QUEUE_PREFIX. Retrying',
      );
    } else if (err !== undefined) {
      this.options.logger.warn(
        { url: this.redactedUrl, err: this.describe(err), attempt: this.failures, delayMs },
        'Could not connect to RabbitMQ; retrying',
      );
    }
    // Not unref'd: a role started while the broker is away must stay up and keep trying (and
    // answer 503 meanwhile) rather than exit because nothing else holds the event loop yet.
    // close() clears it.
    this.retryTimer = setTimeout(() => void this.attempt(), delayMs);
  }

  private urlWithHeartbeat(): string {
    try {
      const url = new URL(this.options.url);
      if (!url.searchParams.has('heartbeat')) {
        url.searchParams.set('heartbeat', String(this.options.heartbeatSeconds ?? 30));
      }
      return url.toString();
    } catch {
      return this.options.url; // amqplib reports the bad URL; our logs only show it redacted
    }
  }

  /** An error's message with the URL (and so the password) taken out, should a library echo it. */
  private describe(err: unknown): string | undefined {
    if (err === undefined || err === null) return undefined;
    const message = err instanceof Error ? err.message : String(err);
    return message.split(this.options.url).join(this.redactedUrl);
  }
}

/** The broker took the connection but refused to declare the topology (PRECONDITION_FAILED). */
class TopologyRefused extends Error {
  constructor(cause: unknown) {
    super('RabbitMQ refused the topology', { cause });
  }
}
