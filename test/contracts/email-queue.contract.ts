// One suite for every adapter of the queue ports: what keeps the in-memory queue honest is that
// it must pass exactly what RabbitMQ passes.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { DeadLetterBox } from '../../src/application/ports/dead-letter-box.js';
import type { EmailQueue } from '../../src/application/ports/email-queue.js';
import type {
  Disposition,
  EmailTask,
  EmailTaskSource,
} from '../../src/application/ports/email-task-source.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { aRequest, anAttempt } from '../support/builders.js';
import type { RecordingLogger } from '../support/fakes.js';
import { eventually, sleep } from '../support/waiting.js';

/** Fixtures are opened with these, so that the cases below can rely on them. */
export const CONTRACT_CONCURRENCY = 2;
export const CONTRACT_RETRY_DELAYS_MS: readonly [number, number] = [200, 400];

export interface QueueFixture {
  readonly queue: EmailQueue;
  readonly source: EmailTaskSource;
  readonly dead: DeadLetterBox;
  /** Puts bytes on the tasks queue as a broken or foreign publisher would. */
  publishRaw(body: Buffer, headers?: Record<string, unknown>): Promise<void>;
  /** What the source logs, when the fixture gave it a logger. */
  readonly logger?: RecordingLogger;
  close(): Promise<void>;
}

const done: Disposition = { _tag: 'Done' };
const storeDown: Disposition = { _tag: 'Redeliver', reason: 'the database is not reachable' };
/** The provider accepted the email; the database did not take the record of it yet. */
const sentButStoreDown: Disposition = { ...storeDown, sent: true };

