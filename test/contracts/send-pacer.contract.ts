// One suite for every SendPacer: one slot per send, `slotMs` apart, booked in turn by every
// worker; a slot further than the caller would wait is not booked; a transport without a rate
// is never held. Time is the store's own clock (the database's for SQL), so the bounds below
// allow for the real time the calls themselves take, measured around them.
import { expect } from 'chai';
import type { PaceSlot, SendPacer, SendRate } from '../../src/application/ports/send-pacer.js';
import { MAX_EXTRA_ROOM_MS, slotMs } from '../../src/application/ports/send-pacer.js';
import { right } from './email-log.contract.js';

export interface SendPacerFixture {
  /**
   * A pacer with these rates, and `peer`: the pacer another worker builds on its own connections
   * (in memory, on the same slots) with `peerRates`, by default the same rates.
   */
  pacers(
    rates: Readonly<Record<string, SendRate>>,
    peerRates?: Readonly<Record<string, SendRate>>,
  ): {
    readonly pacer: SendPacer;
    readonly peer: SendPacer;
  };
  close(): Promise<void>;
}

/** Far enough that no test waits for a slot on a slow machine: one a minute is 66 s apart. */
const PER_MINUTE: SendRate = { limit: 1, windowMs: 60_000 };
const TWENTY_A_SECOND: SendRate = { limit: 20, windowMs: 1000 };

