import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DomainEvent } from '../../domain/events.js';
import type { SuppressionReason } from '../../application/ports/suppression-list.js';
import { SUPPRESSION_REASONS } from '../../application/ports/suppression-list.js';
import type { PacingObserver } from '../../application/ports/send-pacer.js';

/**
 * The process's Prometheus metrics. As a `PacingObserver` it shows pacing (docs/architecture.md,
 * "Pacing"): `email_pacing_waits_total{transport}` (pacing decisions that made a send wait for
 * its transport's pace or pause: each wait in the worker and each hand-back to the queue, so an
 * email handed back several times counts each time) and `email_pacing_wait_seconds` (the wait each
 * of them announced: for a hand-back, the whole wait still to go then, so one email's hand-backs
 * overlap), `email_pacing_tokens{transport}` (sends still free in the coming window as the pacer
 * last answered this process: not refilled while it books nothing), `email_throttled_total{transport}` and
 * `email_transport_paused_until_seconds{transport}` (Unix seconds; in the past: not paused).
 */
export interface Metrics extends PacingObserver {
  readonly registry: Registry;
  /**
   * Counts an event. Fed only with this process's own events, and only with those that changed
   * the email log, so a redelivered task or an event relayed from another process is not
   * counted twice.
   */
  observe(event: DomainEvent): void;
  /**
   * Counts an address this process put on the suppression list that was not on it before
   * (`SuppressionList.add` answered true), by why it was added.
   */
  suppressionAdded(reason: SuppressionReason): void;
  render(): Promise<{ contentType: string; body: string }>;
  /** Counts one recorded webhook attempt by what it came to: delivered, retrying or failed. */
  webhookAttempt(outcome: 'delivered' | 'retrying' | 'failed'): void;
  /**
   * Reports the age of the oldest webhook delivery still pending, read from `oldestPending`
   * on each scrape (undefined: none pending, so 0; a rejection leaves the gauge as it was).
   */
  watchWebhookBacklog(oldestPending: () => Promise<Date | undefined>): void;
  /**
   * Reports the servers with a live page open, as this process last checked the broker, read
   * from `watchers` on each scrape (`email_live_page_watchers`; -1: not known, so the live
   * pages' events are published; absent from a process that publishes none).
   */
  watchLivePages(watchers: () => number | undefined): void;
  /**
   * Reports the addresses of this server's suppression list in memory, read from `cached` on
   * each scrape (`email_suppression_list_cached_addresses`; -1: no copy it can trust, so every
   * look-up asks PostgreSQL; absent from a process that keeps no copy).
   */
  watchSuppressionCopy(cached: () => number | undefined): void;
  /**
   * Reports the accepted emails this server holds and has not yet written to the email log
   * (`WRITE_BEHIND_MS`), read from `pending` on each scrape
   * (`email_log_write_behind_pending`; absent from a process that writes each row before its
   * `202`).
   */
  watchWriteBehind(pending: () => number | undefined): void;
}

