import { randomBytes } from 'node:crypto';
import { ContainerModule } from 'inversify';
import type { Container } from 'inversify';
import { ApiKeys } from '../application/api-keys.js';
import { Operators } from '../application/operators.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { Argon2PasswordHasher } from '../adapters/crypto/argon2-password-hasher.js';
import { NodeSecretTokens } from '../adapters/crypto/node-secret-tokens.js';
import type { AccessPolicy } from '../adapters/http/access.js';
import { sqlRateLimiter } from '../adapters/ratelimit/flexible-rate-limiter.js';
import type { OpenDatabase } from './database.js';
import { constant, provide, resolve } from './services.js';

/** Five failed sign-ins a minute, per user name and per client address. */
const SIGN_IN_FAILURES = { keyPrefix: 'sign-in-failures', limit: 5, windowMs: 60_000 } as const;

/** The count of failed sign-ins in `database`, as every server and command sees it. */
export const signInFailures = (database: Pick<OpenDatabase, 'client'>) =>
  sqlRateLimiter(database.client, SIGN_IN_FAILURES);

/**
 * API keys, operators and the request counts, over the stores of `sqlStoresModule`: all in the
 * one database, so that every server sees a revocation, a sign-in and a count at once.
 */
export const accessModule = (config: Config, database: OpenDatabase) =>
  new ContainerModule(({ bind }) => {
    const tokens = new NodeSecretTokens();
    constant(bind, 'SecretTokens', tokens);
    constant(
      bind,
      'RequestLimiter',
      sqlRateLimiter(database.client, { keyPrefix: 'requests', ...config.rateLimit }),
    );
    constant(bind, 'SignInFailures', signInFailures(database));
    provide(bind, 'ApiKeys', ['ApiKeyStore', 'Clock', 'Logger'], (store, clock, log) => {
      return new ApiKeys({
        store,
        tokens,
        clock,
        log,
        environmentKeys: config.apiKeys.map((k) => k.reveal()),
      });
    });
    provide(
      bind,
      'Operators',
      ['OperatorStore', 'SessionStore', 'SignInFailures', 'Clock', 'Logger'],
      (operators, sessions, failures, clock, log) =>
        new Operators({
          operators,
          sessions,
          failures,
          hasher: new Argon2PasswordHasher(),
          tokens,
          clock,
          log,
        }),
    );
  });

/** The guarded policy of `email server` (and of `email dev` on a reachable address). */
export function guardedAccess(container: Container, log: Logger): AccessPolicy {
  return {
    mode: 'guarded',
    apiKeys: resolve(container, 'ApiKeys'),
    operators: resolve(container, 'Operators'),
    requests: resolve(container, 'RequestLimiter'),
    log,
  };
}

/**
 * SESSION_SECRET when set, shared by every server behind one address so a sign-in on one is
 * honoured by all; otherwise a fresh key per process, which signs everyone out at a restart.
 */
export function sessionSecret(config: Config): Buffer {
  return config.sessionSecret
    ? Buffer.from(config.sessionSecret.reveal(), 'utf8')
    : randomBytes(32);
}
