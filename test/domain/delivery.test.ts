import { expect } from 'chai';
import type { RetryPolicy } from '../../src/domain/delivery.js';
import {
  decide,
  formatDelay,
  parseDelays,
  permanent,
  retryDelay,
  retryStep,
  sent,
  transient,
  withJitter,
} from '../../src/domain/delivery.js';

const policy: RetryPolicy = { maxAttempts: 4, delaysMs: [1000, 5000, 30_000] };

describe('Delivery policy', () => {
  it('waits the step of each failed attempt, and repeats the last step', () => {
    expect([1, 2, 3, 4, 9].map((n) => retryDelay(policy, n))).to.deep.equal([
      1000, 5000, 30_000, 30_000, 30_000,
    ]);
  });

  it("moves a retry to the first step at least as long as the provider's Retry-After", () => {
    expect(retryDelay(policy, 1, 3000)).to.equal(5000);
    expect(retryDelay(policy, 1, 5000)).to.equal(5000);
    expect(retryDelay(policy, 2, 500)).to.equal(5000);
    expect(retryDelay(policy, 1, 3_600_000)).to.equal(30_000);
  });

  it('rounds a wait up to the shortest step at least as long, else the longest', () => {
    expect([100, 200, 300, 400, 5000].map((d) => retryStep([200, 400], d))).to.deep.equal([
      200, 200, 400, 400, 400,
    ]);
    // RETRY_DELAYS need not be in order: the rule is about length, not position.
    expect(retryStep([30_000, 1000, 5000], 3000)).to.equal(5000);
  });

  it('delivers on sent, retries on transient, gives up on permanent', () => {
    expect(decide(sent('<id@mg>'), 1, policy)).to.deep.equal({
      _tag: 'Delivered',
      providerId: '<id@mg>',
    });
    expect(decide(transient('503 from Mailgun', 2000), 1, policy)).to.deep.equal({
      _tag: 'RetryLater',
      nextAttempt: 2,
      delayMs: 5000,
      reason: '503 from Mailgun',
    });
    const gaveUp = decide(permanent('400 bad address'), 1, policy);
    expect(gaveUp._tag).to.equal('GiveUp');
    expect(gaveUp._tag === 'GiveUp' && gaveUp.reason).to.contain('400 bad address');
  });

  it('gives up when the attempts are spent, saying so', () => {
    const last = decide(transient('timeout'), 4, policy);
    expect(last._tag).to.equal('GiveUp');
    expect(last._tag === 'GiveUp' && last.reason).to.match(/out of attempts \(4 of 4\): timeout/);
    expect(decide(transient('timeout'), 3, policy)._tag).to.equal('RetryLater');
  });

  it('a single attempt means no retry at all', () => {
    expect(decide(transient('x'), 1, { maxAttempts: 1, delaysMs: [1000] })._tag).to.equal('GiveUp');
  });

  it('adds up to 20% jitter, never less than the step', () => {
    expect(withJitter(10_000, () => 0)).to.equal(10_000);
    expect(withJitter(10_000, () => 0.5)).to.equal(11_000);
    expect(withJitter(10_000, () => 0.999)).to.be.below(12_000);
  });

  it('parses and formats RETRY_DELAYS', () => {
    expect(parseDelays('1s,5s,30s,2m,10m,30m,1h')).to.deep.equal([
      1000, 5000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000,
    ]);
    expect(parseDelays('250ms, 2s')).to.deep.equal([250, 2000]);
    for (const bad of ['', '1x', '1s,,2s', '0s', '-1s', 's'])
      expect(parseDelays(bad), bad).to.equal(undefined);
    expect([1000, 120_000, 3_600_000, 250, 1500].map(formatDelay)).to.deep.equal([
      '1s',
      '2m',
      '1h',
      '250ms',
      '1500ms',
    ]);
  });
});
