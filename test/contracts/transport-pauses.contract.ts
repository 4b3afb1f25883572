// One suite for every TransportPauses: a pause is seen by every worker, only ever moves later,
// and belongs to one transport.
import { expect } from 'chai';
import type { TransportPauses } from '../../src/application/ports/transport-pauses.js';
import { later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface TransportPausesFixture {
  readonly pauses: TransportPauses;
  /** The same pauses as another worker sees them (its own connections); in memory, the same. */
  readonly peer: TransportPauses;
  close(): Promise<void>;
}

export function transportPausesContract(
  name: string,
  open: () => Promise<TransportPausesFixture>,
): void {
  describe(`${name} honours the TransportPauses contract`, function () {
    this.timeout(30_000);
    let fx: TransportPausesFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const until = (transport: string, pauses = fx.peer) => right(pauses.pausedUntil(transport));

    it('answers undefined for a transport never paused', async () => {
      expect(await until('mailgun', fx.pauses)).to.equal(undefined);
    });

    it('shows a pause to another worker, to the millisecond, past or not', async () => {
      await right(fx.pauses.pause('mailgun', later(1500)));
      expect((await until('mailgun'))?.toISOString()).to.equal(later(1500).toISOString());
      // Whether it still holds is the caller's to say: the store keeps the end as it was given.
      await right(fx.pauses.pause('smtp', new Date('2001-01-01T00:00:00.123Z')));
      expect((await until('smtp'))?.toISOString()).to.equal('2001-01-01T00:00:00.123Z');
    });

    it('lets a later pause extend one, and never lets an earlier one shorten it', async () => {
      await right(fx.pauses.pause('mailgun', later(5000)));
      await right(fx.peer.pause('mailgun', later(1000)));
      expect((await until('mailgun', fx.pauses))?.getTime()).to.equal(later(5000).getTime());
      await right(fx.peer.pause('mailgun', later(9000)));
      expect((await until('mailgun', fx.pauses))?.getTime()).to.equal(later(9000).getTime());
    });

    it('keeps the longest of pauses recorded at once by several workers', async () => {
      const ends = [3000, 7000, 1000, 5000].map((ms) => later(ms));
      await Promise.all(
        ends.map((end, i) => right((i % 2 === 0 ? fx.pauses : fx.peer).pause('smtp', end))),
      );
      expect((await until('smtp'))?.getTime()).to.equal(later(7000).getTime());
    });

    it('pauses one transport only', async () => {
      await right(fx.pauses.pause('mailgun', later(2000)));
      expect(await until('smtp')).to.equal(undefined);
      expect(await until('outbox')).to.equal(undefined);
    });
  });
}
