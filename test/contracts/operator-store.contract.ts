// One suite for every OperatorStore: names are taken once and compare exactly, and removing an
// operator ends every session of theirs on every server.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { createHash, randomBytes } from 'node:crypto';
import type { Operator, OperatorStore } from '../../src/application/ports/operator-store.js';
import type { Session, SessionStore } from '../../src/application/ports/session-store.js';
import { T0, anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

/** The operators and their sessions, the two stores a sign-in needs (one suite each). */
export interface OperatorFixture {
  readonly operators: OperatorStore;
  readonly sessions: SessionStore;
  /** The same stores as another server sees them (its own connections); in memory, the same. */
  readonly peer: { readonly operators: OperatorStore; readonly sessions: SessionStore };
  close(): Promise<void>;
}

/** An operator no other test names, with a hash in the shape the hasher writes, added at `T0`. */
export function anOperator(spec: Partial<Operator> = {}): Operator {
  const salt = randomBytes(16).toString('base64').replace(/=+$/, '');
  const hash = randomBytes(32).toString('base64').replace(/=+$/, '');
  return {
    name: `op-${anId('op')}`,
    passwordHash: `$argon2id$v=19$m=19456,t=2,p=1$${salt}$${hash}`,
    createdAt: T0,
    ...spec,
  };
}

/** A session of `operator` as sign-in makes one: the digest of a fresh token, seen at creation. */
export function aSession(operator: string, spec: Partial<Session> = {}): Session {
  const token = randomBytes(32).toString('base64url');
  return {
    digest: createHash('sha256').update(token).digest('hex'),
    operator,
    createdAt: T0,
    lastSeenAt: spec.createdAt ?? T0,
    ...spec,
  };
}

const OK = E.right(undefined);

export function operatorStoreContract(name: string, open: () => Promise<OperatorFixture>): void {
  describe(`${name} honours the OperatorStore contract`, function () {
    this.timeout(30_000);
    let fx: OperatorFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const add = (operator: Operator, store = fx.operators) => store.add(operator)();
    const find = (name: string, store = fx.operators) => right(store.find(name));

    it('finds an added operator by name, unchanged, on every server', async () => {
      const ada = anOperator({ createdAt: later(1234) });
      expect(await add(ada)).to.deep.equal(OK);
      expect(await find(ada.name)).to.deep.equal(O.some(ada));
      expect(await find(ada.name, fx.peer.operators)).to.deep.equal(O.some(ada));
      expect(await find(anOperator().name)).to.deep.equal(O.none);
    });

    it('refuses a taken name from any server, and keeps the first operator', async () => {
      const first = anOperator();
      await add(first);
      const second = anOperator({ name: first.name, createdAt: later(1) });
      const exists = E.left({ _tag: 'OperatorExists', name: first.name });
      expect(await add(second)).to.deep.equal(exists);
      expect(await add(second, fx.peer.operators)).to.deep.equal(exists);
      expect(await find(first.name)).to.deep.equal(O.some(first));
    });

    it('compares names exactly: case and spaces make another name', async () => {
      const ada = anOperator({ name: 'Ada' });
      const others = ['ada', 'ADA', 'Ada '].map((n) => anOperator({ name: n }));
      for (const operator of [ada, ...others]) expect(await add(operator)).to.deep.equal(OK);
      expect(await find('Ada')).to.deep.equal(O.some(ada));
      expect(await find('aDa')).to.deep.equal(O.none);
      expect(await right(fx.operators.list())).to.have.length(4);
    });

    it('gives a name to exactly one of ten operators added at once on two servers', async () => {
      const name = `op-${anId('race')}`;
      const operators = Array.from({ length: 10 }, () => anOperator({ name }));
      // Every task is made before any runs: a check made too early would let two through.
      const calls = operators.map((o, i) =>
        (i % 2 === 0 ? fx.operators : fx.peer.operators).add(o),
      );
      const results = await Promise.all(calls.map((call) => call()));
      expect(results.filter(E.isRight)).to.have.length(1);
      const winner = operators[results.findIndex(E.isRight)]!;
      expect(await right(fx.operators.list())).to.deep.equal([winner]);
    });

    it('lists everyone by name (by characters, not by a language collation)', async () => {
      const operators = ['bob', 'Ada', 'alice', 'Zoë', 'zed', 'Bob'].map((n) =>
        anOperator({ name: n }),
      );
      for (const operator of operators) await add(operator);
      const expected = ['Ada', 'Bob', 'Zoë', 'alice', 'bob', 'zed'];
      expect((await right(fx.operators.list())).map((o) => o.name)).to.deep.equal(expected);
      expect(await right(fx.peer.operators.list())).to.deep.equal(
        expected.map((n) => operators.find((o) => o.name === n)),
      );
    });

    it('answers an empty list when there is no one', async () => {
      expect(await right(fx.operators.list())).to.deep.equal([]);
    });

    it('removes an operator for every server, and answers whether there was one', async () => {
      const [ada, bob] = [anOperator(), anOperator()];
      await add(ada);
      await add(bob);
      expect(await right(fx.peer.operators.remove(ada.name))).to.equal(true);
      expect(await find(ada.name)).to.deep.equal(O.none);
      expect(await right(fx.operators.list())).to.deep.equal([bob]);
      expect(await right(fx.operators.remove(ada.name))).to.equal(false);
      expect(await right(fx.operators.remove(anOperator().name))).to.equal(false);
      // The name is free again.
      expect(await add(anOperator({ name: ada.name }))).to.deep.equal(OK);
    });

    it('ends every session of a removed operator, and only theirs, on every server', async () => {
      const [ada, bob] = [anOperator(), anOperator()];
      await add(ada);
      await add(bob);
      const adas = [aSession(ada.name), aSession(ada.name)];
      const bobs = aSession(bob.name);
      for (const session of [...adas, bobs]) await right(fx.sessions.create(session));
      await right(fx.operators.remove(ada.name));
      for (const session of adas) {
        expect(await right(fx.sessions.find(session.digest))).to.deep.equal(O.none);
        expect(await right(fx.peer.sessions.find(session.digest))).to.deep.equal(O.none);
      }
      expect(await right(fx.sessions.find(bobs.digest))).to.deep.equal(O.some(bobs));
      // Added again under the same name, the operator gets none of the old sessions back.
      await add(anOperator({ name: ada.name }));
      expect(await right(fx.sessions.find(adas[0]!.digest))).to.deep.equal(O.none);
    });
  });
}
