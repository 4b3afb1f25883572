import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../src/application/ports/email-log.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { Watchdog } from '../../src/main/watchdog.js';
import { startWatchdog, watchdogEveryMs } from '../../src/main/watchdog.js';
import { RecordingLogger } from '../support/fakes.js';
import { eventually } from '../support/waiting.js';

/** A sweep that answers what the test scripts, one answer a sweep, then 0; counts its runs. */
function scripted(answers: E.Either<StoreUnavailable, number>[]) {
  const state = { runs: 0 };
  const watch = {
    deadlineMs: 3_600_000,
    sweep: (): TE.TaskEither<StoreUnavailable, number> => async () => {
      state.runs += 1;
      return answers.shift() ?? E.right(0);
    },
  };
  return { state, watch };
}

describe('startWatchdog (the sweeps for unconfirmed emails)', () => {
  let watchdog: Watchdog | undefined;
  afterEach(async () => {
    await watchdog?.stop();
    watchdog = undefined;
  });

  it('sweeps a quarter of the deadline apart, at most a minute and at least a second', () => {
    expect(
      [3_600_000, 900_000, 240_000, 60_000, 2000, 1000].map((deadline) =>
        watchdogEveryMs(deadline),
      ),
    ).to.deep.equal([60_000, 60_000, 60_000, 15_000, 1000, 1000]);
  });

  it('sweeps at start and again, and warns when a sweep flagged emails', async () => {
    const { state, watch } = scripted([E.right(0), E.right(2), E.right(1)]);
    const log = new RecordingLogger();
    watchdog = startWatchdog(watch, log, { everyMs: 5 });
    await eventually(() => state.runs >= 4);
    expect(log.lines.slice(0, 2).map((l) => [l.level, l.message, l.fields])).to.deep.equal([
      [
        'warn',
        '2 emails sent with no provider report on any recipient within 1h',
        { unconfirmed: 2, deadline: '1h' },
      ],
      [
        'warn',
        '1 email sent with no provider report on any recipient within 1h',
        { unconfirmed: 1, deadline: '1h' },
      ],
    ]);
  });

  it('says once that the log cannot be read, and once that it can again', async () => {
    const down = E.left(storeUnavailable('the database is not reachable (test)'));
    const { state, watch } = scripted([down, down, down, E.right(0)]);
    const log = new RecordingLogger();
    watchdog = startWatchdog(watch, log, { everyMs: 5 });
    await eventually(() => state.runs >= 5);
    expect(log.lines.map((l) => [l.level, l.message])).to.deep.equal([
      ['warn', 'Unconfirmed emails cannot be looked for; trying again'],
      ['info', 'Unconfirmed emails can be looked for again'],
    ]);
  });

  it('does not sweep while the database is away', async () => {
    const { state, watch } = scripted([]);
    let ready = false;
    let asked = 0;
    watchdog = startWatchdog(watch, new RecordingLogger(), {
      everyMs: 5,
      ready: () => {
        asked += 1;
        return ready;
      },
    });
    await eventually(() => asked >= 3);
    expect(state.runs).to.equal(0);
    ready = true;
    await eventually(() => state.runs >= 1);
  });

  it('logs a bug as an error and goes on', async () => {
    let runs = 0;
    const watch = {
      deadlineMs: 60_000,
      sweep: (): TE.TaskEither<StoreUnavailable, number> => async () => {
        runs += 1;
        if (runs === 1) throw new Error('a bug');
        return E.right(0);
      },
    };
    const log = new RecordingLogger();
    watchdog = startWatchdog(watch, log, { everyMs: 5 });
    await eventually(() => runs >= 2);
    expect(log.lines.map((l) => [l.level, l.message])).to.deep.equal([
      ['error', 'Looking for unconfirmed emails failed'],
    ]);
  });

  it('stops after the sweep in flight', async () => {
    let runs = 0;
    let finish: () => void = () => undefined;
    const watch = {
      deadlineMs: 60_000,
      sweep: (): TE.TaskEither<StoreUnavailable, number> => async () => {
        runs += 1;
        await new Promise<void>((resolve) => (finish = resolve));
        return E.right(0);
      },
    };
    const stopping = startWatchdog(watch, new RecordingLogger(), { everyMs: 5 });
    await eventually(() => runs === 1);
    const stop = stopping.stop().then(() => 'stopped');
    // The sweep has not finished, so the stop cannot have.
    expect(await Promise.race([stop, Promise.resolve('waiting')])).to.equal('waiting');
    finish();
    expect(await stop).to.equal('stopped');
    expect(runs).to.equal(1);
  });
});
