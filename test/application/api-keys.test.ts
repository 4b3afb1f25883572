import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import type * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import {
  API_KEY_PATTERN,
  ApiKeys,
  KEY_CACHE_MS,
  TOUCH_EVERY_MS,
} from '../../src/application/api-keys.js';
import type {
  ApiKeyRecord,
  ApiKeyStore,
  Scope,
} from '../../src/application/ports/api-key-store.js';
import type { StoreUnavailable } from '../../src/application/ports/email-log.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import { NodeSecretTokens } from '../../src/adapters/crypto/node-secret-tokens.js';
import { InMemoryApiKeyStore } from '../../src/adapters/memory/in-memory-auth-stores.js';
import { RecordingLogger, fixedClock, switchable } from '../support/fakes.js';
import { eventually } from '../support/waiting.js';

const ENVIRONMENT_KEY = 'env-key-0123456789-abcdefghij-SECRET';
const HOME = '192.0.2.10';
const ELSEWHERE = '198.51.100.7';

/**
 * The real in-memory store, counting the look-ups and touches that reach it: what a cache is
 * for is the round trips it saves, and a touch is a write the store would have to take.
 */
class CountingKeyStore implements ApiKeyStore {
  finds = 0;
  readonly touches: Date[] = [];
  /** Only the background writes (`touch`, `noteAddress`) fail while set. */
  bookkeepingDown = false;
  constructor(private readonly inner: ApiKeyStore) {}
  create(record: ApiKeyRecord) {
    return this.inner.create(record);
  }
  find(keyId: string): TE.TaskEither<StoreUnavailable, O.Option<ApiKeyRecord>> {
    this.finds += 1;
    return this.inner.find(keyId);
  }
  list() {
    return this.inner.list();
  }
  revoke(name: string, at: Date) {
    return this.inner.revoke(name, at);
  }
  touch(keyId: string, at: Date) {
    this.touches.push(at);
    if (this.bookkeepingDown) return TE.left(storeUnavailable('the database is away (test)'));
    return this.inner.touch(keyId, at);
  }
  noteAddress(keyId: string, address: string, at: Date) {
    if (this.bookkeepingDown) return TE.left(storeUnavailable('the database is away (test)'));
    return this.inner.noteAddress(keyId, address, at);
  }
}

function setup() {
  const clock = fixedClock('2030-05-06T07:08:09.000Z');
  const log = new RecordingLogger();
  const memory = new InMemoryApiKeyStore();
  const outage = switchable<ApiKeyStore>(memory);
  const store = new CountingKeyStore(outage.store);
  const apiKeys = new ApiKeys({
    store,
    tokens: new NodeSecretTokens(),
    clock,
    log,
    environmentKeys: [ENVIRONMENT_KEY],
  });
  return {
    clock,
    log,
    memory,
    outage,
    store,
    apiKeys,
    async create(name: string, scopes: readonly Scope[] = ['send', 'read', 'admin']) {
      const created = await apiKeys.create(name, scopes)();
      if (E.isLeft(created)) throw new Error(`could not create ${name}: ${created.left._tag}`);
      return created.right;
    },
    async live(): Promise<readonly ApiKeyRecord[]> {
      const listed = await memory.list()();
      if (E.isLeft(listed)) throw new Error(listed.left.reason);
      return listed.right;
    },
    audits: (kind: string) =>
      log.lines.filter((l) => (l.fields as { audit?: string }).audit === kind),
  };
}

/** The secret part: after `em_`, the 12-character id and `_` (either may hold `_` too). */
const secretOf = (key: string): string => key.slice(16);

