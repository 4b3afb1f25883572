import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { describeProblems, loadConfig } from '../../../src/adapters/config/config.js';

const DB = 'postgres://postgres@127.0.0.1:5432/email';
const AMQP = 'amqp://guest:guest@127.0.0.1:5672';

describe('Configuration: CONFIRM_DEADLINE', () => {
  const deadline = (value?: string): number => {
    const config = loadConfig(value === undefined ? {} : { CONFIRM_DEADLINE: value }, 'dev');
    if (E.isLeft(config)) return expect.fail(describeProblems(config.left));
    return config.right.confirmDeadlineMs;
  };

  it('is an hour unless set, and reads durations as RETRY_DELAYS does', () => {
    expect(deadline()).to.equal(3_600_000);
    expect(deadline('')).to.equal(3_600_000);
    expect(['30s', '15m', '1h', ' 2h ', '1500ms', '168h'].map(deadline)).to.deep.equal([
      30_000, 900_000, 3_600_000, 7_200_000, 1500, 604_800_000,
    ]);
  });

  it('reports a bad value with the other problems, naming what it takes', () => {
    for (const bad of ['soon', '1h,2h', '0s', '999ms', '169h', '-1m', '1d']) {
      const result = loadConfig({ CONFIRM_DEADLINE: bad, PORT: 'x' }, 'worker');
      if (E.isRight(result)) expect.fail(`accepted CONFIRM_DEADLINE=${bad}`);
      const problems = Object.fromEntries(result.left.map((p) => [p.variable, p.message]));
      expect(Object.keys(problems).sort(), bad).to.deep.equal([
        'AMQP_URL',
        'CONFIRM_DEADLINE',
        'DATABASE_URL',
        'PORT',
      ]);
      expect(problems.CONFIRM_DEADLINE).to.equal(
        `must be one duration such as 30s, 15m or 1h, from 1s to 168h (7 days) (got "${bad}")`,
      );
    }
  });

  it('applies to every role that sends', () => {
    const worker = loadConfig(
      { CONFIRM_DEADLINE: '2s', AMQP_URL: AMQP, DATABASE_URL: DB },
      'worker',
    );
    expect(E.isRight(worker) && worker.right.confirmDeadlineMs).to.equal(2000);
  });
});
