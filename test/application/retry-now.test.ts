import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { InMemoryEmailQueue } from '../../src/adapters/memory/in-memory-email-queue.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import { DeliverEmail } from '../../src/application/deliver-email.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { EmailLog } from '../../src/application/ports/email-log.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import type { Expedited, RetryQueue } from '../../src/application/ports/retry-queue.js';
import { RetryNow } from '../../src/application/retry-now.js';
import { sent, throttled, transient } from '../../src/domain/delivery.js';
import type { AttemptRecord, DeliveryOutcome, RetryPolicy } from '../../src/domain/delivery.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { aRequest, anEvent, at } from '../support/builders.js';
import { RecordingEvents, RecordingLogger, ScriptedSender, fixedClock } from '../support/fakes.js';
import { eventually } from '../support/waiting.js';

/** A queue that answers what it is told and remembers what it was asked. */
class ScriptedRetryQueue implements RetryQueue {
  readonly asked: Array<{ id: string; attempt: number; history: number[] }> = [];
  constructor(private readonly answer: Expedited | 'down') {}
  expedite(request: EmailRequest, attempt: number, history: readonly { attempt: number }[]) {
    this.asked.push({ id: request.id, attempt, history: history.map((h) => h.attempt) });
    return this.answer === 'down'
      ? TE.left(queueUnavailable('broker unreachable'))
      : TE.right(this.answer);
  }
}

const statusOf = async (emails: EmailLog, id: EmailRequest['id']): Promise<EmailStatus> => {
  const found = await emails.get(id)();
  if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('email not in the log');
  return found.right.value;
};

/** An email recorded and then failed for now once: `retrying`, attempt 2 due a minute later. */
async function retryingEmail(emails: EmailLog): Promise<EmailRequest> {
  const request = aRequest({ requestedAt: 0 });
  await emails.record(request)();
  await emails.apply(anEvent.sending(request, { at: at(1) }))();
  await emails.apply(anEvent.retried(request, { at: at(2), delayMs: 60_000 }))();
  return request;
}

