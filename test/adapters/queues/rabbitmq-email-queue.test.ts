import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import { connect } from 'amqplib';
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { RabbitMqConnection, redactUrl } from '../../../src/adapters/rabbitmq/connection.js';
import { RabbitMqDeadLetterBox } from '../../../src/adapters/rabbitmq/rabbitmq-dead-letter-box.js';
import {
  RabbitMqDeliveryEvents,
  subscribeToEvents,
} from '../../../src/adapters/rabbitmq/rabbitmq-delivery-events.js';
import { RabbitMqEmailQueue } from '../../../src/adapters/rabbitmq/rabbitmq-email-queue.js';
import { RabbitMqEmailTaskSource } from '../../../src/adapters/rabbitmq/rabbitmq-email-task-source.js';
import type { WireMessage } from '../../../src/adapters/messaging/task-message.js';
import { RabbitMqPublisher } from '../../../src/adapters/rabbitmq/rabbitmq-publisher.js';
import {
  SEND_ROUTING_KEY,
  declareTopology,
  topologyNames,
} from '../../../src/adapters/rabbitmq/topology.js';
import type { EmailTask } from '../../../src/application/ports/email-task-source.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import type { QueueFixture } from '../../contracts/email-queue.contract.js';
import {
  CONTRACT_CONCURRENCY,
  CONTRACT_RETRY_DELAYS_MS,
  emailQueueContract,
} from '../../contracts/email-queue.contract.js';
import { aRequest, anEvent, at } from '../../support/builders.js';
import {
  AMQP_URL,
  closeConnectionsNamed,
  deleteTopology,
  readyConnection,
  requireRabbitMq,
  uniquePrefix,
} from '../../support/rabbitmq.js';
import { RecordingLogger } from '../../support/fakes.js';
import { eventually } from '../../support/waiting.js';

const DELAYS = CONTRACT_RETRY_DELAYS_MS;
const created = new Set<string>();

interface RabbitFixture extends QueueFixture {
  readonly prefix: string;
  readonly connection: RabbitMqConnection;
  readonly publisher: RabbitMqPublisher;
  readonly source: RabbitMqEmailTaskSource;
  readonly logger: RecordingLogger;
}

async function openRabbit(options: { initialBackoffMs?: number; deliveryLimit?: number } = {}) {
  const prefix = uniquePrefix();
  created.add(prefix);
  const logger = new RecordingLogger();
  const connection = await readyConnection({
    topology: { prefix, retryDelaysMs: DELAYS, deliveryLimit: options.deliveryLimit ?? 20 },
    logger,
    name: prefix,
    initialBackoffMs: options.initialBackoffMs ?? 100,
  });
  const publisher = new RabbitMqPublisher({ connection, logger });
  const source = new RabbitMqEmailTaskSource({
    connection,
    publisher,
    prefix,
    concurrency: CONTRACT_CONCURRENCY,
    retryDelaysMs: DELAYS,
    logger,
  });
  const tasks = topologyNames(prefix).tasksExchange;
  const fixture: RabbitFixture = {
    prefix,
    connection,
    publisher,
    logger,
    queue: new RabbitMqEmailQueue({ publisher, prefix }),
    source,
    dead: new RabbitMqDeadLetterBox({ publisher, prefix }),
    async publishRaw(body, headers = {}) {
      const sent = await publisher.publish(tasks, SEND_ROUTING_KEY, {
        body,
        headers,
        messageId: undefined,
      })();
      if (E.isLeft(sent)) throw new Error(`publishRaw: ${sent.left.reason}`);
    },
    async close() {
      await source.stop(0);
      const model = connection.current();
      await deleteTopology(model ?? AMQP_URL, prefix, DELAYS);
      created.delete(prefix);
      await connection.close();
    },
  };
  return fixture;
}

