// RabbitMqWebhookQueue against the real broker: jobs through `<prefix>.webhooks` and its retry
// queues, the events it hears from the events exchange, and what stop() leaves to the next worker.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { RabbitMqConnection } from '../../../src/adapters/rabbitmq/connection.js';
import { RabbitMqDeliveryEvents } from '../../../src/adapters/rabbitmq/rabbitmq-delivery-events.js';
import { RabbitMqPublisher } from '../../../src/adapters/rabbitmq/rabbitmq-publisher.js';
import {
  RabbitMqWebhookQueue,
  WEBHOOK_JOB_TYPE,
} from '../../../src/adapters/rabbitmq/rabbitmq-webhook-queue.js';
import {
  LIVE_PAGE_EVENT_KEYS,
  WEBHOOK_EVENT_KEYS,
  mayBeRouted,
  topologyNames,
} from '../../../src/adapters/rabbitmq/topology.js';
import { WEBHOOK_EVENT_TYPES } from '../../../src/domain/webhook.js';
import type {
  WebhookHandlers,
  WebhookJob,
  WebhookWork,
} from '../../../src/application/ports/webhook-queue.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { aRequest, anEvent } from '../../support/builders.js';
import { RecordingLogger } from '../../support/fakes.js';
import {
  AMQP_URL,
  deleteTopology,
  readyConnection,
  requireRabbitMq,
  uniquePrefix,
} from '../../support/rabbitmq.js';
import { eventually } from '../../support/waiting.js';

/** The email queue's retry steps (declared by the same topology; unused here). */
const DELAYS = [1_000];
/** Short webhook retry steps, so a delayed job comes back within the test. */
const WEBHOOK_DELAYS = [300, 600];
const created = new Set<string>();

/** A promise with its resolve at hand: a gate a test opens when it chooses. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** `promise`, or a rejection naming `what` after `ms`: waits with a deadline, never forever. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `promise` is still pending after `ms`: for "stop() is still waiting". */
async function stillPendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const pending = Symbol('pending');
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(
      () => 'settled',
      () => 'settled',
    ),
    new Promise<symbol>((resolve) => (timer = setTimeout(() => resolve(pending), ms))),
  ]);
  clearTimeout(timer);
  return outcome === pending;
}

/** What a consumer was handed, in order, with the time each came. */
interface Seen {
  readonly jobs: Array<WebhookJob & { readonly at: number }>;
  readonly events: DomainEvent[];
}

/**
 * Handlers that record what they are given and answer with `onJob` (default 'done'), so a test
 * can wait for a job and check what a user of the port observes.
 */
function recorder(
  onJob: (job: WebhookJob, seen: Seen) => Promise<WebhookWork> | WebhookWork = () => 'done',
): { handlers: WebhookHandlers; seen: Seen } {
  const seen: Seen = { jobs: [], events: [] };
  return {
    seen,
    handlers: {
      job: async (job) => {
        seen.jobs.push({ ...job, at: Date.now() });
        return onJob(job, seen);
      },
      event: async (event) => {
        seen.events.push(event);
        return 'done';
      },
    },
  };
}

