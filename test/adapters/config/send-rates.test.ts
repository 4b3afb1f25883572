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

  it('refuses a rate faster than 1000 sends a second, naming the limit', () => {
    expect(load({ MAILGUN_RATE: '1000/s', SMTP_RATE: '60000/min' }).sendRates).to.deep.equal({
      mailgun: { limit: 1000, windowMs: 1000 },
      smtp: { limit: 60_000, windowMs: 60_000 },
    });
    const result = loadConfig({ MAILGUN_RATE: '1000000/s', SMTP_RATE: '60001/min' }, 'worker');
    if (E.isRight(result)) return expect.fail('accepted a rate too fast to pace');
    const problems = Object.fromEntries(result.left.map((p) => [p.variable, p.message]));
    expect(problems.MAILGUN_RATE).to.equal(
      'must be at most 1000/s (or 60000/min): sends cannot be paced any faster (got "1000000/s")',
    );
    expect(problems.SMTP_RATE).to.match(/^must be at most 1000\/s .*\(got "60001\/min"\)$/);
  });
});
