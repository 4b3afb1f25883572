import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { RequestEmail } from '../../src/application/request-email.js';
import { InMemoryIdempotencyStore } from '../../src/adapters/memory/in-memory-stores.js';
import { RecordingEvents, RecordingQueue, fixedClock, sequentialIds } from '../support/fakes.js';

const input = { to: 'Ada <ada@example.com>', subject: 'Hello', text: 'Hi Ada' };

describe('RequestEmail', () => {
  let queue: RecordingQueue;
  let events: RecordingEvents;
  let useCase: RequestEmail;

  beforeEach(() => {
    queue = new RecordingQueue();
    events = new RecordingEvents();
    useCase = new RequestEmail(
      queue,
      events,
      new InMemoryIdempotencyStore(),
      sequentialIds(),
      fixedClock(),
    );
  });

  it('queues a valid request once and announces it', async () => {
    const result = await useCase.execute(input)();
    expect(result).to.deep.equal(E.right({ id: 'email-00000001', repeated: false }));
    expect(queue.published).to.have.length(1);
    expect(queue.published[0]).to.include({
      id: 'email-00000001',
      subject: 'Hello',
      text: 'Hi Ada',
    });
    expect(queue.published[0]?.to).to.deep.equal(['Ada <ada@example.com>']);
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailRequested']);
  });

  it('queues nothing for invalid input and says what is wrong', async () => {
    const result = await useCase.execute({ to: 'nope', subject: 'Hi\r\nBcc: x@evil.com' })();
    if (E.isRight(result)) expect.fail('accepted');
    expect(result.left._tag).to.equal('InvalidEmailRequest');
    expect(
      result.left._tag === 'InvalidEmailRequest' && Object.keys(result.left.fields).sort(),
    ).to.deep.equal(['subject', 'text', 'to']);
    expect(queue.published).to.have.length(0);
    expect(events.events).to.have.length(0);
  });

  it('reports the queue being down, and announces nothing', async () => {
    queue.down = true;
    const result = await useCase.execute(input)();
    expect(E.isLeft(result) && result.left._tag).to.equal('QueueUnavailable');
    expect(events.events).to.have.length(0);
  });

  it('answers a repeated idempotency key with the first id and publishes nothing more', async () => {
    const first = await useCase.execute(input, 'key-1')();
    const again = await useCase.execute({ ...input }, 'key-1')();
    expect(first).to.deep.equal(E.right({ id: 'email-00000001', repeated: false }));
    expect(again).to.deep.equal(E.right({ id: 'email-00000001', repeated: true }));
    expect(queue.published).to.have.length(1);
  });

  it('refuses the same key with another payload', async () => {
    await useCase.execute(input, 'key-2')();
    const other = await useCase.execute({ ...input, subject: 'Other' }, 'key-2')();
    expect(other).to.deep.equal(
      E.left({ _tag: 'IdempotencyConflict', reason: 'different-payload' }),
    );
    expect(queue.published).to.have.length(1);
  });

  it('frees a key whose request was not accepted, so the client can retry it', async () => {
    queue.down = true;
    expect(E.isLeft(await useCase.execute(input, 'key-3')())).to.equal(true);
    queue.down = false;
    const retried = await useCase.execute(input, 'key-3')();
    expect(E.isRight(retried) && retried.right.repeated).to.equal(false);
    expect(queue.published).to.have.length(1);
  });
});
