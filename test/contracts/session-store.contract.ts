// One suite for every SessionStore: a session is found by its digest on every server, whatever its
// age; its last sight only moves forward; only an existing operator gets one.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { Operator } from '../../src/application/ports/operator-store.js';
import { T0, later } from '../support/builders.js';
import { right } from './email-log.contract.js';
import type { OperatorFixture } from './operator-store.contract.js';
import { aSession, anOperator } from './operator-store.contract.js';

/** What every adapter answers for a session whose operator does not exist. */
const NO_SUCH_OPERATOR = {
  _tag: 'StoreUnavailable',
  reason: 'the operator of this session does not exist',
};

export function sessionStoreContract(name: string, open: () => Promise<OperatorFixture>): void {
  describe(`${name} honours the SessionStore contract`, function () {
    this.timeout(30_000);
    let fx: OperatorFixture;
    let ada: Operator;

    beforeEach(async () => {
      fx = await open();
      ada = anOperator();
      expect(await fx.operators.add(ada)()).to.deep.equal(E.right(undefined));
    });
    afterEach(async () => {
      await fx.close();
    });

    const find = (digest: string, store = fx.sessions) => right(store.find(digest));

    it('finds a created session by its digest, unchanged, on every server', async () => {
      const session = aSession(ada.name, { createdAt: later(10), lastSeenAt: later(20) });
      await right(fx.sessions.create(session));
      expect(await find(session.digest)).to.deep.equal(O.some(session));
      expect(await find(session.digest, fx.peer.sessions)).to.deep.equal(O.some(session));
      expect(await find(aSession(ada.name).digest)).to.deep.equal(O.none);
    });

    it('finds a session whatever its age: idle expiry is the caller’s judgement', async () => {
      const ancient = aSession(ada.name, { createdAt: new Date('2001-01-01T00:00:00.000Z') });
      await right(fx.sessions.create(ancient));
      expect(await find(ancient.digest)).to.deep.equal(O.some(ancient));
    });

    it('refuses a session for an operator who does not exist, or no longer does', async () => {
      const stranger = aSession(anOperator().name);
      expect(await fx.sessions.create(stranger)()).to.deep.equal(E.left(NO_SUCH_OPERATOR));
      expect(await find(stranger.digest)).to.deep.equal(O.none);

      await right(fx.operators.remove(ada.name));
      const late = aSession(ada.name);
      expect(await fx.peer.sessions.create(late)()).to.deep.equal(E.left(NO_SUCH_OPERATOR));
      expect(await find(late.digest)).to.deep.equal(O.none);
    });

    it('refuses a second session with a digest already used, and keeps the first', async () => {
      const first = aSession(ada.name);
      await right(fx.sessions.create(first));
      const again = await fx.peer.sessions.create({ ...first, createdAt: later(5) })();
      expect(E.isLeft(again) && again.left._tag).to.equal('StoreUnavailable');
      expect(await find(first.digest)).to.deep.equal(O.some(first));
    });

    it('moves the last sight forward with touch, never back, from any server', async () => {
      const session = aSession(ada.name);
      await right(fx.sessions.create(session));
      await right(fx.sessions.touch(session.digest, later(5000)));
      expect(await find(session.digest)).to.deep.equal(
        O.some({ ...session, lastSeenAt: later(5000) }),
      );
      await right(fx.peer.sessions.touch(session.digest, later(1000)));
      expect(await find(session.digest)).to.deep.equal(
        O.some({ ...session, lastSeenAt: later(5000) }),
      );
      await right(fx.peer.sessions.touch(session.digest, later(7000)));
      expect(await find(session.digest)).to.deep.equal(
        O.some({ ...session, lastSeenAt: later(7000) }),
      );
    });

    it('keeps the latest of many touches racing on two servers', async () => {
      const session = aSession(ada.name);
      await right(fx.sessions.create(session));
      const times = [4, 9, 1, 7, 3, 8, 2, 6, 5, 0].map((s) => later(s * 1000));
      const calls = times.map((at, i) =>
        (i % 2 === 0 ? fx.sessions : fx.peer.sessions).touch(session.digest, at),
      );
      await Promise.all(calls.map((call) => right(call)));
      expect(await find(session.digest)).to.deep.equal(
        O.some({ ...session, lastSeenAt: later(9000) }),
      );
    });

    it('touching an unknown session is fine and creates nothing', async () => {
      const session = aSession(ada.name);
      await right(fx.sessions.touch(session.digest, later(1)));
      expect(await find(session.digest)).to.deep.equal(O.none);
    });

    it('ends a session for every server; ending an absent one is fine', async () => {
      const [ended, kept] = [aSession(ada.name), aSession(ada.name)];
      await right(fx.sessions.create(ended));
      await right(fx.sessions.create(kept));
      await right(fx.peer.sessions.remove(ended.digest));
      expect(await find(ended.digest)).to.deep.equal(O.none);
      expect(await find(ended.digest, fx.peer.sessions)).to.deep.equal(O.none);
      expect(await find(kept.digest)).to.deep.equal(O.some(kept));
      await right(fx.sessions.remove(ended.digest));
      await right(fx.sessions.remove(aSession(ada.name).digest));
      expect(await find(kept.digest)).to.deep.equal(O.some(kept));
    });

    it('purges the sessions last seen before the cutoff, and answers how many', async () => {
      const idle = aSession(ada.name, { createdAt: T0 });
      const alsoIdle = aSession(ada.name, { createdAt: later(1) });
      const atCutoff = aSession(ada.name, { createdAt: later(2) });
      // Created long ago but seen since: idleness counts from the last sight.
      const touched = aSession(ada.name, { createdAt: T0 });
      for (const s of [idle, alsoIdle, atCutoff, touched]) await right(fx.sessions.create(s));
      await right(fx.sessions.touch(touched.digest, later(5)));

      expect(await right(fx.sessions.purgeIdleSince(later(2)))).to.equal(2);
      expect(await right(fx.peer.sessions.purgeIdleSince(later(2)))).to.equal(0);
      expect(await find(idle.digest)).to.deep.equal(O.none);
      expect(await find(alsoIdle.digest)).to.deep.equal(O.none);
      expect(await find(atCutoff.digest)).to.deep.equal(O.some(atCutoff));
      expect(await find(touched.digest)).to.deep.equal(
        O.some({ ...touched, lastSeenAt: later(5) }),
      );
    });
  });
}
