// One suite for the DeliveryEvents port, run against the in-process bus and RabbitMQ's events
// exchange: whoever listens hears each event unchanged, and publishing never fails a delivery.
import { expect } from 'chai';
import type { DeliveryEvents } from '../../src/application/ports/delivery-events.js';
import type { DomainEvent } from '../../src/domain/events.js';
import type { RecordingLogger } from '../support/fakes.js';
import { aRequest, anEvent, at } from '../support/builders.js';
import { eventually } from '../support/waiting.js';

export interface EventsFixture {
  readonly events: DeliveryEvents;
  /** Everything a subscriber on the other side heard, in arrival order. */
  readonly received: readonly DomainEvent[];
  readonly logger: RecordingLogger;
  /** Makes delivery fail from now on: a subscriber that throws, or the broker gone. */
  breakDelivery(): Promise<void>;
  close(): Promise<void>;
}

const sentEvent = (n: number): DomainEvent =>
  anEvent.sent(aRequest(), { at: at(n), providerId: `<p${n}@mailgun>`, durationMs: 12.5 });

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
      const request = aRequest();
      const sequence: DomainEvent[] = [
        anEvent.requested(request, { at: at(0) }),
        anEvent.sending(request, { at: at(1) }),
        anEvent.retried(request, { at: at(2), reason: 'Mailgun 503', delayMs: 1000 }),
        anEvent.failedOver(request, { at: at(3) }),
        anEvent.failed(request, { at: at(4), attempt: 2 }),
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