interface Fixture {
  readonly prefix: string;
  readonly connection: RabbitMqConnection;
  readonly publisher: RabbitMqPublisher;
  readonly logger: RecordingLogger;
  /** A queue on the fixture's connection; each one is a consumer of its own (another worker). */
  queue(options?: { redeliveryDelayMs?: number }): RabbitMqWebhookQueue;
  /** Puts `body` on the webhooks queue as it is, bypassing the queue's own encoding. */
  publishRaw(body: string, type?: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A connection under a prefix of its own, with the short webhook retry steps declared, and a
 * teardown that stops every queue it made and deletes the whole topology.
 */
async function openFixture(): Promise<Fixture> {
  const prefix = uniquePrefix('webhooks');
  created.add(prefix);
  const logger = new RecordingLogger();
  const connection = await readyConnection({
    topology: { prefix, retryDelaysMs: DELAYS, webhookRetryDelaysMs: WEBHOOK_DELAYS },
    logger,
    name: prefix,
  });
  const publisher = new RabbitMqPublisher({ connection, logger });
  const queues: RabbitMqWebhookQueue[] = [];
  const webhooks = topologyNames(prefix).webhooksQueue;
  return {
    prefix,
    connection,
    publisher,
    logger,
    queue(options = {}) {
      const queue = new RabbitMqWebhookQueue({
        connection,
        publisher,
        prefix,
        concurrency: 4,
        logger,
        retryDelaysMs: WEBHOOK_DELAYS,
        redeliveryDelayMs: options.redeliveryDelayMs ?? 20,
      });
      queues.push(queue);
      return queue;
    },
    async publishRaw(body, type) {
      const sent = await publisher.publish(
        '',
        webhooks,
        { body: Buffer.from(body), headers: {}, messageId: undefined },
        { mandatory: true, ...(type !== undefined ? { type } : {}) },
      )();
      if (E.isLeft(sent)) throw new Error(`publishRaw: ${sent.left.reason}`);
    },
    async close() {
      await Promise.all(queues.map((q) => q.stop(0)));
      await deleteTopology(connection.current() ?? AMQP_URL, prefix, DELAYS, WEBHOOK_DELAYS);
      created.delete(prefix);
      await connection.close();
    },
  };
}

/**
 * The keys of WEBHOOK_EVENT_KEYS under which the events exchange routes to some queue of the
 * fixture's prefix, sorted: a mandatory publish under a key no queue is bound to comes back
 * (Left), as the broker itself decides.
 */
function routedKeys(fx: Fixture): () => Promise<string[]> {
  const exchange = topologyNames(fx.prefix).eventsExchange;
  return async () => {
    const routed: string[] = [];
    for (const key of WEBHOOK_EVENT_KEYS) {
      const sent = await fx.publisher.publish(
        exchange,
        key,
        { body: Buffer.from('{}'), headers: {}, messageId: 'probe' },
        { mandatory: true, persistent: false },
      )();
      if (E.isRight(sent)) routed.push(key);
    }
    return routed.sort();
  };
}

/** Publishes `job` and fails the test unless the queue holds it (Right). */
async function publishOk(queue: RabbitMqWebhookQueue, job: WebhookJob, delayMs = 0) {
  expect(await queue.publish(job, delayMs)()).to.deep.equal(E.right(undefined));
}

describe('RabbitMqWebhookQueue (on the real broker)', function () {
  this.timeout(30_000);
  let fx: Fixture | undefined;

  before(() => requireRabbitMq());
  afterEach(async () => {
    await fx?.close();
    fx = undefined;
  });
  // A safety net: fixtures delete their own topology, unless a test failed half-way.
  after(async () => {
    for (const prefix of created) await deleteTopology(AMQP_URL, prefix, DELAYS, WEBHOOK_DELAYS);
  });

  it('hands a job published with delay 0 to handlers.job, as it was published', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    const { handlers, seen } = recorder();
    await queue.consume(handlers);
    await publishOk(queue, { deliveryId: 'wd_first', attempt: 3 });
    await eventually(() => expect(seen.jobs).to.have.length(1));
    expect(seen.jobs[0]).to.deep.include({ deliveryId: 'wd_first', attempt: 3 });
    expect(seen.events).to.deep.equal([]);
  });

  it('holds a job published with a delay in a retry queue until the delay has passed', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    const { handlers, seen } = recorder();
    await queue.consume(handlers);
    const published = Date.now();
    // 250 ms rounds up to the 300 ms step; never down.
    await publishOk(queue, { deliveryId: 'wd_later', attempt: 2 }, 250);
    await eventually(() => expect(seen.jobs).to.have.length(1), { timeoutMs: 10_000 });
    expect(seen.jobs[0]).to.deep.include({ deliveryId: 'wd_later', attempt: 2 });
    expect(seen.jobs[0]!.at - published).to.be.at.least(250);
  });

  it('answers Left when the retry queue of a step is missing (mandatory publish)', async () => {
    fx = await openFixture();
    const channel = await fx.connection.current()!.createChannel();
    await channel.deleteQueue(topologyNames(fx.prefix).webhookRetryQueue(600));
    await channel.close();
    const result = await fx.queue().publish({ deliveryId: 'wd_lost', attempt: 2 }, 500)();
    expect(E.isLeft(result) && result.left._tag).to.equal('QueueUnavailable');
  });

  it('hands an event from the events exchange to handlers.event, decoded', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    expect(await queue.hearOnly(WEBHOOK_EVENT_TYPES)()).to.deep.equal(E.right(undefined));
    const { handlers, seen } = recorder();
    await queue.consume(handlers);
    const events = new RabbitMqDeliveryEvents({
      publisher: fx.publisher,
      prefix: fx.prefix,
      logger: fx.logger,
    });
    const sent = anEvent.sent(aRequest());
    await events.publish(sent)();
    await eventually(() => expect(seen.events).to.have.length(1));
    expect(seen.events[0]).to.deep.equal(JSON.parse(JSON.stringify(sent)));
    expect(seen.jobs).to.deep.equal([]);
  });

