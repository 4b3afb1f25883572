import { expect } from 'chai';
import { TickBatcher } from '../../../src/adapters/postgres/tick-batcher.js';

/** A batcher whose flush notes each batch it ran and doubles each item. */
function doubling(options: ConstructorParameters<typeof TickBatcher<number, number>>[1] = {}) {
  const batches: number[][] = [];
  const batcher = new TickBatcher<number, number>(async (items) => {
    batches.push([...items]);
    return items.map((n) => n * 2);
  }, options);
  return { batcher, batches };
}

describe('TickBatcher', () => {
  it('runs the calls of one turn as one batch, each caller answered its own result', async () => {
    const { batcher, batches } = doubling();
    const results = await Promise.all([1, 2, 3].map((n) => batcher.add(n)));
    expect(results).to.deep.equal([2, 4, 6]);
    expect(batches).to.deep.equal([[1, 2, 3]]);
  });

  it('runs calls made after a batch left in a batch of their own', async () => {
    const { batcher, batches } = doubling();
    expect(await batcher.add(1)).to.equal(2);
    expect(await batcher.add(2)).to.equal(4);
    expect(batches).to.deep.equal([[1], [2]]);
  });

  it('splits a turn at maxBatch', async () => {
    const { batcher, batches } = doubling({ maxBatch: 2 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.add(n)));
    expect(results).to.deep.equal([2, 4, 6, 8, 10]);
    expect(batches).to.deep.equal([[1, 2], [3, 4], [5]]);
  });

  it('never puts two items of one key in one batch', async () => {
    const { batcher, batches } = doubling({ key: (n) => String(n % 10) });
    const results = await Promise.all([1, 11, 2, 21, 12].map((n) => batcher.add(n)));
    expect(results).to.deep.equal([2, 22, 4, 42, 24]);
    expect(batches).to.deep.equal([[1, 2], [11, 12], [21]]);
  });

  it('fails every caller of a batch that failed, and only those', async () => {
    let fail = true;
    const batcher = new TickBatcher<number, number>(async (items) => {
      if (fail) throw new Error('refused');
      return items;
    });
    const failed = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    expect(failed.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
    fail = false;
    expect(await batcher.add(3)).to.equal(3);
  });

  it('fails the batch when flush answers a different number of results (a bug)', async () => {
    const batcher = new TickBatcher<number, number>(async () => [1]);
    const settled = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    expect(settled.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
  });

  it('refuses a maxBatch that is not a positive integer', () => {
    expect(() => new TickBatcher(async () => [], { maxBatch: 0 })).to.throw(/maxBatch/);
  });
});
