import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { Disposition, EmailTask } from '../../../src/application/ports/email-task-source.js';
import { InMemoryEmailQueue } from '../../../src/adapters/memory/in-memory-email-queue.js';
import type { SetTimer } from '../../../src/adapters/memory/in-memory-email-queue.js';
import { TestInMemoryEmailQueue } from '../../support/in-memory-email-queue.js';
import { CONTRACT_CONCURRENCY, emailQueueContract } from '../../contracts/email-queue.contract.js';
import { aRequest } from '../../support/builders.js';
import { RecordingLogger } from '../../support/fakes.js';
import { eventually } from '../../support/waiting.js';

emailQueueContract('InMemoryEmailQueue', async () => {
  const logger = new RecordingLogger();
  const queue = new TestInMemoryEmailQueue({ concurrency: CONTRACT_CONCURRENCY, logger });
  return {
    queue,
    source: queue,
    dead: queue,
    logger,
    publishRaw: (body, headers) => queue.publishRaw(body, headers),
    close: async () => {
      await queue.stop(0);
      queue.close();
    },
  };
});

/** Timers that fire only when the test says so, recording the delays asked for. */
function manualTimers(): { setTimer: SetTimer; delays: number[]; fireAll(): void } {
  const pending = new Map<number, () => void>();
  const delays: number[] = [];
  let next = 0;
  return {
    delays,
    setTimer: (fn, ms) => {
      const id = next++;
      delays.push(ms);
      pending.set(id, fn);
      return () => pending.delete(id);
    },
    fireAll: () => {
      const due = [...pending.values()];
      pending.clear();
      for (const fn of due) fn();
    },
  };
}

describe('InMemoryEmailQueue beyond the contract', () => {
  it('waits a retry out with jitter from the injected random source', async () => {
    const timers = manualTimers();
    const queue = new InMemoryEmailQueue({
      concurrency: 1,
      random: () => 0.5,
      setTimer: timers.setTimer,
    });
    const seen: EmailTask[] = [];
    await queue.consume(async (task): Promise<Disposition> => {
      seen.push(task);
      return task.attempt === 1
        ? { _tag: 'Retry', attempt: 2, delayMs: 1000, history: [] }
        : { _tag: 'Done' };
    });
    await queue.publish(aRequest())();
    await eventually(() => expect(timers.delays).to.deep.equal([1100]));
    expect(seen).to.have.length(1);
    timers.fireAll();
    await eventually(() => expect(seen.map((t) => t.attempt)).to.deep.equal([1, 2]));
    await queue.stop(0);
  });

  it('counts what waits for a consumer in depth()', async () => {
    const queue = new TestInMemoryEmailQueue({ concurrency: 1 });
    await queue.publish(aRequest())();
    await queue.publish(aRequest())();
    expect(queue.depth()).to.equal(2);
    await queue.consume(async () => ({ _tag: 'Done' }));
    await eventually(() => expect(queue.depth()).to.equal(0));
    await queue.stop(0);
  });

  it('answers QueueUnavailable while told to, as a broker outage would', async () => {
    const queue = new TestInMemoryEmailQueue({ concurrency: 1 });
    queue.setUnavailable('broker down (test)');
    const result = await queue.publish(aRequest())();
    expect(result).to.deep.equal(
      E.left({ _tag: 'QueueUnavailable', reason: 'broker down (test)' }),
    );
    expect(E.isLeft(await queue.list()())).to.equal(true);
    queue.setUnavailable(undefined);
    expect(await queue.publish(aRequest())()).to.deep.equal(E.right(undefined));
  });

  it('refuses a second consumer at once: that would be a wiring bug', async () => {
    const queue = new InMemoryEmailQueue({ concurrency: 1 });
    await queue.consume(async () => ({ _tag: 'Done' }));
    const second = await queue
      .consume(async () => ({ _tag: 'Done' }))
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(second)
      .to.be.an('error')
      .with.property('message')
      .that.matches(/already consuming/);
    await queue.stop(0);
  });

  it('leaves a malformed letter in place on replay: it would only come back', async () => {
    const queue = new TestInMemoryEmailQueue({ concurrency: 1 });
    await queue.publishRaw(Buffer.from('{"v":1}'), {}, 'junk-0001');
    await queue.consume(async () => ({ _tag: 'Done' }));
    await eventually(async () =>
      expect(await queue.list()()).to.satisfy(
        (l: E.Either<unknown, unknown[]>) => E.isRight(l) && l.right.length === 1,
      ),
    );
    expect(await queue.replay({ all: true })()).to.deep.equal(E.right(0));
    const listed = await queue.list()();
    expect(E.isRight(listed) && listed.right[0]).to.deep.include({ id: 'junk-0001' });
    await queue.stop(0);
  });
});