  it('does not hear the events that make no webhook (failover, unconfirmed)', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    expect(await queue.hearOnly(WEBHOOK_EVENT_TYPES)()).to.deep.equal(E.right(undefined));
    const { handlers, seen } = recorder();
    await queue.consume(handlers);
    const events = new RabbitMqDeliveryEvents({
      publisher: fx.publisher,
      prefix: fx.prefix,
      logger: fx.logger,
    });
    const request = aRequest();
    await events.publish(anEvent.failedOver(request))();
    // A decodable event under a key the queue is not bound to stays on the exchange too.
    const exchange = topologyNames(fx.prefix).eventsExchange;
    const stray = await fx.publisher.publish(
      exchange,
      'unconfirmed',
      { body: Buffer.from(JSON.stringify(anEvent.sending(request))), headers: {}, messageId: '' },
      { mandatory: false, persistent: false },
    )();
    expect(stray).to.deep.equal(E.right(undefined));
    // Published after both on the same channel: once it is here, they would have been too.
    const sent = anEvent.sent(request);
    await events.publish(sent)();
    await eventually(() => expect(seen.events).to.have.length.at.least(1));
    expect(seen.events.map((e) => e.type)).to.deep.equal(['EmailSent']);
  });

  it('hears no event until told which types to hear, then only the keys that make them', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    const routed = routedKeys(fx);
    // Declaring the topology binds nothing: no endpoint, no event is worth a queue write.
    expect(await routed()).to.deep.equal([]);
    expect(await queue.hearOnly(['email.bounced'])()).to.deep.equal(E.right(undefined));
    expect(await routed()).to.deep.equal(['provider']);
    expect(await queue.hearOnly(['email.queued', 'email.sent', 'email.delivered'])()).to.deep.equal(
      E.right(undefined),
    );
    expect(await routed()).to.deep.equal(['provider', 'requested', 'sent']);
    expect(await queue.hearOnly(WEBHOOK_EVENT_TYPES)()).to.deep.equal(E.right(undefined));
    expect(await routed()).to.deep.equal([...WEBHOOK_EVENT_KEYS].sort());
    // Removing the last endpoint: nothing is routed to the queue any more.
    expect(await queue.hearOnly([])()).to.deep.equal(E.right(undefined));
    expect(await routed()).to.deep.equal([]);
  });

  it('answers Left from hearOnly while the broker is not connected', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    await fx.connection.close();
    const result = await queue.hearOnly(WEBHOOK_EVENT_TYPES)();
    expect(E.isLeft(result) && result.left._tag).to.equal('QueueUnavailable');
  });

  it("calls the handler again after a 'redeliver', then acks: no third time", async () => {
    fx = await openFixture();
    const first = fx.queue({ redeliveryDelayMs: 20 });
    const { handlers, seen } = recorder((_job, s) => (s.jobs.length === 1 ? 'redeliver' : 'done'));
    await first.consume(handlers);
    await publishOk(first, { deliveryId: 'wd_again', attempt: 1 });
    await eventually(() => expect(seen.jobs).to.have.length(2));
    expect(seen.jobs.map((j) => j.deliveryId)).to.deep.equal(['wd_again', 'wd_again']);
    // An unacked message would go back with the channel at stop() and reach the next worker
    // before the marker published after it.
    await first.stop(5_000);
    const next = fx.queue();
    const after = recorder();
    await next.consume(after.handlers);
    await publishOk(next, { deliveryId: 'wd_marker', attempt: 1 });
    await eventually(() => expect(after.seen.jobs).to.have.length.at.least(1));
    expect(after.seen.jobs.map((j) => j.deliveryId)).to.deep.equal(['wd_marker']);
    expect(seen.jobs).to.have.length(2);
  });

  it('drops (acks) a message that decodes as neither job nor event, and goes on', async () => {
    fx = await openFixture();
    const first = fx.queue();
    const { handlers, seen } = recorder();
    await first.consume(handlers);
    await fx.publishRaw('not json at all', WEBHOOK_JOB_TYPE);
    await fx.publishRaw(
      JSON.stringify({ v: 1, deliveryId: 'wd_bad', attempt: 0 }),
      WEBHOOK_JOB_TYPE,
    );
    await fx.publishRaw(JSON.stringify({ type: 'EmailSent', id: 'half an event' }));
    await publishOk(first, { deliveryId: 'wd_good', attempt: 1 });
    await eventually(() => expect(seen.jobs).to.have.length(1));
    expect(seen.jobs[0]).to.deep.include({ deliveryId: 'wd_good', attempt: 1 });
    expect(seen.events).to.deep.equal([]);
    const dropped = () =>
      fx!.logger.lines.filter((l) => l.message.includes('does not decode')).length;
    expect(dropped()).to.equal(3);
    // Acked, not left unacked: another worker, after a marker, has not been handed them again.
    await first.stop(5_000);
    const next = fx.queue();
    const after = recorder();
    await next.consume(after.handlers);
    await publishOk(next, { deliveryId: 'wd_marker', attempt: 1 });
    await eventually(() => expect(after.seen.jobs).to.have.length.at.least(1));
    expect(after.seen.jobs.map((j) => j.deliveryId)).to.deep.equal(['wd_marker']);
    expect(dropped()).to.equal(3);
  });

  it('waits at stop() for a handler in flight, and acks what it finished', async () => {
    fx = await openFixture();
    const first = fx.queue();
    const release = gate<WebhookWork>();
    const order: string[] = [];
    const { handlers, seen } = recorder(async () => {
      const work = await release.promise;
      order.push('handler done');
      return work;
    });
    await first.consume(handlers);
    await publishOk(first, { deliveryId: 'wd_slow', attempt: 1 });
    await eventually(() => expect(seen.jobs).to.have.length(1));
    const stopping = first.stop(10_000).then(() => order.push('stopped'));
    expect(await stillPendingAfter(stopping, 200), 'stop() returned before the handler').to.equal(
      true,
    );
    release.open('done');
    await within(stopping, 5_000, 'stop() after the handler finished');
    expect(order).to.deep.equal(['handler done', 'stopped']);
    const next = fx.queue();
    const after = recorder();
    await next.consume(after.handlers);
    await publishOk(next, { deliveryId: 'wd_marker', attempt: 1 });
    await eventually(() => expect(after.seen.jobs).to.have.length.at.least(1));
    expect(after.seen.jobs.map((j) => j.deliveryId)).to.deep.equal(['wd_marker']);
  });

  it('gives a job still unacked at stop() to the next consumer', async () => {
    fx = await openFixture();
    const first = fx.queue();
    const never = gate<WebhookWork>();
    const { handlers, seen } = recorder(() => never.promise);
    await first.consume(handlers);
    await publishOk(first, { deliveryId: 'wd_unfinished', attempt: 4 });
    await eventually(() => expect(seen.jobs).to.have.length(1));
    // Grace over before the handler is done: the message goes back with the channel.
    await within(first.stop(100), 5_000, 'stop(100) with a handler that hangs');
    const next = fx.queue();
    const after = recorder();
    await next.consume(after.handlers);
    await eventually(() => expect(after.seen.jobs).to.have.length.at.least(1));
    expect(after.seen.jobs[0]).to.deep.include({ deliveryId: 'wd_unfinished', attempt: 4 });
    // The first handler finishing late acks nothing on a closed channel, and breaks nothing.
    never.open('done');
    await publishOk(next, { deliveryId: 'wd_marker', attempt: 1 });
    await eventually(() =>
      expect(after.seen.jobs.map((j) => j.deliveryId)).to.include('wd_marker'),
    );
  });

  it('refuses a second consume() on one queue: that would be a wiring bug', async () => {
    fx = await openFixture();
    const queue = fx.queue();
    await queue.consume(recorder().handlers);
    const second = await queue.consume(recorder().handlers).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(second)
      .to.be.an('error')
      .with.property('message')
      .that.matches(/already consuming/);
  });
});