export function createMetrics(role: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });
  const requested = counter('email_requested_total', 'Emails accepted and queued');
  const sent = counter(
    'email_sent_total',
    'Emails the provider accepted (not yet a delivery report)',
  );
  const retried = counter(
    'email_retries_total',
    'Send attempts that failed transiently and were scheduled again',
  );
  const failed = counter(
    'email_failed_total',
    'Emails dead-lettered (permanent failure or out of attempts)',
    ['outcome'],
  );
  const sendSeconds = new Histogram({
    name: 'email_send_duration_seconds',
    help: 'Time the provider took to accept an email',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const failovers = counter(
    'email_failover_total',
    'Sends moved from one transport to the next (transient failure or open circuit)',
    ['from', 'to'],
  );
  const providerEvents = counter(
    'email_provider_events_total',
    'Provider reports recorded, by kind (delivered, bounced, complained, unsubscribed, deferred)',
    ['event'],
  );
  const unconfirmed = counter(
    'email_unconfirmed_total',
    'Emails the provider accepted and then reported nothing on, for any recipient, within CONFIRM_DEADLINE',
  );
  const suppressionsAdded = counter(
    'email_suppressions_added_total',
    'Addresses added to the suppression list by this process, by reason (bounce, complaint, unsubscribe, manual)',
    ['reason'],
  );
  // Every reason from the start, at 0: a rate over a series that appears only with its first
  // increment misses that increment.
  for (const reason of SUPPRESSION_REASONS) suppressionsAdded.inc({ reason }, 0);
  const pacingWaits = counter(
    'email_pacing_waits_total',
    'Pacing decisions that made a send wait for its transport (its MAILGUN_RATE/SMTP_RATE pace, or a pause after a throttle): each wait in the worker and each hand-back to the queue, so one email may count several times',
    ['transport'],
  );
  const pacingWaitSeconds = new Histogram({
    name: 'email_pacing_wait_seconds',
    help: "The wait each pacing decision announced (pace or pause); for a hand-back to the queue, the whole wait still to go, so one email's hand-backs overlap",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const pacingTokens = new Gauge({
    name: 'email_pacing_tokens',
    help: "Sends still free in the transport's coming window at its rate, as the pacer last answered this process (not refilled while it books nothing)",
    labelNames: ['transport'],
    registers: [registry],
  });
  const throttled = counter(
    'email_throttled_total',
    'Sends the provider answered with a throttle (Mailgun 429 or 420, SMTP 421/451/452 about a rate)',
    ['transport'],
  );
  const pausedUntil = new Gauge({
    name: 'email_transport_paused_until_seconds',
    help: "When the transport's latest known pause after a throttle ends, in Unix seconds (past: not paused)",
    labelNames: ['transport'],
    registers: [registry],
  });
  const webhookAttempts = counter(
    'email_webhook_deliveries_total',
    'Outgoing webhook attempts, by outcome (delivered, retrying, failed: out of attempts)',
    ['outcome'],
  );
  let oldestPending: (() => Promise<Date | undefined>) | undefined;
  new Gauge({
    name: 'email_webhook_oldest_pending_seconds',
    help: 'Age of the oldest outgoing webhook delivery not yet delivered nor given up (0: none)',
    registers: [registry],
    async collect() {
      if (oldestPending === undefined) return;
      const oldest = await oldestPending().catch(() => null);
      if (oldest === null) return;
      this.set(oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest.getTime()) / 1000));
    },
  });
  /**
   * A gauge set on each scrape from the function last given to the returned watcher (undefined:
   * -1, not known), registered on the watcher's first call.
   */
  const readOnScrape = (name: string, help: string) => {
    let read: (() => number | undefined) | undefined;
    return (next: () => number | undefined): void => {
      if (read === undefined) {
        new Gauge({
          name,
          help,
          registers: [registry],
          collect() {
            this.set(read?.() ?? -1);
          },
        });
      }
      read = next;
    };
  };
  return {
    registry,
    observe(event) {
      switch (event.type) {
        case 'EmailRequested':
          return requested.inc();
        case 'EmailSending':
          return;
        case 'EmailSent':
          sent.inc();
          // A send found in the ledger on a redelivery took no time: it is no measurement.
          if (event.durationMs > 0) sendSeconds.observe(event.durationMs / 1000);
          return;
        case 'EmailDeliveryRetried':
          return retried.inc();
        case 'EmailDeliveryFailed':
          return failed.inc({ outcome: event.outcome });
        case 'EmailFailedOver':
          // A fallback must never hide an outage: count every move to the next transport.
          return failovers.inc({ from: event.fromTransport, to: event.toTransport });
        case 'ProviderReported':
          return providerEvents.inc({ event: event.kind });
        case 'EmailUnconfirmed':
          // News once per email (the fold takes one note), so this counts emails.
          return unconfirmed.inc();
        // An operator's actions: what follows (an attempt, the new email's request) is counted.
        case 'EmailRetryExpedited':
        case 'EmailResent':
          return;
      }
    },
    suppressionAdded(reason) {
      suppressionsAdded.inc({ reason });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    webhookAttempt(outcome) {
      webhookAttempts.inc({ outcome });
    },
    watchWebhookBacklog(read) {
      oldestPending = read;
    },
    // Each registered only when called: a process that never checks (`email dev`) shows no
    // watchers, and only the server keeps a suppression list in memory.
    watchLivePages: readOnScrape(
      'email_live_page_watchers',
      'Servers with a live page open, as this process last checked (-1: not known, so their events are published)',
    ),
    watchSuppressionCopy: readOnScrape(
      'email_suppression_list_cached_addresses',
      "Addresses in this server's in-memory copy of the suppression list (-1: no copy it can trust, so each look-up asks PostgreSQL)",
    ),
    watchWriteBehind: readOnScrape(
      'email_log_write_behind_pending',
      'Accepted emails this server holds and has not yet written to the email log (WRITE_BEHIND_MS)',
    ),
    pacingWaited(transport, waitMs) {
      pacingWaits.inc({ transport });
      pacingWaitSeconds.observe(waitMs / 1000);
    },
    pacingTokens(transport, tokens) {
      pacingTokens.set({ transport }, tokens);
    },
    transportThrottled(transport) {
      throttled.inc({ transport });
    },
    transportPaused(transport, until) {
      pausedUntil.set({ transport }, until.getTime() / 1000);
    },
  };
}
