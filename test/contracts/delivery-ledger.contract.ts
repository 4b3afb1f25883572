// One suite for every DeliveryLedger: a send recorded once, readable by every worker.
import { expect } from 'chai';
import type { DeliveryLedger } from '../../src/application/ports/delivery-ledger.js';
import { T0, anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface DeliveryLedgerFixture {
  readonly ledger: DeliveryLedger;
  /** The same ledger as another worker sees it (its own connections); in memory, the same one. */
  readonly peer: DeliveryLedger;
  close(): Promise<void>;
}

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

    it('knows no send for an id never recorded', async () => {
      expect(await right(fx.ledger.sent(anId('ledger')))).to.equal(undefined);
    });

    it('gives the provider id of a recorded send, to every worker', async () => {
      const id = anId('ledger');
      await right(fx.ledger.record(id, '<20261128.1@mg.example>', T0));
      expect(await right(fx.ledger.sent(id))).to.equal('<20261128.1@mg.example>');
      expect(await right(fx.peer.sent(id))).to.equal('<20261128.1@mg.example>');
    });

    it('keeps the first entry when the same id is recorded again', async () => {
      const id = anId('ledger');
      await right(fx.ledger.record(id, 'first', T0));
      await right(fx.peer.record(id, 'second', later(1000)));
      expect(await right(fx.ledger.sent(id))).to.equal('first');
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
      const sent = await right(fx.ledger.sent(id));
      expect(sent).to.match(/^provider-\d$/);
      expect(await right(fx.peer.sent(id))).to.equal(sent);
    });

    it('purges sends recorded before the cutoff, and answers how many', async () => {
      const [old1, old2, atCutoff, recent] = [
        anId('ledger'),
        anId('ledger'),
        anId('ledger'),
        anId('ledger'),
      ];
      await right(fx.ledger.record(old1, 'p1', T0));
      await right(fx.ledger.record(old2, 'p2', later(1)));
      await right(fx.ledger.record(atCutoff, 'p3', later(2)));
      await right(fx.ledger.record(recent, 'p4', later(3)));
      expect(await right(fx.ledger.purgeOlderThan(later(2)))).to.equal(2);
      expect(await right(fx.ledger.purgeOlderThan(later(2)))).to.equal(0);
      expect(await right(fx.ledger.sent(old1))).to.equal(undefined);
      expect(await right(fx.ledger.sent(old2))).to.equal(undefined);
      expect(await right(fx.ledger.sent(atCutoff))).to.equal('p3');
      expect(await right(fx.ledger.sent(recent))).to.equal('p4');
    });
  });
}
