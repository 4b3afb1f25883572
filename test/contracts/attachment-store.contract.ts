// One suite for every AttachmentStore: bytes named by their SHA-256, stored once, given back
// exactly, and kept as long as an email that exists carries them.
import { expect } from 'chai';
import * as O from 'fp-ts/lib/Option.js';
import { createHash, randomBytes } from 'node:crypto';
import type { AttachmentStore } from '../../src/application/ports/attachment-store.js';
import type { EmailLog } from '../../src/application/ports/email-log.js';
import type { Clock } from '../../src/application/ports/system.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { T0, aRequest, anEvent, anId, later } from '../support/builders.js';
import { fixedClock } from '../support/fakes.js';
import { right, some } from './email-log.contract.js';

export interface AttachmentFixture {
  readonly store: AttachmentStore;
  /** The same store as another server sees it (its own connections); in memory, the same one. */
  readonly peer: AttachmentStore;
  /** The emails the store keeps attachments for: the `emails` table, or the log it was given. */
  readonly emails: EmailLog;
  close(): Promise<void>;
}

/** The FIPS 180-2 test vector: SHA-256 of "abc". */
const ABC = new TextEncoder().encode('abc');
const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const MINUTE = 60_000;

/** Bytes no other test puts. */
const someBytes = (): Uint8Array => Uint8Array.from(randomBytes(64));

/**
 * `open` builds the stores on `clock`, the time each `put` is stored at (the port's `put` takes
 * none): the suite moves it to put bytes before and after a cutoff.
 */
