import { connect } from 'amqplib';
import type { RabbitMqConnection } from '../../../src/adapters/rabbitmq/connection.js';
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import {
  OnDemandEventFeed,
  RabbitMqDeliveryEvents,
  subscribeToEvents,
} from '../../../src/adapters/rabbitmq/rabbitmq-delivery-events.js';
import { topologyNames } from '../../../src/adapters/rabbitmq/topology.js';
import { RabbitMqPublisher } from '../../../src/adapters/rabbitmq/rabbitmq-publisher.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { deliveryEventsContract } from '../../contracts/delivery-events.contract.js';
import { aRequest, anEvent } from '../../support/builders.js';
import { RecordingLogger } from '../../support/fakes.js';
import {
  AMQP_URL,
  deleteEventQueues,
  deleteTopology,
  readyConnection,
  requireRabbitMq,
  uniquePrefix,
} from '../../support/rabbitmq.js';
import { eventually } from '../../support/waiting.js';

const DELAYS = [200];

/** A connection of its own for each side: the publisher's can go while the subscriber listens. */
const connected = (prefix: string, logger: RecordingLogger): Promise<RabbitMqConnection> =>
  readyConnection({
    topology: { prefix, retryDelaysMs: DELAYS },
    logger,
    name: `${prefix}-events`,
  });

describe('RabbitMqDeliveryEvents', () => {
  before(() => requireRabbitMq());

  deliveryEventsContract('RabbitMqDeliveryEvents', async () => {
    const prefix = uniquePrefix('events');
    const logger = new RecordingLogger();
    const publishing = await connected(prefix, logger);
    const listening = await connected(prefix, new RecordingLogger());
    const received: DomainEvent[] = [];
    const subscription = await subscribeToEvents(
      listening,
      prefix,
      (event) => void received.push(event),
      logger,
    );
    const publisher = new RabbitMqPublisher({ connection: publishing, logger });
    return {
      events: new RabbitMqDeliveryEvents({ publisher, prefix, logger }),
      received,
      logger,
      // The broker is out of reach for the publisher: its connection is closed for good.
      breakDelivery: () => publishing.close(),
      async close() {
        await subscription.close();
        await publishing.close();
        await deleteTopology(AMQP_URL, prefix, DELAYS).catch(() => undefined);
        await listening.close();
      },
    };
  });
});

