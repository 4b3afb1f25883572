// corkWrites on the amqplib this project installs: it must find the internals it relies on (or
// a new amqplib would silently lose the one-write-per-turn), and confirmed publishes made in one
// turn must leave in fewer socket writes than publishes, all confirmed, in order.
import type { ChannelModel } from 'amqplib';
import { connect } from 'amqplib';
import { expect } from 'chai';
import { corkWrites } from '../../../src/adapters/rabbitmq/cork-writes.js';
import { AMQP_URL, requireRabbitMq, uniquePrefix } from '../../support/rabbitmq.js';

interface Counted {
  write(...args: unknown[]): boolean;
  _writev?: unknown;
}

describe('corkWrites', function () {
  this.timeout(20_000);
  let model: ChannelModel | undefined;

  before(() => requireRabbitMq());
  afterEach(async () => {
    await model?.close().catch(() => undefined);
    model = undefined;
  });

  it('sends the publishes of one turn in one socket write, each confirmed, in order', async () => {
    model = await connect(AMQP_URL);
    expect(corkWrites(model)).to.equal(true);
    const socket = (model as unknown as { connection: { stream: Counted } }).connection.stream;
    // What reaches the kernel: one `_write` or `_writev` of the socket per system call.
    const calls = { write: 0, writev: 0 };
    const proto = Object.getPrototypeOf(socket) as Record<string, unknown>;
    const own = socket as unknown as Record<string, unknown>;
    for (const [name, key] of [
      ['_write', 'write'],
      ['_writev', 'writev'],
    ] as const) {
      const inner = proto[name] as (...a: unknown[]) => unknown;
      own[name] = function (this: unknown, ...args: unknown[]) {
        calls[key] += 1;
        return inner.apply(this, args);
      };
    }
    const channel = await model.createConfirmChannel();
    const queue = `${uniquePrefix('cork')}.q`;
    await channel.assertQueue(queue, { exclusive: true });
    calls.write = 0;
    calls.writev = 0;
    const confirms = Array.from(
      { length: 20 },
      (_, i) =>
        new Promise<void>((resolve, reject) =>
          channel.sendToQueue(queue, Buffer.from(String(i)), {}, (err: unknown) =>
            err ? reject(new Error(String(err))) : resolve(),
          ),
        ),
    );
    await Promise.all(confirms);
    expect(calls.write + calls.writev).to.be.below(20);
    const bodies: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      const msg = await channel.get(queue, { noAck: true });
      if (msg !== false) bodies.push(msg.content.toString());
    }
    expect(bodies).to.deep.equal(Array.from({ length: 20 }, (_, i) => String(i)));
  });
});
