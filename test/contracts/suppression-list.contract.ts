// One suite for every SuppressionList: an address is on the list once (its first entry stands),
// one look-up answers for many addresses, and pages go newest first without gaps or repeats.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { invalidCursor } from '../../src/application/ports/email-log.js';
import type { Suppression, SuppressionList } from '../../src/application/ports/suppression-list.js';
import { later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface SuppressionFixture {
  readonly list: SuppressionList;
  /** The same list as another process sees it (its own connections); in memory, the same one. */
  readonly peer: SuppressionList;
  /**
   * Resolves once `list` answers for `addresses` as `peer` does: at once for a list that asks
   * the table; for one with a copy in memory, once the peer's changes were heard.
   */
  settle?(addresses: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

const entry = (address: string, ms = 0, more: Partial<Suppression> = {}): Suppression => ({
  address,
  reason: 'manual',
  createdAt: later(ms),
  ...more,
});

export function suppressionListContract(
  name: string,
  open: () => Promise<SuppressionFixture>,
): void {
  describe(`${name} honours the SuppressionList contract`, function () {
    this.timeout(30_000);
    let fx: SuppressionFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const add = (e: Suppression, list = fx.list) => right(list.add(e));
    const suppressed = (addresses: readonly string[], list = fx.list) =>
      right(list.suppressed(addresses)).then((set) => [...set].sort());
    /** Every entry, page by page, following each next cursor to the end. */
    const everything = async (limit: number, list = fx.list): Promise<Suppression[][]> => {
      const pages: Suppression[][] = [];
      let cursor: string | undefined;
      do {
        const page = await right(list.list(limit, cursor));
        pages.push([...page.entries]);
        cursor = page.nextCursor;
      } while (cursor !== undefined && pages.length < 100);
      return pages;
    };

    it('keeps an entry as it was added, and finds it from another process', async () => {
      const bounced = entry('ada@example.org', 5, { reason: 'bounce', detail: 'email-123' });
      expect(await add(bounced)).to.equal(true);
      expect(await suppressed(['ada@example.org'], fx.peer)).to.deep.equal(['ada@example.org']);
      const page = await right(fx.peer.list(10));
      expect(page.entries).to.deep.equal([bounced]);
      expect(page.nextCursor).to.equal(undefined);
      await add(entry('bob@example.org', 6));
      const [newest] = (await right(fx.list.list(10))).entries;
      expect(newest).to.deep.equal(entry('bob@example.org', 6));
      expect(newest).not.to.have.property('detail');
    });

    it('answers false for an address already there, and keeps the first entry', async () => {
      expect(await add(entry('ada@example.org', 1, { reason: 'complaint' }))).to.equal(true);
      expect(await add(entry('ada@example.org', 9, { reason: 'manual' }), fx.peer)).to.equal(false);
      const { entries } = await right(fx.list.list(10));
      expect(entries).to.deep.equal([entry('ada@example.org', 1, { reason: 'complaint' })]);
    });

    it('lets exactly one of many processes racing to add one address in', async () => {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          add(entry('race@example.org', i), i % 2 === 0 ? fx.list : fx.peer),
        ),
      );
      expect(results.filter((added) => added)).to.have.length(1);
      expect((await right(fx.list.list(10))).entries).to.have.length(1);
    });

    it('answers the suppressed ones of many addresses in one look-up, exactly as keyed', async () => {
      await add(entry('ada@example.org'));
      await add(entry('info@xn--bcher-kva.de'));
      expect(
        await suppressed([
          'ada@example.org',
          'bob@example.org',
          'info@xn--bcher-kva.de',
          'ada@example.org',
          // Keys are exact: whoever asks passes mailbox keys, and other spellings are not them.
          'Ada@example.org',
          'ada@EXAMPLE.org',
        ]),
      ).to.deep.equal(['ada@example.org', 'info@xn--bcher-kva.de']);
      expect(await suppressed([])).to.deep.equal([]);
    });

    it('removes an address, answering whether it was there', async () => {
      await add(entry('ada@example.org'));
      expect(await right(fx.peer.remove('ada@example.org'))).to.equal(true);
      expect(await right(fx.list.remove('ada@example.org'))).to.equal(false);
      await fx.settle?.(['ada@example.org']);
      expect(await suppressed(['ada@example.org'])).to.deep.equal([]);
      expect((await right(fx.list.list(10))).entries).to.deep.equal([]);
      // Gone, it can be added again, as new.
      expect(await add(entry('ada@example.org', 3, { reason: 'bounce' }))).to.equal(true);
    });

    it('pages newest first, ties in byte order of the address, without gaps or repeats', async () => {
      const added = [
        entry('a@example.org', 1),
        entry('b@example.org', 3),
        entry('c@example.org', 2),
        entry('B@example.org', 3),
        entry('d@example.org', 3),
        entry('e@example.org', 0),
        entry('f@example.org', 4),
      ];
      for (const e of added) await add(e);
      const pages = await everything(3);
      expect(pages.map((p) => p.length)).to.deep.equal([3, 3, 1]);
      expect(pages.flat().map((e) => e.address)).to.deep.equal([
        'f@example.org',
        'd@example.org',
        'b@example.org',
        'B@example.org',
        'c@example.org',
        'a@example.org',
        'e@example.org',
      ]);
      // Another process follows the same cursors.
      const first = await right(fx.list.list(3));
      const second = await right(fx.peer.list(3, first.nextCursor));
      expect(second.entries.map((e) => e.address)).to.deep.equal([
        'B@example.org',
        'c@example.org',
        'a@example.org',
      ]);
    });

    it('gives no next cursor when the last page is exactly full', async () => {
      for (let i = 0; i < 4; i += 1) await add(entry(`n${i}@example.org`, i));
      const pages = await everything(2);
      expect(pages.map((p) => p.length)).to.deep.equal([2, 2]);
    });

    it('continues after an entry removed since its page was read', async () => {
      for (let i = 0; i < 4; i += 1) await add(entry(`n${i}@example.org`, i));
      const first = await right(fx.list.list(2));
      expect(first.entries.map((e) => e.address)).to.deep.equal([
        'n3@example.org',
        'n2@example.org',
      ]);
      await right(fx.list.remove('n2@example.org'));
      const next = await right(fx.list.list(2, first.nextCursor));
      expect(next.entries.map((e) => e.address)).to.deep.equal([
        'n1@example.org',
        'n0@example.org',
      ]);
    });

    it('refuses a cursor it never wrote as InvalidCursor, neither an end nor a first page', async () => {
      await add(entry('ada@example.org'));
      const written = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      for (const cursor of [
        '',
        'nonsense',
        'W10',
        written([1, 2]),
        // Outside the times every store compares, and an address no store can hold.
        written([-8.64e15, 'a@example.org']),
        written([8.64e15, 'a@example.org']),
        written([0, 'a\u0000@example.org']),
        written([0, 'a\ud800@example.org']),
      ]) {
        expect(await fx.list.list(10, cursor)(), cursor).to.deep.equal(E.left(invalidCursor));
      }
    });
  });
}
