import type { Task } from 'fp-ts/lib/Task.js';
import type {
  EmailSender,
  NamedOutcome,
  SendOptions,
  Throttle,
} from '../../application/ports/email-sender.js';
import { sendNamed } from '../../application/ports/email-sender.js';
import type { Clock, Logger } from '../../application/ports/system.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import { isNotStarted, throttled, transient, uncertain } from '../../domain/delivery.js';
import type { EmailRequest } from '../../domain/email-request.js';
import type { BreakerOptions, BreakerState } from './circuit-breaker.js';
import { CircuitBreaker, DEFAULT_BREAKER } from './circuit-breaker.js';

export interface FailoverOptions {
  /** In order of preference; the first is used whenever it is up. */
  readonly senders: readonly EmailSender[];
  readonly log: Logger;
  readonly clock?: Pick<Clock, 'monotonicMs'>;
  readonly breaker?: Partial<BreakerOptions>;
  /**
   * Called on every move to the next sender: the composition root publishes it as an event, which
   * the email's page shows, so `reason` is the sender's public reason (never its hint).
   */
  readonly onFailover?: (request: EmailRequest, from: string, to: string, reason: string) => void;
}

/** Why one sender did not take the email, and when it might (undefined: our own schedule). */
interface Failure {
  readonly key: string;
  readonly reason: string;
  readonly waitMs: number | undefined;
  readonly uncertain?: true;
  /** Throttled, or skipped while paused after a throttle. */
  readonly throttled?: true;
  /** For the worker's log only, like the outcome's. */
  readonly hint?: string;
}

/**
 * Tries its senders in order and moves on only when one answers `transient`: `sent` is done, and
 * `permanent` is the message's fault (a refused recipient, a too-large body) that another
 * provider would refuse too, or a config error that must not be papered over. A circuit breaker
 * per sender spares a dead provider a timeout on every email. Every move to the next sender is
 * logged and reported, so running on the fallback is never silent. Each sender's hint is logged
 * with its move, and kept in the outcome when none took the email.
 *
 * Pacing (docs/architecture.md, "Pacing"): a `throttled` answer moves on like a transient one
 * (failover may take over while the throttled transport pauses), but it is no failure for the
 * circuit breaker: the provider answered, it is up. Every throttle is listed in the answer, so
 * the core pauses that transport even when the next one took the email. A transport the core
 * says is paused (`skip`) is passed over like an open circuit, and that move is reported too.
 */
export class FailoverEmailSender implements EmailSender {
  readonly name: string;
  /** Each sender's own name, in order: what the core paces and pauses. */
  readonly transports: readonly string[];
  private readonly entries: { key: string; sender: EmailSender; breaker: CircuitBreaker }[];

  constructor(private readonly options: FailoverOptions) {
    if (options.senders.length === 0) throw new Error('FailoverEmailSender needs a sender');
    const clock = options.clock ?? { monotonicMs: () => performance.now() };
    const breaker = { ...DEFAULT_BREAKER, ...options.breaker };
    const seen = new Map<string, number>();
    this.entries = options.senders.map((sender) => {
      const n = (seen.get(sender.name) ?? 0) + 1;
      seen.set(sender.name, n);
      // Two senders of one kind (two SMTP relays) still get one line each in states().
      const key = n === 1 ? sender.name : `${sender.name}#${n}`;
      return { key, sender, breaker: new CircuitBreaker(breaker, () => clock.monotonicMs()) };
    });
    this.name = `failover(${this.entries.map((e) => e.key).join(',')})`;
    this.transports = this.entries.map((e) => e.sender.name);
  }

  send(request: EmailRequest, options?: SendOptions): Task<DeliveryOutcome> {
    return async () => (await this.sendNamed(request, options)()).outcome;
  }

