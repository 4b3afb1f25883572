import { expect } from 'chai';
import { summarisedWarn } from '../../../src/adapters/logging/summarised.js';
import { RecordingLogger } from '../../support/fakes.js';

/** A clock and a timer of the test's own: time moves when the test says, timers with it. */
function manualTime() {
  let nowMs = 0;
  let timers: { at: number; work: () => void }[] = [];
  return {
    now: () => nowMs,
    schedule: (work: () => void, ms: number) => void timers.push({ at: nowMs + ms, work }),
    advance(ms: number) {
      nowMs += ms;
      const due = timers.filter((t) => t.at <= nowMs);
      timers = timers.filter((t) => t.at > nowMs);
      due.forEach((t) => t.work());
    },
  };
}

describe('summarisedWarn', () => {
  it('logs the first, then one line a period with the last fields and the count not logged', () => {
    const log = new RecordingLogger();
    const time = manualTime();
    const warn = summarisedWarn(log, 'Email request not queued', 10_000, time.now, time.schedule);
    for (let i = 0; i < 500; i += 1) {
      warn({ n: i });
      time.advance(50); // 500 refusals over 25 s
    }
    time.advance(10_000);
    expect(log.lines.map((l) => [l.level, l.message, l.fields])).to.deep.equal([
      ['warn', 'Email request not queued', { n: 0 }],
      ['warn', 'Email request not queued', { n: 199, notLogged: 199 }],
      ['warn', 'Email request not queued', { n: 399, notLogged: 200 }],
      ['warn', 'Email request not queued', { n: 499, notLogged: 100 }],
    ]);
  });

  it('logs the end of a burst and what it was even when nothing follows it', () => {
    const log = new RecordingLogger();
    const time = manualTime();
    const warn = summarisedWarn(log, 'Email request not queued', 10_000, time.now, time.schedule);
    warn({ error: 'StoreUnavailable' });
    time.advance(100);
    for (let i = 0; i < 3; i += 1) warn({ error: 'QueueUnavailable' });
    time.advance(60_000);
    expect(log.lines.map((l) => l.fields)).to.deep.equal([
      { error: 'StoreUnavailable' },
      { error: 'QueueUnavailable', notLogged: 3 },
    ]);
  });

  it('logs every occurrence that comes a period or more after the last line', () => {
    const log = new RecordingLogger();
    const time = manualTime();
    const warn = summarisedWarn(log, 'Email request not queued', 10_000, time.now, time.schedule);
    warn({ n: 1 });
    time.advance(10_000);
    warn({ n: 2 });
    expect(log.lines.map((l) => l.fields)).to.deep.equal([{ n: 1 }, { n: 2 }]);
  });
});
