// ClockOffset: bounds on the database clock's offset from this process's, from timed exchanges.
import { expect } from 'chai';
import {
  ClockOffset,
  OFFSET_SAMPLES,
  OFFSET_WINDOW_MS,
} from '../../../src/adapters/postgres/clock-offset.js';

describe('ClockOffset', () => {
  it('bounds the offset by one exchange: the remote reading was taken while it was out', () => {
    const offset = new ClockOffset();
    // Sent at 100, answered at 130 here; the remote clock read 5000 meanwhile.
    expect(offset.observe(100, 130, 5000)).to.deep.equal({ lo: 4870, hi: 4900 });
  });

  it('narrows a slow exchange by a prompt one before it', () => {
    const offset = new ClockOffset();
    offset.observe(100, 102, 5000); // offset within [4898, 4900]
    // An answer read 400 ms late (a busy event loop) says only [4500, 4902] by itself.
    expect(offset.observe(1000, 1402, 5902)).to.deep.equal({ lo: 4898, hi: 4900 });
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
    expect(offset.observe(100, 100.2, 5000)).to.deep.equal({ lo: 4899.8, hi: 4901 });
    // Read at 5000.9 and truncated to 5000: this exchange still meets the first.
    expect(offset.observe(101, 101.1, 5000)).to.deep.equal({ lo: 4899.8, hi: 4900 });
  });

  it('starts over from an exchange that no longer agrees (a clock stepped)', () => {
    const offset = new ClockOffset();
    offset.observe(100, 102, 5000);
    // The remote clock stepped back a second: [3898, 3900] meets nothing kept.
    expect(offset.observe(200, 202, 4100)).to.deep.equal({ lo: 3898, hi: 3900 });
    // And the step is what holds from then on.
    expect(offset.observe(300, 330, 4210)).to.deep.equal({ lo: 3898, hi: 3900 });
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