export function attachmentStoreContract(
  name: string,
  open: (clock: Pick<Clock, 'now'>) => Promise<AttachmentFixture>,
): void {
  describe(`${name} honours the AttachmentStore contract`, function () {
    this.timeout(60_000);
    let fx: AttachmentFixture;
    let clock: ReturnType<typeof fixedClock>;

    beforeEach(async () => {
      clock = fixedClock(T0.toISOString());
      fx = await open(clock);
    });
    afterEach(async () => {
      await fx.close();
    });

    const put = (id: EmailId, content: Uint8Array, store = fx.store) =>
      right(store.put(id, content));
    const get = (digest: string, store = fx.store) => right(store.get(digest));
    const stored = async (digest: string): Promise<boolean> => O.isSome(await get(digest));
    const recorded = async (): Promise<EmailId> => {
      const request = aRequest();
      await right(fx.emails.record(request));
      return request.id;
    };

    it('names the bytes by their SHA-256 in lowercase hex, and answers their size', async () => {
      expect(await put(anId('att'), ABC)).to.deep.equal({ digest: ABC_SHA256, size: 3 });
      expect(await put(anId('att'), new Uint8Array(0))).to.deep.equal({
        digest: EMPTY_SHA256,
        size: 0,
      });
      expect(some(await get(EMPTY_SHA256))).to.deep.equal(new Uint8Array(0));
    });

    it('stores the same bytes once, whichever email and server puts them', async () => {
      const [a, b] = [anId('att'), anId('att')];
      const first = await put(a, ABC);
      expect(await put(b, ABC, fx.peer)).to.deep.equal(first);
      expect(await put(a, Uint8Array.from(ABC))).to.deep.equal(first);
      clock.advance(MINUTE);
      // Neither email was recorded: one entry goes, however many emails carried it.
      expect(await right(fx.store.purgeOrphans(clock.now()))).to.equal(1);
      expect(await stored(ABC_SHA256)).to.equal(false);
    });

    it('stores bytes that twenty puts race to store from two servers once, for every email', async () => {
      const content = someBytes();
      const ids = Array.from({ length: 20 }, () => anId('att'));
      const answers = await Promise.all(
        ids.map((id, i) => put(id, content, i % 2 === 0 ? fx.store : fx.peer)),
      );
      expect(new Set(answers.map((a) => a.digest)).size).to.equal(1);
      expect(answers[0]!.size).to.equal(64);
      expect(Buffer.from(some(await get(answers[0]!.digest)))).to.deep.equal(Buffer.from(content));
      clock.advance(MINUTE);
      expect(await right(fx.peer.purgeOrphans(clock.now()))).to.equal(1);
    });

    it('gives back exactly the bytes stored, every byte value, as a plain Uint8Array', async () => {
      const content = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) % 256);
      expect(new Set(content).size).to.equal(256);
      const { digest, size } = await put(anId('att'), content);
      expect(size).to.equal(512);
      for (const store of [fx.store, fx.peer]) {
        const got = some(await get(digest, store));
        expect(Object.getPrototypeOf(got)).to.equal(Uint8Array.prototype);
        expect(got).to.deep.equal(content);
      }
    });

    it('gives back a 5 MB file exactly', async () => {
      const content = Uint8Array.from(randomBytes(5 * 1024 * 1024));
      const { digest, size } = await put(anId('att'), content);
      expect(size).to.equal(5 * 1024 * 1024);
      const got = some(await get(digest, fx.peer));
      expect(got.byteLength).to.equal(content.byteLength);
      expect(Buffer.compare(Buffer.from(got), Buffer.from(content))).to.equal(0);
    });

    it('keeps its own copy: changing an array put or got changes nothing stored', async () => {
      const content = Uint8Array.from([1, 2, 3, 4]);
      const { digest } = await put(anId('att'), content);
      content[0] = 99;
      const got = some(await get(digest));
      expect(got).to.deep.equal(Uint8Array.from([1, 2, 3, 4]));
      got[1] = 99;
      expect(some(await get(digest))).to.deep.equal(Uint8Array.from([1, 2, 3, 4]));
    });

    it('answers none for a digest it does not hold', async () => {
      const { digest } = await put(anId('att'), someBytes());
      expect(await get(digest.replace(/^./, (c) => (c === '0' ? '1' : '0')))).to.deep.equal(O.none);
      expect(await get(ABC_SHA256)).to.deep.equal(O.none);
      expect(await get('not a digest')).to.deep.equal(O.none);
      expect(await get(digest.toUpperCase())).to.deep.equal(O.none);
    });

    it('stores bytes for an email it has not seen recorded: the API stores files first', async () => {
      const id = anId('att');
      const { digest } = await put(id, ABC);
      expect(some(await get(digest))).to.deep.equal(ABC);
      await right(fx.emails.record(aRequest({ id })));
      expect(await right(fx.store.purgeOrphans(later(MINUTE)))).to.equal(0);
      expect(await stored(digest)).to.equal(true);
    });

    it('purges what no existing email carries, stored before the cutoff, and answers how many', async () => {
      const [kept, forgotten, never] = [await recorded(), await recorded(), anId('att')];
      // An email known by its events alone exists too (a worker's news came first).
      const early = aRequest();
      await right(fx.emails.apply(anEvent.sending(early)));
      const x = await put(kept, someBytes());
      const shared = someBytes();
      const s = await put(kept, shared);
      await put(forgotten, shared);
      const y = await put(forgotten, someBytes());
      const z = await put(never, someBytes());
      const e = await put(early.id, someBytes());
      await right(fx.emails.forget(forgotten));
      clock.advance(MINUTE);
      const cutoff = clock.now();
      const atCutoff = await put(anId('att'), someBytes());
      clock.advance(1);
      const fresh = await put(anId('att'), someBytes());

      expect(await right(fx.store.purgeOrphans(cutoff))).to.equal(2);
      expect(await right(fx.peer.purgeOrphans(cutoff))).to.equal(0);
      for (const gone of [y, z]) expect(await stored(gone.digest)).to.equal(false);
      for (const left of [x, s, e, atCutoff, fresh]) {
        expect(await stored(left.digest)).to.equal(true);
      }

      // Retention deletes the email: what it carried goes with the next purge.
      await right(fx.emails.forget(kept));
      expect(await right(fx.peer.purgeOrphans(cutoff))).to.equal(2);
      for (const gone of [x, s]) expect(await stored(gone.digest)).to.equal(false);
      expect(await stored(e.digest)).to.equal(true);
    });

    it('keeps old bytes that an email not recorded yet has just put again', async () => {
      const content = someBytes();
      const { digest } = await put(anId('att'), content);
      clock.advance(60 * MINUTE);
      const newcomer = anId('att');
      await put(newcomer, content);
      expect(await right(fx.store.purgeOrphans(later(MINUTE)))).to.equal(0);
      expect(await stored(digest)).to.equal(true);
      // Recorded at last: the newcomer keeps the bytes past any cutoff.
      await right(fx.emails.record(aRequest({ id: newcomer })));
      expect(await right(fx.store.purgeOrphans(later(120 * MINUTE)))).to.equal(0);
      await right(fx.emails.forget(newcomer));
      expect(await right(fx.store.purgeOrphans(later(120 * MINUTE)))).to.equal(1);
      expect(await stored(digest)).to.equal(false);
    });

    it('never loses bytes a new email puts while another server purges them as orphans', async () => {
      const contents = Array.from({ length: 20 }, someBytes);
      for (const content of contents) await put(anId('att'), content);
      clock.advance(60 * MINUTE);
      const answers = await Promise.all(
        contents.flatMap((content) => [
          fx.peer.purgeOrphans(later(MINUTE))(),
          fx.store.put(anId('att'), content)(),
        ]),
      );
      for (const answer of answers) expect(answer._tag, JSON.stringify(answer)).to.equal('Right');
      // Each new email carries its bytes: whichever ran first, they are there.
      for (const [i, content] of contents.entries()) {
        const got = await get(createHash('sha256').update(content).digest('hex'));
        expect(O.isSome(got) && Buffer.from(got.value).equals(content), `file ${i}`).to.equal(true);
      }
    });

    it('purges every orphan, however many, in one call', async () => {
      const orphans = await Promise.all(
        Array.from({ length: 7 }, () => put(anId('att'), someBytes())),
      );
      const keeper = await put(await recorded(), someBytes());
      expect(await right(fx.store.purgeOrphans(later(MINUTE)))).to.equal(7);
      for (const gone of orphans) expect(await stored(gone.digest)).to.equal(false);
      expect(await stored(keeper.digest)).to.equal(true);
    });
  });
}
