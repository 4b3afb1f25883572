import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../src/adapters/memory/in-memory-stores.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import { IN_PROGRESS_TIMEOUT_MS } from '../../src/application/ports/idempotency-store.js';
import type { RequestBatchError } from '../../src/application/request-batch.js';
import { MAX_BATCH, RequestBatch } from '../../src/application/request-batch.js';
import type { Accepted } from '../../src/application/request-email.js';
import { RequestEmail } from '../../src/application/request-email.js';
import { InMemorySuppressionList } from '../../src/adapters/memory/in-memory-suppression-list.js';
import type { EmailId, EmailRequest } from '../../src/domain/email-request.js';
import {
  RecordingEvents,
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
  switchable,
} from '../support/fakes.js';

/** A queue that takes `room` requests and then refuses, as a broker that went away would. */
class FillingQueue extends RecordingQueue {
  room = Infinity;
  override publish(request: EmailRequest) {
    if (this.published.length >= this.room) {
      return TE.left(queueUnavailable('broker unreachable'));
    }
    return super.publish(request);
  }
}

const email = (n: number) => ({
  to: `person${n}@example.com`,
  subject: `Hello ${n}`,
  text: `Message ${n}`,
});

const three = [email(1), email(2), email(3)];

describe('RequestBatch', () => {
  let queue: FillingQueue;
  let emails: InMemoryEmailLog;
  let events: RecordingEvents;
  let clock: ReturnType<typeof fixedClock>;
  let log: RecordingLogger;
  let batch: RequestBatch;

  beforeEach(() => {
    queue = new FillingQueue();
    emails = new InMemoryEmailLog();
    events = new RecordingEvents();
    clock = fixedClock();
    log = new RecordingLogger();
    const ids = sequentialIds();
    const keys = new InMemoryIdempotencyStore();
    const requestEmail = new RequestEmail(queue, emails, events, keys, ids, clock, log, {
      maxMessageBytes: 20_000,
    });
    batch = new RequestBatch(requestEmail, keys, ids, clock, log);
  });

  const run = (inputs: unknown, key?: string) => batch.execute(inputs, key)();

  const accepted = async (inputs: unknown, key?: string): Promise<readonly Accepted[]> => {
    const result = await run(inputs, key);
    if (E.isLeft(result)) expect.fail(`refused: ${JSON.stringify(result.left)}`);
    return result.right;
  };

  const refused = async (inputs: unknown, key?: string): Promise<RequestBatchError> => {
    const result = await run(inputs, key);
    if (E.isRight(result)) expect.fail('accepted');
    return result.left;
  };

  const statusOf = async (id: string) => {
    const found = await emails.get(id as EmailId)();
    return E.isRight(found) ? O.toUndefined(found.right)?.status : 'store down';
  };

  it('accepts every email in order, each with its own id, queued and announced', async () => {
    const answer = await accepted(three);
    const ids = ['email-00000001', 'email-00000002', 'email-00000003'];
    expect(answer).to.deep.equal(ids.map((id) => ({ id, repeated: false, status: 'queued' })));
    expect(queue.published.map((r) => [r.id, r.subject])).to.deep.equal([
      ['email-00000001', 'Hello 1'],
      ['email-00000002', 'Hello 2'],
      ['email-00000003', 'Hello 3'],
    ]);
    expect(events.events.map((e) => e.id)).to.deep.equal(ids);
    for (const id of ids) expect(await statusOf(id)).to.equal('queued');
  });

  it('refuses a body that is not a list, an empty list, or more than the limit', async () => {
    const cases: [unknown, RegExp][] = [
      [email(1), /^must be a list of 1 to 100 emails$/],
      [[], /it has 0$/],
      [Array.from({ length: MAX_BATCH + 1 }, (_, i) => email(i)), /it has 101$/],
    ];
    for (const [inputs, problem] of cases) {
      const error = await refused(inputs);
      if (error._tag !== 'InvalidBatch') expect.fail(error._tag);
      expect(error.problem).to.match(problem);
      expect(error.errors).to.deep.equal([]);
    }
    expect(await accepted(Array.from({ length: MAX_BATCH }, (_, i) => email(i)))).to.have.length(
      MAX_BATCH,
    );
  });

  it('accepts nothing when any email is invalid, and names each by index', async () => {
    const error = await refused([
      email(1),
      { ...email(2), to: ['ok@example.com', 'nope'] },
      email(3),
      { ...email(4), subject: '' },
    ]);
    expect(error).to.deep.equal({
      _tag: 'InvalidBatch',
      errors: [
        { index: 1, fields: { 'to[1]': '"nope" needs the form name@domain' } },
        { index: 3, fields: { subject: 'is required' } },
      ],
    });
    expect(queue.published).to.deep.equal([]);
    expect(events.events).to.deep.equal([]);
    expect(await statusOf('email-00000001')).to.equal(undefined);
  });

  it('refuses the batch when one email would be too large, naming its size', async () => {
    const error = await refused([email(1), { ...email(2), text: 'x'.repeat(30_000) }]);
    if (error._tag !== 'InvalidBatch') expect.fail(error._tag);
    expect(error.errors.map((e) => e.index)).to.deep.equal([1]);
    expect(error.errors[0]?.fields.size).to.match(/over the limit of 20000 bytes/);
    expect(queue.published).to.deep.equal([]);
  });

  it('keeps the emails accepted before one that cannot be queued, and says which', async () => {
    queue.room = 2;
    const error = await refused(three);
    if (error._tag !== 'BatchInterrupted') expect.fail(error._tag);
    expect(error.accepted.map((a) => a.id)).to.deep.equal(['email-00000001', 'email-00000002']);
    expect(error.error._tag).to.equal('QueueUnavailable');
    expect(queue.published.map((r) => r.id)).to.deep.equal(['email-00000001', 'email-00000002']);
    expect(await statusOf('email-00000001')).to.equal('queued');
    expect(await statusOf('email-00000002')).to.equal('queued');
    // The one refused is not known: the client hears it was not accepted.
    expect(await statusOf('email-00000003')).to.equal(undefined);
  });

  describe('with an Idempotency-Key', () => {
    it('claims the key once and derives the ids of the items from its id', async () => {
      const answer = await accepted(three, 'k1');
      expect(answer.map((a) => a.id)).to.deep.equal([
        'email-00000001-0',
        'email-00000001-1',
        'email-00000001-2',
      ]);
      expect(queue.published.map((r) => r.id)).to.deep.equal(answer.map((a) => a.id));
    });

    it('answers a repeat with the same ids and publishes nothing again', async () => {
      const first = await accepted(three, 'k1');
      // The same emails with their fields in another order are the same batch.
      const again = await accepted(
        three.map(({ text, subject, to }) => ({ text, subject, to })),
        'k1',
      );
      expect(again).to.deep.equal(first.map((a) => ({ ...a, repeated: true })));
      expect(queue.published).to.have.length(3);
      expect(events.events).to.have.length(3);
    });

    it('answers a repeat with each item as the first time: suppressed, and who was dropped', async () => {
      const list = new InMemorySuppressionList();
      await list.add({ address: 'sup@example.com', reason: 'bounce', createdAt: new Date(0) })();
      const keys = new InMemoryIdempotencyStore();
      const ids = sequentialIds();
      const requestEmail = new RequestEmail(queue, emails, events, keys, ids, clock, log, {
        suppressions: list,
      });
      const screened = new RequestBatch(requestEmail, keys, ids, clock, log);
      const items = [
        email(1),
        { ...email(2), to: ['person2@example.com', 'sup@example.com'] },
        { ...email(3), to: 'sup@example.com' },
      ];
      const answer = async (): Promise<readonly Accepted[]> => {
        const result = await screened.execute(items, 'k-suppressed')();
        if (E.isLeft(result)) expect.fail(`refused: ${JSON.stringify(result.left)}`);
        return result.right;
      };
      const first = await answer();
      expect(first.map((a) => [a.status, a.suppressed])).to.deep.equal([
        ['queued', undefined],
        ['queued', ['sup@example.com']],
        ['suppressed', ['sup@example.com']],
      ]);
      expect(await answer()).to.deep.equal(first.map((a) => ({ ...a, repeated: true })));
      // Nothing queued again: the two sendable ones, once.
      expect(queue.published).to.have.length(2);
    });

    it('says a repeat it cannot read was accepted before, naming every email', async () => {
      const list = new InMemorySuppressionList();
      const down = switchable(emails);
      const keys = new InMemoryIdempotencyStore();
      const ids = sequentialIds();
      const requestEmail = new RequestEmail(queue, down.store, events, keys, ids, clock, log, {
        suppressions: list,
      });
      const screened = new RequestBatch(requestEmail, keys, ids, clock, log);
      const first = await screened.execute(three, 'k-unread')();
      if (E.isLeft(first)) return expect.fail('refused');
      down.down = true;
      const again = await screened.execute(three, 'k-unread')();
      expect(E.isLeft(again) && again.left).to.deep.include({
        _tag: 'RepeatUnreadable',
        ids: first.right.map((a) => a.id),
      });
      expect(queue.published).to.have.length(3);
    });

    it('refuses the key for another batch (409), in another order too', async () => {
      await accepted(three, 'k1');
      const other = await refused([email(3), email(2), email(1)], 'k1');
      expect(other).to.deep.equal({ _tag: 'IdempotencyConflict', reason: 'different-payload' });
      expect(queue.published).to.have.length(3);
    });

    it('releases the key when nothing was accepted, so a retry starts afresh', async () => {
      queue.room = 0;
      const error = await refused(three, 'k1');
      expect(error._tag === 'BatchInterrupted' && error.accepted).to.deep.equal([]);
      queue.room = Infinity;
      const retry = await accepted(three, 'k1');
      expect(retry.map((a) => a.repeated)).to.deep.equal([false, false, false]);
      expect(queue.published).to.have.length(3);
    });

    it('after a partial batch, a retry gets the same ids and each id is sent once', async () => {
      queue.room = 1;
      const error = await refused(three, 'k1');
      if (error._tag !== 'BatchInterrupted') expect.fail(error._tag);
      expect(error.accepted.map((a) => a.id)).to.deep.equal(['email-00000001-0']);
      expect(log.text()).to.contain('Batch interrupted');
      // Neither released (a retry would send the first again under a new id) nor completed.
      expect(await refused(three, 'k1')).to.deep.equal({
        _tag: 'IdempotencyConflict',
        reason: 'in-progress',
      });
      queue.room = Infinity;
      clock.advance(IN_PROGRESS_TIMEOUT_MS + 1);
      const retry = await accepted(three, 'k1');
      expect(retry.map((a) => a.id)).to.deep.equal([
        'email-00000001-0',
        'email-00000001-1',
        'email-00000001-2',
      ]);
      // The first one again, under its id: the delivery ledger sends an id once.
      expect(new Set(queue.published.map((r) => r.id)).size).to.equal(3);
      expect(await statusOf('email-00000001-0')).to.equal('queued');
      const repeat = await accepted(three, 'k1');
      expect(repeat.every((a) => a.repeated)).to.equal(true);
    });
  });
});
