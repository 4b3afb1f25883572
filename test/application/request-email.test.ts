import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { RequestEmail } from '../../src/application/request-email.js';
import type { IdempotencyStore } from '../../src/application/ports/idempotency-store.js';
import { IN_PROGRESS_TIMEOUT_MS } from '../../src/application/ports/idempotency-store.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../src/adapters/memory/in-memory-stores.js';
import type { EmailId } from '../../src/domain/email-request.js';
import {
  RecordingEvents,
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
  switchable,
} from '../support/fakes.js';

const input = { to: 'Ada <ada@example.com>', subject: 'Hello', text: 'Hi Ada' };

describe('RequestEmail', () => {
  let queue: RecordingQueue;
  let events: RecordingEvents;
  let emails: { store: InMemoryEmailLog; down: boolean };
  let keys: { store: IdempotencyStore; down: boolean };
  let clock: ReturnType<typeof fixedClock>;
  let log: RecordingLogger;
  let useCase: RequestEmail;

  beforeEach(() => {
    queue = new RecordingQueue();
    events = new RecordingEvents();
    emails = switchable(new InMemoryEmailLog());
    keys = switchable<IdempotencyStore>(new InMemoryIdempotencyStore());
    clock = fixedClock();
    log = new RecordingLogger();
    useCase = new RequestEmail(
      queue,
      emails.store,
      events,
      keys.store,
      sequentialIds(),
      clock,
      log,
    );
  });

  const statusOf = async (id: string) => {
    const found = await emails.store.get(id as EmailId)();
    return E.isRight(found) ? O.toUndefined(found.right)?.status : 'store down';
  };

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
    expect(await statusOf('email-00000001')).to.equal('queued');
  });

  it('records nothing and publishes nothing while the email log is down', async () => {
    emails.down = true;
    const result = await useCase.execute(input)();
    expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
    expect(queue.published).to.have.length(0);
    expect(events.events).to.have.length(0);
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
    // The client hears 503: the email never was, and the log does not pretend otherwise.
    expect(await statusOf('email-00000001')).to.equal(undefined);
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

  it('still answers accepted when the key cannot be completed after the email was queued', async () => {
    const original = keys.store.complete.bind(keys.store);
    keys.store.complete = (key) => {
      keys.down = true;
      return original(key);
    };
    const first = await useCase.execute(input, 'key-4')();
    expect(first).to.deep.equal(E.right({ id: 'email-00000001', repeated: false }));
    expect(queue.published).to.have.length(1);
    expect(log.text()).to.contain('could not be marked complete');

    // The honest retry: "in progress" for a while, then the same id again (sent once, thanks
    // to the delivery ledger), never a second email with another id.
    keys.down = false;
    keys.store.complete = original;
    const soon = await useCase.execute(input, 'key-4')();
    expect(soon).to.deep.equal(E.left({ _tag: 'IdempotencyConflict', reason: 'in-progress' }));
    clock.advance(IN_PROGRESS_TIMEOUT_MS + 1);
    const later = await useCase.execute(input, 'key-4')();
    expect(later).to.deep.equal(E.right({ id: 'email-00000001', repeated: false }));
  });
});