describe('ApiKeys', () => {
  describe('create', () => {
    it('makes em_, a 12-character id, _ and a 43-character secret, and stores only its SHA-256', async () => {
      const s = setup();
      const { key, record } = await s.create('ci-deploy', ['read', 'send']);

      expect(key).to.match(/^em_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$/);
      expect(key).to.match(API_KEY_PATTERN);
      expect(Buffer.from(secretOf(key), 'base64url')).to.have.length(32);
      expect(record).to.deep.include({
        name: 'ci-deploy',
        prefix: key.slice(0, 15),
        keyId: key.slice(3, 15),
        scopes: ['send', 'read'],
        createdAt: s.clock.now(),
      });

      const stored = await s.live();
      expect(stored).to.have.length(1);
      expect(stored[0]?.digest).to.equal(createHash('sha256').update(key).digest('hex'));
      // Nowhere in the store, in any form a copy of it would show.
      const everything = inspect(s.memory, { depth: Infinity }) + JSON.stringify(stored);
      expect(everything).not.to.include(secretOf(key));
      expect(everything).not.to.include(Buffer.from(key).toString('base64'));
      expect(s.log.text()).not.to.include(secretOf(key));
    });

    it('makes a different key each time', async () => {
      const s = setup();
      const a = await s.create('one');
      const b = await s.create('two');
      expect(a.key).not.to.equal(b.key);
      expect(a.record.keyId).not.to.equal(b.record.keyId);
    });

    it('refuses names a person could not type or tell apart, and keys without a scope', async () => {
      const s = setup();
      for (const name of [
        '',
        ' ci',
        '-ci',
        '.ci',
        'ci deploy',
        'ci/deploy',
        'ké',
        'a'.repeat(65),
      ]) {
        const refused = await s.apiKeys.create(name, ['send'])();
        if (E.isRight(refused)) expect.fail(`accepted ${JSON.stringify(name)}`);
        expect(refused.left._tag).to.equal('InvalidKeyRequest');
        expect('message' in refused.left && refused.left.message).to.match(
          /^a key name is 1 to 64/,
        );
      }
      const scopeless = await s.apiKeys.create('ci', [])();
      expect(scopeless).to.deep.equal(
        E.left({ _tag: 'InvalidKeyRequest', message: 'a key needs at least one scope' }),
      );
      expect(await s.live()).to.deep.equal([]);
      expect(E.isRight(await s.apiKeys.create('a'.repeat(64), ['send'])())).to.equal(true);
    });

    it('keeps the name API_KEYS for the keys of the setting, which share its count and log lines', async () => {
      const s = setup();
      const refused = await s.apiKeys.create('API_KEYS', ['read'])();
      expect(E.isLeft(refused) && refused.left).to.deep.include({ _tag: 'InvalidKeyRequest' });
      expect(await s.live()).to.deep.equal([]);
    });

    it('refuses a name a live key has (KeyNameTaken), and gives it again once that key is revoked', async () => {
      const s = setup();
      const first = await s.create('ci');
      expect(await s.apiKeys.create('ci', ['read'])()).to.deep.equal(
        E.left({ _tag: 'KeyNameTaken', name: 'ci' }),
      );
      expect(await s.apiKeys.revoke('ci')()).to.deep.equal(E.right(true));
      const second = await s.create('ci', ['read']);
      expect(second.key).not.to.equal(first.key);
      expect((await s.live()).map((r) => r.keyId)).to.deep.equal([second.record.keyId]);
    });
  });

  describe('authenticate', () => {
    it('knows a valid key by its name and scopes', async () => {
      const s = setup();
      const { key, record } = await s.create('reporter', ['read']);
      expect(await s.apiKeys.authenticate(key, 'read', HOME)()).to.deep.equal(
        E.right({ _tag: 'Key', id: record.keyId, name: 'reporter', scopes: ['read'] }),
      );
    });

    it('refuses an unknown id, the right id with a wrong secret, and anything malformed alike', async () => {
      const s = setup();
      const { key } = await s.create('ci');
      const otherSecret = new NodeSecretTokens().random(32);
      const refused = [
        `em_${'A'.repeat(12)}_${secretOf(key)}`,
        `${key.slice(0, 16)}${otherSecret}`,
        `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`,
        `${key}x`,
        key.slice(0, -1),
        `EM_${key.slice(3)}`,
        ` ${key}`,
        'em_short_key',
        ENVIRONMENT_KEY.slice(0, -1),
        '',
        undefined,
      ];
      for (const presented of refused) {
        expect(
          await s.apiKeys.authenticate(presented, 'send', HOME)(),
          String(presented),
        ).to.deep.equal(E.left({ _tag: 'Unauthenticated' }));
      }
      // The real key still works: none of the above spoiled it.
      expect(E.isRight(await s.apiKeys.authenticate(key, 'send', HOME)())).to.equal(true);
    });

    it('refuses a revoked key once KEY_CACHE_MS has passed since it was last looked up', async () => {
      const s = setup();
      const { key } = await s.create('leaked');
      expect(E.isRight(await s.apiKeys.authenticate(key, 'send', HOME)())).to.equal(true);
      expect(await s.apiKeys.revoke('leaked')()).to.deep.equal(E.right(true));

      s.clock.advance(KEY_CACHE_MS);
      expect(await s.apiKeys.authenticate(key, 'send', HOME)()).to.deep.equal(
        E.left({ _tag: 'Unauthenticated' }),
      );
      expect(await s.apiKeys.revoke('leaked')()).to.deep.equal(E.right(false));
    });

    it('answers MissingScope, naming the key and the scope, for a live key without the scope', async () => {
      const s = setup();
      const { key } = await s.create('sender', ['send']);
      for (const scope of ['read', 'admin'] as const) {
        expect(await s.apiKeys.authenticate(key, scope, HOME)()).to.deep.equal(
          E.left({ _tag: 'MissingScope', name: 'sender', scope }),
        );
      }
    });

    it('gives an API_KEYS key every scope, without asking the store', async () => {
      const s = setup();
      s.outage.down = true;
      for (const scope of ['send', 'read', 'admin'] as const) {
        expect(await s.apiKeys.authenticate(ENVIRONMENT_KEY, scope, HOME)()).to.deep.equal(
          E.right({
            _tag: 'Key',
            id: `env:${createHash('sha256').update(ENVIRONMENT_KEY).digest('hex').slice(0, 16)}`,
            name: 'API_KEYS',
            scopes: ['send', 'read', 'admin'],
          }),
        );
      }
      expect(s.store.finds).to.equal(0);
    });

    it('answers StoreUnavailable when the store does not, and checks again once it is back', async () => {
      const s = setup();
      const { key } = await s.create('ci');
      s.outage.down = true;
      const down = await s.apiKeys.authenticate(key, 'send', HOME)();
      expect(down).to.deep.include({ _tag: 'Left' });
      if (E.isLeft(down)) expect(down.left._tag).to.equal('StoreUnavailable');

      // A failed look-up is not remembered as "no such key".
      s.outage.down = false;
      expect(E.isRight(await s.apiKeys.authenticate(key, 'send', HOME)())).to.equal(true);
    });
  });

  describe('the look-up cache', () => {
    it('asks the store once per key within KEY_CACHE_MS, and again after it', async () => {
      const s = setup();
      const { key } = await s.create('ci');
      await s.apiKeys.authenticate(key, 'send', HOME)();
      expect(s.store.finds).to.equal(1);

      s.clock.advance(KEY_CACHE_MS - 1);
      expect(E.isRight(await s.apiKeys.authenticate(key, 'read', ELSEWHERE)())).to.equal(true);
      expect(s.store.finds).to.equal(1);

      s.clock.advance(1);
      await s.apiKeys.authenticate(key, 'send', HOME)();
      expect(s.store.finds).to.equal(2);
    });

    it('remembers an unknown id too, and never asks the store about a malformed key', async () => {
      const s = setup();
      const unknown = `em_${'B'.repeat(12)}_${'C'.repeat(43)}`;
      await s.apiKeys.authenticate(unknown, 'send', HOME)();
      await s.apiKeys.authenticate(unknown, 'send', HOME)();
      expect(s.store.finds).to.equal(1);
      await s.apiKeys.authenticate('em_not-a-key', 'send', HOME)();
      await s.apiKeys.authenticate('Basic dXNlcjpwYXNz', 'send', HOME)();
      expect(s.store.finds).to.equal(1);
    });

    it('does not let a cached record stand in for a different secret with the same id', async () => {
      const s = setup();
      const { key } = await s.create('ci');
      await s.apiKeys.authenticate(key, 'send', HOME)();
      const forged = `${key.slice(0, 16)}${new NodeSecretTokens().random(32)}`;
      expect(await s.apiKeys.authenticate(forged, 'send', HOME)()).to.deep.equal(
        E.left({ _tag: 'Unauthenticated' }),
      );
    });
  });

  describe('bookkeeping and audit lines', () => {
    it('logs the creation and the revocation with the name and scopes, never the key', async () => {
      const s = setup();
      const { key } = await s.create('ci', ['send']);
      await s.apiKeys.revoke('ci')();
      await s.apiKeys.revoke('ci')();
      expect(s.audits('api-key-created').map((l) => l.fields)).to.deep.equal([
        { audit: 'api-key-created', key: 'ci', scopes: ['send'] },
      ]);
      // Once: the second revoke found nothing to revoke.
      expect(s.audits('api-key-revoked').map((l) => l.fields)).to.deep.equal([
        { audit: 'api-key-revoked', key: 'ci' },
      ]);
      expect(s.log.text()).not.to.include(secretOf(key));
      expect(s.log.text()).not.to.include(key.slice(0, 16));
    });

    it("logs a key's first use from each address once, whoever looked, and never the key", async () => {
      const s = setup();
      const { key } = await s.create('ci', ['send']);
      // A second server on the same store: the store, not the process, knows what is new.
      const other = new ApiKeys({
        store: s.store,
        tokens: new NodeSecretTokens(),
        clock: s.clock,
        log: s.log,
      });
      await s.apiKeys.authenticate(key, 'send', HOME)();
      s.clock.advance(KEY_CACHE_MS);
      await s.apiKeys.authenticate(key, 'send', HOME)();
      await other.authenticate(key, 'send', HOME)();
      // A use without the scope is still a use of the key from there.
      await s.apiKeys.authenticate(key, 'admin', ELSEWHERE)();

      const seen = () => s.audits('api-key-new-address').map((l) => l.fields);
      await eventually(() => seen().length === 2, { what: 'the line for the second address' });
      expect(seen()).to.deep.equal([
        { audit: 'api-key-new-address', key: 'ci', address: HOME },
        { audit: 'api-key-new-address', key: 'ci', address: ELSEWHERE },
      ]);
      expect(s.log.text()).not.to.include(secretOf(key));
    });

    it('writes "last used" at most once per TOUCH_EVERY_MS per key', async () => {
      const s = setup();
      const { key } = await s.create('ci');
      const start = s.clock.now();
      const lastUsed = async () => (await s.live())[0]?.lastUsedAt;

      await s.apiKeys.authenticate(key, 'send', HOME)();
      expect(await eventually(lastUsed)).to.deep.equal(start);

      for (const step of [KEY_CACHE_MS, 20_000, TOUCH_EVERY_MS - 20_000 - KEY_CACHE_MS - 1]) {
        s.clock.advance(step);
        await s.apiKeys.authenticate(key, 'send', HOME)();
      }
      expect(s.store.touches).to.deep.equal([start]);

      s.clock.advance(1);
      const later = s.clock.now();
      await s.apiKeys.authenticate(key, 'read', HOME)();
      expect(s.store.touches).to.deep.equal([start, later]);
      await eventually(async () => expect(await lastUsed()).to.deep.equal(later));
    });

    it('answers the request when the bookkeeping fails, logs why, and notes the address later', async () => {
      const s = setup();
      const { key } = await s.create('ci');
      s.store.bookkeepingDown = true;
      expect(E.isRight(await s.apiKeys.authenticate(key, 'send', HOME)())).to.equal(true);
      await eventually(() => s.log.lines.filter((l) => l.level === 'warn').length === 2, {
        what: 'a warning for the touch and one for the address',
      });
      expect(s.audits('api-key-new-address')).to.deep.equal([]);

      // The address was not recorded, so a later use records it.
      s.store.bookkeepingDown = false;
      await s.apiKeys.authenticate(key, 'send', HOME)();
      await eventually(() => s.audits('api-key-new-address').length === 1);
      expect(s.log.text()).not.to.include(secretOf(key));
    });
  });
});
