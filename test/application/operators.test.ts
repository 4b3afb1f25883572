import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { Operators, SESSION_IDLE_MS } from '../../src/application/operators.js';
import type { SignedIn } from '../../src/application/operators.js';
import { Argon2PasswordHasher } from '../../src/adapters/crypto/argon2-password-hasher.js';
import { NodeSecretTokens } from '../../src/adapters/crypto/node-secret-tokens.js';
import {
  InMemoryOperatorStore,
  InMemorySessionStore,
} from '../../src/adapters/memory/in-memory-auth-stores.js';
import { memoryRateLimiter } from '../../src/adapters/ratelimit/flexible-rate-limiter.js';
import { TEST_ARGON2_COST } from '../support/access.js';
import { RecordingLogger, fixedClock } from '../support/fakes.js';

const PASSWORD = 'correct horse battery';
const WRONG = 'incorrect horse battery';
const HOME = '192.0.2.10';
const ELSEWHERE = '198.51.100.7';
const MINUTE = 60_000;

function setup() {
  const clock = fixedClock('2030-05-06T07:08:09.000Z');
  const log = new RecordingLogger();
  const operatorStore = new InMemoryOperatorStore();
  const operators = new Operators({
    operators: operatorStore,
    sessions: new InMemorySessionStore(operatorStore),
    hasher: new Argon2PasswordHasher(TEST_ARGON2_COST),
    tokens: new NodeSecretTokens(),
    clock,
    log,
    // As the composition root sets it: five failures a minute.
    failures: memoryRateLimiter({ keyPrefix: 'sign-in-failures', limit: 5, windowMs: MINUTE }),
  });
  return {
    clock,
    log,
    operators,
    async add(name = 'alice', password = PASSWORD) {
      const added = await operators.add(name, password)();
      if (E.isLeft(added)) throw new Error(`could not add ${name}: ${added.left._tag}`);
    },
    async signIn(name = 'alice', password = PASSWORD, address = HOME, previous?: string) {
      return operators.signIn(name, password, address, previous)();
    },
    async signedIn(name = 'alice', password = PASSWORD, address = HOME): Promise<SignedIn> {
      const result = await operators.signIn(name, password, address)();
      if (E.isLeft(result)) throw new Error(`could not sign in: ${result.left._tag}`);
      return result.right;
    },
    session: (token: string | undefined) => operators.session(token)(),
    audits: (kind: string) =>
      log.lines.filter((l) => (l.fields as { audit?: string }).audit === kind),
  };
}

const badCredentials = E.left({ _tag: 'BadCredentials' });
const signedInAs = (name: string) => E.right(O.some(name));
const signedOut = E.right(O.none);