describe('OnDemandEventFeed (on the real broker)', function () {
  this.timeout(30_000);
  const created = new Set<string>();
  before(() => requireRabbitMq());
  after(async () => {
    for (const prefix of created) {
      await deleteTopology(AMQP_URL, prefix, DELAYS).catch(() => undefined);
      await deleteEventQueues(prefix).catch(() => undefined);
    }
  });

  /**
   * A feed bound to `sent` and a publisher, under a prefix of their own. The feed's re-reads
   * after a binding wait in `rereads` until the test runs them (`reread`), never on a timer.
   */
  async function openFeed(lingerMs: number) {
    const prefix = uniquePrefix('feed');
    created.add(prefix);
    const logger = new RecordingLogger();
    const connection = await connected(prefix, logger);
    const publisher = new RabbitMqPublisher({ connection, logger });
    const received: DomainEvent[] = [];
    const rereads = new Set<() => void>();
    const feed = new OnDemandEventFeed({
      connection,
      prefix,
      logger,
      routingKeys: ['sent'],
      handler: (event) => void received.push(event),
      lingerMs,
      later: (callback) => {
        const entry = (): void => {
          rereads.delete(entry);
          callback();
        };
        rereads.add(entry);
        return () => rereads.delete(entry);
      },
    });
    const events = new RabbitMqDeliveryEvents({ publisher, prefix, logger });
    /** Whether the broker routes a `sent` event anywhere now (a mandatory publish comes back). */
    const routed = async (): Promise<boolean> => {
      const sent = await publisher.publish(
        topologyNames(prefix).eventsExchange,
        'sent',
        { body: Buffer.from('{}'), headers: {}, messageId: 'probe' },
        { mandatory: true, persistent: false },
      )();
      return E.isRight(sent);
    };
    /** Consumers on the watchers queue, as the broker counts them. */
    const watchers = async (): Promise<number> => {
      const model = connection.current();
      if (!model) throw new Error('not connected');
      const ch = await model.createChannel();
      try {
        return (await ch.checkQueue(topologyNames(prefix).watchersQueue)).consumerCount;
      } finally {
        await ch.close();
      }
    };
    /** Runs the re-reads the feed has scheduled so far; answers how many there were. */
    const reread = (): number => {
      const due = [...rereads];
      for (const run of due) run();
      return due.length;
    };
    return {
      prefix,
      feed,
      events,
      received,
      routed,
      watchers,
      reread,
      async close() {
        await feed.close();
        await connection.close();
      },
    };
  }

  it('has no queue until held, hears events while held, and unbinds after the linger', async () => {
    const fx = await openFeed(200);
    try {
      expect(fx.feed.subscribed).to.equal(false);
      expect(await fx.routed(), 'routed before anyone holds the feed').to.equal(false);
      let bound = 0;
      const release = fx.feed.hold(() => (bound += 1));
      await eventually(() => bound === 1, { what: 'the holder told the queue is bound' });
      expect(await fx.routed()).to.equal(true);
      const sent = anEvent.sent(aRequest());
      await fx.events.publish(sent)();
      await eventually(() => fx.received.some((e) => e.type === 'EmailSent' && e.id === sent.id));
      release();
      // Lingers a while, then the queue is gone and the broker routes nothing to this process.
      await eventually(async () => !(await fx.routed()), { what: 'the queue unbound' });
      expect(fx.feed.subscribed).to.equal(false);
      // Held again: bound again, and the holder told so again.
      let again = 0;
      const second = fx.feed.hold(() => (again += 1));
      await eventually(() => again === 1, { what: 'bound again' });
      expect(await fx.routed()).to.equal(true);
      second();
    } finally {
      await fx.close();
    }
  });

  it('keeps its queue while another holder holds it, and a holder joining then is not told at once', async () => {
    const fx = await openFeed(60_000);
    try {
      let first = 0;
      let second = 0;
      const releaseFirst = fx.feed.hold(() => (first += 1));
      await eventually(() => first === 1);
      const releaseSecond = fx.feed.hold(() => (second += 1));
      releaseFirst();
      expect(await fx.routed()).to.equal(true);
      releaseSecond();
      // Within the (long) linger: still bound, still subscribed.
      expect(fx.feed.subscribed).to.equal(true);
      expect(await fx.routed()).to.equal(true);
      expect(second, 'told of a binding that was already there').to.equal(0);
      await fx.feed.close();
      expect(await fx.routed()).to.equal(false);
    } finally {
      await fx.close();
    }
  });

  it('holds a consumer on the watchers queue while subscribed, gone with its queue', async () => {
    const fx = await openFeed(200);
    try {
      expect(await fx.watchers(), 'a watcher before anyone holds the feed').to.equal(0);
      let bound = 0;
      const release = fx.feed.hold(() => (bound += 1));
      await eventually(() => bound === 1, { what: 'bound' });
      expect(await fx.watchers()).to.equal(1);
      release();
      await eventually(async () => (await fx.watchers()) === 0, { what: 'the watcher gone' });
      expect(await fx.routed(), 'routed once the watcher is gone').to.equal(false);
      // Its re-read went with the binding: nobody is told of a binding that is no more.
      expect(fx.reread()).to.equal(0);
      expect(bound).to.equal(1);

      fx.feed.hold(() => undefined);
      await eventually(async () => (await fx.watchers()) === 1, { what: 'watching again' });
      await fx.feed.close();
      expect(await fx.watchers(), 'a watcher after close').to.equal(0);
      expect(fx.reread(), 're-reads left after close').to.equal(0);
    } finally {
      await fx.close();
    }
  });

  it('tells its holders again after the lag, so a change whose event was skipped is seen', async () => {
    const fx = await openFeed(60_000);
    try {
      // The email log, as far as this test goes: a status the holders read when told to.
      let status = 'queued';
      const first: string[] = [];
      const joined: string[] = [];
      const left: string[] = [];
      fx.feed.hold(() => first.push(status));
      await eventually(() => first.length === 1, { what: 'the read at binding' });
      expect(first).to.deep.equal(['queued']);
      // A worker records `sent` and, not having seen the new watcher yet, publishes no event.
      status = 'sent';
      expect(fx.received).to.deep.equal([]);
      // A page opened meanwhile reads for itself (not told now: the queue was bound already);
      // one closed before the lag is over is told nothing more.
      fx.feed.hold(() => joined.push(status));
      const release = fx.feed.hold(() => left.push(status));
      release();
      expect(joined).to.deep.equal([]);

      // The lag is over: every holder reads again and sees what went unannounced.
      expect(fx.reread(), 're-reads scheduled by one binding').to.equal(1);
      expect(first).to.deep.equal(['queued', 'sent']);
      expect(joined).to.deep.equal(['sent']);
      expect(left).to.deep.equal([]);
      expect(fx.reread(), 'a second re-read of the same binding').to.equal(0);
    } finally {
      await fx.close();
    }
  });

  it('binds again, and its holders read again, when its watchers queue is deleted under it', async () => {
    const fx = await openFeed(60_000);
    const admin = await connect(AMQP_URL);
    try {
      let bound = 0;
      fx.feed.hold(() => (bound += 1));
      await eventually(() => bound === 1, { what: 'bound' });
      const ch = await admin.createChannel();
      await ch.deleteQueue(topologyNames(fx.prefix).watchersQueue);
      await ch.close();
      // The broker cancels the consumer; the feed opens its channel again, declaring the queue.
      await eventually(() => bound === 2, { what: 'bound again', timeoutMs: 15_000 });
      expect(await fx.watchers()).to.equal(1);
      expect(fx.reread(), 'a re-read for each binding').to.equal(2);
      expect(bound).to.equal(4);
    } finally {
      await admin.close();
      await fx.close();
    }
  });
});
