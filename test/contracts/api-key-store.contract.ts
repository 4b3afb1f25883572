// One suite for every ApiKeyStore, through the rules of the port's doc comments: a revoked key is
// gone for every look-up at once and its name free again, a live name is taken, a last use never
// moves back, an address is new exactly once for all servers.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyRecord, ApiKeyStore } from '../../src/application/ports/api-key-store.js';
import { T0, anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface ApiKeyFixture {
  readonly store: ApiKeyStore;
  /** The same store as another server sees it (its own connections); in memory, the same one. */
  readonly peer: ApiKeyStore;
  close(): Promise<void>;
}

/**
 * A key record as the service makes one: a random key id, `em_` and the id as its prefix, the
 * SHA-256 of a whole key, a name no other test uses, `send` only, created at `T0`.
 */
export function anApiKey(spec: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  const keyId = spec.keyId ?? randomBytes(9).toString('base64url');
  const key = `em_${keyId}_${randomBytes(24).toString('base64url')}`;
  return {
    keyId,
    name: `key-${anId('name')}`,
    prefix: `em_${keyId}`,
    digest: createHash('sha256').update(key).digest('hex'),
    scopes: ['send'],
    createdAt: T0,
    ...spec,
  };
}

const OK = E.right(undefined);

export function apiKeyStoreContract(name: string, open: () => Promise<ApiKeyFixture>): void {
  describe(`${name} honours the ApiKeyStore contract`, function () {
    this.timeout(30_000);
    let fx: ApiKeyFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const create = (record: ApiKeyRecord, store = fx.store) => store.create(record)();
    const find = (keyId: string, store = fx.store) => right(store.find(keyId));
    const names = async (): Promise<string[]> => (await right(fx.store.list())).map((r) => r.name);

    it('finds a created key by its key id, unchanged, on every server', async () => {
      const key = anApiKey({ scopes: ['send', 'read', 'admin'] });
      expect(await create(key)).to.deep.equal(OK);
      expect(await find(key.keyId)).to.deep.equal(O.some(key));
      expect(await find(key.keyId, fx.peer)).to.deep.equal(O.some(key));
      expect(await find(anApiKey().keyId)).to.deep.equal(O.none);
    });

    it('keeps each scope set as given, in SCOPES order', async () => {
      const keys = [
        anApiKey({ scopes: ['read'] }),
        anApiKey({ scopes: ['admin'] }),
        anApiKey({ scopes: ['send', 'admin'] }),
      ];
      for (const key of keys) expect(await create(key)).to.deep.equal(OK);
      for (const key of keys) expect(await find(key.keyId)).to.deep.equal(O.some(key));
    });

    it('refuses a second live key with a taken name, from any server, and keeps the first', async () => {
      const first = anApiKey();
      await create(first);
      const second = anApiKey({ name: first.name });
      const taken = E.left({ _tag: 'KeyNameTaken', name: first.name });
      expect(await create(second)).to.deep.equal(taken);
      expect(await create(second, fx.peer)).to.deep.equal(taken);
      expect(await find(second.keyId)).to.deep.equal(O.none);
      expect(await find(first.keyId)).to.deep.equal(O.some(first));
      // Names compare exactly: another case is another name.
      expect(await create(anApiKey({ name: first.name.toUpperCase() }))).to.deep.equal(OK);
    });

    it('gives a name to exactly one of ten keys created at once on two servers', async () => {
      const name = `key-${anId('race')}`;
      const keys = Array.from({ length: 10 }, () => anApiKey({ name }));
      // Every task is made before any runs: a check made too early would let two through.
      const calls = keys.map((key, i) => (i % 2 === 0 ? fx.store : fx.peer).create(key));
      const results = await Promise.all(calls.map((call) => call()));
      expect(results.filter(E.isRight)).to.have.length(1);
      expect(results.filter(E.isLeft).map((r) => r.left)).to.deep.equal(
        Array.from({ length: 9 }, () => ({ _tag: 'KeyNameTaken', name })),
      );
      const winner = keys[results.findIndex(E.isRight)]!;
      expect((await right(fx.store.list())).filter((k) => k.name === name)).to.deep.equal([winner]);
    });

    it('refuses a second key with a key id already used, live or revoked', async () => {
      const first = anApiKey();
      await create(first);
      const again = await create(anApiKey({ keyId: first.keyId }));
      expect(E.isLeft(again) && again.left._tag).to.equal('StoreUnavailable');
      expect(await find(first.keyId)).to.deep.equal(O.some(first));
      await right(fx.store.revoke(first.name, later(1)));
      const afterRevoke = await create(anApiKey({ keyId: first.keyId }));
      expect(E.isLeft(afterRevoke) && afterRevoke.left._tag).to.equal('StoreUnavailable');
      expect(await find(first.keyId)).to.deep.equal(O.none);
    });

    it('lists every live key, oldest first', async () => {
      const newest = anApiKey({ createdAt: later(2000) });
      const oldest = anApiKey({ createdAt: later(-1000) });
      const middle = anApiKey({ createdAt: later(500) });
      const revoked = anApiKey({ createdAt: later(0) });
      for (const key of [newest, oldest, revoked, middle]) await create(key);
      await right(fx.store.revoke(revoked.name, later(3000)));
      expect(await right(fx.store.list())).to.deep.equal([oldest, middle, newest]);
      expect(await right(fx.peer.list())).to.deep.equal([oldest, middle, newest]);
    });

    it('orders keys created at the same time by key id', async () => {
      const keys = ['b-key', 'B-key', 'a-key', 'c-key'].map((id) =>
        anApiKey({ keyId: `${id}-${anId('id')}`, createdAt: T0 }),
      );
      for (const key of keys) await create(key);
      const byId = [...keys].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
      expect(await right(fx.store.list())).to.deep.equal(byId);
    });

    it('answers an empty list when there are no keys', async () => {
      expect(await right(fx.store.list())).to.deep.equal([]);
    });

    it('revokes the live key of a name at once for every look-up, on every server', async () => {
      const key = anApiKey();
      const other = anApiKey();
      await create(key);
      await create(other);
      expect(await right(fx.peer.revoke(key.name, later(1000)))).to.equal(true);
      expect(await find(key.keyId)).to.deep.equal(O.none);
      expect(await find(key.keyId, fx.peer)).to.deep.equal(O.none);
      expect(await names()).to.deep.equal([other.name]);
      // Gone for good: revoking again finds nothing, touching it changes nothing.
      expect(await right(fx.store.revoke(key.name, later(2000)))).to.equal(false);
      await right(fx.store.touch(key.keyId, later(3000)));
      expect(await find(key.keyId)).to.deep.equal(O.none);
      expect(await find(other.keyId)).to.deep.equal(O.some(other));
    });

    it('answers false for revoking a name no live key has', async () => {
      expect(await right(fx.store.revoke(`key-${anId('none')}`, T0))).to.equal(false);
    });

    it("gives a revoked key's name to a new key, and revokes only the live one", async () => {
      const old = anApiKey();
      await create(old);
      await right(fx.store.revoke(old.name, later(1)));
      const renewed = anApiKey({ name: old.name, createdAt: later(2) });
      expect(await create(renewed)).to.deep.equal(OK);
      expect(await find(renewed.keyId)).to.deep.equal(O.some(renewed));
      expect(await find(old.keyId)).to.deep.equal(O.none);
      expect(await right(fx.store.list())).to.deep.equal([renewed]);
      expect(await right(fx.store.revoke(old.name, later(3)))).to.equal(true);
      expect(await find(renewed.keyId)).to.deep.equal(O.none);
      expect(await right(fx.store.revoke(old.name, later(4)))).to.equal(false);
      // And again: any number of revoked keys may have had the name.
      expect(await create(anApiKey({ name: old.name }))).to.deep.equal(OK);
    });

    it('sets the last use with touch and never moves it back, from any server', async () => {
      const key = anApiKey();
      await create(key);
      await right(fx.store.touch(key.keyId, later(5000)));
      expect(await find(key.keyId)).to.deep.equal(O.some({ ...key, lastUsedAt: later(5000) }));
      await right(fx.peer.touch(key.keyId, later(4000)));
      expect(await find(key.keyId)).to.deep.equal(O.some({ ...key, lastUsedAt: later(5000) }));
      await right(fx.peer.touch(key.keyId, later(6000)));
      expect(await find(key.keyId)).to.deep.equal(O.some({ ...key, lastUsedAt: later(6000) }));
      expect((await right(fx.store.list()))[0]).to.deep.equal({ ...key, lastUsedAt: later(6000) });
    });

    it('keeps the latest of many touches racing on two servers', async () => {
      const key = anApiKey();
      await create(key);
      const times = [7, 3, 9, 1, 8, 2, 6, 4, 5, 0].map((s) => later(s * 1000));
      const calls = times.map((at, i) => (i % 2 === 0 ? fx.store : fx.peer).touch(key.keyId, at));
      await Promise.all(calls.map((call) => right(call)));
      expect(await find(key.keyId)).to.deep.equal(O.some({ ...key, lastUsedAt: later(9000) }));
    });

    it('touching an unknown key is fine and creates nothing', async () => {
      const keyId = anApiKey().keyId;
      await right(fx.store.touch(keyId, T0));
      expect(await find(keyId)).to.deep.equal(O.none);
      expect(await right(fx.store.list())).to.deep.equal([]);
    });

    it('says an address is new the first time any server sees it with a key, and only then', async () => {
      const [key, other] = [anApiKey(), anApiKey()];
      await create(key);
      await create(other);
      const note = (store: ApiKeyStore, keyId: string, address: string, ms = 0) =>
        right(store.noteAddress(keyId, address, later(ms)));
      expect(await note(fx.store, key.keyId, '203.0.113.7')).to.equal(true);
      expect(await note(fx.store, key.keyId, '203.0.113.7', 1)).to.equal(false);
      expect(await note(fx.peer, key.keyId, '203.0.113.7', 2)).to.equal(false);
      // A new address for the key, and the same address for another key, are each new once.
      expect(await note(fx.peer, key.keyId, '2001:db8::1', 3)).to.equal(true);
      expect(await note(fx.store, key.keyId, '2001:db8::1', 4)).to.equal(false);
      expect(await note(fx.store, other.keyId, '203.0.113.7', 5)).to.equal(true);
      expect(await note(fx.peer, other.keyId, '203.0.113.7', 6)).to.equal(false);
    });

    it('says an address is new to exactly one of ten servers noting it at once', async () => {
      const key = anApiKey();
      await create(key);
      const calls = Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? fx.store : fx.peer).noteAddress(key.keyId, '198.51.100.4', later(i)),
      );
      const answers = await Promise.all(calls.map((call) => right(call)));
      expect(answers.filter((a) => a)).to.have.length(1);
    });

    it('notes no address for a revoked or unknown key', async () => {
      const key = anApiKey();
      await create(key);
      await right(fx.store.revoke(key.name, later(1)));
      expect(await right(fx.store.noteAddress(key.keyId, '203.0.113.9', later(2)))).to.equal(false);
      expect(await right(fx.store.noteAddress(anApiKey().keyId, '203.0.113.9', T0))).to.equal(
        false,
      );
    });
  });
}
