import { performance } from 'node:perf_hooks';
import type { Channel } from 'amqplib';
import type { Logger } from '../../application/ports/system.js';
import { ChannelKeeper } from './channel-keeper.js';
import type { RabbitMqConnection } from './connection.js';
import { errorText } from './rabbitmq-publisher.js';
import { topologyNames } from './topology.js';

/** How often a publisher asks the broker whether a live page is open anywhere (ms). */
export const WATCHERS_CHECK_INTERVAL_MS = 1000;

/**
 * How long an answer is trusted, from the moment it was asked for (ms). An older one (a check
 * that did not come back, a connection down, a busy event loop) counts as not known: watched.
 */
export const WATCHERS_ANSWER_TRUSTED_MS = 1500;

/**
 * How long after its queue is bound a server's feed tells its holders to read again (ms; see
 * OnDemandEventFeed). A publisher that skipped an event as unwatched did so on an answer the
 * broker gave before the feed's consumer on the watchers queue appeared, and trusted it for at
 * most WATCHERS_ANSWER_TRUSTED_MS after asking: by this time every such skipped change was
 * written to the email log before the re-read (the margin covers timers that fire late and
 * clocks of two processes). Published changes after that reach the page as events.
 */
export const WATCHERS_REREAD_AFTER_MS = WATCHERS_ANSWER_TRUSTED_MS + 500;

export interface EventWatchersOptions {
  readonly connection: RabbitMqConnection;
  readonly prefix: string;
  readonly logger: Logger;
  /** Between two checks (default WATCHERS_CHECK_INTERVAL_MS). */
  readonly intervalMs?: number;
  /** How long an answer is trusted (default WATCHERS_ANSWER_TRUSTED_MS). */
  readonly trustedMs?: number;
  /** A monotonic clock in ms (default `performance.now`). */
  readonly now?: () => number;
}

interface Answer {
  readonly consumers: number;
  /** When it was asked for, by `now`. */
  readonly askedAt: number;
}

/**
 * Whether a live page is open on some server, as RabbitMQ itself keeps it: each server holds a
 * consumer on `<prefix>.watchers` while its events feed is bound (OnDemandEventFeed), and the
 * broker drops that consumer when the feed lets go, its channel closes or its process dies, so
 * there is no lease to expire. A publisher checks the queue's consumer count (a passive declare,
 * no message) every `intervalMs` on a channel of its own. Until the first answer, and whenever
 * the last one is older than `trustedMs` or the check failed (the queue deleted, the connection
 * down), it is not known, and `watched()` says true: publishing is the safe default.
 */
export class EventWatchers {
  private answer: Answer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private stopped = false;
  private failing = false;
  private readonly channel: ChannelKeeper<Channel>;
  private readonly queue: string;
  private readonly now: () => number;

  constructor(private readonly options: EventWatchersOptions) {
    this.queue = topologyNames(options.prefix).watchersQueue;
    this.now = options.now ?? (() => performance.now());
    // Opened on demand, and again after a failed check closed it (a 404 closes the channel).
    this.channel = new ChannelKeeper(options.connection, async (model, lost) => {
      const ch = await model.createChannel();
      ch.on('error', () => undefined); // the failed check rejects; that is reported there
      ch.on('close', lost);
      return ch;
    });
  }

  /** Checks now and every `intervalMs` until stop(). Idempotent. */
  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = setInterval(
      () => void this.check(),
      this.options.intervalMs ?? WATCHERS_CHECK_INTERVAL_MS,
    );
    this.timer.unref();
    void this.check();
  }

  /** False only on a trusted answer of no consumer: then no live page is open anywhere. */
  watched(): boolean {
    const consumers = this.consumers();
    return consumers === undefined || consumers > 0;
  }

  /** The watchers queue's consumers (servers with a live page open) as last trusted, or undefined. */
  consumers(): number | undefined {
    const answer = this.answer;
    if (answer === undefined) return undefined;
    const trustedMs = this.options.trustedMs ?? WATCHERS_ANSWER_TRUSTED_MS;
    return this.now() - answer.askedAt > trustedMs ? undefined : answer.consumers;
  }

  /** Stops checking and closes its channel; watched() says true from then on. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.answer = undefined;
    const ch = await this.channel.release()?.catch(() => undefined);
    await ch?.close().catch(() => undefined);
  }

  /** One check, unless one is still out (it will be trusted less as it ages). */
  private async check(): Promise<void> {
    const model = this.options.connection.current();
    if (this.checking || this.stopped || model === undefined) return;
    this.checking = true;
    const askedAt = this.now();
    try {
      const ch = await this.channel.acquire(model);
      const { consumerCount } = await ch.checkQueue(this.queue);
      if (this.stopped) return;
      this.answer = { consumers: consumerCount, askedAt };
      this.failing = false;
    } catch (err) {
      this.answer = undefined;
      // Once per run of failures: a deleted queue would otherwise log every second.
      if (!this.failing && !this.stopped) {
        this.options.logger.warn(
          { queue: this.queue, err: errorText(err) },
          'Could not check for live pages; publishing their events meanwhile',
        );
      }
      this.failing = true;
    } finally {
      this.checking = false;
    }
  }
}
