// The Batcher alone, without a database: who goes in which batch, and who hears what.
import { expect } from 'chai';
import { Batcher, isDataError } from '../../../src/adapters/postgres/batcher.js';

/** A write that notes each batch, answers each input doubled, and fails on `fail` inputs. */
function doubling(fail: (n: number) => boolean = () => false) {
  const batches: number[][] = [];
  const write = async (inputs: readonly number[]) => {
    batches.push([...inputs]);
    const refused = inputs.find(fail);
    if (refused !== undefined) {
      throw Object.assign(new Error(`refused ${refused}`), { code: '22P05' });
    }
    return inputs.map((n) => n * 2);
  };
  return { batches, write };
}

const settled = <A>(calls: readonly Promise<A>[]) =>
  Promise.allSettled(calls).then((all) =>
    all.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
  );

describe('Batcher', () => {
  it('writes the calls of one turn as one batch and answers each its own result', async () => {
    const { batches, write } = doubling();
    const batcher = new Batcher({ write });
    expect(await Promise.all([1, 2, 3].map((n) => batcher.run(n)))).to.deep.equal([2, 4, 6]);
    expect(batches).to.deep.equal([[1, 2, 3]]);
  });

  it('gathers the calls made while a batch is written into the next one', async () => {
    const { batches, write } = doubling();
    const batcher = new Batcher({ write });
    const first = batcher.run(1);
    await new Promise((resolve) => setImmediate(resolve));
    // The first batch is being written: these wait for it, then go together.
    const later = [2, 3, 4].map((n) => batcher.run(n));
    expect(await Promise.all([first, ...later])).to.deep.equal([2, 4, 6, 8]);
    expect(batches).to.deep.equal([[1], [2, 3, 4]]);
  });

  it('takes at most maxBatch calls in one batch', async () => {
    const { batches, write } = doubling();
    const batcher = new Batcher({ write, maxBatch: 2 });
    await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.run(n)));
    expect(batches).to.deep.equal([[1, 2], [3, 4], [5]]);
  });

  it('fails every call of a failed batch with its error', async () => {
    const { write } = doubling((n) => n === 2);
    const batcher = new Batcher({ write });
    expect(await settled([1, 2, 3].map((n) => batcher.run(n)))).to.deep.equal([
      'refused 2',
      'refused 2',
      'refused 2',
    ]);
  });

  it('writes each call alone after a failure retryAlone blames on one of them', async () => {
    const { batches, write } = doubling((n) => n === 2);
    const batcher = new Batcher({ write, retryAlone: isDataError });
    expect(await settled([1, 2, 3].map((n) => batcher.run(n)))).to.deep.equal([2, 'refused 2', 6]);
    expect(batches).to.deep.equal([[1, 2, 3], [1], [2], [3]]);
  });

  it('writes the calls of a failed batch alone one after another, in their order', async () => {
    const steps: string[] = [];
    const write = async (inputs: readonly number[]) => {
      steps.push(`start ${inputs.join(',')}`);
      // A round trip's worth of turns, so that a write started alongside would show in between.
      for (let turn = 0; turn < 3; turn += 1) await new Promise((r) => setImmediate(r));
      steps.push(`end ${inputs.join(',')}`);
      if (inputs.length > 1) throw Object.assign(new Error('refused'), { code: '23505' });
      return inputs.map((n) => n * 2);
    };
    const batcher = new Batcher({ write, retryAlone: isDataError });
    expect(await settled([1, 2, 3].map((n) => batcher.run(n)))).to.deep.equal([2, 4, 6]);
    expect(steps).to.deep.equal([
      'start 1,2,3',
      'end 1,2,3',
      'start 1',
      'end 1',
      'start 2',
      'end 2',
      'start 3',
      'end 3',
    ]);
  });

  it('fails the whole batch when its write answers another number of results (a bug)', async () => {
    const batcher = new Batcher({ write: async (inputs: readonly number[]) => inputs.slice(1) });
    const answers = await settled([1, 2].map((n) => batcher.run(n)));
    expect(answers).to.deep.equal([
      'a batch of 2 was answered with 1 results',
      'a batch of 2 was answered with 1 results',
    ]);
  });

  it('tells data errors (SQLSTATE 22, 23) from the rest', () => {
    expect(isDataError(Object.assign(new Error('x'), { code: '23505' }))).to.equal(true);
    expect(isDataError(Object.assign(new Error('x'), { code: '08006' }))).to.equal(false);
    expect(isDataError(new Error('connection terminated'))).to.equal(false);
  });
});
