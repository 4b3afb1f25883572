import { expect } from 'chai';
import { InMemoryDeliveryEvents } from '../../../src/adapters/memory/in-memory-delivery-events.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { deliveryEventsContract } from '../../contracts/delivery-events.contract.js';
import { aRequest, anEvent } from '../../support/builders.js';
import { RecordingLogger } from '../../support/fakes.js';

deliveryEventsContract('InMemoryDeliveryEvents', async () => {
  const logger = new RecordingLogger();
  const bus = new InMemoryDeliveryEvents(logger);
  const received: DomainEvent[] = [];
  let broken = false;
  bus.subscribe(async (event) => {
    if (broken) throw new Error('subscriber failed');
    received.push(event);
  });
  return {
    events: bus,
    received,
    logger,
    async breakDelivery() {
      broken = true;
    },
    async close() {},
  };
});

describe('InMemoryDeliveryEvents, as the one event path in a process', () => {
  const event = (): DomainEvent => anEvent.requested(aRequest());

  it('gives relayed events (from other processes) only to subscribers that asked for them', async () => {
    const bus = new InMemoryDeliveryEvents(new RecordingLogger());
    const local: string[] = [];
    const everything: string[] = [];
    bus.subscribe(async (e) => void local.push(e.id));
    bus.subscribe(async (e) => void everything.push(e.id), { remote: true });
    const own = event();
    const other = event();
    await bus.publish(own)();
    await bus.relay(other)();
    // Metrics and the bridge to the broker hear only their own process: nothing counts twice.
    expect(local).to.deep.equal([own.id]);
    expect(everything).to.deep.equal([own.id, other.id]);
  });

  it('runs every subscriber before publish resolves, even when one of them fails', async () => {
    const logger = new RecordingLogger();
    const bus = new InMemoryDeliveryEvents(logger);
    const heard: string[] = [];
    bus.subscribe(async () => {
      throw new Error('boom');
    });
    bus.subscribe(async (e) => void heard.push(e.id));
    const e = event();
    await bus.publish(e)();
    expect(heard).to.deep.equal([e.id]);
    expect(logger.errors().map((l) => l.message)).to.deep.equal(['Event handler failed']);
  });

  it('logs a subscriber that fails in any way, and never throws at the publisher', async () => {
    const logger = new RecordingLogger();
    const bus = new InMemoryDeliveryEvents(logger);
    const heard: string[] = [];
    bus.subscribe(() => {
      throw new Error('at once');
    });
    // A thenable that is not a promise, whose `then` throws.
    bus.subscribe(
      () =>
        ({
          then() {
            throw new Error('then threw');
          },
        }) as unknown as Promise<void>,
    );
    bus.subscribe(() => Promise.reject(new Error('later')));
    bus.subscribe((e) => void heard.push(e.id));
    const e = event();
    await bus.publish(e)();
    expect(heard).to.deep.equal([e.id]);
    expect(logger.errors().map((l) => l.message)).to.deep.equal([
      'Event handler failed',
      'Event handler failed',
      'Event handler failed',
    ]);
  });

  it('stops delivering to a subscriber that unsubscribed', async () => {
    const bus = new InMemoryDeliveryEvents(new RecordingLogger());
    const heard: string[] = [];
    const stop = bus.subscribe(async (e) => void heard.push(e.id), { remote: true });
    stop();
    await bus.publish(event())();
    expect(heard).to.deep.equal([]);
    expect(bus.subscribers).to.equal(0);
  });
});
