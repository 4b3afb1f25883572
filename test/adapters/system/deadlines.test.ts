import { expect } from 'chai';
import { once } from 'node:events';
import { DeadlinePassed, Deadlines } from '../../../src/adapters/system/deadlines.js';

/** Work that ends when its signal aborts, failing as node-fetch and nodemailer do. */
const hangs = async (signal: AbortSignal): Promise<never> => {
  await once(signal, 'abort');
  throw new Error('The operation was aborted');
};

describe('Deadlines', () => {
  it('answers what the work answers, and keeps its controller for the next call', async () => {
    const deadlines = new Deadlines();
    const seen: AbortSignal[] = [];
    const first = await deadlines.within(1000, (signal) => {
      seen.push(signal);
      return Promise.resolve('first');
    });
    const second = await deadlines.within(1000, (signal) => {
      seen.push(signal);
      return Promise.resolve('second');
    });
    expect([first, second]).to.deep.equal(['first', 'second']);
    // The same signal twice: nothing new was made for the second call.
    expect(seen[1]).to.equal(seen[0]);
    expect(seen[0]!.aborted).to.equal(false);
    expect(deadlines.kept).to.equal(1);
  });

  it('aborts the signal once the time is up, throws DeadlinePassed, and never hands it out again', async () => {
    const deadlines = new Deadlines();
    let hung: AbortSignal | undefined;
    const failure = await deadlines
      .within(30, (signal) => {
        hung = signal;
        return hangs(signal);
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failure).to.be.instanceOf(DeadlinePassed);
    expect((failure as DeadlinePassed).message).to.equal('timed out after 30ms');
    expect((failure as DeadlinePassed).cause).to.have.property(
      'message',
      'The operation was aborted',
    );
    expect(hung!.aborted).to.equal(true);
    expect(deadlines.kept).to.equal(0);
    const next = await deadlines.within(1000, (signal) => Promise.resolve(signal));
    expect(next).to.not.equal(hung);
    expect(next.aborted).to.equal(false);
  });

  it('passes on a failure before the time is up as it is', async () => {
    const deadlines = new Deadlines();
    const refused = new Error('connection refused');
    const failure = await deadlines.within(1000, () => Promise.reject(refused)).catch((e) => e);
    expect(failure).to.equal(refused);
    // Its signal never fired and kept no listener: as good as new.
    expect(deadlines.kept).to.equal(1);
  });

  it('keeps no controller whose signal someone still listens to', async () => {
    const deadlines = new Deadlines();
    const left = await deadlines.within(1000, (signal) => {
      // A library that did not take its listener off again.
      signal.addEventListener('abort', () => undefined);
      return Promise.resolve(signal);
    });
    expect(deadlines.kept).to.equal(0);
    const next = await deadlines.within(1000, (signal) => Promise.resolve(signal));
    expect(next).to.not.equal(left);
  });

  it('keeps at most as many controllers as it was told', async () => {
    const deadlines = new Deadlines(2);
    // Five at once, so that five controllers are in use, then given back together.
    const opens: (() => void)[] = [];
    const running = Array.from({ length: 5 }, () =>
      deadlines.within(1000, () => new Promise<void>((resolve) => opens.push(resolve))),
    );
    opens.forEach((open) => open());
    await Promise.all(running);
    expect(deadlines.kept).to.equal(2);
  });
});
