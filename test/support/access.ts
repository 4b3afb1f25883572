// Guarded access for in-process HTTP tests: the real use cases over the in-memory stores.
import * as E from 'fp-ts/lib/Either.js';
import { ApiKeys } from '../../src/application/api-keys.js';
import { Operators } from '../../src/application/operators.js';
import type { Scope } from '../../src/application/ports/api-key-store.js';
import type { Clock, Logger } from '../../src/application/ports/system.js';
import type { Argon2Cost } from '../../src/adapters/crypto/argon2-password-hasher.js';
import { Argon2PasswordHasher } from '../../src/adapters/crypto/argon2-password-hasher.js';
import { NodeSecretTokens } from '../../src/adapters/crypto/node-secret-tokens.js';
import type { AccessPolicy } from '../../src/adapters/http/access.js';
import type { HttpDeps } from '../../src/adapters/http/app.js';
import {
  InMemoryApiKeyStore,
  InMemoryOperatorStore,
  InMemorySessionStore,
} from '../../src/adapters/memory/in-memory-auth-stores.js';
import { memoryRateLimiter } from '../../src/adapters/ratelimit/flexible-rate-limiter.js';
import { systemClock } from '../../src/adapters/system/system.js';
import { RecordingLogger } from './fakes.js';

/** Cheap argon2id: the parameters are the adapter's business, tests only need it to be argon2id. */
export const TEST_ARGON2_COST: Argon2Cost = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

export const SESSION_SECRET = Buffer.from('session-secret-session-secret-se');

export interface AccessFixture {
  readonly policy: AccessPolicy;
  readonly apiKeys: ApiKeys;
  readonly operators: Operators;
  readonly keyStore: InMemoryApiKeyStore;
  readonly log: RecordingLogger;
  /** What `createHttpApp` needs besides its usual dependencies to be guarded. */
  readonly deps: Pick<HttpDeps, 'access' | 'sessionSecret'>;
  /** A new key with `scopes`, as `email api-keys create` makes it. */
  key(name: string, scopes?: readonly Scope[]): Promise<string>;
  /** A new operator, as `email users add` makes one. */
  operator(name: string, password: string): Promise<void>;
}

export interface AccessOptions {
  /** RATE_LIMIT per window (default: far above any test). */
  readonly limit?: number;
  readonly windowMs?: number;
  readonly environmentKeys?: readonly string[];
  readonly clock?: Clock;
  readonly log?: Logger;
  /** The cost of a password hash (default: far cheaper than production's). */
  readonly argon2Cost?: Argon2Cost;
}

export function guardedAccess(options: AccessOptions = {}): AccessFixture {
  const log = new RecordingLogger();
  const clock = options.clock ?? systemClock;
  const tokens = new NodeSecretTokens();
  const keyStore = new InMemoryApiKeyStore();
  const operatorStore = new InMemoryOperatorStore();
  const apiKeys = new ApiKeys({
    store: keyStore,
    tokens,
    clock,
    log: options.log ?? log,
    environmentKeys: options.environmentKeys ?? [],
  });
  const operators = new Operators({
    operators: operatorStore,
    sessions: new InMemorySessionStore(operatorStore),
    hasher: new Argon2PasswordHasher(options.argon2Cost ?? TEST_ARGON2_COST),
    tokens,
    clock,
    log: options.log ?? log,
    failures: memoryRateLimiter({ keyPrefix: 'sign-in-failures', limit: 5, windowMs: 60_000 }),
  });
  const policy: AccessPolicy = {
    mode: 'guarded',
    apiKeys,
    operators,
    requests: memoryRateLimiter({
      keyPrefix: 'requests',
      limit: options.limit ?? 1_000_000,
      windowMs: options.windowMs ?? 60_000,
    }),
    log: options.log ?? log,
  };
  return {
    policy,
    apiKeys,
    operators,
    keyStore,
    log,
    deps: { access: policy, sessionSecret: SESSION_SECRET },
    async key(name, scopes = ['send', 'read', 'admin']) {
      const created = await apiKeys.create(name, scopes)();
      if (E.isLeft(created)) throw new Error(`could not create key ${name}: ${created.left._tag}`);
      return created.right.key;
    },
    async operator(name, password) {
      const added = await operators.add(name, password)();
      if (E.isLeft(added)) throw new Error(`could not add ${name}: ${added.left._tag}`);
    },
  };
}
