// The accept path's batched statements (src/adapters/postgres/batcher.ts) on a real engine: the
// email log's INSERTs, the suppression look-ups and the rate-limit counts of concurrent requests.
// Registered by the PostgreSQL and the PGlite store tests, on their own clients.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { SqlEmailLog } from '../../src/adapters/postgres/sql-email-log.js';
import { decodeTask, encodeTask } from '../../src/adapters/messaging/task-message.js';
import { SqlSuppressionList } from '../../src/adapters/postgres/sql-suppression-list.js';
import { sqlRateLimiter } from '../../src/adapters/ratelimit/flexible-rate-limiter.js';
import type { RateLimitState } from '../../src/application/ports/rate-limiter.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { right, some } from '../contracts/email-log.contract.js';
import { aRequest, anEvent, anId, at } from './builders.js';
import { emptyStoreTables } from './sql-stores.js';

/** `inner`, noting every statement's text; those for which `fail` is true reject instead. */
function watched(inner: SqlClient, fail: (sql: string) => boolean = () => false) {
  const statements: string[] = [];
  const client: SqlClient = {
    query: (sql, params, options) => {
      statements.push(sql);
      return fail(sql)
        ? Promise.reject(new Error('the database went away'))
        : inner.query(sql, params, options);
    },
    transaction: (work) => inner.transaction(work),
  };
  return { client, statements };
}

const inserts = (statements: readonly string[]) =>
  statements.filter((sql) => sql.includes('INSERT INTO emails'));

