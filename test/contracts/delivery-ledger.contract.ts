// One suite for every DeliveryLedger: one holder at a time may send an id, a send is recorded
// once, and every worker sees both.
import { expect } from 'chai';
import type { DeliveryLedger, SendClaim } from '../../src/application/ports/delivery-ledger.js';
import { T0, anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface DeliveryLedgerFixture {
  readonly ledger: DeliveryLedger;
  /** The same ledger as another worker sees it (its own connections); in memory, the same one. */
  readonly peer: DeliveryLedger;
  close(): Promise<void>;
}

const LEASE_MS = 1000;
const CLAIMED: SendClaim = { _tag: 'Claimed' };
const busy = (holder: string, until: Date): SendClaim => ({ _tag: 'Busy', holder, until });
const alreadySent = (providerId: string): SendClaim => ({ _tag: 'AlreadySent', providerId });

export function deliveryLedgerContract(
  name: string,
  open: () => Promise<DeliveryLedgerFixture>,
): void {
  describe(`${name} honours the DeliveryLedger contract`, function () {
    this.timeout(30_000);
    let fx: DeliveryLedgerFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const claim = (ledger: DeliveryLedger, id: ReturnType<typeof anId>, holder: string, at = T0) =>
      right(ledger.claim(id, holder, at, LEASE_MS));

    it('gives an id no one holds to the first holder, and renews it for that holder', async () => {
      const id = anId('ledger');
      expect(await claim(fx.ledger, id, 'worker-a')).to.deep.equal(CLAIMED);
      expect(await claim(fx.ledger, id, 'worker-a', later(500))).to.deep.equal(CLAIMED);
      // The renewal moved the end of the lease: another worker is told when it runs out.
      expect(await claim(fx.peer, id, 'worker-b', later(1200))).to.deep.equal(
        busy('worker-a', later(1500)),
      );
    });

    it('answers exactly one of ten holders racing for one id Claimed, on two connections', async () => {
      const id = anId('ledger');
      const holders = Array.from({ length: 10 }, (_, i) => `worker-${i}`);
      const claims = await Promise.all(
        holders.map((holder, i) => claim(i % 2 === 0 ? fx.ledger : fx.peer, id, holder)),
      );
      const winners = holders.filter((_, i) => claims[i]!._tag === 'Claimed');
      expect(winners).to.have.length(1);
      for (const [i, answer] of claims.entries()) {
        if (holders[i] !== winners[0])
          expect(answer).to.deep.equal(busy(winners[0]!, later(LEASE_MS)));
      }
    });

    it('answers Busy until the lease ends, then lets another holder take the send over', async () => {
      const id = anId('ledger');
      await claim(fx.ledger, id, 'worker-a');
      expect(await claim(fx.peer, id, 'worker-b', later(LEASE_MS - 1))).to.deep.equal(
        busy('worker-a', later(LEASE_MS)),
      );
      // worker-a died mid-send: its claim runs out, and worker-b sends (at least once).
      expect(await claim(fx.peer, id, 'worker-b', later(LEASE_MS))).to.deep.equal(CLAIMED);
      // Back from the dead, worker-a has lost it, and its release frees nothing.
      expect(await claim(fx.ledger, id, 'worker-a', later(LEASE_MS + 1))).to.deep.equal(
        busy('worker-b', later(2 * LEASE_MS)),
      );
      await right(fx.ledger.release(id, 'worker-a'));
      expect(await claim(fx.ledger, id, 'worker-c', later(LEASE_MS + 2))).to.deep.equal(
        busy('worker-b', later(2 * LEASE_MS)),
      );
    });

    it('answers AlreadySent to every holder once the send is recorded, lease or no lease', async () => {
      const id = anId('ledger');
      await claim(fx.ledger, id, 'worker-a');
      await right(fx.ledger.record(id, '<20261128.1@mg.example>', later(100)));
      const sent = alreadySent('<20261128.1@mg.example>');
      expect(await claim(fx.peer, id, 'worker-b', later(200))).to.deep.equal(sent);
      expect(await claim(fx.ledger, id, 'worker-a', later(300))).to.deep.equal(sent);
      expect(await claim(fx.peer, id, 'worker-b', later(10 * LEASE_MS))).to.deep.equal(sent);
      // A release after the record does not undo the send.
      await right(fx.ledger.release(id, 'worker-a'));
      expect(await claim(fx.peer, id, 'worker-c', later(10 * LEASE_MS))).to.deep.equal(sent);
    });

    it('records a send no one claimed (a log repaired, an older worker)', async () => {
      const id = anId('ledger');
      await right(fx.ledger.record(id, '<repaired@mg.example>', T0));
      expect(await claim(fx.peer, id, 'worker-b')).to.deep.equal(
        alreadySent('<repaired@mg.example>'),
      );
    });

    it('frees a claim on release, for the next holder at once', async () => {
      const id = anId('ledger');
      await claim(fx.ledger, id, 'worker-a');
      expect((await claim(fx.peer, id, 'worker-b', later(1)))._tag).to.equal('Busy');
      // The send failed (transient or permanent): nothing went out.
      await right(fx.ledger.release(id, 'worker-a'));
      expect(await claim(fx.peer, id, 'worker-b', later(2))).to.deep.equal(CLAIMED);
      // A release names its holder: worker-a's second release leaves worker-b's claim alone.
      await right(fx.ledger.release(id, 'worker-a'));
      expect(await claim(fx.ledger, id, 'worker-a', later(3))).to.deep.equal(
        busy('worker-b', later(2 + LEASE_MS)),
      );
    });

    it('keeps the first entry when the same id is recorded again', async () => {
      const id = anId('ledger');
      await right(fx.ledger.record(id, 'first', T0));
      await right(fx.peer.record(id, 'second', later(1000)));
      expect(await claim(fx.ledger, id, 'worker-a')).to.deep.equal(alreadySent('first'));
      // The first entry's time counts too: purging up to the second one's time removes it.
      expect(await right(fx.ledger.purgeOlderThan(later(1)))).to.equal(1);
    });

    it('keeps one entry when two workers record the same id at once', async () => {
      const id = anId('ledger');
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          right((i % 2 === 0 ? fx.ledger : fx.peer).record(id, `provider-${i}`, later(i))),
        ),
      );
      const seen = await claim(fx.ledger, id, 'worker-a');
      expect(seen._tag === 'AlreadySent' && seen.providerId).to.match(/^provider-\d$/);
      expect(await claim(fx.peer, id, 'worker-b')).to.deep.equal(seen);
    });

    it('purges sends recorded and claims ended before the cutoff, and answers how many', async () => {
      const [old1, old2, atCutoff, recent, staleClaim, liveClaim] = Array.from({ length: 6 }, () =>
        anId('ledger'),
      );
      await right(fx.ledger.record(old1!, 'p1', T0));
      await right(fx.ledger.record(old2!, 'p2', later(1)));
      await right(fx.ledger.record(atCutoff!, 'p3', later(2)));
      await right(fx.ledger.record(recent!, 'p4', later(3)));
      // A holder that died long ago (its lease ended before the cutoff), and one still sending.
      await right(fx.ledger.claim(staleClaim!, 'worker-dead', T0, 1));
      await right(fx.ledger.claim(liveClaim!, 'worker-a', T0, 10));
      expect(await right(fx.ledger.purgeOlderThan(later(2)))).to.equal(3);
      expect(await right(fx.ledger.purgeOlderThan(later(2)))).to.equal(0);
      const at = later(3);
      expect(await claim(fx.ledger, old1!, 'worker-b', at)).to.deep.equal(CLAIMED);
      expect(await claim(fx.ledger, old2!, 'worker-b', at)).to.deep.equal(CLAIMED);
      expect(await claim(fx.ledger, atCutoff!, 'worker-b', at)).to.deep.equal(alreadySent('p3'));
      expect(await claim(fx.ledger, recent!, 'worker-b', at)).to.deep.equal(alreadySent('p4'));
      expect(await claim(fx.ledger, staleClaim!, 'worker-b', at)).to.deep.equal(CLAIMED);
      expect(await claim(fx.ledger, liveClaim!, 'worker-b', at)).to.deep.equal(
        busy('worker-a', later(10)),
      );
    });
  });
}