describe('RetryNow', () => {
  const clock = fixedClock(at(10));

  it('brings a waiting retry forward: the queue moves it, the log notes it, the next try is now', async () => {
    const emails = new InMemoryEmailLog();
    const events = new RecordingEvents();
    const queue = new ScriptedRetryQueue('moved');
    const request = await retryingEmail(emails);
    const result = await new RetryNow(queue, emails, events, clock, new RecordingLogger()).execute(
      request.id,
    )();
    expect(result).to.deep.equal(E.right({ attempt: 2, how: 'moved' }));
    // The waiting task is attempt 2, carrying attempt 1 as its history.
    expect(queue.asked).to.deep.equal([{ id: request.id, attempt: 2, history: [1] }]);
    const status = await statusOf(emails, request.id);
    expect(status.status).to.equal('retrying');
    expect(status.nextAttemptAt).to.equal(at(10));
    // Moved, not copied: no waiting twin to drop later.
    expect(status.expedited).to.equal(undefined);
    expect(status.history.at(-1)).to.deep.equal({
      at: at(10),
      status: 'expedited',
      source: 'api',
      detail: 'attempt 2 brought forward to now',
    });
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailRetryExpedited']);
  });

  it('lists a copied attempt in the status, so that its waiting twin is dropped', async () => {
    const emails = new InMemoryEmailLog();
    const request = await retryingEmail(emails);
    const queue = new ScriptedRetryQueue('copied');
    const useCase = new RetryNow(
      queue,
      emails,
      new RecordingEvents(),
      clock,
      new RecordingLogger(),
    );
    expect(await useCase.execute(request.id)()).to.deep.equal(
      E.right({ attempt: 2, how: 'copied' }),
    );
    expect((await statusOf(emails, request.id)).expedited).to.deep.equal([2]);
  });

  it('refuses an email that is not retrying, unknown, or without its request, and asks no queue', async () => {
    const emails = new InMemoryEmailLog();
    const queue = new ScriptedRetryQueue('moved');
    const events = new RecordingEvents();
    const useCase = new RetryNow(queue, emails, events, clock, new RecordingLogger());

    const queued = aRequest();
    await emails.record(queued)();
    expect(await useCase.execute(queued.id)()).to.deep.equal(
      E.left({ _tag: 'NotRetrying', status: 'queued' }),
    );

    expect(await useCase.execute(aRequest().id)()).to.deep.equal(E.left({ _tag: 'NotFound' }));

    // Known by a worker's events alone: nothing to send.
    const orphan = aRequest();
    await emails.apply(anEvent.retried(orphan, { at: at(2) }))();
    expect(await useCase.execute(orphan.id)()).to.deep.equal(E.left({ _tag: 'RequestGone' }));

    expect(queue.asked).to.deep.equal([]);
    expect(events.events).to.deep.equal([]);
  });

  it('changes nothing when no task waits (a worker has it) or the queue is away', async () => {
    for (const [answer, expected] of [
      ['not-waiting', { _tag: 'NotWaiting', attempt: 2 }],
      ['down', queueUnavailable('broker unreachable')],
    ] as const) {
      const emails = new InMemoryEmailLog();
      const request = await retryingEmail(emails);
      const before = await statusOf(emails, request.id);
      const events = new RecordingEvents();
      const useCase = new RetryNow(
        new ScriptedRetryQueue(answer),
        emails,
        events,
        clock,
        new RecordingLogger(),
      );
      expect(await useCase.execute(request.id)()).to.deep.equal(E.left(expected));
      expect(await statusOf(emails, request.id)).to.deep.equal(before);
      expect(events.events).to.deep.equal([]);
    }
  });

  it('answers the attempt brought forward even when the log cannot take the note, and says so', async () => {
    const emails = new InMemoryEmailLog();
    const request = await retryingEmail(emails);
    const failing: EmailLog = Object.assign(Object.create(emails) as EmailLog, {
      apply: () => TE.left(storeUnavailable('the database is not reachable (test)')),
    });
    const log = new RecordingLogger();
    const useCase = new RetryNow(
      new ScriptedRetryQueue('copied'),
      failing,
      new RecordingEvents(),
      clock,
      log,
    );
    expect(await useCase.execute(request.id)()).to.deep.equal(
      E.right({ attempt: 2, how: 'copied' }),
    );
    expect(log.errors().map((l) => l.message)).to.deep.equal([
      'Retry brought forward, but the email log could not be told: the waiting task may be attempted too',
    ]);
  });

  it('brings forward the attempt that waits after a throttle: the same one, its throttles marked', async () => {
    const emails = new InMemoryEmailLog();
    const events = new RecordingEvents();
    const deliver = new DeliverEmail(
      new ScriptedSender([throttled('Mailgun 429: Too many requests', 60_000)]),
      emails,
      events,
      new InMemoryDeliveryLedger(),
      { maxAttempts: 3, delaysMs: [2000, 5000] },
      clock,
      new RecordingLogger(),
      { holder: 'worker-a', sleep: async () => undefined },
    );
    const request = aRequest();
    await emails.record(request)();
    const retry = await deliver.execute({ request, attempt: 1, history: [] })();
    // A throttle spends no attempt: the task that waits is attempt 1 again.
    expect(retry).to.deep.include({ _tag: 'Retry', attempt: 1 });
    const queue = new ScriptedRetryQueue('copied');
    const asked: Array<readonly AttemptRecord[]> = [];
    const recording: RetryQueue = {
      expedite: (r, attempt, history) => {
        asked.push(history);
        return queue.expedite(r, attempt, history);
      },
    };
    const result = await new RetryNow(
      recording,
      emails,
      events,
      clock,
      new RecordingLogger(),
    ).execute(request.id)();
    expect(result).to.deep.equal(E.right({ attempt: 1, how: 'copied' }));
    expect(queue.asked.map((a) => a.attempt)).to.deep.equal([1]);
    // The copy carries the throttle as its twin does, so it counts towards the same bound.
    expect(asked[0]?.map((line) => line.throttled)).to.deep.equal([true]);
    const status = await statusOf(emails, request.id);
    expect(status.nextAttemptAt).to.equal(clock.now().toISOString());
    expect(status.expedited).to.deep.equal([1]);
  });

  it('after a throttle and then a failure of the same attempt, brings forward the next one', async () => {
    const emails = new InMemoryEmailLog();
    const request = aRequest({ requestedAt: 0 });
    await emails.record(request)();
    await emails.apply(anEvent.retried(request, { at: at(2), reason: 'throttled: Mailgun 429' }))();
    await emails.apply(anEvent.retried(request, { at: at(3), reason: 'Mailgun 503' }))();
    const queue = new ScriptedRetryQueue('moved');
    await new RetryNow(queue, emails, new RecordingEvents(), clock, new RecordingLogger()).execute(
      request.id,
    )();
    expect(queue.asked.map((a) => a.attempt)).to.deep.equal([2]);
  });
});

/**
 * The whole way, as RabbitMQ does it but in memory: a copy due now, the waiting task left in its
 * timer. The worker makes the attempt from the copy and drops the twin when its time comes, so
 * there is one send and one chain of retries.
 */
