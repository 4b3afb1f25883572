// The bench's cross-check of a drain at a provider latency: a slot's median send-to-next-send.
import { expect } from 'chai';
import { medianCycleMs } from '../../bench/mailgun.js';

describe('bench: medianCycleMs', () => {
  /** Batches of `slots` sends, the k-th send of batch b at b × period + offsets[k]. */
  const batches = (n: number, period: number, offsets: readonly number[]) =>
    Array.from({ length: n }, (_, b) => offsets.map((o) => b * period + o)).flat();

  it('finds the cycle of slots that keep their order within each batch', () => {
    expect(medianCycleMs(batches(5, 700, [0, 10, 20, 30]), 4)).to.equal(700);
  });

  it('takes the median when the batch spreads out, its later slots slower', () => {
    // Slot k's cycle is 700 + 2k ms: each batch is wider than the one before.
    const arrivals = Array.from({ length: 6 }, (_, b) =>
      [0, 1, 2, 3].map((k) => b * (700 + 2 * k) + 10 * k),
    ).flat();
    expect(medianCycleMs(arrivals, 4)).to.be.oneOf([702, 704]);
  });

  it('reads the arrivals in any order', () => {
    const arrivals = batches(4, 680, [0, 5, 9]).reverse();
    expect(medianCycleMs(arrivals, 3)).to.equal(680);
  });

  it('says nothing under three batches', () => {
    expect(medianCycleMs(batches(2, 700, [0, 10, 20, 30]), 4)).to.equal(undefined);
  });
});
