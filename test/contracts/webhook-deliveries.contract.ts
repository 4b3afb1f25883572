// One suite for every WebhookDeliveries store: one delivery per endpoint, email and notice key
// (the one stored first is the answer ever after), attempts recorded only in order and only while
// pending (of two workers with the same job, one records it), the orders the pages show, and a
// purge that takes only finished deliveries.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type {
  NewWebhookDelivery,
  WebhookAttempt,
  WebhookAttemptResult,
  WebhookDeliveries,
  WebhookDelivery,
  WebhookDeliveryState,
} from '../../src/application/ports/webhook-deliveries.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { anId, at, later } from '../support/builders.js';
import { right, some } from './email-log.contract.js';

/** A store to test, opened empty by the adapter's test file. */
export interface WebhookDeliveriesFixture {
  readonly deliveries: WebhookDeliveries;
  /** The same store as another process sees it (its own connections); in memory, the same one. */
  readonly peer: WebhookDeliveries;
  close(): Promise<void>;
}

let made = 0;

/**
 * A delivery no other test uses, made at `later(ms)`: a `msg_` id of 22 base64url characters,
 * about a new email, for the endpoint `we_…1`, its notice key naming a recipient of its own (so
 * that two made at the same time are two changes).
 */
export function aWebhookDelivery(
  ms = 0,
  more: Partial<NewWebhookDelivery> = {},
): NewWebhookDelivery {
  made += 1;
  const emailId = more.emailId ?? anId('hook');
  return {
    id: `msg_${String(made).padStart(22, 'A')}`,
    endpointId: 'we_0000000000000001',
    url: 'https://hooks.example.org/in',
    emailId,
    type: 'email.sent',
    noticeKey: `email.sent ${at(ms / 1000)} r${made}@example.org`,
    payload: JSON.stringify({
      type: 'email.sent',
      timestamp: at(ms / 1000),
      data: { id: emailId },
    }),
    createdAt: later(ms),
    ...more,
  };
}

/** What `create` answers for a delivery it stores now. */
const pending = (d: NewWebhookDelivery): WebhookDelivery => ({
  ...d,
  state: 'pending',
  attempts: [],
});

/** Attempt `n`, begun at `later(ms)`, answered with `statusCode`, or with none and an `error`. */
const anAttempt = (
  n: number,
  ms: number,
  answer: { readonly statusCode: number } | { readonly error: string },
): WebhookAttempt => ({ attempt: n, at: later(ms), durationMs: 120 + n, ...answer });

const timedOut = { error: 'timed out after 10 s' } as const;