describe('mayBeRouted (what is worth publishing to the events exchange)', () => {
  it('publishes what a live page may want while one is open, and the rest only when wanted', () => {
    for (const key of LIVE_PAGE_EVENT_KEYS) expect(mayBeRouted(key, [], true), key).to.equal(true);
    expect(mayBeRouted('requested', [], true)).to.equal(false);
    expect(mayBeRouted('requested', ['email.sent'], true)).to.equal(false);
    expect(mayBeRouted('requested', ['email.queued'], false)).to.equal(true);
    expect(mayBeRouted('cancelled', WEBHOOK_EVENT_TYPES, false)).to.equal(true);
    // No queue is ever bound to these.
    expect(mayBeRouted('unconfirmed', WEBHOOK_EVENT_TYPES, true)).to.equal(false);
    expect(mayBeRouted('resent', WEBHOOK_EVENT_TYPES, true)).to.equal(false);
    // Before the endpoints were read: everything, rather than lose a webhook.
    expect(mayBeRouted('requested', undefined, false)).to.equal(true);
    expect(mayBeRouted('sent', undefined, false)).to.equal(true);
  });

  it("leaves out the live pages' events while none is open, unless an endpoint wants them", () => {
    for (const key of LIVE_PAGE_EVENT_KEYS)
      expect(mayBeRouted(key, [], false), key).to.equal(false);
    expect(mayBeRouted('sent', ['email.sent'], false)).to.equal(true);
    expect(mayBeRouted('sending', ['email.sent'], false)).to.equal(false);
    // The three provider types share one key.
    expect(mayBeRouted('provider', ['email.bounced'], false)).to.equal(true);
  });
});