describe('RetryNow with a queue that copies, and the worker', () => {
  const policy: RetryPolicy = { maxAttempts: 4, delaysMs: [60_000] };

  async function setUp(outcomes: DeliveryOutcome[]) {
    // Retry delays wait for the test to fire them; everything else runs on real timers.
    const waiting: Array<() => void> = [];
    const queue = new InMemoryEmailQueue({
      concurrency: 1,
      random: () => 0.5,
      setTimer: (fn, ms) => {
        if (ms < 10_000) {
          const timer = setTimeout(fn, ms);
          return () => clearTimeout(timer);
        }
        waiting.push(fn);
        return () => undefined;
      },
    });
    const emails = new InMemoryEmailLog();
    const events = new RecordingEvents();
    const sender = new ScriptedSender(outcomes);
    const log = new RecordingLogger();
    const clock = fixedClock(at(0));
    const deliver = new DeliverEmail(
      sender,
      emails,
      events,
      new InMemoryDeliveryLedger(),
      policy,
      clock,
      log,
      { holder: 'worker-a' },
    );
    await queue.consume((task) => deliver.execute(task)());
    const request = aRequest();
    await emails.record(request)();
    await queue.publish(request)();
    const retryNow = new RetryNow(queue, emails, events, clock, log);
    /** Fires the oldest retry still waiting, as its TTL ending would. */
    const fireNextRetry = (): void => {
      const next = waiting.shift();
      if (next === undefined) expect.fail('no retry is waiting');
      next();
    };
    const status = () => statusOf(emails, request.id);
    return { queue, emails, sender, log, request, retryNow, fireNextRetry, waiting, status, clock };
  }

  it('sends once from the copy, and drops the waiting task when it comes', async () => {
    const { sender, log, request, retryNow, fireNextRetry, status, queue } = await setUp([
      transient('a 503 from the provider'),
      sent('<p2@provider>'),
    ]);
    await eventually(async () => (await status()).status === 'retrying');

    expect(await retryNow.execute(request.id)()).to.deep.equal(
      E.right({ attempt: 2, how: 'copied' }),
    );
    await eventually(async () => (await status()).status === 'sent');
    expect(sender.sent).to.have.length(2);

    fireNextRetry();
    await eventually(() => log.lines.some((l) => l.message.startsWith('Dropping a waiting retry')));
    expect(sender.sent).to.have.length(2);
    const after = await status();
    expect(after.status).to.equal('sent');
    expect(after.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
      [1, 'transient'],
      [2, 'sent'],
    ]);
    await queue.stop(0);
  });

  it('drops the waiting twin of a throttled first attempt brought forward, keeping one chain', async () => {
    const { sender, log, request, retryNow, fireNextRetry, waiting, status, queue, clock } =
      await setUp([
        throttled('throttled: 429 Too Many Requests', 30_000),
        throttled('throttled: 429 again', 30_000),
        sent('<p1@provider>'),
      ]);
    await eventually(async () => (await status()).status === 'retrying');
    clock.advance(30_000); // the transport's pause is over
    // A throttle spends no attempt: attempt 1 is what waits, and what the copy makes.
    expect(await retryNow.execute(request.id)()).to.deep.equal(
      E.right({ attempt: 1, how: 'copied' }),
    );
    // The copy is throttled too: its own attempt 1 waits, behind the stale twin.
    await eventually(() => sender.sent.length === 2 && waiting.length === 2);
    clock.advance(30_000);
    fireNextRetry(); // the stale twin: dropped, not a second chain
    await eventually(() => log.lines.some((l) => l.message.startsWith('Dropping a waiting retry')));
    expect(sender.sent).to.have.length(2);
    fireNextRetry(); // the copy's chain: sent
    await eventually(async () => (await status()).status === 'sent');
    expect(sender.sent).to.have.length(3);
    expect(waiting).to.deep.equal([]);
    await queue.stop(0);
  });

  it('keeps one chain of retries when the copy fails for now too', async () => {
    const { sender, request, retryNow, fireNextRetry, waiting, status, queue } = await setUp([
      transient('a 503 from the provider'),
      transient('a 503 again'),
      sent('<p3@provider>'),
    ]);
    await eventually(async () => (await status()).status === 'retrying');
    await retryNow.execute(request.id)();
    // The copy's attempt 2 failed for now: attempt 3 waits, behind attempt 2's stale twin.
    await eventually(async () => (await status()).attempts.length === 2);
    expect(waiting).to.have.length(2);

    fireNextRetry(); // the stale attempt 2: dropped
    fireNextRetry(); // attempt 3: sent
    await eventually(async () => (await status()).status === 'sent');
    expect(sender.sent).to.have.length(3);
    expect((await status()).attempts.map((a) => a.attempt)).to.deep.equal([1, 2, 3]);
    expect(waiting).to.deep.equal([]);
    await queue.stop(0);
  });
});