/** The next turn of the event loop: calls made after it are not in the same turn's batch. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function batchedWritesSuite(suffix: string, open: () => SqlClient): void {
  describe(`The accept path's batched statements${suffix}`, function () {
    this.timeout(30_000);
    let sql: SqlClient;
    beforeEach(async () => {
      sql = open();
      await emptyStoreTables(sql);
    });

    const stored = async (log: SqlEmailLog, r: EmailRequest) =>
      some(await right(log.request(r.id))).subject;

    it('records the emails of concurrent requests in one INSERT, each its own row', async () => {
      const { client, statements } = watched(sql);
      const log = new SqlEmailLog(client);
      const requests = Array.from({ length: 12 }, () => aRequest());
      const results = await Promise.all(requests.map((r) => log.record(r)()));
      expect(results.every(E.isRight)).to.equal(true);
      expect(inserts(statements)).to.have.length(1);
      for (const r of requests) expect(await stored(log, r)).to.equal(r.subject);
      const status = some(await right(log.get(requests[3]!.id)));
      expect(status).to.include({ id: requests[3]!.id, status: 'queued' });
    });

    it("writes a first attempt's `sending` onto the recorded entry in one UPDATE, no read", async () => {
      const { client, statements } = watched(sql);
      const log = new SqlEmailLog(client);
      // Every field a request holds, and text jsonb might store otherwise than JSON.stringify.
      const rich = aRequest({
        from: 'Zoë Ärger <zoe@example.com>',
        to: ['"Ada, Countess" <ada@example.org>', 'Jürgen <jurgen@bücher.example>'],
        cc: ['Carol 🐈 <carol@example.net>'],
        bcc: ['dan@example.net'],
        reply_to: ['Help <help@example.com>'],
        subject: 'Grüße ✓ 𝄞 e\u0301 "quoted" \\ back',
        html: '<p>Hello</p>',
        headers: { 'X-Campaign': 'Grüße-42' },
        tags: ['welcome', 'b-2', 'A_1'],
        metadata: { zeta: 'last', '10': 'a number-like key', n: '1e3', empty: '' },
      });
      // As the worker gets it: through the task's wire format.
      const wire = encodeTask({ request: rich, attempt: 1, history: [] });
      const decoded = decodeTask(wire.body, wire.headers);
      if (E.isLeft(decoded)) return expect.fail(decoded.left);
      const [fresh, moved] = [decoded.right.request, aRequest()];
      await right(log.record(rich));
      await right(log.record(moved));
      await right(log.apply(anEvent.sending(moved, { attempt: 1, at: at(1) })));
      statements.length = 0;
      const sending = (r: EmailRequest) =>
        right(log.apply(anEvent.sending(r, { attempt: 1, at: at(2) }), log.recordedBasis(r)));
      expect((await sending(fresh)).status.status).to.equal('sending');
      const verbs = () => statements.map((text) => text.trim().split(/\s/)[0]);
      expect(verbs()).to.deep.equal(['UPDATE']);
      // Moved on since: the conditional write finds nothing, then the read and the fold.
      statements.length = 0;
      await sending(moved);
      expect(verbs()).to.deep.equal(['UPDATE', 'SELECT', 'UPDATE']);
    });

    it('fails every caller of a batch the database did not take, and keeps none', async () => {
      const { client } = watched(sql, (text) => text.includes('INSERT INTO emails'));
      const log = new SqlEmailLog(client);
      const requests = Array.from({ length: 5 }, () => aRequest());
      const results = await Promise.all(requests.map((r) => log.record(r)()));
      for (const result of results) {
        expect(result).to.deep.include({ _tag: 'Left' });
        if (E.isLeft(result)) expect(result.left._tag).to.equal('StoreUnavailable');
      }
      const reader = new SqlEmailLog(sql);
      for (const r of requests) expect(await right(reader.get(r.id))).to.deep.equal(O.none);
    });

    it('fails only the row refused for its values, writing the others', async () => {
      const log = new SqlEmailLog(sql);
      // jsonb takes no NUL character: a value the parser would refuse, made here by hand.
      const bad = { ...aRequest(), text: 'a\u0000b' } as EmailRequest;
      const good = [aRequest(), aRequest()];
      const results = await Promise.all([good[0]!, bad, good[1]!].map((r) => log.record(r)()));
      expect(results.map((r) => r._tag)).to.deep.equal(['Right', 'Left', 'Right']);
      for (const r of good) expect(await stored(log, r)).to.equal(r.subject);
      expect(await right(log.get(bad.id))).to.deep.equal(O.none);
    });

    it('takes the calls of later turns, made while a batch is written, in the next batch', async () => {
      const { client, statements } = watched(sql);
      const log = new SqlEmailLog(client);
      const requests = Array.from({ length: 9 }, () => aRequest());
      const calls: Promise<E.Either<unknown, void>>[] = [];
      for (const [i, r] of requests.entries()) {
        calls.push(log.record(r)());
        if (i % 3 === 2) await nextTurn();
      }
      expect((await Promise.all(calls)).every(E.isRight)).to.equal(true);
      expect(inserts(statements).length).to.be.within(1, 3);
      for (const r of requests) expect(await stored(log, r)).to.equal(r.subject);
    });

    it('records one row for an id given twice in a batch: the first request', async () => {
      const log = new SqlEmailLog(sql);
      const id = anId('twice');
      const [a, b] = [aRequest({ id, subject: 'first' }), aRequest({ id, subject: 'second' })];
      const results = await Promise.all([log.record(a)(), log.record(b)()]);
      expect(results.every(E.isRight)).to.equal(true);
      expect(await stored(log, a)).to.equal('first');
      const rows = await sql.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM emails WHERE id = $1',
        [id],
      );
      expect(rows[0]!.n).to.equal(1);
    });

    it('completes a row an early event created, next to new ones in the same batch', async () => {
      const log = new SqlEmailLog(sql);
      const early = aRequest();
      await right(log.apply(anEvent.sending(early, { at: at(1) })));
      const others = [aRequest(), aRequest()];
      const results = await Promise.all([early, ...others].map((r) => log.record(r)()));
      expect(results.every(E.isRight)).to.equal(true);
      expect(await stored(log, early)).to.equal(early.subject);
      expect(some(await right(log.get(early.id))).status).to.equal('sending');
      for (const r of others) expect(await stored(log, r)).to.equal(r.subject);
    });

    it('writes the folds of concurrent events in one UPDATE, each state on its own row', async () => {
      const log = new SqlEmailLog(sql);
      // Subjects a JSON text or an array literal must escape, and ids out of their sorted order:
      // the states travel as one JSON array paired with the ids by position.
      const subjects = [
        'quote " and \\ backslash',
        "comma, bracket ] brace } and ' apostrophe",
        'unicode é 漢字 🎉, line\u2028separator',
        '[1,2]',
        '{"not":"a state"}',
        'x'.repeat(900),
      ];
      const requests = Array.from({ length: 24 }, (_, i) =>
        aRequest({ subject: `${subjects[i % subjects.length]!} #${i}` }),
      );
      for (const r of requests) expect(E.isRight(await log.record(r)())).to.equal(true);
      const { client, statements } = watched(sql);
      const folding = new SqlEmailLog(client);
      const shuffled = [...requests].reverse();
      const results = await Promise.all(
        shuffled.map((r, i) =>
          folding.apply(anEvent.sending(r, { at: at(1), attempt: 1 + (i % 3) }))(),
        ),
      );
      expect(results.every(E.isRight)).to.equal(true);
      expect(statements.filter((text) => text.includes('UPDATE emails'))).to.have.length(1);
      for (const [i, r] of shuffled.entries()) {
        const status = some(await right(log.get(r.id)));
        expect(status).to.include({ id: r.id, status: 'sending', subject: r.subject });
        expect(status.history.map((c) => [c.status, c.detail])).to.deep.equal([
          ['queued', undefined],
          ['sending', `attempt ${1 + (i % 3)}`],
        ]);
      }
    });

    it('looks up the recipients of concurrent requests in one statement, each its own', async () => {
      const { client, statements } = watched(sql);
      const list = new SqlSuppressionList(client);
      const createdAt = new Date(at(0));
      for (const address of ['a@example.org', 'c@example.org']) {
        await right(list.add({ address, reason: 'bounce', createdAt }));
      }
      statements.length = 0;
      const [one, two, three] = await Promise.all([
        right(list.suppressed(['a@example.org', 'b@example.org'])),
        right(list.suppressed(['b@example.org'])),
        right(list.suppressed(['c@example.org', 'a@example.org'])),
      ]);
      expect(statements).to.have.length(1);
      expect([[...one], [...two], [...three].sort()]).to.deep.equal([
        ['a@example.org'],
        [],
        ['a@example.org', 'c@example.org'],
      ]);
    });

    it('takes `reserve` tokens ahead: the next requests of the key cost no statement', async () => {
      const { client, statements } = watched(sql);
      const limiter = sqlRateLimiter(
        client,
        { keyPrefix: 'api', limit: 100, windowMs: 60_000 },
        { reserve: 4 },
      );
      const key = `key:${anId('rl')}`;
      const states: RateLimitState[] = [];
      for (let i = 0; i < 10; i += 1) states.push(await right(limiter.consume(key)));
      // 1 + 4 numbers per add: two statements for ten requests, numbered 1 … 10 all the same.
      expect(statements).to.have.length(2);
      expect(states.map((s) => [s.allowed, s.remaining])).to.deep.equal(
        Array.from({ length: 10 }, (_, i) => [true, 99 - i]),
      );
      expect(states.every((s) => s.resetMs > 0 && s.resetMs <= 60_000)).to.equal(true);
    });

    it('never allows more than the limit on two servers taking tokens ahead, nor refuses before the other’s unspent tokens', async () => {
      const settings = { keyPrefix: 'api', limit: 50, windowMs: 60_000 };
      const reserve = 5;
      const servers = [
        sqlRateLimiter(sql, settings, { reserve }),
        sqlRateLimiter(sql, settings, { reserve }),
      ];
      const key = `key:${anId('rl')}`;
      const states: { server: number; state: RateLimitState }[] = [];
      // Waves of racing requests, alternating between the servers, well past the limit.
      for (let wave = 0; wave < 12; wave += 1) {
        const calls = Array.from({ length: 7 }, async (_, i) => {
          const server = (wave + i) % 2;
          return { server, state: await right(servers[server]!.consume(key)) };
        });
        states.push(...(await Promise.all(calls)));
        await nextTurn();
      }
      const allowed = states.filter((s) => s.state.allowed);
      // At most the limit; at least the limit less the tokens one server may hold unspent.
      expect(allowed.length)
        .to.be.at.most(50)
        .and.at.least(50 - reserve);
      // Each allowed request held its own number of the window.
      expect(new Set(allowed.map((s) => s.state.remaining)).size).to.equal(allowed.length);
      expect(states.filter((s) => !s.state.allowed).every((s) => s.state.remaining === 0)).to.equal(
        true,
      );
      // A server once refused stays refused: it holds no tokens past the limit.
      for (const server of [0, 1]) {
        const its = states.filter((s) => s.server === server).map((s) => s.state.allowed);
        const refused = its.indexOf(false);
        if (refused >= 0) expect(its.slice(refused)).to.not.include(true);
      }
    });

    it('counts the concurrent requests of one key in one statement, numbered in turn', async () => {
      const { client, statements } = watched(sql);
      const limiter = sqlRateLimiter(client, { keyPrefix: 'api', limit: 3, windowMs: 60_000 });
      const key = `key:${anId('rl')}`;
      const states = await Promise.all(
        Array.from({ length: 5 }, () => right(limiter.consume(key))),
      );
      expect(statements).to.have.length(1);
      expect(states.map((s) => [s.allowed, s.remaining])).to.deep.equal([
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
        [false, 0],
      ]);
    });
  });
}
