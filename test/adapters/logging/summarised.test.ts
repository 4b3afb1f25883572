import { expect } from 'chai';
import { summarisedWarn } from '../../../src/adapters/logging/summarised.js';
import { RecordingLogger } from '../../support/fakes.js';

describe('summarisedWarn', () => {
  it('logs the first, then one line a period counting those it did not log', () => {
    const log = new RecordingLogger();
    let nowMs = 0;
    const warn = summarisedWarn(log, 'Email request not queued', 10_000, () => nowMs);
    for (let i = 0; i < 500; i += 1) {
      warn({ n: i });
      nowMs += 50; // 500 refusals over 25 s
    }
    expect(log.lines.map((l) => [l.level, l.message, l.fields])).to.deep.equal([
      ['warn', 'Email request not queued', { n: 0 }],
      ['warn', 'Email request not queued', { n: 200, notLogged: 199 }],
      ['warn', 'Email request not queued', { n: 400, notLogged: 199 }],
    ]);
  });

  it('logs every occurrence that comes a period or more after the last line', () => {
    const log = new RecordingLogger();
    let nowMs = 0;
    const warn = summarisedWarn(log, 'Email request not queued', 10_000, () => nowMs);
    warn({ n: 1 });
    nowMs = 10_000;
    warn({ n: 2 });
    expect(log.lines.map((l) => l.fields)).to.deep.equal([{ n: 1 }, { n: 2 }]);
  });
});
