// One suite for every ScheduledEmails: held emails are leased when due, earliest first, to one
// worker at a time; a lease that ran out frees the email; a cancel wins only over no lease.
import { expect } from 'chai';
import type { ScheduledEmails } from '../../src/application/ports/scheduled-emails.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { T0, anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface ScheduleFixture {
  readonly schedule: ScheduledEmails;
  /** The same store as another worker sees it (its own connections); in memory, the same one. */
  readonly peer: ScheduledEmails;
  close(): Promise<void>;
}

const LEASE_MS = 30_000;

export function scheduledEmailsContract(name: string, open: () => Promise<ScheduleFixture>): void {
  describe(`${name} honours the ScheduledEmails contract`, function () {
    this.timeout(30_000);
    let fx: ScheduleFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const hold = (id: EmailId, dueAt: Date) => right(fx.schedule.hold(id, dueAt));
    const take = (now: Date, limit = 100, store = fx.schedule, leaseMs = LEASE_MS) =>
      right(store.takeDue(now, leaseMs, limit));
    const cancel = (id: EmailId, now: Date, store = fx.schedule) => right(store.cancel(id, now));
    const nextDue = (store = fx.schedule) => right(store.nextDue());
    const ids = (n: number, label = 'held') => Array.from({ length: n }, () => anId(label));

    it('takes only the emails due at `now`, earliest due first', async () => {
      const [a, b, c, d] = ids(4);
      await hold(c!, later(3000));
      await hold(a!, later(1000));
      await hold(d!, later(9000));
      await hold(b!, later(2000));
      expect(await take(later(999))).to.deep.equal([]);
      expect(await take(later(3000), 100, fx.peer)).to.deep.equal([a, b, c]);
      expect(await take(later(8999))).to.deep.equal([]);
      expect(await take(later(9000))).to.deep.equal([d]);
    });

    it('takes at most `limit`, the oldest first, and the next ones on the next take', async () => {
      const held = ids(5);
      for (const [i, id] of [...held.entries()].reverse()) await hold(id, later(i));
      expect(await take(later(10), 2)).to.deep.equal(held.slice(0, 2));
      expect(await take(later(10), 2, fx.peer)).to.deep.equal(held.slice(2, 4));
      expect(await take(later(10), 2)).to.deep.equal(held.slice(4));
      expect(await take(later(10), 2)).to.deep.equal([]);
    });

    it('takes emails due at the same time in the byte order of their ids', async () => {
      const [lower, upper, digits] = [anId('zz-tie'), anId('ZZ-tie'), anId('00-tie')];
      for (const id of [lower, upper, digits]) await hold(id, T0);
      expect(await take(T0)).to.deep.equal([digits, upper, lower]);
    });

    it('never leases one email to two of many takes racing from two workers', async () => {
      const held = ids(20);
      for (const [i, id] of held.entries()) await hold(id, later(i));
      const takes = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          take(later(100), 3, i % 2 === 0 ? fx.schedule : fx.peer),
        ),
      );
      for (const taken of takes) expect(taken.length).to.be.at.most(3);
      const taken = takes.flat();
      expect(new Set(taken).size, 'an email leased twice').to.equal(taken.length);
      const rest = await take(later(100));
      expect([...taken, ...rest].sort()).to.deep.equal([...held].sort());
    });

    it('lets another worker take an email whose lease ran out, and only then', async () => {
      const [a] = ids(1);
      await hold(a!, T0);
      expect(await take(T0, 10, fx.schedule, 1000)).to.deep.equal([a]);
      expect(await take(later(999), 10, fx.peer)).to.deep.equal([]);
      expect(await take(later(1000), 10, fx.peer, 1000)).to.deep.equal([a]);
      // A new lease, from the second take's time.
      expect(await take(later(1999))).to.deep.equal([]);
      expect(await take(later(2000))).to.deep.equal([a]);
    });

    it('cancels a held email, due or not, for good', async () => {
      const [due, notYet] = ids(2);
      await hold(due!, T0);
      await hold(notYet!, later(5000));
      expect(await cancel(notYet!, T0, fx.peer)).to.equal(true);
      expect(await cancel(due!, later(10))).to.equal(true);
      expect(await take(later(10_000))).to.deep.equal([]);
      expect(await nextDue()).to.equal(undefined);
      expect(await cancel(due!, later(20))).to.equal(false);
    });

    it('refuses to cancel an email while it is leased, and cancels it once the lease ran out', async () => {
      const [a] = ids(1);
      await hold(a!, T0);
      expect(await take(T0, 10, fx.schedule, 1000)).to.deep.equal([a]);
      expect(await cancel(a!, T0, fx.peer)).to.equal(false);
      expect(await cancel(a!, later(999))).to.equal(false);
      // Refused means untouched: the email is still taken when the lease ends.
      expect(await take(later(1000), 10, fx.schedule, 1000)).to.deep.equal([a]);
      // The worker holding it died: at the end of its lease the email can be cancelled.
      expect(await cancel(a!, later(2000), fx.peer)).to.equal(true);
      expect(await take(later(5000))).to.deep.equal([]);
    });

    it('refuses to cancel an email released or never held', async () => {
      const [a] = ids(1);
      await hold(a!, T0);
      expect(await take(T0)).to.deep.equal([a]);
      await right(fx.schedule.released(a!));
      expect(await cancel(a!, later(LEASE_MS + 1))).to.equal(false);
      expect(await cancel(anId('never'), T0)).to.equal(false);
    });

    it('holds a released email no more, for every worker', async () => {
      const [a, b] = ids(2);
      await hold(a!, T0);
      await hold(b!, later(1));
      expect(await take(later(1))).to.deep.equal([a, b]);
      await right(fx.peer.released(a!));
      expect(await take(later(LEASE_MS + 1), 10, fx.peer)).to.deep.equal([b]);
      await right(fx.schedule.released(b!));
      // Releasing what is not held is fine.
      await right(fx.schedule.released(b!));
      expect(await take(later(10 * LEASE_MS))).to.deep.equal([]);
      expect(await nextDue(fx.peer)).to.equal(undefined);
    });

    it('lets exactly one of a cancel and a take racing for an email win', async () => {
      for (let round = 0; round < 10; round += 1) {
        const [a] = ids(1, 'race');
        await hold(a!, T0);
        const now = later(round);
        // Each is called first in turn (in memory, the first called wins).
        let cancelling: Promise<boolean>;
        let taking: Promise<readonly EmailId[]>;
        if (round % 2 === 0) {
          cancelling = cancel(a!, now, fx.peer);
          taking = take(now, 1);
        } else {
          taking = take(now, 1);
          cancelling = cancel(a!, now, fx.peer);
        }
        const [cancelled, taken] = await Promise.all([cancelling, taking]);
        expect(cancelled, `round ${round}`).to.equal(!taken.includes(a!));
        if (!cancelled) await right(fx.schedule.released(a!));
      }
    });

    it('keeps the first due time when an email is held twice', async () => {
      const [a] = ids(1);
      await hold(a!, later(5000));
      await hold(a!, T0);
      expect(await take(later(4999))).to.deep.equal([]);
      expect(await nextDue()).to.deep.equal(later(5000));
      expect(await take(later(5000))).to.deep.equal([a]);
    });

    it('tells when the next held email falls due, leased or not, until it is released', async () => {
      expect(await nextDue()).to.equal(undefined);
      const [a, b] = ids(2);
      await hold(b!, later(5000));
      await hold(a!, later(2000));
      expect(await nextDue()).to.deep.equal(later(2000));
      expect(await nextDue(fx.peer)).to.deep.equal(later(2000));
      expect(await take(later(2000))).to.deep.equal([a]);
      expect(await nextDue()).to.deep.equal(later(2000));
      await right(fx.schedule.released(a!));
      expect(await nextDue(fx.peer)).to.deep.equal(later(5000));
      expect(await cancel(b!, later(10))).to.equal(true);
      expect(await nextDue()).to.equal(undefined);
    });
  });
}