export function emailQueueContract(name: string, open: () => Promise<QueueFixture>): void {
  describe(`${name} honours the EmailQueue contract`, function () {
    this.timeout(30_000);
    let fx: QueueFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    async function publish(...requests: EmailRequest[]): Promise<void> {
      const results = await Promise.all(requests.map((r) => fx.queue.publish(r)()));
      for (const result of results) expect(result).to.deep.equal(E.right(undefined));
    }

    /**
     * Consumes with `decide`, recording every task in the order handlers were called; `decide`
     * gets that record too (handlers may run before consume() has returned it).
     */
    async function consume(
      decide: (
        task: EmailTask,
        seen: readonly EmailTask[],
      ) => Promise<Disposition> | Disposition = () => done,
    ): Promise<EmailTask[]> {
      const seen: EmailTask[] = [];
      await fx.source.consume(async (task) => {
        seen.push(task);
        return decide(task, seen);
      });
      return seen;
    }

    it('delivers a published request unchanged, as attempt 1 with no history', async () => {
      const request = aRequest({ html: '<p>Hi</p>' });
      await publish(request);
      const seen = await consume();
      await eventually(() => expect(seen).to.have.length(1));
      expect(seen[0]).to.deep.equal({ request, attempt: 1, history: [] });
    });

    it('keeps requests published before anyone consumes', async () => {
      const requests = [aRequest(), aRequest(), aRequest()];
      await publish(...requests);
      await sleep(100);
      const seen = await consume();
      await eventually(() => expect(seen).to.have.length(3));
      expect(seen.map((t) => t.request.id).sort()).to.deep.equal(requests.map((r) => r.id).sort());
    });

    it('offers a task again after a handler that failed', async () => {
      const request = aRequest();
      await publish(request);
      const seen = await consume((_task, seen) => {
        if (seen.length === 1) throw new Error('the ledger is down');
        return done;
      });
      await eventually(() => expect(seen).to.have.length(2));
      expect(seen[1]).to.deep.equal({ request, attempt: 1, history: [] });
    });

    it('holds a task answered Redeliver and asks again, without spending an attempt', async () => {
      const request = aRequest();
      await publish(request);
      const seen = await consume((task, seen) =>
        task.request.id === request.id && seen.length < 3
          ? { _tag: 'Redeliver', reason: 'the database is not reachable' }
          : done,
      );
      await eventually(() => expect(seen).to.have.length(3));
      expect(seen.map((t) => t.attempt)).to.deep.equal([1, 1, 1]);
      // Done on the third ask: a task published after it comes next, and nothing else does.
      const barrier = aRequest();
      await publish(barrier);
      await eventually(() => expect(seen.map((t) => t.request.id)).to.include(barrier.id));
      expect(seen.map((t) => t.request.id)).to.deep.equal([
        request.id,
        request.id,
        request.id,
        barrier.id,
      ]);
      expect(await fx.dead.list()()).to.deep.equal(E.right([]));
    });

    it('hands a task answered Redeliver back at stop() at once, to the next consumer', async () => {
      const request = aRequest();
      await publish(request);
      const first = await consume(() => storeDown);
      await eventually(() => expect(first).to.have.length.of.at.least(2));
      const stopping = Date.now();
      await fx.source.stop(10_000);
      expect(Date.now() - stopping).to.be.below(2_000);
      const asked = first.length;
      const second = await consume();
      await eventually(() => expect(second).to.have.length(1));
      expect(second[0]).to.deep.equal({ request, attempt: 1, history: [] });
      expect(first).to.have.length(asked);
    });

    it('keeps asking a task whose send went out during stop(), until it is done within the grace', async () => {
      const [sent, plain] = [aRequest(), aRequest()];
      await publish(sent, plain);
      let databaseBack = false;
      const first = await consume((task) => {
        if (task.request.id === plain.id) return storeDown;
        return databaseBack ? done : sentButStoreDown;
      });
      const asks = (id: string) => first.filter((t) => t.request.id === id).length;
      await eventually(() => expect(Math.min(asks(sent.id), asks(plain.id))).to.be.at.least(1));
      const started = Date.now();
      const stopping = fx.source.stop(10_000);
      await sleep(300);
      const [sentAsks, plainAsks] = [asks(sent.id), asks(plain.id)];
      // The database comes back within the grace period: the send gets recorded, here.
      databaseBack = true;
      await stopping;
      expect(Date.now() - started).to.be.below(8_000);
      expect(asks(sent.id)).to.be.above(sentAsks);
      expect(asks(plain.id), 'the plain Redeliver asked after stop() began').to.equal(plainAsks);
      const second = await consume();
      await eventually(() => expect(second).to.have.length(1));
      await sleep(300);
      expect(second.map((t) => t.request.id)).to.deep.equal([plain.id]);
    });

    it('hands a task whose send went out back when the grace ends, naming it at error level', async () => {
      const request = aRequest();
      await publish(request);
      const first = await consume(() => sentButStoreDown);
      await eventually(() => expect(first).to.have.length(1));
      const stopping = Date.now();
      await fx.source.stop(500);
      expect(Date.now() - stopping).to.be.at.least(450);
      expect(first.length, 'asked again during the grace').to.be.above(1);
      if (fx.logger) {
        const errors = fx.logger.errors();
        expect(errors.map((l) => [l.message, l.fields])).to.deep.equal([
          [
            'Stopping with emails sent but not recorded; another worker may send them again',
            { emailIds: [request.id], graceMs: 500 },
          ],
        ]);
      }
      const second = await consume();
      await eventually(() => expect(second).to.have.length(1));
      expect(second[0]).to.deep.equal({ request, attempt: 1, history: [] });
    });

    it('delivers a retried task again after its delay, with the next attempt and the history', async () => {
      const request = aRequest();
      await publish(request);
      const [first, second] = CONTRACT_RETRY_DELAYS_MS;
      const seen = await consume((task): Disposition => {
        if (task.attempt === 1) {
          return { _tag: 'Retry', attempt: 2, delayMs: first, history: [anAttempt(1)] };
        }
        if (task.attempt === 2) {
          return {
            _tag: 'Retry',
            attempt: 3,
            delayMs: second,
            history: [...task.history, anAttempt(2)],
          };
        }
        return done;
      });
      await eventually(() => expect(seen).to.have.length(3));
      expect(seen[1]).to.deep.equal({ request, attempt: 2, history: [anAttempt(1)] });
      expect(seen[2]).to.deep.equal({ request, attempt: 3, history: [anAttempt(1), anAttempt(2)] });
    });

    it('dead-letters with reason, attempts and history, and listing leaves the letters in place', async () => {
      const request = aRequest();
      await publish(request);
      await consume((task) => ({
        _tag: 'DeadLetter',
        reason: 'permanent: 550 mailbox unavailable',
        history: [...task.history, anAttempt(1, { detail: '550 mailbox unavailable' })],
      }));
      const letters = await eventually(async () => {
        const listed = await fx.dead.list()();
        expect(E.isRight(listed) && listed.right).to.have.length(1);
        return E.isRight(listed) ? listed.right : [];
      });
      expect(letters[0]).to.deep.include({
        id: request.id,
        to: [...request.to],
        subject: request.subject,
        reason: 'permanent: 550 mailbox unavailable',
        attempts: 1,
        history: [anAttempt(1, { detail: '550 mailbox unavailable' })],
      });
      expect(Number.isNaN(Date.parse(letters[0]!.failedAt))).to.equal(false);
      expect(await fx.dead.list()()).to.deep.equal(E.right(letters));
    });

    it('replays a dead letter by id as a fresh attempt 1, and the others with all', async () => {
      const [a, b] = [aRequest(), aRequest()];
      await publish(a, b);
      const seen = await consume((task, seen): Disposition =>
        seen.filter((t) => t.request.id === task.request.id).length === 1
          ? { _tag: 'DeadLetter', reason: 'permanent: no', history: [anAttempt(1)] }
          : done,
      );
      await eventually(async () => expect(await fx.dead.list()()).to.satisfy(hasLength(2)));
      expect(await fx.dead.replay({ id: a.id })()).to.deep.equal(E.right(1));
      await eventually(() => expect(seen).to.have.length(3));
      expect(seen[2]).to.deep.equal({ request: a, attempt: 1, history: [] });
      const rest = await fx.dead.list()();
      expect(E.isRight(rest) && rest.right.map((l) => l.id)).to.deep.equal([b.id]);
      expect(await fx.dead.replay({ all: true })()).to.deep.equal(E.right(1));
      await eventually(() => expect(seen).to.have.length(4));
      expect(seen[3]).to.deep.equal({ request: b, attempt: 1, history: [] });
      expect(await fx.dead.list()()).to.deep.equal(E.right([]));
    });

    it('purges the dead letters', async () => {
      await publish(aRequest(), aRequest());
      await consume(() => ({ _tag: 'DeadLetter', reason: 'permanent: no', history: [] }));
      await eventually(async () => expect(await fx.dead.list()()).to.satisfy(hasLength(2)));
      expect(await fx.dead.purge()()).to.deep.equal(E.right(2));
      expect(await fx.dead.list()()).to.deep.equal(E.right([]));
    });

    it('dead-letters what it cannot decode as malformed, without calling the handler', async () => {
      const good = aRequest();
      const badAddress = {
        v: 1,
        request: { ...aRequest(), to: ['a@example.org\r\nBcc: x@evil.example'] },
      };
      await fx.publishRaw(Buffer.from('not json at all'));
      await fx.publishRaw(Buffer.from(JSON.stringify({ v: 2, request: aRequest() })));
      await fx.publishRaw(Buffer.from(JSON.stringify(badAddress)));
      await publish(good);
      const seen = await consume();
      const letters = await eventually(async () => {
        const listed = await fx.dead.list()();
        expect(E.isRight(listed) && listed.right).to.have.length(3);
        return E.isRight(listed) ? listed.right : [];
      });
      await eventually(() => expect(seen).to.have.length(1));
      expect(seen[0]!.request).to.deep.equal(good);
      for (const letter of letters) expect(letter.reason).to.match(/^malformed: /);
      expect(letters.map((l) => l.id)).to.include(badAddress.request.id);
      expect(letters.find((l) => l.id === badAddress.request.id)!.reason).to.include('to');
    });

    it('reads odd attempt and history headers as a first attempt rather than a poison task', async () => {
      const request = aRequest();
      await fx.publishRaw(Buffer.from(JSON.stringify({ v: 1, request })), {
        'x-attempt': 'many',
        'x-history': '{not json',
      });
      const seen = await consume();
      await eventually(() => expect(seen).to.have.length(1));
      expect(seen[0]).to.deep.equal({ request, attempt: 1, history: [] });
    });

    it(`never runs more than ${CONTRACT_CONCURRENCY} handlers at once, and does run that many`, async () => {
      await publish(...Array.from({ length: 6 }, () => aRequest()));
      let running = 0;
      let most = 0;
      const seen = await consume(async () => {
        running += 1;
        most = Math.max(most, running);
        await sleep(100);
        running -= 1;
        return done;
      });
      await eventually(() => expect(seen).to.have.length(6));
      expect(most).to.equal(CONTRACT_CONCURRENCY);
    });

    it('stop() waits for a handler in flight to finish', async () => {
      await publish(aRequest());
      let finished = false;
      const seen = await consume(async () => {
        await sleep(300);
        finished = true;
        return done;
      });
      await eventually(() => expect(seen).to.have.length(1));
      await fx.source.stop(10_000);
      expect(finished).to.equal(true);
    });

    it('gives a task not finished within the grace period to the next consumer', async () => {
      const request = aRequest();
      await publish(request);
      let release: () => void = () => undefined;
      const stuck = new Promise<void>((resolve) => (release = resolve));
      const first = await consume(async () => {
        await stuck;
        return done;
      });
      await eventually(() => expect(first).to.have.length(1));
      await fx.source.stop(50);
      if (fx.logger) {
        // Cut off, so its email may go out twice: said, by id.
        const warned = fx.logger.lines.filter(
          (l) => l.level === 'warn' && l.message.startsWith('Stopping'),
        );
        expect(warned.map((l) => l.fields)).to.deep.equal([
          { emailIds: [request.id], graceMs: 50 },
        ]);
      }
      const second = await consume();
      await eventually(() => expect(second).to.have.length(1));
      expect(second[0]!.request).to.deep.equal(request);
      release();
    });

    it('delivers each of many tasks exactly once to a handler that succeeds', async () => {
      const requests = Array.from({ length: 200 }, () => aRequest());
      await publish(...requests);
      const seen = await consume();
      await eventually(() => expect(seen).to.have.length(200), { timeoutMs: 15_000 });
      await sleep(300);
      const ids = seen.map((t) => t.request.id);
      expect(new Set(ids).size).to.equal(200);
      expect(ids).to.have.length(200);
    });
  });
}

const hasLength =
  (n: number) =>
  (listed: E.Either<unknown, readonly unknown[]>): boolean =>
    E.isRight(listed) && listed.right.length === n;