describe('RabbitMQ adapters', function () {
  this.timeout(30_000);

  before(() => requireRabbitMq());
  // A safety net: fixtures delete their own topology, unless a test failed half-way.
  after(async () => {
    for (const prefix of created) await deleteTopology(AMQP_URL, prefix, DELAYS);
  });

  emailQueueContract('RabbitMqEmailQueue', () => openRabbit());

  describe('beyond the contract', () => {
    let fx: RabbitFixture | undefined;
    afterEach(async () => {
      await fx?.close();
      fx = undefined;
    });

    it('answers QueueUnavailable at once while there is no broker, and never logs the password', async function () {
      // Mocha's timeout is far below the confirm timeout: an answer in time proves no waiting.
      this.timeout(3000);
      const logger = new RecordingLogger();
      const connection = new RabbitMqConnection({
        url: 'amqp://guest:s3cret-pw@127.0.0.1:1',
        topology: { prefix: uniquePrefix(), retryDelaysMs: DELAYS },
        logger,
        initialBackoffMs: 50,
      });
      connection.start();
      const publisher = new RabbitMqPublisher({ connection, logger, confirmTimeoutMs: 60_000 });
      const queue = new RabbitMqEmailQueue({ publisher, prefix: 'nowhere' });
      const result = await queue.publish(aRequest())();
      expect(result).to.deep.equal(
        E.left({ _tag: 'QueueUnavailable', reason: 'not connected to RabbitMQ' }),
      );
      expect(connection.isReady()).to.equal(false);
      await eventually(() => expect(logger.lines.length).to.be.greaterThan(1));
      await connection.close();
      expect(JSON.stringify(logger.lines)).to.include('guest:***@127.0.0.1:1');
      expect(JSON.stringify(logger.lines)).not.to.include('s3cret-pw');
      expect(redactUrl('amqps://u:p%40ss@host:5671/vh')).to.equal('amqps://u:***@host:5671/vh');
    });

    /** A message of `{}` with no headers, named `messageId` when given. */
    const rawMessage = (messageId?: string): WireMessage => ({
      body: Buffer.from('{}'),
      headers: {},
      messageId,
    });

    /**
     * Has every confirm channel `model` opens from now on go through `wrap` first (a stalling
     * broker, a full socket buffer); the answer puts `model` back as it was.
     */
    function wrapConfirmChannels(
      model: ChannelModel,
      wrap: (channel: ConfirmChannel) => void,
    ): () => void {
      const createConfirmChannel = model.createConfirmChannel.bind(model);
      model.createConfirmChannel = async () => {
        const channel = await createConfirmChannel();
        wrap(channel);
        return channel;
      };
      return () => {
        model.createConfirmChannel = createConfirmChannel;
      };
    }

    /** Unbinds the send queue from the tasks exchange: a task then goes nowhere. */
    async function unbindSendQueue(opened: RabbitFixture): Promise<void> {
      const names = topologyNames(opened.prefix);
      const channel = await opened.connection.current()!.createChannel();
      await channel.unbindQueue(names.sendQueue, names.tasksExchange, SEND_ROUTING_KEY);
      await channel.close();
    }

    it('answers QueueUnavailable when no queue takes the task (mandatory publish returned)', async () => {
      fx = await openRabbit();
      await unbindSendQueue(fx);
      const result = await fx.queue.publish(aRequest())();
      expect(E.isLeft(result) && result.left.reason).to.match(/could not route/);
    });

    it('tells each returned publish from the queued ones sent alongside, by id or without one', async () => {
      fx = await openRabbit();
      await unbindSendQueue(fx);
      const names = topologyNames(fx.prefix);
      const request = aRequest();
      // The same id to the unbound key and straight to the queue (the default exchange), and two
      // messages without an id the same two ways, all awaiting their confirms at once.
      const [unbound, direct, unboundNoId, directNoId] = await Promise.all([
        fx.queue.publish(request)(),
        fx.publisher.publish('', names.sendQueue, rawMessage(request.id))(),
        fx.publisher.publish(names.tasksExchange, SEND_ROUTING_KEY, rawMessage())(),
        fx.publisher.publish('', names.sendQueue, rawMessage())(),
      ]);
      expect(E.isLeft(unbound) && unbound.left.reason).to.match(/could not route/);
      expect(E.isLeft(unboundNoId) && unboundNoId.left.reason).to.match(/could not route/);
      expect(direct).to.deep.equal(E.right(undefined));
      expect(directNoId).to.deep.equal(E.right(undefined));
    });

    it('answers a returned retry as not queued after an earlier try of the same id timed out', async () => {
      fx = await openRabbit();
      // A broker that stalls: its returns and confirms of the first 250 ms are held, then handed
      // over in the order they came, one turn apart (as late answers come off the socket).
      const held: (() => void)[] = [];
      let stalled = true;
      const release = setTimeout(() => {
        stalled = false;
        void (async () => {
          for (const answer of held.splice(0)) {
            answer();
            await new Promise((done) => setImmediate(done));
          }
        })();
      }, 250);
      const later = (answer: () => void) => (stalled ? held.push(answer) : answer());
      const restore = wrapConfirmChannels(fx.connection.current()!, (channel) => {
        const emit = channel.emit.bind(channel);
        channel.emit = (name: string | symbol, ...args: unknown[]) =>
          name === 'return' ? (later(() => emit(name, ...args)), true) : emit(name, ...args);
        const publish = channel.publish.bind(channel);
        channel.publish = (exchange, key, body, options, confirmed) =>
          publish(exchange, key, body, options, (err, ok) => later(() => confirmed?.(err, ok)));
      });
      try {
        const publisher = new RabbitMqPublisher({
          connection: fx.connection,
          logger: fx.logger,
          confirmTimeoutMs: 200,
        });
        const unbound = `${fx.prefix}.no-such-queue`;
        const message = rawMessage(aRequest().id);
        const first = await publisher.publish('', unbound, message)();
        expect(E.isLeft(first) && first.left.reason).to.match(/no confirm/);
        // The retry (a client's after its 503, a worker's requeue): the same id to the same key,
        // awaiting its confirm when the first try's late return and confirm come in.
        const retry = await publisher.publish('', unbound, message)();
        expect(E.isLeft(retry) && retry.left.reason).to.match(/could not route/);
      } finally {
        clearTimeout(release);
        restore();
      }
    });

    it('leaves no listener on its channel each time the socket buffer fills and drains', async () => {
      fx = await openRabbit();
      let opened: Channel | undefined;
      // Every publish finds the socket buffer full (publish answers false), and it drains on the
      // next turn, as a busy connection's does.
      const restore = wrapConfirmChannels(fx.connection.current()!, (channel) => {
        const publish = channel.publish.bind(channel);
        channel.publish = (...args: Parameters<typeof channel.publish>) => {
          publish(...args);
          setImmediate(() => channel.emit('drain'));
          return false;
        };
        opened = channel;
      });
      try {
        const publisher = new RabbitMqPublisher({ connection: fx.connection, logger: fx.logger });
        const queue = topologyNames(fx.prefix).sendQueue;
        const publish = () => publisher.publish('', queue, rawMessage(aRequest().id))();
        expect(await publish()).to.deep.equal(E.right(undefined));
        const listeners = () => [opened!.listenerCount('close'), opened!.listenerCount('drain')];
        const after = listeners();
        for (let i = 0; i < 20; i += 1) expect(await publish()).to.deep.equal(E.right(undefined));
        expect(listeners()).to.deep.equal(after);
      } finally {
        restore();
      }
    });

    it('publishes again after the broker closed its channel (publish to a missing exchange)', async () => {
      fx = await openRabbit();
      const lost = await fx.publisher.publish(
        `${fx.prefix}.no-such-exchange`,
        'send',
        rawMessage(),
      )();
      expect(E.isLeft(lost) && lost.left._tag).to.equal('QueueUnavailable');
      expect(await fx.queue.publish(aRequest())()).to.deep.equal(E.right(undefined));
    });

    it('survives the broker closing its connection: not ready while down, then consumes again', async () => {
      fx = await openRabbit({ initialBackoffMs: 300 });
      const seen: EmailTask[] = [];
      await fx.source.consume(async (task) => {
        seen.push(task);
        return { _tag: 'Done' };
      });
      await fx.queue.publish(aRequest())();
      await eventually(() => expect(seen).to.have.length(1));

      const readiness: boolean[] = [];
      const connection = fx.connection;
      const sampler = setInterval(() => readiness.push(connection.isReady()), 5);
      try {
        expect(await closeConnectionsNamed(fx.prefix)).to.be.greaterThan(0);
        await eventually(() => expect(readiness).to.include(false), { timeoutMs: 10_000 });
        await eventually(() => expect(connection.isReady()).to.equal(true), { timeoutMs: 15_000 });
      } finally {
        clearInterval(sampler);
      }
      const request = aRequest();
      expect(await fx.queue.publish(request)()).to.deep.equal(E.right(undefined));
      await eventually(() => expect(seen.map((t) => t.request.id)).to.include(request.id), {
        timeoutMs: 10_000,
      });
    });

    it('consumes again after its channel alone failed while the connection stayed up', async () => {
      fx = await openRabbit();
      const seen: EmailTask[] = [];
      await fx.source.consume(async (task) => {
        seen.push(task);
        return { _tag: 'Done' };
      });
      const names = topologyNames(fx.prefix);
      const channel = await fx.connection.current()!.createChannel();
      // The broker cancels the consumer of a deleted queue; consuming again fails until it is back.
      await channel.deleteQueue(names.sendQueue);
      await eventually(() =>
        expect(fx!.logger.lines.map((l) => l.message)).to.include(
          'Could not start consuming tasks',
        ),
      );
      await declareTopology(channel, {
        prefix: fx.prefix,
        retryDelaysMs: DELAYS,
        deliveryLimit: 20,
      });
      await channel.close();
      const request = aRequest();
      expect(await fx.queue.publish(request)()).to.deep.equal(E.right(undefined));
      await eventually(() => expect(seen.map((t) => t.request.id)).to.deep.equal([request.id]));
      expect(fx.connection.isReady()).to.equal(true);
      expect(fx.logger.lines.map((l) => l.message)).to.include('RabbitMQ cancelled the consumer');
    });

    it('dead-letters by itself a task that keeps failing its consumers (delivery limit)', async () => {
      fx = await openRabbit({ deliveryLimit: 2 });
      const request = aRequest();
      await fx.queue.publish(request)();
      await fx.source.consume(() => Promise.reject(new Error('a crashing bug')));
      const listed = await eventually(
        async () => {
          const letters = await fx!.dead.list()();
          expect(E.isRight(letters) && letters.right).to.have.length(1);
          return E.isRight(letters) ? letters.right : [];
        },
        { timeoutMs: 10_000 },
      );
      expect(listed[0]).to.deep.include({
        id: request.id,
        reason: `broker: delivery_limit in ${fx.prefix}.send`,
        attempts: 1,
      });
    });

    it('declares its topology idempotently: the same arguments again change nothing', async () => {
      fx = await openRabbit();
      const channel = await fx.connection.current()!.createChannel();
      const options = { prefix: fx.prefix, retryDelaysMs: DELAYS, deliveryLimit: 20 };
      await declareTopology(channel, options);
      await declareTopology(channel, options);
      // A declaration the broker refused would have closed the channel: it still answers.
      const queue = await channel.checkQueue(topologyNames(fx.prefix).retryQueue(DELAYS[0]));
      expect(queue.queue).to.equal(`${fx.prefix}.retry.200ms`);
      await channel.close();
      expect(fx.connection.isReady()).to.equal(true);
      const seen: EmailTask[] = [];
      await fx.source.consume(async (task) => {
        seen.push(task);
        return { _tag: 'Done' };
      });
      const request = aRequest();
      expect(await fx.queue.publish(request)()).to.deep.equal(E.right(undefined));
      await eventually(() => expect(seen.map((t) => t.request.id)).to.deep.equal([request.id]));
    });

    // What an operator meets after changing DELIVERY_LIMIT, or when another tool made a queue
    // first: RabbitMQ answers PRECONDITION_FAILED and closes the channel.
    const conflicts = [
      {
        what: 'the send queue exists with another x-delivery-limit',
        argument: 'x-delivery-limit',
        queue: (prefix: string) => topologyNames(prefix).sendQueue,
        make: (channel: Channel, prefix: string) =>
          declareTopology(channel, { prefix, retryDelaysMs: DELAYS, deliveryLimit: 5 }),
      },
      {
        what: 'the dead queue exists as a classic queue',
        argument: 'x-queue-type',
        queue: (prefix: string) => topologyNames(prefix).deadQueue,
        make: (channel: Channel, prefix: string) =>
          channel.assertQueue(topologyNames(prefix).deadQueue, { durable: true }).then(() => {}),
      },
    ];
    for (const conflict of conflicts) {
      it(`says why, stays unready and keeps trying when ${conflict.what}; recovers once it is gone`, async () => {
        const prefix = uniquePrefix();
        created.add(prefix);
        const admin = await connect(AMQP_URL);
        admin.on('error', () => undefined);
        const logger = new RecordingLogger();
        const connection = new RabbitMqConnection({
          url: AMQP_URL,
          topology: { prefix, retryDelaysMs: DELAYS, deliveryLimit: 20 },
          logger,
          name: prefix,
          initialBackoffMs: 50,
        });
        try {
          const channel = await admin.createChannel();
          await conflict.make(channel, prefix);
          // The broker's answer to our arguments, as the adapter will meet it.
          const probe = await admin.createChannel();
          probe.on('error', () => undefined);
          const refused = await declareTopology(probe, {
            prefix,
            retryDelaysMs: DELAYS,
            deliveryLimit: 20,
          }).then(
            () => 'declared',
            (err: unknown) => String(err),
          );
          expect(refused).to.include('PRECONDITION_FAILED');

          connection.start();
          const refusals = await eventually(
            () => {
              const lines = logger.lines.filter((l) =>
                String((l.fields as { err?: unknown }).err).includes('PRECONDITION_FAILED'),
              );
              return lines.length >= 3 ? lines : undefined;
            },
            { what: 'three refusals of the topology in the log' },
          );
          expect(connection.isReady()).to.equal(false);
          for (const line of refusals) {
            // Said where an operator looks, with what to fix: which argument of which queue.
            expect(line.level).to.be.oneOf(['warn', 'error']);
            const { err } = line.fields as { err: string };
            expect(err).to.include(`inequivalent arg '${conflict.argument}'`);
            expect(err).to.include(`queue '${conflict.queue(prefix)}'`);
          }
          // Backing off, not a hot loop: each wait well over the one before (doubled, jittered).
          const delays = refusals.map((l) => (l.fields as { delayMs: number }).delayMs);
          delays.slice(1).forEach((delay, i) => {
            expect(delay, `waits ${delays.join(', ')} ms`).to.be.at.least(1.5 * delays[i]!);
          });
          // Meanwhile a publish is refused at once, as with no broker at all.
          const publisher = new RabbitMqPublisher({ connection, logger });
          const published = await new RabbitMqEmailQueue({ publisher, prefix }).publish(
            aRequest(),
          )();
          expect(E.isLeft(published) && published.left._tag).to.equal('QueueUnavailable');

          // The operator removes the odd queue: the next try declares ours and is ready.
          await channel.deleteQueue(conflict.queue(prefix));
          expect(await connection.whenReady(10_000)).to.equal(true);
          expect(logger.lines.at(-1)?.message).to.equal('Connected to RabbitMQ');
        } finally {
          await connection.close();
          await deleteTopology(admin, prefix, DELAYS);
          created.delete(prefix);
          await admin.close();
        }
      });
    }

    it('publishes domain events that a subscriber decodes, and ignores what does not decode', async () => {
      fx = await openRabbit();
      const received: DomainEvent[] = [];
      const subscription = await subscribeToEvents(
        fx.connection,
        fx.prefix,
        (event) => void received.push(event),
        fx.logger,
      );
      const events = new RabbitMqDeliveryEvents({
        publisher: fx.publisher,
        prefix: fx.prefix,
        logger: fx.logger,
      });
      const request = aRequest();
      const event: DomainEvent = anEvent.sent(request, { at: at(2), providerId: '<abc@mailgun>' });
      await fx.publisher.publish(topologyNames(fx.prefix).eventsExchange, 'sent', {
        body: Buffer.from('{"type":"Nonsense"}'),
        headers: {},
        messageId: undefined,
      })();
      await events.publish(event)();
      await eventually(() => expect(received).to.deep.equal([event]));
      expect(fx.logger.lines.map((e) => e.message)).to.include(
        'Ignoring an event that does not decode',
      );
      await subscription.close();
    });
  });
});
