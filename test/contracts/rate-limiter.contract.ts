// One suite for every RateLimiter: `limit` requests per fixed window and key, counted where every
// server sees them; `peek` counts nothing; a window ends `windowMs` after its first request.
import { expect } from 'chai';
import type { RateLimitState, RateLimiter } from '../../src/application/ports/rate-limiter.js';
import { anId } from '../support/builders.js';
import { eventually } from '../support/waiting.js';
import { right } from './email-log.contract.js';

export interface LimiterSettings {
  readonly keyPrefix: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateLimiterFixture {
  /**
   * A limiter with these settings, and `peer`: the limiter another server builds with the same
   * settings on its own connections (in memory, the same one).
   */
  limiters(settings: LimiterSettings): {
    readonly limiter: RateLimiter;
    readonly peer: RateLimiter;
  };
  close(): Promise<void>;
}

/** Long enough that no window of these tests ends by accident on a slow machine. */
const MINUTE = 60_000;
/** The shortest window a limiter takes: for the one test that waits for a window to end. */
const SECOND = 1000;

const aKey = (): string => `client-${anId('rl')}`;

/** Asserts the shape every state has, and returns it for the rest. */
function inWindow(state: RateLimitState, windowMs: number): RateLimitState {
  expect(state.resetMs, 'resetMs').to.be.above(0).and.at.most(windowMs);
  expect(state.remaining, 'remaining').to.be.at.least(0).and.at.most(state.limit);
  return state;
}

export function rateLimiterContract(name: string, open: () => Promise<RateLimiterFixture>): void {
  describe(`${name} honours the RateLimiter contract`, function () {
    this.timeout(30_000);
    let fx: RateLimiterFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const settings = (limit: number, windowMs = MINUTE, keyPrefix = 'api'): LimiterSettings => ({
      keyPrefix,
      limit,
      windowMs,
    });
    const consume = async (limiter: RateLimiter, key: string) =>
      inWindow(await right(limiter.consume(key)), limiter.windowMs);
    const peek = async (limiter: RateLimiter, key: string) =>
      inWindow(await right(limiter.peek(key)), limiter.windowMs);
    const counts = (states: readonly RateLimitState[]) =>
      states.map((s) => ({ allowed: s.allowed, remaining: s.remaining }));

    it('says what it was built with', () => {
      const { limiter } = fx.limiters(settings(7, 3000));
      expect({ limit: limiter.limit, windowMs: limiter.windowMs }).to.deep.equal({
        limit: 7,
        windowMs: 3000,
      });
    });

    it('allows `limit` requests in a window, then refuses with none remaining', async () => {
      const { limiter } = fx.limiters(settings(3));
      const key = aKey();
      const states: RateLimitState[] = [];
      for (let i = 0; i < 5; i += 1) states.push(await consume(limiter, key));
      expect(counts(states)).to.deep.equal([
        { allowed: true, remaining: 2 },
        { allowed: true, remaining: 1 },
        { allowed: true, remaining: 0 },
        { allowed: false, remaining: 0 },
        { allowed: false, remaining: 0 },
      ]);
      expect(states.every((s) => s.limit === 3)).to.equal(true);
      // The window began with the first request: its end is about a window away, and fixed.
      expect(states[0]!.resetMs).to.be.above(MINUTE - 5000);
      expect(states[4]!.resetMs).to.be.at.most(states[0]!.resetMs);
    });

    it('counts each key apart', async () => {
      const { limiter } = fx.limiters(settings(2));
      const [busy, quiet] = [aKey(), aKey()];
      for (let i = 0; i < 3; i += 1) await consume(limiter, busy);
      expect(await consume(limiter, busy)).to.include({ allowed: false, remaining: 0 });
      expect(await consume(limiter, quiet)).to.include({ allowed: true, remaining: 1 });
    });

    it('counts limiters with different prefixes apart, even for one key', async () => {
      const api = fx.limiters(settings(1, MINUTE, 'api')).limiter;
      const signIn = fx.limiters(settings(1, MINUTE, 'sign-in')).limiter;
      const key = aKey();
      expect(await consume(api, key)).to.include({ allowed: true });
      expect(await consume(api, key)).to.include({ allowed: false });
      expect(await consume(signIn, key)).to.include({ allowed: true, remaining: 0 });
    });

    it('counts a key of any length, each apart (a user name is chosen by the client)', async () => {
      const { limiter } = fx.limiters(settings(1));
      const long = `${'x'.repeat(1000)}-${anId('long')}`;
      expect(await consume(limiter, `${long}-a`)).to.include({ allowed: true });
      expect(await consume(limiter, `${long}-a`)).to.include({ allowed: false });
      expect(await consume(limiter, `${long}-b`)).to.include({ allowed: true });
      expect(await peek(limiter, `${long}-a`)).to.include({ allowed: false, remaining: 0 });
    });

    it('shares the counts with every server', async () => {
      const { limiter, peer } = fx.limiters(settings(4));
      const key = aKey();
      await consume(limiter, key);
      await consume(peer, key);
      expect(await consume(limiter, key)).to.include({ allowed: true, remaining: 1 });
      expect(await consume(peer, key)).to.include({ allowed: true, remaining: 0 });
      expect(await consume(limiter, key)).to.include({ allowed: false, remaining: 0 });
      expect(await peek(peer, key)).to.include({ allowed: false, remaining: 0 });
    });

    it('allows exactly `limit` of twenty requests racing on two servers', async () => {
      const { limiter, peer } = fx.limiters(settings(10));
      const key = aKey();
      const calls = Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? limiter : peer).consume(key),
      );
      const states = await Promise.all(calls.map((call) => right(call)));
      expect(states.filter((s) => s.allowed)).to.have.length(10);
      expect(
        states
          .filter((s) => s.allowed)
          .map((s) => s.remaining)
          .sort((a, b) => a - b),
      ).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(states.filter((s) => !s.allowed).every((s) => s.remaining === 0)).to.equal(true);
    });

    it('peeks without counting: a whole window for a new key, then what is left', async () => {
      const { limiter, peer } = fx.limiters(settings(2));
      const key = aKey();
      const whole = { allowed: true, limit: 2, remaining: 2, resetMs: MINUTE };
      expect(await peek(limiter, key)).to.deep.equal(whole);
      expect(await peek(peer, key)).to.deep.equal(whole);
      expect(await peek(limiter, key)).to.deep.equal(whole);

      expect(await consume(limiter, key)).to.include({ allowed: true, remaining: 1 });
      for (let i = 0; i < 3; i += 1) {
        expect(await peek(peer, key)).to.include({ allowed: true, remaining: 1, limit: 2 });
      }
      expect(await consume(peer, key)).to.include({ allowed: true, remaining: 0 });
      // Nothing left: one more would be refused, and peeking does not make it worse.
      expect(await peek(limiter, key)).to.include({ allowed: false, remaining: 0 });
      expect(await peek(limiter, key)).to.include({ allowed: false, remaining: 0 });
    });

    it('starts a new window once the old one has ended', async () => {
      const { limiter, peer } = fx.limiters(settings(2, SECOND));
      const key = aKey();
      const first = await consume(limiter, key);
      await consume(peer, key);
      const refused = await consume(limiter, key);
      expect(refused).to.include({ allowed: false, remaining: 0 });
      expect(refused.resetMs).to.be.at.most(first.resetMs);

      const whole = { allowed: true, limit: 2, remaining: 2, resetMs: SECOND };
      // Polled, not slept through: the test goes on the moment the window has ended.
      await eventually(
        async () => {
          expect(await peek(peer, key)).to.deep.equal(whole);
          return true;
        },
        { what: 'the window to end', timeoutMs: 5000 },
      );
      expect(await peek(limiter, key)).to.deep.equal(whole);
      const again = await consume(limiter, key);
      expect(again).to.include({ allowed: true, remaining: 1 });
      expect(again.resetMs).to.be.above(SECOND / 2);
    });
  });
}