  /**
   * `send`, naming the sender that answered: the one that took (or refused) the email, by its
   * own name (`mailgun`, not `mailgun#2` nor this chain's), or this chain's name when every
   * sender failed for now. `throttled` lists every sender that throttled on the way.
   */
  sendNamed(request: EmailRequest, options?: SendOptions): Task<NamedOutcome> {
    return async () => {
      const failures: Failure[] = [];
      const throttles: Throttle[] = [];
      /** Whether a sender of the chain has had the email in its hands (answered) this time. */
      let tried = false;
      for (const [i, entry] of this.entries.entries()) {
        const next = this.entries[i + 1]?.key;
        const pausedMs = options?.skip?.get(entry.sender.name);
        if (pausedMs !== undefined) {
          const reason = `paused after a throttle (${Math.ceil(pausedMs / 1000)}s left)`;
          failures.push({ key: entry.key, reason, waitMs: pausedMs, throttled: true });
          if (next) this.failedOver(request, entry.key, next, { reason });
          continue;
        }
        if (!entry.breaker.tryAcquire()) {
          const reason = `circuit open (${Math.ceil(entry.breaker.remainingMs() / 1000)}s left)`;
          failures.push({
            key: entry.key,
            reason,
            waitMs: entry.breaker.remainingMs() || undefined,
          });
          if (next) this.failedOver(request, entry.key, next, { reason });
          continue;
        }
        const { outcome, transport } = await sendNamed(entry.sender, request)();
        if (isNotStarted(outcome)) {
          // The worker is stopping: this sender sent nothing, and no other should start now.
          entry.breaker.onNotStarted();
          // Nothing went out at all: the task goes back unspent. After a sender that did have
          // it (a timeout it may have taken, a throttle to share), the attempt is what they said.
          if (!tried) return this.named(outcome, transport, throttles);
          break;
        }
        tried = true;
        const isThrottle = outcome._tag === 'Transient' && outcome.throttled === true;
        if (outcome._tag !== 'Transient' || isThrottle) {
          const before = entry.breaker.onSuccess();
          if (before !== 'closed') {
            this.options.log.info({ sender: entry.key }, `Circuit closed: ${entry.key} is back`);
          }
          if (outcome._tag !== 'Transient') return this.named(outcome, transport, throttles);
          throttles.push(
            outcome.retryAfterMs === undefined
              ? { transport: entry.sender.name }
              : { transport: entry.sender.name, retryAfterMs: outcome.retryAfterMs },
          );
        }
        const hint = outcome.hint === undefined ? {} : { hint: outcome.hint };
        failures.push({
          key: entry.key,
          reason: outcome.reason,
          waitMs: outcome.retryAfterMs,
          ...(outcome.uncertain ? { uncertain: true as const } : {}),
          ...(isThrottle ? { throttled: true as const } : {}),
          ...hint,
        });
        if (!isThrottle && entry.breaker.onFailure()) {
          this.options.log.warn(
            { sender: entry.key, reason: outcome.reason, ...hint },
            `Circuit opened: skipping ${entry.key} for the cool-down`,
          );
        }
        if (next) this.failedOver(request, entry.key, next, { reason: outcome.reason, ...hint });
      }
      return this.named(this.allFailed(failures), this.name, throttles);
    };
  }

  /** The answer, listing the throttles on the way when there were any. */
  private named(
    outcome: DeliveryOutcome,
    transport: string,
    throttles: readonly Throttle[],
  ): NamedOutcome {
    return throttles.length > 0
      ? { outcome, transport, throttled: throttles }
      : { outcome, transport };
  }

  /** See `EmailSender.stopStarting`: told to every sender of the chain that has it. */
  stopStarting(): void {
    for (const { sender } of this.entries) sender.stopStarting?.();
  }

  /** Each sender's circuit, for /readyz and /metrics. */
  states(): Record<string, BreakerState> {
    return Object.fromEntries(this.entries.map((e) => [e.key, e.breaker.current()]));
  }

  private failedOver(
    request: EmailRequest,
    from: string,
    to: string,
    why: { reason: string; hint?: string },
  ): void {
    this.options.log.warn(
      { emailId: request.id, from, to, ...why },
      `Failing over from ${from} to ${to}: ${why.reason}`,
    );
    this.options.onFailover?.(request, from, to, why.reason);
  }

  /**
   * Nobody took it. The retry may come as soon as the soonest sender could answer: the smallest
   * Retry-After, or none (our own schedule) if any sender gave none; a skipped sender is ready
   * when its cool-down ends.
   */
  private allFailed(failures: readonly Failure[]): DeliveryOutcome {
    const reason = failures.map((f) => `${f.key}: ${f.reason}`).join('; ');
    const waits = failures.map((f) => f.waitMs);
    const soonest = waits.every((w): w is number => w !== undefined)
      ? Math.min(...waits)
      : undefined;
    const hints = failures.flatMap((f) => (f.hint === undefined ? [] : [`${f.key}: ${f.hint}`]));
    const hint = hints.length > 0 ? hints.join('; ') : undefined;
    // Uncertain only if every sender was: one plain "try later" is a reason to keep trying.
    const all = `all senders failed: ${reason}`;
    // Throttled only if every sender was (or was paused for it): then waiting spends nothing.
    if (failures.every((f) => f.throttled)) return throttled(all, soonest, hint);
    return failures.every((f) => f.uncertain)
      ? uncertain(all, soonest, hint)
      : transient(all, soonest, hint);
  }
}
