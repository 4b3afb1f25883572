import { expect } from 'chai';
import type { BatcherOptions } from '../../../src/adapters/postgres/batcher.js';
import { Batcher } from '../../../src/adapters/postgres/batcher.js';

/** A concurrent batcher whose write notes each batch it ran and doubles each input. */
function doubling(options: Omit<BatcherOptions<number, number>, 'write' | 'concurrent'> = {}) {
  const batches: number[][] = [];
  const batcher = new Batcher<number, number>({
    write: async (items) => {
      batches.push([...items]);
      return items.map((n) => n * 2);
    },
    concurrent: true,
    ...options,
  });
  return { batcher, batches };
}

describe('Batcher, concurrent (every waiting call written at the end of its turn)', () => {
  it('runs the calls of one turn as one batch, each caller answered its own result', async () => {
    const { batcher, batches } = doubling();
    const results = await Promise.all([1, 2, 3].map((n) => batcher.run(n)));
    expect(results).to.deep.equal([2, 4, 6]);
    expect(batches).to.deep.equal([[1, 2, 3]]);
  });

  it('runs calls made after a batch left in a batch of their own', async () => {
    const { batcher, batches } = doubling();
    expect(await batcher.run(1)).to.equal(2);
    expect(await batcher.run(2)).to.equal(4);
    expect(batches).to.deep.equal([[1], [2]]);
  });

  it('splits a turn at maxBatch', async () => {
    const { batcher, batches } = doubling({ maxBatch: 2 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.run(n)));
    expect(results).to.deep.equal([2, 4, 6, 8, 10]);
    expect(batches).to.deep.equal([[1, 2], [3, 4], [5]]);
  });

  it('never puts two items of one key in one batch', async () => {
    const { batcher, batches } = doubling({ key: (n) => String(n % 10) });
    const results = await Promise.all([1, 11, 2, 21, 12].map((n) => batcher.run(n)));
    expect(results).to.deep.equal([2, 22, 4, 42, 24]);
    expect(batches).to.deep.equal([[1, 2], [11, 12], [21]]);
  });

  it('fails every caller of a batch that failed, and only those', async () => {
    let fail = true;
    const batcher = new Batcher<number, number>({
      write: async (items) => {
        if (fail) throw new Error('refused');
        return items;
      },
      concurrent: true,
    });
    const failed = await Promise.allSettled([batcher.run(1), batcher.run(2)]);
    expect(failed.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
    fail = false;
    expect(await batcher.run(3)).to.equal(3);
  });

  it('fails the batch when flush answers a different number of results (a bug)', async () => {
    const batcher = new Batcher<number, number>({ write: async () => [1], concurrent: true });
    const settled = await Promise.allSettled([batcher.run(1), batcher.run(2)]);
    expect(settled.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
  });

  it('refuses a maxBatch that is not a positive integer', () => {
    expect(() => new Batcher({ write: async () => [], maxBatch: 0 })).to.throw(/maxBatch/);
  });
});
