// One suite for every IdempotencyStore, case by case through the rules of the port's doc comment.
import { expect } from 'chai';
import type { Claim, IdempotencyStore } from '../../src/application/ports/idempotency-store.js';
import {
  IDEMPOTENCY_KEY_TTL_MS,
  IN_PROGRESS_TIMEOUT_MS,
} from '../../src/application/ports/idempotency-store.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { T0, anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface IdempotencyFixture {
  readonly store: IdempotencyStore;
  /** The same store as another server sees it (its own connections); in memory, the same one. */
  readonly peer: IdempotencyStore;
  close(): Promise<void>;
}

/** A key no other test uses (any string is a key; an id is a handy unique one). */
const aKey = (): string => `key-${anId('k')}`;
const PAYLOAD = '{"to":["ada@example.org"],"subject":"Hello","text":"Hi"}';
const OTHER_PAYLOAD = '{"to":["ada@example.org"],"subject":"Hello","text":"Bye"}';

const isNew = (id: EmailId): Claim => ({ _tag: 'New', id });
const repeat = (id: EmailId): Claim => ({ _tag: 'Repeat', id });
const conflict = (reason: 'different-payload' | 'in-progress'): Claim => ({
  _tag: 'Conflict',
  reason,
});

export function idempotencyStoreContract(
  name: string,
  open: () => Promise<IdempotencyFixture>,
): void {
  describe(`${name} honours the IdempotencyStore contract`, function () {
    this.timeout(30_000);
    let fx: IdempotencyFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const claim = (key: string, id: EmailId, now: Date, payload = PAYLOAD) =>
      right(fx.store.claim(key, payload, id, now));

    it('gives an unknown key to the proposed id', async () => {
      const id = anId('idem');
      expect(await claim(aKey(), id, T0)).to.deep.equal(isNew(id));
    });

    it('answers a completed key with its first id: a repeat', async () => {
      const [key, first] = [aKey(), anId('idem')];
      await claim(key, first, T0);
      await right(fx.store.complete(key));
      expect(await claim(key, anId('idem'), later(1000))).to.deep.equal(repeat(first));
      expect(await claim(key, anId('idem'), later(IDEMPOTENCY_KEY_TTL_MS - 1))).to.deep.equal(
        repeat(first),
      );
    });

    it('refuses another payload under a known key, in progress or completed', async () => {
      const [key, first] = [aKey(), anId('idem')];
      await claim(key, first, T0);
      expect(await claim(key, anId('idem'), later(10), OTHER_PAYLOAD)).to.deep.equal(
        conflict('different-payload'),
      );
      await right(fx.store.complete(key));
      expect(await claim(key, anId('idem'), later(20), OTHER_PAYLOAD)).to.deep.equal(
        conflict('different-payload'),
      );
      // Even past the in-progress timeout: only the TTL frees a key for another payload.
      expect(
        await claim(key, anId('idem'), later(IN_PROGRESS_TIMEOUT_MS * 2), OTHER_PAYLOAD),
      ).to.deep.equal(conflict('different-payload'));
    });

    it('answers in-progress while the first request is still being handled', async () => {
      const key = aKey();
      await claim(key, anId('idem'), T0);
      expect(await claim(key, anId('idem'), later(1))).to.deep.equal(conflict('in-progress'));
      expect(await claim(key, anId('idem'), later(IN_PROGRESS_TIMEOUT_MS - 1))).to.deep.equal(
        conflict('in-progress'),
      );
    });

    it('frees a released key at once for a new id', async () => {
      const key = aKey();
      await claim(key, anId('idem'), T0);
      await right(fx.store.release(key));
      const second = anId('idem');
      expect(await claim(key, second, later(1), OTHER_PAYLOAD)).to.deep.equal(isNew(second));
      await right(fx.store.complete(key));
      expect(await claim(key, anId('idem'), later(2), OTHER_PAYLOAD)).to.deep.equal(repeat(second));
    });

    it('forgets a key after its 24 hours, whatever became of it', async () => {
      const [completed, inProgress] = [aKey(), aKey()];
      await claim(completed, anId('idem'), T0);
      await right(fx.store.complete(completed));
      await claim(inProgress, anId('idem'), T0);
      const [a, b] = [anId('idem'), anId('idem')];
      expect(await claim(completed, a, later(IDEMPOTENCY_KEY_TTL_MS), OTHER_PAYLOAD)).to.deep.equal(
        isNew(a),
      );
      expect(await claim(inProgress, b, later(IDEMPOTENCY_KEY_TTL_MS))).to.deep.equal(isNew(b));
      // The renewed key is in progress again, under the new id and payload.
      expect(
        await claim(completed, anId('idem'), later(IDEMPOTENCY_KEY_TTL_MS + 1), OTHER_PAYLOAD),
      ).to.deep.equal(conflict('in-progress'));
      await right(fx.store.complete(completed));
      expect(
        await claim(completed, anId('idem'), later(IDEMPOTENCY_KEY_TTL_MS + 2), OTHER_PAYLOAD),
      ).to.deep.equal(repeat(a));
    });

    it('takes over an abandoned claim with the first id, and renews it', async () => {
      const [key, first] = [aKey(), anId('idem')];
      await claim(key, first, T0);
      const takeover = later(IN_PROGRESS_TIMEOUT_MS);
      expect(await claim(key, anId('idem'), takeover)).to.deep.equal(isNew(first));
      // Renewed: another server right after is told the request is in progress again.
      expect(await claim(key, anId('idem'), later(IN_PROGRESS_TIMEOUT_MS + 1))).to.deep.equal(
        conflict('in-progress'),
      );
      await right(fx.store.complete(key));
      expect(await claim(key, anId('idem'), later(IN_PROGRESS_TIMEOUT_MS + 2))).to.deep.equal(
        repeat(first),
      );
    });

    it('completing or releasing an unknown key is fine', async () => {
      await right(fx.store.complete(aKey()));
      await right(fx.store.release(aKey()));
    });

    it('purges keys claimed before the cutoff, and answers how many', async () => {
      const [old1, old2, atCutoff] = [aKey(), aKey(), aKey()];
      await claim(old1, anId('idem'), T0);
      await claim(old2, anId('idem'), later(1));
      await right(fx.store.complete(old2));
      await claim(atCutoff, anId('idem'), later(2));
      expect(await right(fx.store.purgeOlderThan(later(2)))).to.equal(2);
      expect(await right(fx.store.purgeOlderThan(later(2)))).to.equal(0);
      const fresh = anId('idem');
      expect(await claim(old2, fresh, later(3), OTHER_PAYLOAD)).to.deep.equal(isNew(fresh));
      expect(await claim(atCutoff, anId('idem'), later(3))).to.deep.equal(conflict('in-progress'));
    });

    it('gives a key to exactly one of twenty claims racing from two servers', async () => {
      const key = aKey();
      const claims = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          right((i % 2 === 0 ? fx.store : fx.peer).claim(key, PAYLOAD, anId('idem'), later(i))),
        ),
      );
      const wins = claims.filter((c) => c._tag === 'New');
      expect(wins).to.have.length(1);
      expect(claims.filter((c) => c._tag !== 'New')).to.deep.equal(
        Array.from({ length: 19 }, () => conflict('in-progress')),
      );
    });

    it('gives an abandoned key to exactly one of twenty takeovers racing from two servers', async () => {
      const [key, first] = [aKey(), anId('idem')];
      await claim(key, first, T0);
      const now = later(IN_PROGRESS_TIMEOUT_MS + 5);
      const claims = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          right((i % 2 === 0 ? fx.store : fx.peer).claim(key, PAYLOAD, anId('idem'), now)),
        ),
      );
      expect(claims.filter((c) => c._tag === 'New')).to.deep.equal([isNew(first)]);
    });
  });
}
