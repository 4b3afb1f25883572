// ClockOffset: bounds on the database clock's offset from this process's, from timed exchanges.
import { expect } from 'chai';
import type { OffsetBounds } from '../../../src/adapters/postgres/clock-offset.js';
import {
  ClockOffset,
  MAX_DRIFT,
  OFFSET_SAMPLES,
  OFFSET_WINDOW_MS,
} from '../../../src/adapters/postgres/clock-offset.js';

/** Bounds equal to `expected` but for the rounding of fractional milliseconds. */
const near = (actual: OffsetBounds, expected: OffsetBounds): void => {
  expect(actual.lo).to.be.closeTo(expected.lo, 1e-6);
  expect(actual.hi).to.be.closeTo(expected.hi, 1e-6);
};

describe('ClockOffset', () => {
  it('bounds the offset by one exchange: the remote reading was taken while it was out', () => {
    const offset = new ClockOffset();
    // Sent at 100, answered at 130 here; the remote clock read 5000 meanwhile.
    expect(offset.observe(100, 130, 5000)).to.deep.equal({ lo: 4870, hi: 4900 });
  });

  it('narrows a slow exchange by a prompt one before it', () => {
    const offset = new ClockOffset();
    offset.observe(100, 102, 5000); // offset within [4898, 4900]
    // An answer read 400 ms late (a busy event loop) says only [4500, 4902] by itself; the
    // prompt one, 1300 ms older, has widened by MAX_DRIFT of that.
    const aged = 1300 * MAX_DRIFT;
    near(offset.observe(1000, 1402, 5902), { lo: 4898 - aged, hi: 4900 + aged });
  });

  it('keeps the bounds as the last exchange left them, for times placed before it', () => {
    const offset = new ClockOffset();
    expect(offset.current).to.equal(undefined);
    offset.observe(1000, 1402, 5902);
    offset.observe(2000, 2002, 6900);
    expect(offset.current).to.deep.equal({ lo: 4898, hi: 4900 });
  });

  it("widens each exchange's upper bound by the remote clock's tick (a reading is truncated)", () => {
    const offset = new ClockOffset(1);
    near(offset.observe(100, 100.2, 5000), { lo: 4899.8, hi: 4901 });
    // Read at 5000.9 and truncated to 5000: this exchange still meets the first.
    near(offset.observe(101, 101.1, 5000), { lo: 4899.8 - 0.9 * MAX_DRIFT, hi: 4900 });
  });

  it('starts over from an exchange that no longer agrees (a clock stepped)', () => {
    const offset = new ClockOffset();
    offset.observe(100, 102, 5000);
    // The remote clock stepped back a second: [3898, 3900] meets nothing kept.
    expect(offset.observe(200, 202, 4100)).to.deep.equal({ lo: 3898, hi: 3900 });
    // And the step is what holds from then on.
    const aged = 128 * MAX_DRIFT;
    near(offset.observe(300, 330, 4210), { lo: 3898 - aged, hi: 3900 + aged });
  });

  it('widens an old exchange by MAX_DRIFT of its age: a clock slewed back is not placed early', () => {
    const offset = new ClockOffset();
    offset.observe(0, 1, 5000); // [4999, 5000]
    // Five seconds later the offset is 4997.5 (the remote clock slewed back 500 ppm) and a slow
    // exchange says [4990, 4999.5]. Held at 4999, the old exchange would place remote times
    // 1.5 ms early; widened by 2.5 ms, it lets the offset be where it now is.
    const bounds = offset.observe(5000, 5009.5, 9999.5);
    expect(bounds.lo).to.be.at.most(4997.5);
    near(bounds, { lo: 4999 - 5008.5 * MAX_DRIFT, hi: 4999.5 });
  });

  it('forgets exchanges older than OFFSET_WINDOW_MS, so a drift between the clocks does not build up', () => {
    const offset = new ClockOffset();
    offset.observe(0, 1, 5000); // [4999, 5000]
    const later = OFFSET_WINDOW_MS + 10;
    expect(offset.observe(later, later + 50, later + 5020)).to.deep.equal({
      lo: 4970,
      hi: 5020,
    });
  });

  it(`keeps at most OFFSET_SAMPLES (${OFFSET_SAMPLES}) exchanges, the newest`, () => {
    const offset = new ClockOffset();
    offset.observe(0, 1, 5000); // the prompt one, [4999, 5000]
    let bounds = { lo: 0, hi: 0 };
    for (let i = 1; i <= OFFSET_SAMPLES; i += 1) bounds = offset.observe(i, i + 20, i + 5010);
    // The prompt exchange fell out: what is left are the 20-ms ones, [4990, 5010] each.
    expect(bounds).to.deep.equal({ lo: 4990, hi: 5010 });
  });

  it('throws on an exchange answered before it was sent: a bug of its caller', () => {
    expect(() => new ClockOffset().observe(10, 9, 0)).to.throw(RangeError);
  });
});
