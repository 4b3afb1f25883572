import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DomainEvent } from '../../domain/events.js';

export interface Metrics {
  readonly registry: Registry;
  /**
   * Counts an event. Fed only with this process's own events, and only with those that changed
   * the email log, so a redelivered task or an event relayed from another process is not
   * counted twice.
   */
  observe(event: DomainEvent): void;
  render(): Promise<{ contentType: string; body: string }>;
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
      }
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
