// One suite for the DeliveryEvents port, run against the in-process bus and RabbitMQ's events
// exchange: whoever listens hears each event unchanged, and publishing never fails a delivery.
import { expect } from 'chai';
import type { DeliveryEvents } from '../../src/application/ports/delivery-events.js';
import type { DomainEvent } from '../../src/domain/events.js';
import type { RecordingLogger } from '../support/fakes.js';
import { eventually, sampleRequest } from './email-queue.contract.js';

export interface EventsFixture {
  readonly events: DeliveryEvents;
  /** Everything a subscriber on the other side heard, in arrival order. */
  readonly received: readonly DomainEvent[];
  readonly logger: RecordingLogger;
  /** Makes delivery fail from now on: a subscriber that throws, or the broker gone. */
  breakDelivery(): Promise<void>;
  close(): Promise<void>;
}

function sentEvent(n: number): DomainEvent {
  const request = sampleRequest();
  return {
    type: 'EmailSent',
    id: request.id,
    at: `2026-11-28T10:00:0${n}.000Z`,
    to: request.to,
    subject: request.subject,
    attempt: 1,
    providerId: `<p${n}@mailgun>`,
    durationMs: 12.5,
  };
}

export function deliveryEventsContract(name: string, open: () => Promise<EventsFixture>): void {
  describe(`${name} honours the DeliveryEvents contract`, () => {
    let fx: EventsFixture | undefined;

    afterEach(async () => {
      await fx?.close();
      fx = undefined;
    });

    it('delivers each event unchanged to a subscriber', async () => {
      fx = await open();
      const event = sentEvent(1);
      await fx.events.publish(event)();
      await eventually(() => expect(fx?.received).to.deep.equal([event]));
    });

    it("keeps one email's events in the order they were published", async () => {
      fx = await open();
      const request = sampleRequest();
      const about = { id: request.id, to: request.to, subject: request.subject };
      const sequence: DomainEvent[] = [
        { type: 'EmailRequested', ...about, at: '2026-11-28T10:00:00.000Z' },
        { type: 'EmailSending', ...about, at: '2026-11-28T10:00:01.000Z', attempt: 1 },
        {
          type: 'EmailDeliveryRetried',
          ...about,
          at: '2026-11-28T10:00:02.000Z',
          attempt: 1,
          reason: 'Mailgun 503',
          durationMs: 40,
          delayMs: 1000,
          nextAttemptAt: '2026-11-28T10:00:03.000Z',
        },
        {
          type: 'EmailFailedOver',
          ...about,
          at: '2026-11-28T10:00:03.000Z',
          fromTransport: 'mailgun',
          toTransport: 'smtp',
          reason: 'Mailgun 503',
        },
        {
          type: 'EmailDeliveryFailed',
          ...about,
          at: '2026-11-28T10:00:04.000Z',
          attempt: 2,
          outcome: 'permanent',
          reason: '550 no such user',
          durationMs: 30,
        },
      ];
      for (const event of sequence) await fx.events.publish(event)();
      await eventually(() => expect(fx?.received).to.deep.equal(sequence));
    });

    it('resolves, and says so in the log, when the event cannot be delivered', async () => {
      fx = await open();
      await fx.breakDelivery();
      const event = sentEvent(2);
      // A Task that rejected would fail the delivery that announced it: it must resolve.
      await fx.events.publish(event)();
      expect(fx.received).to.deep.equal([]);
      await eventually(() =>
        expect(fx?.logger.lines.some((l) => l.level !== 'info')).to.equal(true),
      );
    });
  });
}