export function sendPacerContract(name: string, open: () => Promise<SendPacerFixture>): void {
  describe(`${name} honours the SendPacer contract`, function () {
    this.timeout(30_000);
    let fx: SendPacerFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    /** Acquires, and says how much real time passed since `since` once it answered. */
    const acquire = async (
      pacer: SendPacer,
      transport: string,
      withinMs: number,
      since: number,
      slots = 1,
    ): Promise<PaceSlot & { elapsedMs: number }> => {
      const slot = await right(pacer.acquire(transport, withinMs, slots));
      return { ...slot, elapsedMs: performance.now() - since };
    };

    it('never holds a transport without a rate', async () => {
      const { pacer } = fx.pacers({ mailgun: TWENTY_A_SECOND });
      for (let i = 0; i < 5; i += 1) {
        expect(await right(pacer.acquire('smtp', 0))).to.deep.equal({ waitMs: 0, booked: true });
      }
    });

    it('books one slot per send, a slot apart, across workers', async () => {
      const { pacer, peer } = fx.pacers({ mailgun: TWENTY_A_SECOND });
      const slot = slotMs(TWENTY_A_SECOND);
      const start = performance.now();
      const slots: (PaceSlot & { elapsedMs: number })[] = [];
      for (let k = 0; k < 8; k += 1) {
        slots.push(await acquire(k % 2 === 0 ? pacer : peer, 'mailgun', 60_000, start));
      }
      slots.forEach((s, k) => {
        expect(s.booked, `slot ${k} booked`).to.equal(true);
        // Never sooner than k slots after the first, however the calls were timed ...
        expect(s.waitMs + s.elapsedMs, `slot ${k} not early`).to.be.at.least(k * slot - 1);
        // ... and never later than that: each slot follows the previous one directly.
        expect(s.waitMs, `slot ${k} not late`).to.be.at.most(k * slot + 1);
      });
      expect(slots[0]?.tokens).to.equal(TWENTY_A_SECOND.limit - 1);
      expect(slots[7]?.tokens).to.be.below(slots[0]?.tokens ?? 0);
    });

    it('books nothing beyond what the caller would wait, and says how long until a slot', async () => {
      const { pacer, peer } = fx.pacers({ mailgun: PER_MINUTE });
      const slot = slotMs(PER_MINUTE);
      const start = performance.now();
      expect(await acquire(pacer, 'mailgun', 1000, start)).to.include({ booked: true, waitMs: 0 });
      for (const asker of [peer, pacer, peer]) {
        const refused = await acquire(asker, 'mailgun', 1000, start);
        expect(refused.booked).to.equal(false);
        // The slot after the first is still free: the refusals booked nothing.
        expect(refused.waitMs)
          .to.be.above(1000)
          .and.at.most(slot + 1);
        expect(refused.waitMs + refused.elapsedMs).to.be.at.least(slot - 1);
        expect(refused.tokens).to.equal(0);
      }
      const next = await acquire(peer, 'mailgun', 2 * slot, start);
      expect(next.booked).to.equal(true);
      expect(next.waitMs).to.be.at.most(slot + 1);
      expect(next.waitMs + next.elapsedMs).to.be.at.least(slot - 1);
    });

    it('books several slots in a row for one send when asked, the extra ones at most MAX_EXTRA_ROOM_MS', async () => {
      const { pacer, peer } = fx.pacers({ mailgun: TWENTY_A_SECOND });
      const slot = slotMs(TWENTY_A_SECOND);
      const start = performance.now();
      expect(await acquire(pacer, 'mailgun', 60_000, start, 2)).to.include({
        booked: true,
        waitMs: 0,
      });
      const next = await acquire(peer, 'mailgun', 60_000, start);
      expect(next.booked).to.equal(true);
      expect(next.waitMs).to.be.at.most(2 * slot + 1);
      expect(next.waitMs + next.elapsedMs).to.be.at.least(2 * slot - 1);
    });

    it('at a low rate, books one slot and MAX_EXTRA_ROOM_MS for a send of several, not whole slots', async () => {
      const { pacer, peer } = fx.pacers({ mailgun: PER_MINUTE });
      const slot = slotMs(PER_MINUTE);
      const start = performance.now();
      expect(await acquire(pacer, 'mailgun', 10 * slot, start, 2)).to.include({
        booked: true,
        waitMs: 0,
      });
      const next = await acquire(peer, 'mailgun', 10 * slot, start);
      expect(next.booked).to.equal(true);
      expect(next.waitMs).to.be.at.most(slot + MAX_EXTRA_ROOM_MS + 1);
      expect(next.waitMs + next.elapsedMs).to.be.at.least(slot + MAX_EXTRA_ROOM_MS - 1);
    });

    it('holds a corrected rate from its first send: slots booked at an old, slower rate do not hold it back', async () => {
      const fast = TWENTY_A_SECOND;
      const { pacer: slow, peer } = fx.pacers({ mailgun: PER_MINUTE }, { mailgun: fast });
      // The slow rate books its next slot a minute ahead (two of them: an hour at 1/h).
      expect(await right(slow.acquire('mailgun', 1000, 2))).to.include({ booked: true, waitMs: 0 });
      const start = performance.now();
      const first = await acquire(peer, 'mailgun', 1000, start);
      // Booked, no further than the corrected rate could have booked it: its wait plus a slot.
      expect(first.booked).to.equal(true);
      expect(first.waitMs).to.be.at.most(1000 + slotMs(fast) + 1);
      const second = await acquire(peer, 'mailgun', 10_000, start);
      expect(second.booked).to.equal(true);
      // The next one a slot of the new rate later, not a minute: each wait is counted from the
      // store's clock when it answered, the second's later than the first's.
      expect(second.waitMs + second.elapsedMs).to.be.at.least(first.waitMs + slotMs(fast) - 1);
      expect(second.waitMs).to.be.at.most(first.waitMs + slotMs(fast) + 1);
    });

    it('keeps the slots booked at its own rate up to what the caller would wait', async () => {
      const twice: SendRate = { limit: 2, windowMs: 1000 };
      const { pacer, peer } = fx.pacers({ mailgun: twice });
      let booked = 0;
      while ((await right(pacer.acquire('mailgun', 1000, booked === 0 ? 2 : 1))).booked) {
        booked += 1;
      }
      // Slots at 0 (and its extra room) and 650 ms: the next one, 1200 ms ahead, is further than
      // a second but no further than this rate books; the peer at the same rate is refused, not
      // let in as if it were stale.
      expect(booked).to.equal(2);
      const refused = await right(peer.acquire('mailgun', 1000));
      expect(refused.booked).to.equal(false);
      expect(refused.waitMs).to.be.above(1000);
    });

    it('never takes the extra room of cold starts for a stale slot: a second holds its rate', async () => {
      const slot = slotMs(TWENTY_A_SECOND);
      const { pacer, peer } = fx.pacers({ mailgun: TWENTY_A_SECOND });
      let booked = 0;
      // Every worker's first send asks for extra room; were a booking that ends beyond one slot
      // past the wait taken as booked at another rate, each ask would get the same slot.
      for (let i = 0; i < 60; i += 1) {
        if ((await right((i % 2 ? pacer : peer).acquire('mailgun', 1000, 2))).booked) booked += 1;
      }
      expect(booked).to.be.at.most(Math.ceil((1000 + slot) / slot));
      expect(booked).to.be.at.least(2);
    });

    it('paces each transport on its own', async () => {
      const { pacer } = fx.pacers({ mailgun: PER_MINUTE, smtp: PER_MINUTE });
      expect(await right(pacer.acquire('mailgun', 1000))).to.include({ booked: true, waitMs: 0 });
      expect(await right(pacer.acquire('smtp', 1000))).to.include({ booked: true, waitMs: 0 });
      expect((await right(pacer.acquire('mailgun', 1000))).booked).to.equal(false);
    });

    it('gives every one of many concurrent askers its own slot', async () => {
      // Slots 2.2 s apart (all booked ahead, within the minute the askers would wait; nothing
      // is waited for): an answer would have to reach this process over a second later than
      // the next one's for the check below to mistake it (see there).
      const rate: SendRate = { limit: 1, windowMs: 2000 };
      const { pacer, peer } = fx.pacers({ mailgun: rate });
      const slot = slotMs(rate);
      const start = performance.now();
      const slots = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          acquire(i % 2 ? pacer : peer, 'mailgun', 60_000, start),
        ),
      );
      expect(slots.every((s) => s.booked)).to.equal(true);
      // Twelve distinct slots, each (nearly) a slot after the one before. Each wait is counted
      // from when the store answered that asker, and the askers are answered in turn, so the
      // waits alone shrink by the time between answers (tens of ms on a loaded machine): the
      // slots are placed at the real time each answer arrived plus its wait. What remains is
      // how long an answer took to reach this process after the store read its clock.
      const times = slots.map((s) => s.elapsedMs + s.waitMs).sort((a, b) => a - b);
      times.slice(1).forEach((t, i) => expect(t - (times[i] ?? 0)).to.be.above(slot / 2));
    });
  });
}
