import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DomainEvent } from '../../domain/events.js';

export interface Metrics {
  readonly registry: Registry;
  /** Counts an event; fed from the same events the status page is built from. */
  observe(event: DomainEvent): void;
  render(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics(role: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  const requested = new Counter({
    name: 'email_requested_total',
    help: 'Emails accepted and queued',
    registers: [registry],
  });
  const delivered = new Counter({
    name: 'email_delivered_total',
    help: 'Emails handed to the provider',
    registers: [registry],
  });
  const retried = new Counter({
    name: 'email_retries_total',
    help: 'Send attempts that failed transiently and were scheduled again',
    registers: [registry],
  });
  const failed = new Counter({
    name: 'email_failed_total',
    help: 'Emails dead-lettered (permanent failure or out of attempts)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const sendSeconds = new Histogram({
    name: 'email_send_duration_seconds',
    help: 'Time the provider took to accept an email',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const failovers = new Counter({
    name: 'email_failover_total',
    help: 'Sends moved from one transport to the next (transient failure or open circuit)',
    labelNames: ['from', 'to'],
    registers: [registry],
  });
  return {
    registry,
    observe(event) {
      switch (event.type) {
        case 'EmailRequested':
          return requested.inc();
        case 'EmailDelivered':
          delivered.inc();
          return sendSeconds.observe(event.durationMs / 1000);
        case 'EmailDeliveryRetried':
          return retried.inc();
        case 'EmailDeliveryFailed':
          return failed.inc({ outcome: event.outcome });
        case 'EmailFailedOver':
          // A fallback must never hide an outage: count every move to the next transport.
          return failovers.inc({ from: event.fromTransport, to: event.toTransport });
      }
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
