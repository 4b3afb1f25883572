// Whether a live page is open anywhere, as publishers learn it from the broker: the consumers of
// `<prefix>.watchers`, which a server's events feed holds while it is bound.
import { connect } from 'amqplib';
import { expect } from 'chai';
import type { RabbitMqConnection } from '../../../src/adapters/rabbitmq/connection.js';
import { EventWatchers } from '../../../src/adapters/rabbitmq/event-watchers.js';
import { OnDemandEventFeed } from '../../../src/adapters/rabbitmq/rabbitmq-delivery-events.js';
import { LIVE_PAGE_EVENT_KEYS, topologyNames } from '../../../src/adapters/rabbitmq/topology.js';
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

const connected = (prefix: string, name: string): Promise<RabbitMqConnection> =>
  readyConnection({
    topology: { prefix, retryDelaysMs: DELAYS },
    logger: new RecordingLogger(),
    name: `${prefix}-${name}`,
  });

describe('EventWatchers (on the real broker)', function () {
  this.timeout(30_000);
  const created = new Set<string>();
  const closing: (() => Promise<unknown>)[] = [];
  before(() => requireRabbitMq());
  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close().catch(() => undefined);
  });
  after(async () => {
    for (const prefix of created) {
      await deleteTopology(AMQP_URL, prefix, DELAYS).catch(() => undefined);
      await deleteEventQueues(prefix).catch(() => undefined);
    }
  });

  /** A publisher's side (its connection and checker) and a server's feed on a connection of its own. */
  async function fixture(options: { now?: () => number; intervalMs?: number } = {}) {
    const prefix = uniquePrefix('watchers');
    created.add(prefix);
    const logger = new RecordingLogger();
    const publishing = await connected(prefix, 'worker');
    closing.push(() => publishing.close());
    const watchers = new EventWatchers({
      connection: publishing,
      prefix,
      logger,
      intervalMs: options.intervalMs ?? 50,
      ...(options.now ? { now: options.now } : {}),
    });
    closing.push(() => watchers.stop());
    const serving = await connected(prefix, 'server');
    closing.push(() => serving.close());
    const feed = new OnDemandEventFeed({
      connection: serving,
      prefix,
      logger: new RecordingLogger(),
      routingKeys: LIVE_PAGE_EVENT_KEYS,
      handler: () => undefined,
      lingerMs: 100,
      later: () => () => undefined,
    });
    closing.push(() => feed.close());
    return { prefix, logger, watchers, feed, serving };
  }

  it('says watched until it knows, then follows a feed being held and let go', async () => {
    const fx = await fixture();
    expect(fx.watchers.watched(), 'before any answer').to.equal(true);
    expect(fx.watchers.consumers()).to.equal(undefined);
    fx.watchers.start();
    await eventually(() => fx.watchers.consumers() === 0, { what: 'no watcher' });
    expect(fx.watchers.watched()).to.equal(false);

    let bound = false;
    const release = fx.feed.hold(() => (bound = true));
    await eventually(() => bound, { what: 'the feed bound' });
    await eventually(() => fx.watchers.consumers() === 1, { what: 'one watcher' });
    expect(fx.watchers.watched()).to.equal(true);

    release();
    await eventually(() => fx.watchers.consumers() === 0, { what: 'the watcher gone' });
    expect(fx.watchers.watched()).to.equal(false);
    expect(fx.logger.lines.filter((r) => r.level === 'warn')).to.deep.equal([]);
  });

  it('sees the watcher go when the server connection goes, with no lease to wait out', async () => {
    const fx = await fixture();
    fx.watchers.start();
    fx.feed.hold(() => undefined);
    await eventually(() => fx.watchers.consumers() === 1, { what: 'one watcher' });
    // The server's process died, as far as the broker can tell.
    await fx.serving.close();
    await eventually(() => fx.watchers.consumers() === 0, { what: 'the watcher gone' });
    expect(fx.watchers.watched()).to.equal(false);
  });

  it('stops trusting an answer as it ages: not known again, so watched', async () => {
    let now = 0;
    // One check at start, none after within the test.
    const fx = await fixture({ now: () => now, intervalMs: 3_600_000 });
    fx.watchers.start();
    await eventually(() => fx.watchers.consumers() === 0, { what: 'the first answer' });
    expect(fx.watchers.watched()).to.equal(false);
    now += 1500;
    expect(fx.watchers.watched(), 'an answer asked for 1500 ms ago').to.equal(false);
    now += 1;
    expect(fx.watchers.consumers()).to.equal(undefined);
    expect(fx.watchers.watched(), 'an answer too old to trust').to.equal(true);
  });

  it('says watched while its queue is gone, once, and follows it again once it is back', async () => {
    const fx = await fixture();
    fx.watchers.start();
    await eventually(() => fx.watchers.consumers() === 0, { what: 'no watcher' });
    const admin = await connect(AMQP_URL);
    closing.push(() => admin.close());
    const ch = await admin.createChannel();
    const queue = topologyNames(fx.prefix).watchersQueue;
    await ch.deleteQueue(queue);
    await eventually(() => fx.watchers.watched(), { what: 'not known: watched' });
    expect(fx.watchers.consumers()).to.equal(undefined);
    // The feed declares it again as it binds.
    fx.feed.hold(() => undefined);
    await eventually(() => fx.watchers.consumers() === 1, { what: 'the queue back, watched' });
    const warnings = fx.logger.lines.filter((r) => r.level === 'warn');
    expect(warnings.map((r) => r.message)).to.deep.equal([
      'Could not check for live pages; publishing their events meanwhile',
    ]);
    await ch.close();
  });
});
