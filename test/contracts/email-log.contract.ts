// One suite for every EmailLog: what keeps the in-memory log honest is that it must pass exactly
// what PostgreSQL passes.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type {
  EmailLog,
  EmailQuery,
  InvalidCursor,
  StoreUnavailable,
} from '../../src/application/ports/email-log.js';
import { LISTABLE_TIMES } from '../../src/application/ports/email-log.js';
import type { EmailId, EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { STATUS_NAMES } from '../../src/domain/email-status.js';
import type { DomainEvent, ProviderReported } from '../../src/domain/events.js';
import { aRequest, anAddress, anEvent, anId, at } from '../support/builders.js';

export interface EmailLogFixture {
  readonly log: EmailLog;
  /** The same log as another process sees it (its own connections); in memory, the same one. */
  readonly peer: EmailLog;
  close(): Promise<void>;
}

/** The Right of a store call; a Left fails the test with its reason. */
export async function right<A>(call: TaskEither<StoreUnavailable | InvalidCursor, A>): Promise<A> {
  const result = await call();
  if (E.isLeft(result)) {
    throw new Error(
      result.left._tag === 'StoreUnavailable'
        ? `the store answered StoreUnavailable: ${result.left.reason}`
        : 'the store answered InvalidCursor',
    );
  }
  return result.right;
}

/** A cursor made by hand, in the shape the logs write theirs: base64url JSON. */
const forged = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export function some<A>(option: O.Option<A>): A {
  if (O.isNone(option)) throw new Error('expected Some, got None');
  return option.value;
}

export function emailLogContract(name: string, open: () => Promise<EmailLogFixture>): void {
  describe(`${name} honours the EmailLog contract`, function () {
    this.timeout(30_000);
    let fx: EmailLogFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const get = async (id: EmailId): Promise<EmailStatus> => some(await right(fx.log.get(id)));
    const apply = (e: DomainEvent) => right(fx.log.apply(e));
    const ids = async (query: Partial<EmailQuery> = {}): Promise<string[]> =>
      (await right(fx.log.list({ limit: 100, ...query }))).data.map((s) => s.id);

    describe('record', () => {
      it('records a request as queued, with one queued change made by the api', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        const status = await get(r.id);
        expect(status).to.include({
          id: r.id,
          status: 'queued',
          subject: r.subject,
          requestedAt: r.requestedAt,
        });
        expect(status.to).to.deep.equal(r.to);
        expect(status.recipients).to.deep.equal(
          r.to.map((a) => ({ address: a, status: 'queued' })),
        );
        expect(status.attempts).to.deep.equal([]);
        expect(status.history).to.deep.equal([
          { at: r.requestedAt, status: 'queued', source: 'api' },
        ]);
      });

      it('keeps the request exactly as accepted, tags included', async () => {
        const r = aRequest({ tags: ['welcome', 'q4-2026'] });
        await right(fx.log.record(r));
        expect(some(await right(fx.log.request(r.id)))).to.deep.equal(r);
        expect(O.isNone(await right(fx.log.request(aRequest().id)))).to.equal(true);
        expect(O.isNone(await right(fx.log.get(aRequest().id)))).to.equal(true);
      });

      it('records requests given at the same time each exactly as accepted; of one id, the first', async () => {
        // Recorded together, as the accept path's concurrent requests are (one statement for
        // them all in the SQL log), with characters JSON escapes.
        const odd = aRequest({
          tags: ['q4_2026', 'Mixed-Case'],
          subject: 'Line "one" \\ ✉ {"a": [1]} end',
          metadata: { order: 'back\\slash, "quoted", ünï ✉' },
          to: ['"Ada, L." <ada@example.com>'],
          requestedAt: 2,
        });
        const plain = aRequest({ requestedAt: 1 });
        const again = aRequest({ id: odd.id, subject: 'Later, same id', tags: ['later'] });
        await Promise.all([odd, plain, again].map((r) => right(fx.log.record(r))));
        expect(some(await right(fx.log.request(odd.id)))).to.deep.equal(odd);
        expect(some(await right(fx.log.request(plain.id)))).to.deep.equal(plain);
        expect((await get(odd.id)).subject).to.equal(odd.subject);
        expect(await ids({ tag: 'Mixed-Case' })).to.deep.equal([odd.id]);
        expect(await ids({ tag: 'later' })).to.deep.equal([]);
        expect(await ids({ to: 'ADA, l.' })).to.deep.equal([odd.id]);
      });

      it('changes nothing when the id is recorded again, even with another request', async () => {
        const r = aRequest({ tags: ['first'] });
        await right(fx.log.record(r));
        await apply(anEvent.sending(r, { attempt: 1, at: at(5) }));
        const before = await get(r.id);
        await right(fx.log.record(r));
        await right(fx.log.record(aRequest({ id: r.id, subject: 'Another subject', tags: ['x'] })));
        expect(await get(r.id)).to.deep.equal(before);
        expect(some(await right(fx.log.request(r.id)))).to.deep.equal(r);
        expect(await ids({ tag: 'x' })).to.deep.equal([]);
      });

      it('forgets an email entirely, and forgetting an unknown id is fine', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        await right(fx.log.forget(r.id));
        expect(O.isNone(await right(fx.log.get(r.id)))).to.equal(true);
        expect(O.isNone(await right(fx.log.request(r.id)))).to.equal(true);
        expect(await ids()).to.deep.equal([]);
        await right(fx.log.forget(aRequest().id));
      });
    });

    describe('apply', () => {
      it('folds sending then sent, each one news', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        const sending = await apply(anEvent.sending(r, { attempt: 1, at: at(1) }));
        expect(sending.changed).to.equal(true);
        expect(sending.status.status).to.equal('sending');
        const sent = await apply(
          anEvent.sent(r, { attempt: 1, at: at(2), providerId: '<p-1@mg.example>' }),
        );
        expect(sent.changed).to.equal(true);
        expect(sent.status).to.include({
          status: 'sent',
          providerId: '<p-1@mg.example>',
          sentAt: at(2),
          durationMs: 12,
        });
        expect(sent.status.recipients.map((x) => x.status)).to.deep.equal(['sent', 'sent']);
        expect(sent.status.attempts).to.deep.equal([
          { attempt: 1, at: at(2), outcome: 'sent', detail: '<p-1@mg.example>', durationMs: 12 },
        ]);
        expect(sent.status.history.map((c) => [c.status, c.source])).to.deep.equal([
          ['queued', 'api'],
          ['sending', 'worker'],
          ['sent', 'worker'],
        ]);
        expect(await get(r.id)).to.deep.equal(sent.status);
      });

      it('folds onto a current basis exactly as without one', async () => {
        const r = aRequest();
        const twin: EmailRequest = { ...r, id: anId() };
        const fold = async (x: EmailRequest, withBasis: boolean) => {
          await right(fx.log.record(x));
          const sending = await apply(anEvent.sending(x, { attempt: 1, at: at(1) }));
          const event = anEvent.sent(x, { attempt: 1, at: at(2), providerId: '<p@mg>' });
          return right(fx.log.apply(event, withBasis ? sending : undefined));
        };
        const sent = await fold(r, true);
        const plain = await fold(twin, false);
        expect(sent.changed).to.equal(true);
        expect({ ...sent.status, id: twin.id }).to.deep.equal({ ...plain.status, id: twin.id });
        expect(await get(r.id)).to.deep.equal(sent.status);
      });

      it('folds onto the basis of a recorded request exactly as without one, moved on or not', async () => {
        const r = aRequest({ cc: ['carol@example.net'], tags: ['welcome'], metadata: { n: '1' } });
        const twin: EmailRequest = { ...r, id: anId() };
        const sending = async (x: EmailRequest, withBasis: boolean) =>
          right(
            fx.log.apply(
              anEvent.sending(x, { attempt: 1, at: at(1) }),
              withBasis ? fx.log.recordedBasis(x) : undefined,
            ),
          );
        await right(fx.log.record(r));
        await right(fx.log.record(twin));
        const onto = await sending(r, true);
        const plain = await sending(twin, false);
        expect(onto.changed).to.equal(true);
        expect({ ...onto.status, id: twin.id }).to.deep.equal({ ...plain.status, id: twin.id });
        expect(await get(r.id)).to.deep.equal(onto.status);

        // Another process moved it on since it was recorded: the fold builds on what it wrote.
        const moved = aRequest();
        await right(fx.log.record(moved));
        await right(fx.peer.apply(anEvent.sending(moved, { attempt: 1, at: at(1) })));
        await right(fx.peer.apply(anEvent.retried(moved, { attempt: 1, at: at(2) })));
        const again = await right(
          fx.log.apply(
            anEvent.sending(moved, { attempt: 2, at: at(62) }),
            fx.log.recordedBasis(moved),
          ),
        );
        expect(again.status.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
          [1, 'transient'],
        ]);
        expect(await get(moved.id)).to.deep.equal(again.status);
      });

      it('folds onto the basis of a recorded request only while the entry is that very one', async () => {
        // Each entry is at its first version, but is not what `recordedBasis` works out from the
        // request the worker holds: the fold must build on what is stored, as without a basis.
        const sendingOnto = (x: EmailRequest, at2: number) =>
          right(
            fx.log.apply(anEvent.sending(x, { attempt: 1, at: at(at2) }), fx.log.recordedBasis(x)),
          );
        // An abandoned idempotency key taken over: the same id, published with a later request.
        const first = aRequest({ requestedAt: 0 });
        await right(fx.log.record(first));
        const later = await sendingOnto({ ...first, requestedAt: at(31) }, 32);
        expect(later.status.requestedAt).to.equal(first.requestedAt);
        expect(later.status.history[0]?.at).to.equal(first.requestedAt);
        // The recipients the worker screened out of this send stay in the entry.
        const both = aRequest({ to: ['ada@example.com', 'bob@example.com'] });
        await right(fx.log.record(both));
        const screened = await sendingOnto({ ...both, to: [both.to[0]!] }, 2);
        expect(screened.status.to).to.deep.equal(both.to);
        expect(screened.status.recipients.map((x) => x.address)).to.deep.equal([
          'ada@example.com',
          'bob@example.com',
        ]);
        // An entry an event began (a first delivery, its email forgotten by the server): kept.
        const begun = aRequest();
        await apply(anEvent.sending(begun, { attempt: 1, at: at(2) }));
        const again = await sendingOnto(begun, 40);
        expect(again.status.history.map((c) => c.at)).to.include(at(2));
        expect(await get(first.id)).to.deep.equal(later.status);
        expect(await get(both.id)).to.deep.equal(screened.status);
        expect(await get(begun.id)).to.deep.equal(again.status);
      });

      it('folds onto what another process wrote, not onto a basis it outdated', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        const sending = await apply(anEvent.sending(r, { attempt: 1, at: at(1) }));
        await right(fx.peer.apply(anEvent.retried(r, { attempt: 1, at: at(2) })));
        const next = anEvent.sending(r, { attempt: 2, at: at(62) });
        const again = await right(fx.log.apply(next, sending));
        expect(again.changed).to.equal(true);
        expect(again.status.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
          [1, 'transient'],
        ]);
        expect(await get(r.id)).to.deep.equal(again.status);
        // The answer is a basis again: the next fold builds on it.
        const sent = await right(fx.log.apply(anEvent.sent(r, { attempt: 2, at: at(63) }), again));
        expect(sent.status.status).to.equal('sent');
        expect(await get(r.id)).to.deep.equal(sent.status);
      });

      it('folds a retry, then a permanent failure', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        await apply(anEvent.sending(r, { attempt: 1, at: at(1) }));
        const retrying = await apply(anEvent.retried(r, { attempt: 1, at: at(2) }));
        expect(retrying.status).to.include({
          status: 'retrying',
          nextAttemptAt: at(62),
          reason: 'a 503 from the provider',
        });
        await apply(anEvent.sending(r, { attempt: 2, at: at(62) }));
        const failed = await apply(anEvent.failed(r, { attempt: 2, at: at(63) }));
        expect(failed.changed).to.equal(true);
        expect(failed.status).to.include({
          status: 'failed',
          failedAt: at(63),
          reason: '550 no such user',
        });
        expect(failed.status).not.to.have.property('nextAttemptAt');
        expect(failed.status.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
          [1, 'transient'],
          [2, 'permanent'],
        ]);
        expect(await get(r.id)).to.deep.equal(failed.status);
      });

      it('takes a replayed failure as no news, and a replayed dead letter as news', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        await apply(anEvent.sending(r, { attempt: 1, at: at(1) }));
        const failed = await apply(anEvent.failed(r, { attempt: 1, at: at(2) }));
        const again = await apply(anEvent.failed(r, { attempt: 1, at: at(2) }));
        expect(again.changed).to.equal(false);
        expect(again.status).to.deep.equal(failed.status);
        // Someone replays the dead letter: what happens after the failure is news.
        const resent = await apply(anEvent.sending(r, { attempt: 1, at: at(100) }));
        expect(resent.changed).to.equal(true);
        expect(resent.status.status).to.equal('sending');
        expect(resent.status).not.to.have.property('failedAt');
        const sent = await apply(anEvent.sent(r, { attempt: 1, at: at(101) }));
        expect(sent.status.status).to.equal('sent');
        expect(await get(r.id)).to.deep.equal(sent.status);
      });

      it('answers changed false for a duplicate event, and keeps the state', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        await apply(anEvent.sending(r, { attempt: 1, at: at(1) }));
        const first = await apply(anEvent.sent(r, { attempt: 1, at: at(2) }));
        expect((await apply(anEvent.sending(r, { attempt: 1, at: at(1) }))).changed).to.equal(
          false,
        );
        const duplicate = await apply(anEvent.sent(r, { attempt: 1, at: at(2) }));
        expect(duplicate.changed).to.equal(false);
        expect(duplicate.status).to.deep.equal(first.status);
        expect(await get(r.id)).to.deep.equal(first.status);
      });

      it('does not let an older event undo a newer one', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        await apply(anEvent.sent(r, { attempt: 1, at: at(5) }));
        const late = await apply(anEvent.sending(r, { attempt: 1, at: at(4) }));
        expect(late.changed).to.equal(false);
        expect((await get(r.id)).status).to.equal('sent');
      });

      it('starts an entry from an event that comes before the record, which completes it', async () => {
        const r = aRequest({ tags: ['early'], requestedAt: 0 });
        const early = await apply(anEvent.sending(r, { attempt: 1, at: at(3) }));
        expect(early.changed).to.equal(true);
        expect(early.status.status).to.equal('sending');
        expect(O.isNone(await right(fx.log.request(r.id)))).to.equal(true);
        expect(await ids()).to.deep.equal([r.id]);
        expect(await ids({ since: new Date(at(3)) })).to.deep.equal([r.id]);

        await right(fx.log.record(r));
        expect(some(await right(fx.log.request(r.id)))).to.deep.equal(r);
        const status = await get(r.id);
        expect(status.status).to.equal('sending');
        expect(status.requestedAt).to.equal(r.requestedAt);
        expect(status.history.map((c) => [c.at, c.status, c.source])).to.deep.equal([
          [at(0), 'queued', 'api'],
          [at(3), 'sending', 'worker'],
        ]);
        // Listed from then on by its acceptance time and its tags.
        expect(await ids({ tag: 'early' })).to.deep.equal([r.id]);
        expect(await ids({ since: new Date(at(3)) })).to.deep.equal([]);
        expect(await ids({ until: new Date(at(1)) })).to.deep.equal([r.id]);
      });

      it('loses no event when two processes apply twenty of them to one email at once', async () => {
        const r = aRequest();
        const events = Array.from({ length: 20 }, (_, i) =>
          anEvent.retried(r, { attempt: i + 1, at: at(i + 1) }),
        );
        const results = await Promise.all(
          events.map((e, i) => right((i % 2 === 0 ? fx.log : fx.peer).apply(e))),
        );
        expect(results.every((x) => x.changed)).to.equal(true);
        const status = await get(r.id);
        expect(status.attempts.map((a) => a.attempt)).to.deep.equal(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        expect(status.history).to.have.length(20);
      });
    });

    describe('applyAll', () => {
      const sendingThenSent = (r: EmailRequest) => [
        anEvent.sending(r, { attempt: 1, at: at(1) }),
        anEvent.sent(r, { attempt: 1, at: at(2), providerId: '<p-1@mg.example>' }),
      ];

      it('folds sending and sent in one call exactly as apply does one after the other', async () => {
        const r = aRequest({ tags: ['t'] });
        const twin: EmailRequest = { ...r, id: anId() };
        await right(fx.log.record(r));
        await right(fx.log.record(twin));
        const answers = await right(fx.log.applyAll(sendingThenSent(r)));
        const one = await apply(sendingThenSent(twin)[0]!);
        const two = await apply(sendingThenSent(twin)[1]!);
        const same = (x: EmailStatus) => ({ ...x, id: twin.id });
        expect(answers.map((a) => a.changed)).to.deep.equal([true, true]);
        expect(answers.map((a) => same(a.status))).to.deep.equal([
          same(one.status),
          same(two.status),
        ]);
        expect(await get(r.id)).to.deep.equal(answers[1]!.status);
      });

      it('folds onto the basis of a recorded request, and its answer is the next basis', async () => {
        const r = aRequest({ cc: ['carol@example.net'] });
        await right(fx.log.record(r));
        const [sending, sentEvent] = sendingThenSent(r);
        const answers = await right(fx.log.applyAll([sending!], fx.log.recordedBasis(r)));
        expect(answers.map((a) => a.status.status)).to.deep.equal(['sending']);
        const sent = await right(fx.log.apply(sentEvent!, answers[0]));
        expect(sent.changed).to.equal(true);
        expect(sent.status.history.map((c) => c.status)).to.deep.equal([
          'queued',
          'sending',
          'sent',
        ]);
        expect(await get(r.id)).to.deep.equal(sent.status);
      });

      it('says which events were news: a replayed sending is not, the sent after it is', async () => {
        const r = aRequest();
        await right(fx.log.record(r));
        const [sending, sentEvent] = sendingThenSent(r);
        await apply(sending!);
        const answers = await right(fx.log.applyAll([sending!, sentEvent!]));
        expect(answers.map((a) => [a.changed, a.status.status])).to.deep.equal([
          [false, 'sending'],
          [true, 'sent'],
        ]);
        // Nothing new at all: written nowhere, each answered as no news.
        const again = await right(fx.peer.applyAll([sending!, sentEvent!]));
        expect(again.map((a) => a.changed)).to.deep.equal([false, false]);
        expect(await get(r.id)).to.deep.equal(answers[1]!.status);
      });

      it('starts an entry from events that come before the record', async () => {
        const r = aRequest({ requestedAt: 0 });
        const answers = await right(fx.log.applyAll(sendingThenSent(r)));
        expect(answers.map((a) => a.changed)).to.deep.equal([true, true]);
        await right(fx.log.record(r));
        expect((await get(r.id)).history.map((c) => c.status)).to.deep.equal([
          'queued',
          'sending',
          'sent',
        ]);
      });

      it('throws for no events, or events of two emails: a caller bug, not a store failure', () => {
        expect(() => fx.log.applyAll([])).to.throw(/at least one event/);
        const [a] = sendingThenSent(aRequest());
        const [b] = sendingThenSent(aRequest());
        expect(() => fx.log.applyAll([a!, b!])).to.throw(/one email/);
      });
    });

    describe('list', () => {
      it('lists newest first, by acceptance time and then by id, byte order', async () => {
        const p = anId('ord');
        const same = [`${p}-Zeta`, `${p}_alpha`, `${p}-alpha`].map((id) =>
          aRequest({ id, requestedAt: 20 }),
        );
        const older = aRequest({ requestedAt: 10 });
        const newest = aRequest({ requestedAt: 30 });
        for (const r of [older, ...same, newest]) await right(fx.log.record(r));
        expect(await ids()).to.deep.equal([
          newest.id,
          `${p}_alpha`,
          `${p}-alpha`,
          `${p}-Zeta`,
          older.id,
        ]);
      });

      it('filters by status', async () => {
        const [a, b, c] = [aRequest(), aRequest(), aRequest()];
        for (const r of [a!, b!, c!]) await right(fx.log.record(r));
        await apply(anEvent.sending(b!, { attempt: 1, at: at(1) }));
        expect(await ids({ status: 'sending' })).to.deep.equal([b!.id]);
        expect((await ids({ status: 'queued' })).sort()).to.deep.equal([a!.id, c!.id].sort());
        expect(await ids({ status: 'failed' })).to.deep.equal([]);
      });

      it('filters by a recipient substring, case-insensitive, with % and _ taken literally', async () => {
        const ada = aRequest({ to: ['Ada Lovelace <ada@example.org>'], requestedAt: 4 });
        const underscore = aRequest({ to: ['a_b@example.com'], requestedAt: 3 });
        const plain = aRequest({ to: ['axb@example.com', 'carol@example.net'], requestedAt: 2 });
        const percent = aRequest({ to: ['half%off@example.com'], requestedAt: 1 });
        for (const r of [ada, underscore, plain, percent]) await right(fx.log.record(r));
        expect(await ids({ to: 'ADA@EXAMPLE' })).to.deep.equal([ada.id]);
        expect(await ids({ to: 'lovelace' })).to.deep.equal([ada.id]);
        expect(await ids({ to: 'a_b' })).to.deep.equal([underscore.id]);
        expect(await ids({ to: '_' })).to.deep.equal([underscore.id]);
        expect(await ids({ to: '%' })).to.deep.equal([percent.id]);
        expect(await ids({ to: 'example.com' })).to.deep.equal([
          underscore.id,
          plain.id,
          percent.id,
        ]);
        expect(await ids({ to: 'Carol@' })).to.deep.equal([plain.id]);
        expect(await ids({ to: 'nobody' })).to.deep.equal([]);
      });

      it('filters by tag', async () => {
        const both = aRequest({ tags: ['welcome', 'q4'], requestedAt: 3 });
        const one = aRequest({ tags: ['welcome'], requestedAt: 2 });
        const none = aRequest({ requestedAt: 1 });
        for (const r of [both, one, none]) await right(fx.log.record(r));
        expect(await ids({ tag: 'welcome' })).to.deep.equal([both.id, one.id]);
        expect(await ids({ tag: 'q4' })).to.deep.equal([both.id]);
        expect(await ids({ tag: 'welc' })).to.deep.equal([]);
      });

      it('filters by time: since inclusive, until exclusive', async () => {
        const [t1, t2, t3] = [1, 2, 3].map((s) => aRequest({ requestedAt: s }));
        for (const r of [t1!, t2!, t3!]) await right(fx.log.record(r));
        expect(await ids({ since: new Date(at(2)) })).to.deep.equal([t3!.id, t2!.id]);
        expect(await ids({ until: new Date(at(2)) })).to.deep.equal([t1!.id]);
        expect(await ids({ since: new Date(at(1)), until: new Date(at(3)) })).to.deep.equal([
          t2!.id,
          t1!.id,
        ]);
      });

      it('combines every filter given (AND)', async () => {
        const hit = aRequest({ tags: ['promo'], to: ['dora@example.org'], requestedAt: 5 });
        const wrongTag = aRequest({ tags: ['other'], to: ['dora@example.org'], requestedAt: 5 });
        const wrongTo = aRequest({ tags: ['promo'], to: ['eve@example.org'], requestedAt: 5 });
        const wrongStatus = aRequest({ tags: ['promo'], to: ['dora@example.org'], requestedAt: 5 });
        const tooOld = aRequest({ tags: ['promo'], to: ['dora@example.org'], requestedAt: 1 });
        for (const r of [hit, wrongTag, wrongTo, wrongStatus, tooOld]) {
          await right(fx.log.record(r));
        }
        await apply(anEvent.sending(wrongStatus, { attempt: 1, at: at(6) }));
        expect(
          await ids({ status: 'queued', tag: 'promo', to: 'dora', since: new Date(at(2)) }),
        ).to.deep.equal([hit.id]);
      });

      it('pages through seven emails three at a time, without duplicates or gaps', async () => {
        // Four share one acceptance time: only the id tells them apart.
        const emails = [1, 2, 2, 2, 2, 3, 4].map((s) =>
          aRequest({ requestedAt: s, tags: ['page'] }),
        );
        for (const r of emails) await right(fx.log.record(r));
        await right(fx.log.record(aRequest({ requestedAt: 2 }))); // filtered out throughout
        const all = await ids({ tag: 'page' });
        expect(all).to.have.length(7);

        const pages: string[][] = [];
        let cursor: string | undefined;
        do {
          const page = await right(
            fx.log.list({ limit: 3, tag: 'page', ...(cursor !== undefined ? { cursor } : {}) }),
          );
          pages.push(page.data.map((s) => s.id));
          cursor = page.nextCursor;
        } while (cursor !== undefined && pages.length < 10);
        expect(pages.map((p) => p.length)).to.deep.equal([3, 3, 1]);
        expect(pages.flat()).to.deep.equal(all);
      });

      it('gives no next cursor when the last page is exactly full', async () => {
        for (const s of [1, 2, 3]) await right(fx.log.record(aRequest({ requestedAt: s })));
        const page = await right(fx.log.list({ limit: 3 }));
        expect(page.data).to.have.length(3);
        expect(page).not.to.have.property('nextCursor');
      });

      it('answers InvalidCursor for a cursor it never wrote, and nothing else', async () => {
        const r = aRequest({ requestedAt: 1 });
        await right(fx.log.record(r));
        const id = r.id;
        const cursors = [
          'not a cursor',
          'bm90IGpzb24', // base64url, not JSON
          forged({ at: 1, id }),
          forged([1, id, 'extra']),
          forged(['2026-11-28', id]),
          forged([1e300, id]),
          forged([-1, id]), // before 1970
          forged([Date.UTC(0, 0, 1), id]), // year 0, which PostgreSQL does not have
          forged([LISTABLE_TIMES.untilMs, id]), // the year 10000
          forged([1.5, id]),
          forged([1, 42]),
          forged([1, 'a\u0000b-cdefgh']), // a NUL PostgreSQL would refuse
          forged([1, 'short']),
        ];
        for (const cursor of cursors) {
          const result = await fx.log.list({ limit: 10, cursor })();
          expect(result, cursor).to.deep.equal(E.left({ _tag: 'InvalidCursor' }));
        }
      });

      it('reads a well-formed cursor at either end of the listable times', async () => {
        const r = aRequest({ requestedAt: 1 });
        await right(fx.log.record(r));
        const id = anId('cursor');
        const latest = forged([LISTABLE_TIMES.untilMs - 1, id]);
        expect(
          (await right(fx.log.list({ limit: 10, cursor: latest }))).data.map((s) => s.id),
        ).to.deep.equal([r.id]);
        const earliest = forged([LISTABLE_TIMES.fromMs, id]);
        expect((await right(fx.log.list({ limit: 10, cursor: earliest }))).data).to.deep.equal([]);
        // The email a cursor names may be gone (retention): the page goes on after its place.
        const gone = forged([Date.parse(at(2)), id]);
        expect(
          (await right(fx.log.list({ limit: 10, cursor: gone }))).data.map((s) => s.id),
        ).to.deep.equal([r.id]);
      });

      it('filters by time at either end of the listable times', async () => {
        const r = aRequest({ requestedAt: 1 });
        await right(fx.log.record(r));
        const since = new Date(LISTABLE_TIMES.fromMs);
        const until = new Date(LISTABLE_TIMES.untilMs - 1);
        expect(await ids({ since, until })).to.deep.equal([r.id]);
        expect(await ids({ since: until })).to.deep.equal([]);
        expect(await ids({ until: since })).to.deep.equal([]);
      });

      it('finds nothing for a recipient substring no address can hold', async () => {
        const r = aRequest({ to: ['Zoë 😀 <zoe@example.org>', 'ada@example.com'] });
        await right(fx.log.record(r));
        for (const to of ['\u0000', 'zoe\u0000', '\n', 'example.org\nada', '\ud83d', '\t']) {
          expect(await ids({ to }), JSON.stringify(to)).to.deep.equal([]);
        }
        expect(await ids({ to: '😀' })).to.deep.equal([r.id]);
      });
    });

    describe('countByStatus', () => {
      const counts = (query = {}) => right(fx.log.countByStatus(query));
      /** Only the statuses with emails: the rest must be there, at 0. */
      const nonZero = (all: Readonly<Record<string, number>>): Record<string, number> =>
        Object.fromEntries(Object.entries(all).filter(([, n]) => n > 0));

      it('names every status, at 0 in an empty log', async () => {
        const all = await counts();
        expect(Object.keys(all).sort()).to.deep.equal([...STATUS_NAMES].sort());
        expect(Object.values(all)).to.deep.equal(STATUS_NAMES.map(() => 0));
      });

      it('counts the emails in each status, as they are now', async () => {
        const [a, b, c, d] = [aRequest(), aRequest(), aRequest(), aRequest()];
        for (const r of [a!, b!, c!, d!]) await right(fx.log.record(r));
        await apply(anEvent.sending(b!, { attempt: 1, at: at(1) }));
        await apply(anEvent.sending(c!, { attempt: 1, at: at(1) }));
        await apply(anEvent.sent(c!, { attempt: 1, at: at(2) }));
        expect(nonZero(await counts())).to.deep.equal({ queued: 2, sending: 1, sent: 1 });
        await apply(anEvent.sending(d!, { attempt: 1, at: at(3) }));
        await apply(anEvent.failed(d!, { attempt: 1, at: at(4) }));
        expect(nonZero(await counts())).to.deep.equal({
          queued: 1,
          sending: 1,
          sent: 1,
          failed: 1,
        });
      });

      it('counts what list would show for the same recipient, tag and time filters', async () => {
        const hit = aRequest({ tags: ['promo'], to: ['dora@example.org'], requestedAt: 5 });
        const sentHit = aRequest({
          tags: ['promo'],
          to: ['Dora <DORA@example.org>'],
          requestedAt: 6,
        });
        const wrongTag = aRequest({ tags: ['other'], to: ['dora@example.org'], requestedAt: 5 });
        const wrongTo = aRequest({ tags: ['promo'], to: ['eve@example.org'], requestedAt: 5 });
        const tooOld = aRequest({ tags: ['promo'], to: ['dora@example.org'], requestedAt: 1 });
        const tooNew = aRequest({ tags: ['promo'], to: ['dora@example.org'], requestedAt: 9 });
        for (const r of [hit, sentHit, wrongTag, wrongTo, tooOld, tooNew]) {
          await right(fx.log.record(r));
        }
        await apply(anEvent.sending(sentHit, { attempt: 1, at: at(7) }));
        await apply(anEvent.sent(sentHit, { attempt: 1, at: at(8) }));
        const query = { tag: 'promo', to: 'dora@', since: new Date(at(2)), until: new Date(at(9)) };
        expect(nonZero(await counts(query))).to.deep.equal({ queued: 1, sent: 1 });
        expect((await ids(query)).sort()).to.deep.equal([hit.id, sentHit.id].sort());
        expect(nonZero(await counts({ to: '%' }))).to.deep.equal({});
        expect(nonZero(await counts({ tag: 'other' }))).to.deep.equal({ queued: 1 });
        expect(nonZero(await counts({ since: new Date(at(9)) }))).to.deep.equal({ queued: 1 });
        expect(nonZero(await counts({ until: new Date(at(2)) }))).to.deep.equal({ queued: 1 });
      });

      it('counts nothing for a recipient substring no address can hold', async () => {
        await right(fx.log.record(aRequest({ to: ['ada@example.com'] })));
        for (const to of ['\u0000', 'ada\u0000', '\n', '\ud83d']) {
          expect(nonZero(await counts({ to })), JSON.stringify(to)).to.deep.equal({});
        }
        expect(nonZero(await counts({ to: 'ADA' }))).to.deep.equal({ queued: 1 });
      });
    });

    describe('purgeOlderThan', () => {
      /** Records `request` and takes it to a final status: sent, or failed for an odd second. */
      const finished = async (request: EmailRequest, seconds: number): Promise<void> => {
        await right(fx.log.record(request));
        await apply(anEvent.sending(request, { attempt: 1, at: at(seconds) }));
        await apply(
          seconds % 2 === 0
            ? anEvent.sent(request, { attempt: 1, at: at(seconds) })
            : anEvent.failed(request, { attempt: 1, at: at(seconds) }),
        );
      };

      it('deletes in batches, oldest first, only final emails accepted before the cutoff', async () => {
        const old = [5, 1, 4, 2, 3].map((s) => aRequest({ requestedAt: s }));
        const atCutoff = aRequest({ requestedAt: 10 });
        const recent = aRequest({ requestedAt: 11 });
        for (const r of [...old, atCutoff, recent]) await finished(r, 20);
        const byAge = [...old].sort((x, y) => (x.requestedAt < y.requestedAt ? -1 : 1));
        const cutoff = new Date(at(10));

        expect(await right(fx.log.purgeOlderThan(cutoff, 2))).to.equal(2);
        expect(await ids()).to.deep.equal(
          [recent, atCutoff, ...byAge.slice(2).reverse()].map((r) => r.id),
        );
        expect(await right(fx.log.purgeOlderThan(cutoff, 2))).to.equal(2);
        expect(await right(fx.log.purgeOlderThan(cutoff, 2))).to.equal(1);
        expect(await right(fx.log.purgeOlderThan(cutoff, 2))).to.equal(0);
        expect(await ids()).to.deep.equal([recent.id, atCutoff.id]);
        expect(O.isNone(await right(fx.log.request(byAge[0]!.id)))).to.equal(true);
      });

      it('keeps an old email still queued, sending or retrying, with its request', async () => {
        const sent = aRequest({ requestedAt: 1 });
        const failed = aRequest({ requestedAt: 2 });
        await finished(sent, 4);
        await finished(failed, 5);
        const queued = aRequest({ requestedAt: 1 });
        const sending = aRequest({ requestedAt: 2 });
        const retrying = aRequest({ requestedAt: 3 });
        for (const r of [queued, sending, retrying]) await right(fx.log.record(r));
        await apply(anEvent.sending(sending, { attempt: 1, at: at(4) }));
        await apply(anEvent.sending(retrying, { attempt: 1, at: at(4) }));
        await apply(anEvent.retried(retrying, { attempt: 1, at: at(5) }));
        // An email a worker's event created before the API recorded it, still on its way.
        const early = aRequest({ requestedAt: 1 });
        await apply(anEvent.sending(early, { attempt: 1, at: at(1) }));

        // A batch larger than everything: the pending ones are not merely left for later.
        expect(await right(fx.log.purgeOlderThan(new Date(at(100)), 100))).to.equal(2);
        expect((await ids()).sort()).to.deep.equal(
          [queued.id, sending.id, retrying.id, early.id].sort(),
        );
        for (const r of [queued, sending, retrying]) {
          expect(some(await right(fx.log.request(r.id)))).to.deep.equal(r);
        }
        expect(O.isNone(await right(fx.log.get(sent.id)))).to.equal(true);
        expect(O.isNone(await right(fx.log.get(failed.id)))).to.equal(true);

        // Once it is over, the next purge takes it.
        await apply(anEvent.sent(retrying, { attempt: 2, at: at(6) }));
        expect(await right(fx.log.purgeOlderThan(new Date(at(100)), 100))).to.equal(1);
        expect(O.isNone(await right(fx.log.get(retrying.id)))).to.equal(true);
      });
    });

    describe('unconfirmed', () => {
      /** Records `request` and has `transport` accept it at `seconds` (none: unnamed). */
      const sentBy = async (
        transport: string | undefined,
        seconds: number,
        request: EmailRequest = aRequest(),
      ): Promise<EmailRequest> => {
        await right(fx.log.record(request));
        await apply(anEvent.sending(request, { at: at(seconds) }));
        await apply(
          anEvent.sent(request, {
            at: at(seconds),
            ...(transport !== undefined ? { transport } : {}),
          }),
        );
        return request;
      };
      const reported = (
        request: EmailRequest,
        recipient: string,
        kind: ProviderReported['kind'],
        seconds: number,
      ): DomainEvent =>
        anEvent.reported(request, { recipient: anAddress(recipient), kind, at: at(seconds) });
      const unconfirmed = (request: EmailRequest, seconds: number): DomainEvent => ({
        type: 'EmailUnconfirmed',
        id: request.id,
        at: at(seconds),
        to: request.to,
        subject: request.subject,
        transport: 'mailgun',
        deadlineMs: 60_000,
      });
      const found = async (before: number, limit = 100): Promise<string[]> =>
        (await right(fx.log.unconfirmed('mailgun', new Date(at(before)), limit))).map((s) => s.id);

      it('finds what the transport sent before the cutoff with no report, oldest send first', async () => {
        const twoSeconds = aRequest({ requestedAt: 0 });
        const fiveSeconds = await sentBy('mailgun', 5);
        // Sent at the same moment: the id decides, in byte order (made in this order).
        const fiveSecondsToo = await sentBy('mailgun', 5);
        const tenSeconds = await sentBy('mailgun', 10);
        await sentBy('mailgun', 2, twoSeconds);
        const atCutoff = await sentBy('mailgun', 15);
        const later = await sentBy('mailgun', 20);

        expect(await found(15)).to.deep.equal(
          [twoSeconds, fiveSeconds, fiveSecondsToo, tenSeconds].map((r) => r.id),
        );
        expect(await found(15, 2)).to.deep.equal([twoSeconds.id, fiveSeconds.id]);
        expect(await found(3)).to.deep.equal([twoSeconds.id]);
        expect(await found(2)).to.deep.equal([]);
        expect(await found(21)).to.include.members([atCutoff.id, later.id]);
        // The whole status, as `get` answers it.
        const [first] = await right(fx.log.unconfirmed('mailgun', new Date(at(15)), 1));
        expect(first).to.deep.equal(await get(twoSeconds.id));
        expect(first?.sentBy).to.equal('mailgun');
      });

      it('leaves out other transports, unnamed ones, and emails not sent', async () => {
        const smtp = await sentBy('smtp', 1);
        await sentBy('outbox', 1);
        await sentBy(undefined, 1);
        const sending = aRequest();
        await right(fx.log.record(sending));
        await apply(anEvent.sending(sending, { at: at(1) }));
        const failed = aRequest();
        await right(fx.log.record(failed));
        await apply(anEvent.failed(failed, { at: at(1) }));

        expect(await found(100)).to.deep.equal([]);
        expect(
          (await right(fx.log.unconfirmed('smtp', new Date(at(100)), 10))).map((s) => s.id),
        ).to.deep.equal([smtp.id]);
      });

      it('leaves out an email with any report, or with the watchdog note already', async () => {
        const two = { to: ['ada@example.org', 'bob@example.com'] };
        const deferred = await sentBy('mailgun', 1, aRequest(two));
        await apply(reported(deferred, 'ada@example.org', 'deferred', 2));
        const halfDelivered = await sentBy('mailgun', 1, aRequest(two));
        await apply(reported(halfDelivered, 'bob@example.com', 'delivered', 2));
        const delivered = await sentBy('mailgun', 1, aRequest(two));
        await apply(reported(delivered, 'ada@example.org', 'delivered', 2));
        await apply(reported(delivered, 'bob@example.com', 'delivered', 2));
        // A report recorded before the worker's `sent` counts too.
        const early = aRequest(two);
        await right(fx.log.record(early));
        await apply(reported(early, 'ada@example.org', 'delivered', 1));
        await sentBy('mailgun', 2, early);
        const flagged = await sentBy('mailgun', 1);
        const flaggedNote = await apply(unconfirmed(flagged, 70));
        expect(flaggedNote.changed).to.equal(true);
        const silent = await sentBy('mailgun', 1);

        expect((await get(halfDelivered.id)).status).to.equal('sent');
        expect((await get(early.id)).status).to.equal('sent');
        expect(await found(100)).to.deep.equal([silent.id]);

        // The note itself: one per email, whoever writes it and when.
        const note = await apply(unconfirmed(silent, 80));
        expect(note.changed).to.equal(true);
        expect(note.status.status).to.equal('sent');
        expect((await apply(unconfirmed(silent, 90))).changed).to.equal(false);
        expect(await found(100)).to.deep.equal([]);
      });
    });
  });
}
