// What the contract suite cannot say: the settings a factory refuses, how a store failure is
// answered, and that a limiter keeps no process alive.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  MAX_PREFIX_LENGTH,
  memoryRateLimiter,
  sqlRateLimiter,
} from '../../../src/adapters/ratelimit/flexible-rate-limiter.js';
import type { SqlClient } from '../../../src/adapters/postgres/sql-client.js';

const run = promisify(execFile);

/** A client whose every statement fails as a refused connection does. */
const refusing: SqlClient = {
  query: () =>
    Promise.reject(
      Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' }),
    ),
  transaction: () => Promise.reject(new Error('not used')),
};

describe('The rate-limiter-flexible limiters', () => {
  const factories = {
    sqlRateLimiter: (s: Parameters<typeof memoryRateLimiter>[0]) => sqlRateLimiter(refusing, s),
    memoryRateLimiter,
  };

  for (const [name, make] of Object.entries(factories)) {
    it(`${name} refuses a window that is not a whole number of seconds ≥ 1 s`, () => {
      for (const windowMs of [0, 999, 1500, -1000, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => make({ keyPrefix: 'api', limit: 5, windowMs }), String(windowMs)).to.throw(
          /whole number of seconds/,
        );
      }
      for (const windowMs of [1000, 60_000, 3_600_000]) {
        expect(make({ keyPrefix: 'api', limit: 5, windowMs }).windowMs).to.equal(windowMs);
      }
    });

    it(`${name} refuses a limit below 1 or not whole, and a prefix empty or too long`, () => {
      for (const limit of [0, -1, 2.5, Number.NaN]) {
        expect(() => make({ keyPrefix: 'api', limit, windowMs: 1000 }), String(limit)).to.throw(
          /limit must be a whole number/,
        );
      }
      for (const keyPrefix of ['', 'p'.repeat(MAX_PREFIX_LENGTH + 1)]) {
        expect(() => make({ keyPrefix, limit: 1, windowMs: 1000 })).to.throw(/keyPrefix/);
      }
      expect(
        make({ keyPrefix: 'p'.repeat(MAX_PREFIX_LENGTH), limit: 1, windowMs: 1000 }).limit,
      ).to.equal(1);
    });
  }

  it('answers StoreUnavailable in safe words when the database fails, never a rejection', async () => {
    const limiter = sqlRateLimiter(refusing, { keyPrefix: 'api', limit: 5, windowMs: 1000 });
    const unavailable = E.left({
      _tag: 'StoreUnavailable',
      reason: 'the database is not reachable (ECONNREFUSED)',
    });
    expect(await limiter.consume('client')()).to.deep.equal(unavailable);
    expect(await limiter.peek('client')()).to.deep.equal(unavailable);
  });

  it('keeps no process alive: the library’s purge timer is unref’d', async () => {
    const adapter = fileURLToPath(
      new URL('../../../src/adapters/ratelimit/flexible-rate-limiter.js', import.meta.url),
    );
    // A process that builds both limiters, counts once with each, and must then end by itself.
    const script = `
      const { sqlRateLimiter, memoryRateLimiter } = await import(process.env.LIMITER_MODULE);
      const row = { points: 1, expire: String(Date.now() + 60000) };
      const sql = { query: async () => [row], transaction: async () => undefined };
      const settings = { keyPrefix: 'api', limit: 5, windowMs: 60000 };
      const states = [
        await sqlRateLimiter(sql, settings).consume('client')(),
        await memoryRateLimiter(settings).consume('client')(),
      ];
      console.log(JSON.stringify(states.map((s) => s._tag === 'Right' && s.right.allowed)));
    `;
    const started = Date.now();
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, LIMITER_MODULE: adapter },
      timeout: 15_000,
    });
    expect(stdout.trim()).to.equal('[true,true]');
    expect(Date.now() - started).to.be.below(15_000);
  });
});