/** Registers the suite `<name> honours the WebhookDeliveries contract`, each test on `open()`. */
export function webhookDeliveriesContract(
  name: string,
  open: () => Promise<WebhookDeliveriesFixture>,
): void {
  describe(`${name} honours the WebhookDeliveries contract`, function () {
    this.timeout(30_000);
    let fx: WebhookDeliveriesFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const create = (deliveries: readonly NewWebhookDelivery[], store = fx.deliveries) =>
      right(store.create(deliveries));
    const get = async (id: string, store = fx.deliveries): Promise<WebhookDelivery> =>
      some(await right(store.get(id)));
    const record = (
      id: string,
      attempt: WebhookAttempt,
      result: WebhookAttemptResult,
      store = fx.deliveries,
    ) => right(store.recordAttempt(id, attempt, result));
    /** Stores `d` and gives it a first attempt that leaves it `state`. */
    const stored = async (
      d: NewWebhookDelivery,
      state: WebhookDeliveryState = 'pending',
    ): Promise<NewWebhookDelivery> => {
      await create([d]);
      if (state !== 'pending') {
        expect(
          await record(
            d.id,
            anAttempt(1, 1, state === 'delivered' ? { statusCode: 200 } : timedOut),
            {
              state,
            },
          ),
        ).to.equal(true);
      }
      return d;
    };
    const ids = (deliveries: readonly WebhookDelivery[]) => deliveries.map((d) => d.id);

    describe('create', () => {
      it('stores new deliveries pending without attempts, answering them in the order given', async () => {
        const emailId = anId('hook');
        const first = aWebhookDelivery(5, { emailId });
        const second = aWebhookDelivery(3, {
          emailId,
          endpointId: 'we_0000000000000002',
          url: 'http://localhost:9000/hook?x=1',
          type: 'email.bounced',
          noticeKey: `email.bounced ${at(3)} ada@example.org`,
        });
        expect(await create([first, second])).to.deep.equal([pending(first), pending(second)]);
        const found = await get(second.id, fx.peer);
        expect(found).to.deep.equal(pending(second));
        expect(found).not.to.have.property('nextAttemptAt');
        expect(found.createdAt.getTime()).to.equal(later(3).getTime());
      });

      it('keeps the payload exactly as given, key order, escapes and all', async () => {
        const payload = '{"type":"email.sent","b":"é \\u00e9 \\"q\\"","a":[1, 2],"z":null}';
        const d = aWebhookDelivery(0, { payload });
        await create([d]);
        expect((await get(d.id, fx.peer)).payload).to.equal(payload);
      });

      it('answers nothing for nothing', async () => {
        expect(await create([])).to.deep.equal([]);
      });

      it('answers the delivery stored before for a change already stored, as it stands now', async () => {
        const first = await stored(aWebhookDelivery(1), 'delivered');
        const stand = await get(first.id);
        // The same change heard again: another id, payload and time, the same three keys.
        const again = aWebhookDelivery(9, {
          emailId: first.emailId,
          endpointId: first.endpointId,
          noticeKey: first.noticeKey,
          payload: '{"again":true}',
        });
        const fresh = aWebhookDelivery(9);
        expect(await create([again, fresh], fx.peer)).to.deep.equal([stand, pending(fresh)]);
        expect(stand.state).to.equal('delivered');
        expect(await right(fx.deliveries.get(again.id))).to.deep.equal(O.none);
        expect(ids(await right(fx.deliveries.forEmail(first.emailId)))).to.deep.equal([first.id]);
      });

      it('answers a pending delivery stored before with its attempts and next time', async () => {
        const first = await stored(aWebhookDelivery(1));
        const next = later(5_001);
        await record(first.id, anAttempt(1, 2, { statusCode: 500 }), {
          state: 'pending',
          nextAttemptAt: next,
        });
        const [answer] = await create([{ ...aWebhookDelivery(4), ...keyOf(first) }]);
        expect(answer).to.deep.equal(await get(first.id));
        expect(answer!.attempts).to.have.length(1);
        expect(answer!.nextAttemptAt!.getTime()).to.equal(next.getTime());
      });

      it('makes one delivery per endpoint, email and notice key: any other is another', async () => {
        const base = await stored(aWebhookDelivery(1));
        const otherEndpoint = { ...aWebhookDelivery(2), ...keyOf(base), endpointId: 'we_other' };
        const otherEmail = { ...aWebhookDelivery(3), ...keyOf(base), emailId: anId('hook') };
        const otherKey = { ...aWebhookDelivery(4), ...keyOf(base), noticeKey: 'email.sent x ' };
        const answers = await create([otherEndpoint, otherEmail, otherKey]);
        expect(answers).to.deep.equal([otherEndpoint, otherEmail, otherKey].map(pending));
      });

      it('stores one delivery for a change given twice in one call, answering it for both', async () => {
        const d = aWebhookDelivery(1);
        const twin = { ...aWebhookDelivery(2), ...keyOf(d) };
        const answers = await create([d, twin]);
        expect(answers).to.deep.equal([pending(d), pending(d)]);
        expect(await right(fx.deliveries.get(twin.id))).to.deep.equal(O.none);
      });

      it('lets exactly one of many workers racing to store one change in, and answers it to all', async () => {
        const first = aWebhookDelivery(1);
        const racers = Array.from({ length: 10 }, (_, i) =>
          i === 0 ? first : { ...aWebhookDelivery(1 + i), ...keyOf(first) },
        );
        const answers = await Promise.all(
          racers.map((d, i) => create([d], i % 2 === 0 ? fx.deliveries : fx.peer)),
        );
        const winners = new Set(answers.map(([answer]) => answer!.id));
        expect(winners.size).to.equal(1);
        const [winner] = [...winners];
        for (const [answer] of answers) expect(answer).to.deep.equal(await get(winner!));
        expect(ids(await right(fx.deliveries.forEmail(first.emailId)))).to.deep.equal([winner]);
      });

      it('refuses a delivery whose id another one has, and stores none of the call', async () => {
        const first = await stored(aWebhookDelivery(1));
        const innocent = aWebhookDelivery(2);
        const clash = aWebhookDelivery(3, { id: first.id });
        const result = await fx.peer.create([innocent, clash])();
        expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
        expect(await right(fx.deliveries.get(innocent.id))).to.deep.equal(O.none);
        expect(await get(first.id)).to.deep.equal(pending(first));
      });
    });

    describe('recordAttempt', () => {
      it('appends each attempt in order, with its status code or its error, and its result', async () => {
        const d = await stored(aWebhookDelivery(0));
        const first = anAttempt(1, 1, timedOut);
        const second = anAttempt(2, 5_002, { statusCode: 503 });
        const third = anAttempt(3, 305_003, { statusCode: 204 });

        expect(
          await record(d.id, first, { state: 'pending', nextAttemptAt: later(5_001) }),
        ).to.equal(true);
        const afterFirst = await get(d.id, fx.peer);
        expect(afterFirst.attempts).to.deep.equal([first]);
        expect(afterFirst.attempts[0]).not.to.have.property('statusCode');
        expect(afterFirst.attempts[0]!.at.getTime()).to.equal(later(1).getTime());
        expect(afterFirst.state).to.equal('pending');
        expect(afterFirst.nextAttemptAt!.getTime()).to.equal(later(5_001).getTime());

        expect(
          await record(d.id, second, { state: 'pending', nextAttemptAt: later(305_002) }, fx.peer),
        ).to.equal(true);
        const afterSecond = await get(d.id);
        expect(afterSecond.attempts).to.deep.equal([first, second]);
        expect(afterSecond.attempts[1]).not.to.have.property('error');
        expect(afterSecond.nextAttemptAt!.getTime()).to.equal(later(305_002).getTime());

        expect(await record(d.id, third, { state: 'delivered' })).to.equal(true);
        const done = await get(d.id, fx.peer);
        expect(done).to.deep.equal({
          ...pending(d),
          state: 'delivered',
          attempts: [first, second, third],
        });
        expect(done).not.to.have.property('nextAttemptAt');
      });

      it('keeps an attempt that has both a status code and an error', async () => {
        const d = await stored(aWebhookDelivery(0));
        const odd = anAttempt(1, 1, { statusCode: 413 });
        const both = { ...odd, error: 'the receiver closed the body early' };
        expect(await record(d.id, both, { state: 'failed' })).to.equal(true);
        expect((await get(d.id)).attempts).to.deep.equal([both]);
      });

      it('gives up a delivery: failed, without a next time', async () => {
        const d = await stored(aWebhookDelivery(0));
        await record(d.id, anAttempt(1, 1, timedOut), {
          state: 'pending',
          nextAttemptAt: later(9),
        });
        expect(
          await record(d.id, anAttempt(2, 9, { statusCode: 410 }), { state: 'failed' }),
        ).to.equal(true);
        const failed = await get(d.id);
        expect(failed.state).to.equal('failed');
        expect(failed).not.to.have.property('nextAttemptAt');
        expect(failed.attempts.map((a) => a.attempt)).to.deep.equal([1, 2]);
      });

      it('refuses an attempt recorded already, or out of order, and changes nothing', async () => {
        const d = await stored(aWebhookDelivery(0));
        await record(d.id, anAttempt(1, 1, timedOut), {
          state: 'pending',
          nextAttemptAt: later(9),
        });
        const before = await get(d.id);
        const result = { state: 'delivered', nextAttemptAt: later(99) } as const;
        expect(await record(d.id, anAttempt(1, 2, { statusCode: 200 }), result)).to.equal(false);
        expect(await record(d.id, anAttempt(1, 2, { statusCode: 200 }), result, fx.peer)).to.equal(
          false,
        );
        expect(await record(d.id, anAttempt(3, 2, { statusCode: 200 }), result)).to.equal(false);
        expect(await record(d.id, anAttempt(0, 2, { statusCode: 200 }), result)).to.equal(false);
        expect(await get(d.id, fx.peer)).to.deep.equal(before);
      });

      it('refuses a first attempt that is not numbered 1', async () => {
        const d = await stored(aWebhookDelivery(0));
        expect(await record(d.id, anAttempt(2, 1, timedOut), { state: 'pending' })).to.equal(false);
        expect(await get(d.id)).to.deep.equal(pending(d));
      });

      for (const state of ['delivered', 'failed'] as const) {
        it(`refuses any attempt on a ${state} delivery`, async () => {
          const d = await stored(aWebhookDelivery(0), state);
          const before = await get(d.id);
          expect(
            await record(d.id, anAttempt(2, 5, { statusCode: 200 }), {
              state: 'pending',
              nextAttemptAt: later(6),
            }),
          ).to.equal(false);
          expect(await get(d.id, fx.peer)).to.deep.equal(before);
        });
      }

      it('refuses an attempt on a delivery it does not have', async () => {
        expect(
          await record('msg_AAAAAAAAAAAAAAAAAAnone', anAttempt(1, 1, timedOut), {
            state: 'failed',
          }),
        ).to.equal(false);
      });

      it('lets exactly one of many workers holding the same job record its attempt', async () => {
        const d = await stored(aWebhookDelivery(0));
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            record(
              d.id,
              anAttempt(1, i, { statusCode: 500 + i }),
              { state: 'pending', nextAttemptAt: later(1_000 + i) },
              i % 2 === 0 ? fx.deliveries : fx.peer,
            ),
          ),
        );
        expect(results.filter((recorded) => recorded)).to.have.length(1);
        const winner = results.indexOf(true);
        const after = await get(d.id);
        expect(after.attempts).to.deep.equal([anAttempt(1, winner, { statusCode: 500 + winner })]);
        expect(after.nextAttemptAt!.getTime()).to.equal(later(1_000 + winner).getTime());
      });
    });

    describe('reading', () => {
      it('lists the deliveries of one email oldest first, ties in byte order of the id', async () => {
        const emailId: EmailId = anId('hook');
        const late = aWebhookDelivery(30, { emailId, id: 'msg_late' });
        const tieB = aWebhookDelivery(20, { emailId, id: 'msg_b' });
        const tieA = aWebhookDelivery(20, { emailId, id: 'msg_a' });
        const tieUpper = aWebhookDelivery(20, { emailId, id: 'msg_Z' });
        const early = aWebhookDelivery(10, { emailId, id: 'msg_early' });
        await create([late, tieB, tieA]);
        await create([tieUpper, early], fx.peer);
        await stored(aWebhookDelivery(15));
        const found = await right(fx.deliveries.forEmail(emailId));
        expect(found).to.deep.equal([early, tieUpper, tieA, tieB, late].map(pending));
        expect(await right(fx.peer.forEmail(anId('hook')))).to.deep.equal([]);
      });

      it('answers the newest deliveries of every endpoint, newest first, up to the limit', async () => {
        const all = [
          aWebhookDelivery(10, { endpointId: 'we_a' }),
          aWebhookDelivery(40, { endpointId: 'we_b' }),
          aWebhookDelivery(20, { endpointId: 'we_a', id: 'msg_tie_b' }),
          aWebhookDelivery(20, { endpointId: 'we_c', id: 'msg_tie_a' }),
          aWebhookDelivery(30, { endpointId: 'we_b' }),
        ];
        for (const d of all) await stored(d);
        await record(all[4]!.id, anAttempt(1, 31, { statusCode: 200 }), { state: 'delivered' });
        const [a10, b40, tieB, tieA, b30] = all;
        const newest = await right(fx.deliveries.recent(3));
        expect(ids(newest)).to.deep.equal([b40!.id, b30!.id, tieB!.id]);
        expect(newest[1]).to.deep.equal(await get(b30!.id));
        expect(newest[1]!.state).to.equal('delivered');
        expect(ids(await right(fx.peer.recent(100)))).to.deep.equal(
          [b40, b30, tieB, tieA, a10].map((d) => d!.id),
        );
        expect(await right(fx.deliveries.recent(0))).to.deep.equal([]);
      });

      it('answers pending deliveries whose attempt was due before a time, most overdue first', async () => {
        await stored(aWebhookDelivery(1), 'delivered');
        await stored(aWebhookDelivery(2), 'failed');
        // Never tried: due when it was made.
        const fresh = await stored(aWebhookDelivery(3_000));
        // Tried once, its next attempt due at 2 s: more overdue than the one made at 3 s.
        const retried = await stored(aWebhookDelivery(1_000));
        await record(retried.id, anAttempt(1, 1_100, { statusCode: 500 }), {
          state: 'pending',
          nextAttemptAt: later(2_000),
        });
        // Tried once, next attempt due later than the cutoff: not overdue.
        const waiting = await stored(aWebhookDelivery(500));
        await record(waiting.id, anAttempt(1, 600, { statusCode: 500 }), {
          state: 'pending',
          nextAttemptAt: later(60_000),
        });
        const overdue = await right(fx.peer.overdue(later(10_000), 10));
        expect(ids(overdue)).to.deep.equal([retried.id, fresh.id]);
        expect(overdue[0]?.attempts).to.have.length(1);
        expect(ids(await right(fx.deliveries.overdue(later(10_000), 1)))).to.deep.equal([
          retried.id,
        ]);
        expect(await right(fx.deliveries.overdue(later(1_500), 10))).to.deep.equal([]);
      });

      it('answers when the oldest pending delivery was made, whatever the finished ones', async () => {
        expect(await right(fx.deliveries.oldestPending())).to.deep.equal(O.none);
        await stored(aWebhookDelivery(1), 'delivered');
        await stored(aWebhookDelivery(2), 'failed');
        expect(await right(fx.deliveries.oldestPending())).to.deep.equal(O.none);
        const older = await stored(aWebhookDelivery(5_007));
        const newer = await stored(aWebhookDelivery(9_001));
        expect(some(await right(fx.peer.oldestPending())).getTime()).to.equal(
          later(5_007).getTime(),
        );
        await record(older.id, anAttempt(1, 6_000, { statusCode: 200 }), { state: 'delivered' });
        expect(some(await right(fx.deliveries.oldestPending())).getTime()).to.equal(
          later(9_001).getTime(),
        );
        await record(newer.id, anAttempt(1, 10_000, timedOut), { state: 'failed' });
        expect(await right(fx.peer.oldestPending())).to.deep.equal(O.none);
      });
    });

    describe('purgeOlderThan', () => {
      it('deletes finished deliveries made before the cutoff, oldest first, a batch at a time', async () => {
        const cutoff = later(100);
        const delivered0 = await stored(aWebhookDelivery(0), 'delivered');
        const failed1 = await stored(aWebhookDelivery(1), 'failed');
        const pending2 = await stored(aWebhookDelivery(2));
        const delivered3 = await stored(aWebhookDelivery(3), 'delivered');
        const atCutoff = await stored(aWebhookDelivery(100), 'delivered');
        const after = await stored(aWebhookDelivery(200), 'failed');

        expect(await right(fx.deliveries.purgeOlderThan(cutoff, 2))).to.equal(2);
        expect(await right(fx.deliveries.get(delivered0.id))).to.deep.equal(O.none);
        expect(await right(fx.deliveries.get(failed1.id))).to.deep.equal(O.none);
        expect(await right(fx.peer.get(delivered3.id))).not.to.deep.equal(O.none);

        expect(await right(fx.peer.purgeOlderThan(cutoff, 2))).to.equal(1);
        expect(await right(fx.deliveries.purgeOlderThan(cutoff, 2))).to.equal(0);
        expect(ids(await right(fx.deliveries.recent(10)))).to.deep.equal([
          after.id,
          atCutoff.id,
          pending2.id,
        ]);
      });

      it('deletes nothing with a batch of none', async () => {
        await stored(aWebhookDelivery(0), 'delivered');
        expect(await right(fx.deliveries.purgeOlderThan(later(100), 0))).to.equal(0);
        expect(await right(fx.deliveries.recent(10))).to.have.length(1);
      });

      it('lets a change purged be stored again, as new', async () => {
        const old = await stored(aWebhookDelivery(0), 'delivered');
        await right(fx.deliveries.purgeOlderThan(later(100), 10));
        const again = { ...aWebhookDelivery(500), ...keyOf(old) };
        expect(await create([again])).to.deep.equal([pending(again)]);
      });
    });
  });
}

/** The three fields that name a delivery, to make another of the same change. */
function keyOf(
  d: NewWebhookDelivery,
): Pick<NewWebhookDelivery, 'endpointId' | 'emailId' | 'noticeKey'> {
  return { endpointId: d.endpointId, emailId: d.emailId, noticeKey: d.noticeKey };
}
