import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { describeProblems, loadConfig } from '../../../src/adapters/config/config.js';

describe('Configuration: MAILGUN_RATE and SMTP_RATE', () => {
  const load = (env: Record<string, string>) => {
    const config = loadConfig(env, 'dev');
    if (E.isLeft(config)) return expect.fail(describeProblems(config.left));
    return config.right;
  };

  it('paces nothing by default', () => {
    expect(load({}).sendRates).to.equal(undefined);
  });

  it('reads N/s, N/min and N/h, as RATE_LIMIT does', () => {
    expect(load({ MAILGUN_RATE: '20/s' }).sendRates).to.deep.equal({
      mailgun: { limit: 20, windowMs: 1000 },
    });
    expect(load({ MAILGUN_RATE: '600/min', SMTP_RATE: '10000/h' }).sendRates).to.deep.equal({
      mailgun: { limit: 600, windowMs: 60_000 },
      smtp: { limit: 10_000, windowMs: 3_600_000 },
    });
  });

  it('says what a rate looks like when one is malformed', () => {
    const result = loadConfig({ MAILGUN_RATE: 'fast', SMTP_RATE: '0/s' }, 'worker');
    if (E.isRight(result)) return expect.fail('accepted a bad rate');
    const problems = Object.fromEntries(result.left.map((p) => [p.variable, p.message]));
    expect(problems.MAILGUN_RATE).to.equal(
      'must be a rate such as 20/s, 600/min or 10000/h (got "fast")',
    );
    expect(problems.SMTP_RATE).to.equal(
      'must be a rate such as 20/s, 600/min or 10000/h (got "0/s")',
    );
  });
});