describe('Operators', () => {
  describe('add', () => {
    it('refuses a password under 12 characters with a message that says so, and not the password', async () => {
      const s = setup();
      const refused = await s.operators.add('alice', 'eleven char')();
      expect(refused).to.deep.equal(
        E.left({
          _tag: 'InvalidOperator',
          message: 'the password must be at least 12 characters',
        }),
      );
      // Characters, not UTF-16 units: eleven emoji are 22 units and still too short.
      expect(await s.operators.add('alice', '🔑'.repeat(11))()).to.deep.include({ _tag: 'Left' });
      expect(await s.operators.list()()).to.deep.equal(E.right([]));
      expect(E.isRight(await s.operators.add('alice', 'twelve chars')())).to.equal(true);
    });

    it('takes passwords up to 1024 characters, counting characters and not UTF-16 units', async () => {
      const s = setup();
      expect(E.isRight(await s.operators.add('alice', '🔑'.repeat(1024))())).to.equal(true);
      expect(await s.operators.add('bob', 'x'.repeat(1025))()).to.deep.equal(
        E.left({
          _tag: 'InvalidOperator',
          message: 'the password must be at most 1024 characters',
        }),
      );
    });

    it('refuses names that are not names, and a name already taken', async () => {
      const s = setup();
      for (const name of ['', ' alice', 'al ice', 'alice/admin', 'x'.repeat(65)]) {
        const refused = await s.operators.add(name, PASSWORD)();
        expect(E.isLeft(refused) && refused.left._tag, JSON.stringify(name)).to.equal(
          'InvalidOperator',
        );
      }
      await s.add('ops@example.org');
      expect(await s.operators.add('ops@example.org', PASSWORD)()).to.deep.equal(
        E.left({ _tag: 'OperatorExists', name: 'ops@example.org' }),
      );
    });

    it('stores an argon2id hash, never the password', async () => {
      const s = setup();
      await s.add('alice');
      const listed = await s.operators.list()();
      if (E.isLeft(listed)) expect.fail(listed.left.reason);
      const [alice] = listed.right;
      expect(alice?.name).to.equal('alice');
      expect(alice?.passwordHash).to.match(/^\$argon2id\$v=19\$/);
      expect(JSON.stringify(listed.right)).not.to.include(PASSWORD);
      expect(s.audits('operator-added').map((l) => l.fields)).to.deep.equal([
        { audit: 'operator-added', user: 'alice' },
      ]);
      expect(s.log.text()).not.to.include(PASSWORD);
    });
  });

  describe('signIn', () => {
    it('starts a session for the right password', async () => {
      const s = setup();
      await s.add();
      const result = await s.signIn();
      if (E.isLeft(result)) expect.fail(result.left._tag);
      expect(result.right.operator).to.equal('alice');
      expect(result.right.token).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(await s.session(result.right.token)).to.deep.equal(signedInAs('alice'));
    });

    it('gives a wrong password and an unknown name the same refusal', async () => {
      const s = setup();
      await s.add();
      expect(await s.signIn('alice', WRONG)).to.deep.equal(badCredentials);
      expect(await s.signIn('bob', PASSWORD)).to.deep.equal(badCredentials);
      expect(await s.signIn('Alice', PASSWORD)).to.deep.equal(badCredentials);
      expect(await s.signIn('alice', `${PASSWORD} `)).to.deep.equal(badCredentials);
    });

    it('refuses a name after five failures in a minute, even with the right password, from anywhere', async () => {
      const s = setup();
      await s.add();
      for (let i = 0; i < 5; i += 1) {
        expect(await s.signIn('alice', `${WRONG} ${i}`, HOME), `failure ${i + 1}`).to.deep.equal(
          badCredentials,
        );
      }
      for (const address of [HOME, ELSEWHERE]) {
        const refused = await s.signIn('alice', PASSWORD, address);
        if (E.isRight(refused)) expect.fail(`signed in from ${address}`);
        expect(refused.left._tag).to.equal('TooManyAttempts');
        if (refused.left._tag === 'TooManyAttempts') {
          expect(refused.left.retryAfterMs).to.be.greaterThan(0).and.at.most(MINUTE);
        }
      }
      // Another operator is not held up by alice's failures.
      await s.add('bob');
      expect(E.isRight(await s.signIn('bob', PASSWORD, ELSEWHERE))).to.equal(true);
    });

    it('refuses an address after five failures in a minute, whatever names it tried', async () => {
      const s = setup();
      await s.add();
      for (let i = 0; i < 5; i += 1) {
        expect(await s.signIn(`guess-${i}`, WRONG, HOME)).to.deep.equal(badCredentials);
      }
      const refused = await s.signIn('alice', PASSWORD, HOME);
      expect(E.isLeft(refused) && refused.left._tag).to.equal('TooManyAttempts');
      // Alice herself, from her own address, is not locked out by a stranger's guesses.
      expect(E.isRight(await s.signIn('alice', PASSWORD, ELSEWHERE))).to.equal(true);
    });

    it('checks at most five passwords of a name however many guesses arrive at once', async () => {
      const s = setup();
      await s.add();
      // From twenty addresses, so that only the name's count can hold them back.
      const guesses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => s.signIn('alice', `${WRONG} ${i}`, `198.51.100.${i}`)),
      );
      const answers = guesses.map((g) => (E.isLeft(g) ? g.left._tag : 'signed in'));
      expect(answers.filter((a) => a === 'BadCredentials')).to.have.length(5);
      expect(answers.filter((a) => a === 'TooManyAttempts')).to.have.length(15);
      expect(s.audits('sign-in-failed')).to.have.length(5);
    });

    it('checks at most five passwords from one address however many names it tries at once', async () => {
      const s = setup();
      await s.add();
      const guesses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => s.signIn(`guess-${i}`, WRONG, HOME)),
      );
      const answers = guesses.map((g) => (E.isLeft(g) ? g.left._tag : 'signed in'));
      expect(answers.filter((a) => a === 'BadCredentials')).to.have.length(5);
      expect(answers.filter((a) => a === 'TooManyAttempts')).to.have.length(15);
      // Neither holds back a name it did not try, from an address it did not use.
      const [a, b] = await Promise.all([
        s.signIn('alice', PASSWORD, ELSEWHERE),
        s.signIn('alice', WRONG, '203.0.113.9'),
      ]);
      expect(E.isRight(a)).to.equal(true);
      expect(b).to.deep.equal(badCredentials);
    });

    it('lets four failures pass, then signs in', async () => {
      const s = setup();
      await s.add();
      for (let i = 0; i < 4; i += 1) await s.signIn('alice', WRONG, HOME);
      expect(E.isRight(await s.signIn('alice', PASSWORD, HOME))).to.equal(true);
    });

    it('ends the session the browser had before (rotation)', async () => {
      const s = setup();
      await s.add();
      const before = await s.signedIn();
      const after = await s.signIn('alice', PASSWORD, HOME, before.token);
      if (E.isLeft(after)) expect.fail(after.left._tag);
      expect(after.right.token).not.to.equal(before.token);
      expect(await s.session(before.token)).to.deep.equal(signedOut);
      expect(await s.session(after.right.token)).to.deep.equal(signedInAs('alice'));
    });

    it('writes audit lines for successes and failures with the name and address, never a password', async () => {
      const s = setup();
      await s.add();
      await s.signIn('alice', WRONG, ELSEWHERE);
      await s.signIn('alice', PASSWORD, HOME);
      expect(s.audits('sign-in-failed').map((l) => l.fields)).to.deep.equal([
        { audit: 'sign-in-failed', user: 'alice', address: ELSEWHERE },
      ]);
      expect(s.audits('sign-in-succeeded').map((l) => l.fields)).to.deep.equal([
        { audit: 'sign-in-succeeded', user: 'alice', address: HOME },
      ]);
      expect(s.log.text()).not.to.include(PASSWORD).and.not.to.include(WRONG);
    });
  });

  describe('sessions', () => {
    it('ends a session left idle for 12 hours', async () => {
      const s = setup();
      await s.add();
      const { token } = await s.signedIn();
      s.clock.advance(SESSION_IDLE_MS - 1);
      expect(await s.session(token)).to.deep.equal(signedInAs('alice'));

      const other = await s.signedIn();
      s.clock.advance(SESSION_IDLE_MS);
      expect(await s.session(other.token)).to.deep.equal(signedOut);
      expect(await s.session(token)).to.deep.equal(signedOut);
    });

    it('keeps a session in use alive past 12 hours: idle time counts, not age', async () => {
      const s = setup();
      await s.add();
      const { token } = await s.signedIn();
      for (let hour = 0; hour < 30; hour += 5) {
        s.clock.advance(5 * 60 * MINUTE);
        expect(await s.session(token), `${hour + 5} h after sign-in`).to.deep.equal(
          signedInAs('alice'),
        );
      }
    });

    it('knows nothing of an empty, unknown or absent token', async () => {
      const s = setup();
      for (const token of [undefined, '', 'A'.repeat(43)]) {
        expect(await s.session(token)).to.deep.equal(signedOut);
      }
    });

    it('ends a session at sign-out, and only that one', async () => {
      const s = setup();
      await s.add();
      const laptop = await s.signedIn();
      const phone = await s.signedIn();
      expect(await s.operators.signOut(laptop.token)()).to.deep.equal(E.right(undefined));
      expect(await s.session(laptop.token)).to.deep.equal(signedOut);
      expect(await s.session(phone.token)).to.deep.equal(signedInAs('alice'));
      expect(await s.operators.signOut(undefined)()).to.deep.equal(E.right(undefined));
    });

    it('ends every session of an operator who is removed, who then cannot sign in', async () => {
      const s = setup();
      await s.add('alice');
      await s.add('bob');
      const alice = await s.signedIn('alice');
      const bob = await s.signedIn('bob');
      expect(await s.operators.remove('alice')()).to.deep.equal(E.right(true));
      expect(await s.operators.remove('alice')()).to.deep.equal(E.right(false));
      expect(await s.session(alice.token)).to.deep.equal(signedOut);
      expect(await s.session(bob.token)).to.deep.equal(signedInAs('bob'));
      expect(await s.signIn('alice')).to.deep.equal(badCredentials);
      expect(s.audits('operator-removed')).to.have.length(1);
    });

    it('purges the sessions idle for 12 hours, and keeps those in use', async () => {
      const s = setup();
      await s.add();
      const idle = await s.signedIn();
      const used = await s.signedIn();
      s.clock.advance(6 * 60 * MINUTE);
      await s.session(used.token);
      s.clock.advance(6 * 60 * MINUTE);
      expect(await s.operators.purgeIdle()()).to.deep.equal(E.right(1));
      expect(await s.session(used.token)).to.deep.equal(signedInAs('alice'));
      expect(await s.session(idle.token)).to.deep.equal(signedOut);
    });
  });
});
