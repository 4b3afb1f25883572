// DeliverEmail and the provider's limits: a throttle pauses the transport for every worker and
// spends no attempt; a paused transport, or one at its rate, makes the send wait (in the worker
// when the wait is short, in the queue when it is long), its attempt unspent.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliverEmailOptions } from '../../src/application/deliver-email.js';
import { DeliverEmail, MAX_REBOOKS, handBackDelay } from '../../src/application/deliver-email.js';
import type { EmailSender } from '../../src/application/ports/email-sender.js';
import type { Disposition, EmailTask } from '../../src/application/ports/email-task-source.js';
import type {
  PaceSlot,
  PacingObserver,
  SendPacer,
  SendRate,
} from '../../src/application/ports/send-pacer.js';
import type { TransportPauses } from '../../src/application/ports/transport-pauses.js';
import { FailoverEmailSender } from '../../src/adapters/failover/failover-email-sender.js';
import { outcomeOf } from '../../src/adapters/mailgun/mailgun-response.js';
import { InMemorySendPacer } from '../../src/adapters/memory/in-memory-send-pacer.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import { InMemoryTransportPauses } from '../../src/adapters/memory/in-memory-transport-pauses.js';
import type { AttemptRecord, DeliveryOutcome, RetryPolicy } from '../../src/domain/delivery.js';
import {
  MAX_THROTTLES_PER_ATTEMPT,
  MAX_THROTTLE_PAUSE_MS,
  MIN_THROTTLE_PAUSE_MS,
  decide,
  throttlePauseMs,
  sent,
  throttled,
  transient,
} from '../../src/domain/delivery.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { aRequest, aTask, anAttempt } from '../support/builders.js';
import { RecordingEvents, RecordingLogger, fixedClock } from '../support/fakes.js';

const policy: RetryPolicy = { maxAttempts: 3, delaysMs: [2000, 5000] };

/** A transport by name that answers from a script, then `sent`; it records what it was given. */
class Transport implements EmailSender {
  readonly sent: EmailRequest[] = [];
  constructor(
    readonly name: string,
    private readonly outcomes: DeliveryOutcome[] = [],
  ) {}
  send(request: EmailRequest) {
    return async () => {
      this.sent.push(request);
      return this.outcomes.shift() ?? sent(`<${request.id}@${this.name}>`);
    };
  }
}

/** Pauses that count their reads, so the one-second cache shows. */
class CountingPauses implements TransportPauses {
  reads = 0;
  readonly inner = new InMemoryTransportPauses();
  pause(transport: string, until: Date) {
    return this.inner.pause(transport, until);
  }
  pausedUntil(transport: string) {
    this.reads += 1;
    return this.inner.pausedUntil(transport);
  }
}

/** What a worker's /metrics would have been told. */
class RecordingPacing implements PacingObserver {
  readonly calls: [string, ...unknown[]][] = [];
  pacingWaited(transport: string, waitMs: number) {
    this.calls.push(['waited', transport, waitMs]);
  }
  pacingTokens(transport: string, tokens: number) {
    this.calls.push(['tokens', transport, tokens]);
  }
  transportThrottled(transport: string) {
    this.calls.push(['throttled', transport]);
  }
  transportPaused(transport: string, until: Date) {
    this.calls.push(['paused', transport, until.toISOString()]);
  }
}

/** The pacer of one test, on its clock. */
type PacerOn = (clock: ReturnType<typeof fixedClock>) => SendPacer;

async function setUp(
  sender: EmailSender,
  options: Partial<DeliverEmailOptions> = {},
  pacerOn?: PacerOn,
) {
  const events = new RecordingEvents();
  const ledger = new InMemoryDeliveryLedger();
  const emails = new InMemoryEmailLog();
  const log = new RecordingLogger();
  const clock = fixedClock();
  const pauses = new CountingPauses();
  const pacing = new RecordingPacing();
  // Waiting in the worker is the clock moving on: no real time passes in these tests.
  const sleeps: number[] = [];
  const useCase = new DeliverEmail(sender, emails, events, ledger, policy, clock, log, {
    holder: 'worker-a',
    pauses,
    pacing,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.advance(ms);
    },
    ...(pacerOn ? { pacer: pacerOn(clock) } : {}),
    ...options,
  });
  /** A recorded email's task, attempt 1 unless told otherwise. */
  const taskFor = async (overrides: Partial<EmailTask> = {}): Promise<EmailTask> => {
    const request = overrides.request ?? aRequest();
    await emails.record(request)();
    return aTask({ request, ...overrides });
  };
  const status = async (id: string): Promise<EmailStatus> => {
    const found = await emails.get(id as EmailRequest['id'])();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('email not in the log');
    return found.right.value;
  };
  return { useCase, events, ledger, log, clock, pauses, pacing, sleeps, taskFor, status };
}

const expectTag = <T extends Disposition['_tag']>(
  d: Disposition,
  tag: T,
): Extract<Disposition, { _tag: T }> => {
  if (d._tag !== tag) return expect.fail(`expected ${tag}, got ${JSON.stringify(d)}`);
  return d as Extract<Disposition, { _tag: T }>;
};

const pausedUntil = async (pauses: TransportPauses, transport: string) => {
  const read = await pauses.pausedUntil(transport)();
  return E.isRight(read) ? read.right?.toISOString() : expect.fail('the pauses did not answer');
};

describe('DeliverEmail, throttled by the provider', () => {
  it('spends no attempt: the same attempt after the pause, a history line that says so, the pause shared', async () => {
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: Too many requests', 3000)]);
    const { useCase, clock, pauses, events, pacing, taskFor, status } = await setUp(mailgun);
    const task = await taskFor();
    const now = clock.now().getTime();

    const retry = expectTag(await useCase.execute(task)(), 'Retry');
    expect(retry).to.deep.include({ attempt: 1, delayMs: 3000 });
    expect(retry.history).to.have.length(1);
    expect(retry.history[0]).to.deep.include({
      attempt: 1,
      outcome: 'transient',
      detail: 'throttled: Mailgun 429: Too many requests',
      throttled: true,
    });
    expect(await pausedUntil(pauses.inner, 'mailgun')).to.equal(new Date(now + 3000).toISOString());
    const waiting = await status(task.request.id);
    expect(waiting.status).to.equal('retrying');
    expect(waiting.nextAttemptAt).to.equal(new Date(now + 3000).toISOString());
    expect(events.events.map((e) => e.type)).to.deep.equal([
      'EmailSending',
      'EmailDeliveryRetried',
    ]);
    expect(pacing.calls).to.deep.include.members([
      ['throttled', 'mailgun'],
      ['paused', 'mailgun', new Date(now + 3000).toISOString()],
    ]);

    // The queue brings it back when the pause is over: attempt 1 again, and it goes out.
    clock.advance(3000);
    expectTag(await useCase.execute({ ...task, history: retry.history })(), 'Done');
    const done = await status(task.request.id);
    expect(done.status).to.equal('sent');
    expect(done.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
      [1, 'transient'],
      [1, 'sent'],
    ]);
    expect(mailgun.sent).to.have.length(2);
  });

  it('does not dead-letter a throttle on the last attempt', async () => {
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: slow down', 1000)]);
    const { useCase, taskFor } = await setUp(mailgun);
    const retry = expectTag(await useCase.execute(await taskFor({ attempt: 3 }))(), 'Retry');
    expect(retry.attempt).to.equal(3);
  });

  it("pauses for the attempt's retry step when the provider names no time, and for a second at least", async () => {
    const pauseOf = async (outcome: DeliveryOutcome): Promise<number> => {
      const { useCase, taskFor } = await setUp(new Transport('smtp', [outcome]));
      return expectTag(await useCase.execute(await taskFor())(), 'Retry').delayMs;
    };
    expect(await pauseOf(throttled('SMTP 421: 421 4.7.28 rate limited'))).to.equal(2000);
    expect(await pauseOf(throttled('Mailgun 429', 0))).to.equal(MIN_THROTTLE_PAUSE_MS);
  });

  it('pauses for the first step when no time is named, whatever the attempt and its throttles', async () => {
    const smtp421 = throttled('SMTP 421: 421 4.7.28 rate limited');
    const pauseOf = async (overrides: Partial<EmailTask>): Promise<number> => {
      const { useCase, taskFor, pauses, clock } = await setUp(new Transport('smtp', [smtp421]));
      const now = clock.now().getTime();
      const retry = expectTag(await useCase.execute(await taskFor(overrides))(), 'Retry');
      // The pause every worker sees is the one the task waits.
      expect(await pausedUntil(pauses.inner, 'smtp')).to.equal(
        new Date(now + retry.delayMs).toISOString(),
      );
      return retry.delayMs;
    };
    // A third attempt (two transient failures before it): the first step, not the third
    // attempt's. Throttled six times on it already: still the first step, for every worker.
    const failures = [anAttempt(1), anAttempt(2)];
    expect(await pauseOf({ attempt: 3, history: failures })).to.equal(2000);
    const throttles = Array.from({ length: 6 }, () => anAttempt(3, { throttled: true }));
    expect(await pauseOf({ attempt: 3, history: [...failures, ...throttles] })).to.equal(2000);
  });

  it('counts the attempt after MAX_THROTTLES_PER_ATTEMPT throttles on it', async () => {
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: Too many requests', 1000)]);
    const { useCase, taskFor } = await setUp(mailgun);
    const history: AttemptRecord[] = Array.from({ length: MAX_THROTTLES_PER_ATTEMPT }, () =>
      anAttempt(1, { detail: 'throttled: Mailgun 429', throttled: true }),
    );
    const retry = expectTag(await useCase.execute(await taskFor({ history }))(), 'Retry');
    expect(retry.attempt).to.equal(2);
    expect(retry.history.at(-1)).not.to.have.property('throttled');
  });

  it('pauses a throttling transport of a failover chain while the next one takes the email', async () => {
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: Too many requests', 4000)]);
    const smtp = new Transport('smtp');
    const chain = new FailoverEmailSender({ senders: [mailgun, smtp], log: new RecordingLogger() });
    const { useCase, clock, pauses, taskFor, status } = await setUp(chain);
    const now = clock.now().getTime();
    const task = await taskFor();
    expectTag(await useCase.execute(task)(), 'Done');
    expect((await status(task.request.id)).sentBy).to.equal('smtp');
    expect(await pausedUntil(pauses.inner, 'mailgun')).to.equal(new Date(now + 4000).toISOString());

    // The next email goes straight to SMTP: Mailgun is not asked while it is paused.
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(mailgun.sent).to.have.length(1);
    expect(smtp.sent).to.have.length(2);
  });

  it('waits without an attempt when every transport of a chain throttled', async () => {
    const chain = new FailoverEmailSender({
      senders: [
        new Transport('mailgun', [throttled('Mailgun 429', 3000)]),
        new Transport('smtp', [throttled('SMTP 421: too many messages', 6000)]),
      ],
      log: new RecordingLogger(),
    });
    const { useCase, pauses, clock, taskFor } = await setUp(chain);
    const now = clock.now().getTime();
    const retry = expectTag(await useCase.execute(await taskFor())(), 'Retry');
    expect(retry).to.deep.include({ attempt: 1, delayMs: 3000 });
    expect(await pausedUntil(pauses.inner, 'mailgun')).to.equal(new Date(now + 3000).toISOString());
    expect(await pausedUntil(pauses.inner, 'smtp')).to.equal(new Date(now + 6000).toISOString());
  });

  it('pauses for at most MAX_THROTTLE_PAUSE_MS (an hour), whatever the Retry-After', async () => {
    const year = 365 * 24 * 3_600_000;
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: Too many requests', year)]);
    const { useCase, clock, pauses, taskFor } = await setUp(mailgun);
    const now = clock.now().getTime();
    const retry = expectTag(await useCase.execute(await taskFor())(), 'Retry');
    expect(retry).to.deep.include({ attempt: 1, delayMs: MAX_THROTTLE_PAUSE_MS });
    expect(await pausedUntil(pauses.inner, 'mailgun')).to.equal(
      new Date(now + MAX_THROTTLE_PAUSE_MS).toISOString(),
    );
  });

  it('settles a send answered with an absurd Retry-After (twenty digits) like any throttle', async () => {
    const reply = {
      status: 429,
      body: '{"message":"Too many"}',
      retryAfter: '99999999999999999999',
    };
    const mailgun = new Transport('mailgun', [outcomeOf(reply, Date.now())]);
    const { useCase, taskFor } = await setUp(mailgun);
    const retry = expectTag(await useCase.execute(await taskFor())(), 'Retry');
    expect(retry).to.deep.include({ attempt: 1, delayMs: MAX_THROTTLE_PAUSE_MS });
  });
});

describe('DeliverEmail, a paused transport', () => {
  it('waits in the worker for a short pause, then sends, with the same attempt', async () => {
    const mailgun = new Transport('mailgun');
    const { useCase, clock, pauses, sleeps, events, taskFor } = await setUp(mailgun);
    // Another worker was throttled a moment ago.
    await pauses.pause('mailgun', new Date(clock.now().getTime() + 400))();
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(sleeps).to.deep.equal([400]);
    expect(mailgun.sent).to.have.length(1);
    expect(events.events.filter((e) => e.type === 'EmailSent')).to.have.length(1);
    expect(events.events[0]).to.include({ type: 'EmailSending', attempt: 1 });
  });

  it('hands a task back for a long pause: same attempt and history, nothing sent, the claim freed', async () => {
    const mailgun = new Transport('mailgun');
    const { useCase, clock, pauses, sleeps, events, ledger, pacing, taskFor, status } =
      await setUp(mailgun);
    await pauses.pause('mailgun', new Date(clock.now().getTime() + 5000))();
    const history = [anAttempt(1)];
    const task = await taskFor({ attempt: 2, history });
    const retry = expectTag(await useCase.execute(task)(), 'Retry');
    expect(retry).to.deep.equal({ _tag: 'Retry', attempt: 2, delayMs: 5000, history });
    expect(sleeps).to.deep.equal([]);
    expect(mailgun.sent).to.have.length(0);
    // Not news: the email is still where it was, and another worker may take it.
    expect(events.events).to.deep.equal([]);
    expect((await status(task.request.id)).status).to.equal('queued');
    const claim = await ledger.claim(task.request.id, 'worker-b', clock.now(), 15_000)();
    expect(E.isRight(claim) && claim.right._tag).to.equal('Claimed');
    expect(pacing.calls).to.deep.include(['waited', 'mailgun', 5000]);
  });

  it('hands a task back before any store call when this worker knows the transport is paused', async () => {
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429', 3000)]);
    const { useCase, pauses, ledger, clock, taskFor } = await setUp(mailgun);
    expectTag(await useCase.execute(await taskFor())(), 'Retry');
    const reads = pauses.reads;
    const next = await taskFor();
    // Back after the longest retry step within the 3 s left (2 s), to ask again then.
    expect(expectTag(await useCase.execute(next)(), 'Retry')).to.deep.include({
      attempt: 1,
      delayMs: 2000,
    });
    expect(pauses.reads).to.equal(reads);
    const claim = await ledger.claim(next.request.id, 'worker-b', clock.now(), 15_000)();
    expect(E.isRight(claim) && claim.right._tag).to.equal('Claimed');
    expect(mailgun.sent).to.have.length(1);
  });

  it('keeps the mark of an operator\'s "Retry now" copy on a same-attempt retry', async () => {
    // Unmarked, the copy would come back looking like the waiting task it replaced, and be
    // dropped as that one is: the email would never be sent.
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429', 3000)]);
    const { useCase, taskFor } = await setUp(mailgun);
    const throttledCopy = await taskFor({ attempt: 2, expedited: true });
    expect(expectTag(await useCase.execute(throttledCopy)(), 'Retry')).to.deep.include({
      attempt: 2,
      expedited: true,
    });
    const waitingCopy = await taskFor({ attempt: 2, expedited: true });
    expect(expectTag(await useCase.execute(waitingCopy)(), 'Retry')).to.deep.include({
      attempt: 2,
      expedited: true,
    });
    const plain = expectTag(await useCase.execute(await taskFor({ attempt: 2 }))(), 'Retry');
    expect(plain).not.to.have.property('expedited');
  });

  it('reads the shared pauses at most once a second', async () => {
    const { useCase, clock, pauses, taskFor } = await setUp(new Transport('mailgun'));
    for (let i = 0; i < 5; i += 1) expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(pauses.reads).to.equal(1);
    clock.advance(1000);
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(pauses.reads).to.equal(2);
  });

  it('shares one read of the shared pauses among the sends that need it at once', async () => {
    const mailgun = new Transport('mailgun');
    const { useCase, pauses, taskFor } = await setUp(mailgun);
    const tasks = await Promise.all(Array.from({ length: 8 }, () => taskFor()));
    const done = await Promise.all(tasks.map((task) => useCase.execute(task)()));
    expect(done.map((d) => d._tag)).to.deep.equal(Array.from({ length: 8 }, () => 'Done'));
    expect(mailgun.sent).to.have.length(8);
    expect(pauses.reads).to.equal(1);
  });

  it('sends as usual when the pauses cannot be read, and says so', async () => {
    const broken: TransportPauses = {
      pause: () => TE.left({ _tag: 'StoreUnavailable', reason: 'down' }),
      pausedUntil: () => TE.left({ _tag: 'StoreUnavailable', reason: 'down' }),
    };
    const mailgun = new Transport('mailgun');
    const { useCase, log, taskFor } = await setUp(mailgun, { pauses: broken });
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(log.text()).to.contain('Could not read whether the transport is paused');
  });
});

describe('DeliverEmail, paced (MAILGUN_RATE)', () => {
  const paced =
    (rate: SendRate): PacerOn =>
    (clock) =>
      new InMemorySendPacer({ mailgun: rate }, () => clock.monotonicMs());

  it('waits in the worker when the next slot is near, and sends', async () => {
    const mailgun = new Transport('mailgun');
    // 4/s: a slot every 275 ms (10% under the rate).
    const { useCase, sleeps, pacing, taskFor } = await setUp(
      mailgun,
      {},
      paced({ limit: 4, windowMs: 1000 }),
    );
    for (let i = 0; i < 3; i += 1) expectTag(await useCase.execute(await taskFor())(), 'Done');
    // The first send of the process books two slots (COLD_SEND_SLOTS), the second one no more
    // than MAX_EXTRA_ROOM_MS: the next send waits 375 ms; from then on, one slot each.
    expect(sleeps).to.deep.equal([375, 275]);
    expect(mailgun.sent).to.have.length(3);
    expect(pacing.calls).to.deep.include.members([
      ['tokens', 'mailgun', 2],
      ['waited', 'mailgun', 375],
      ['waited', 'mailgun', 275],
    ]);
  });

  it('hands a task back, its attempt unspent, when the next slot is further than a second', async () => {
    const mailgun = new Transport('mailgun');
    let asks = 0;
    const counted: PacerOn = (clock) => {
      const inner = paced({ limit: 1, windowMs: 1000 })(clock);
      return {
        acquire: (transport, withinMs, slots) => {
          asks += 1;
          return inner.acquire(transport, withinMs, slots);
        },
      };
    };
    const { useCase, sleeps, taskFor } = await setUp(mailgun, {}, counted);
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    const second = await taskFor({ attempt: 2, history: [anAttempt(1)] });
    const retry = expectTag(await useCase.execute(second)(), 'Retry');
    // The next slot is 1.2 s away (the first send took one and MAX_EXTRA_ROOM_MS): no retry
    // step is that short, so it is back after its wait.
    expect(retry).to.deep.include({ attempt: 2, delayMs: 1200 });
    expect(retry.history).to.deep.equal([anAttempt(1)]);
    expect(sleeps).to.deep.equal([]);
    expect(mailgun.sent).to.have.length(1);
    // What the pacer said is remembered: the next task goes back without asking it again.
    expect(asks).to.equal(2);
    const third = expectTag(await useCase.execute(await taskFor())(), 'Retry');
    expect(third.delayMs).to.equal(1200);
    expect(asks).to.equal(2);
  });

  /** A pacer that answers from a script, booked each time, and counts the asks. */
  const scripted = (answers: PaceSlot[]) => {
    const asked: number[] = [];
    const pacer: SendPacer = {
      acquire: () => {
        asked.push(asked.length);
        return TE.right(answers.shift() ?? { waitMs: 0, booked: true, graceMs: 25 });
      },
    };
    return { pacer, asked };
  };

  it('books another slot when the worker was held up past the grace, and leaves the missed one empty', async () => {
    const mailgun = new Transport('mailgun');
    const { pacer, asked } = scripted([
      { waitMs: 100, booked: true, graceMs: 25 },
      { waitMs: 55, booked: true, graceMs: 25 },
    ]);
    let held = 40; // the first wait ends 40 ms late: past the 25 ms grace
    const sleeps: number[] = [];
    let moveOn = (ms: number): void => void ms;
    const { useCase, clock, taskFor } = await setUp(mailgun, {
      pacer,
      sleep: async (ms) => {
        sleeps.push(ms);
        moveOn(ms + held);
        held = 0;
      },
    });
    moveOn = (ms) => clock.advance(ms);
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    // Late for its slot, it asked again and went on the next one, on time.
    expect(asked).to.have.length(2);
    expect(sleeps).to.deep.equal([100, 55]);
    expect(mailgun.sent).to.have.length(1);
  });

  it('books another slot when the pacer has since placed the slot earlier, past the grace', async () => {
    const mailgun = new Transport('mailgun');
    // Sent on time as the slot was placed when booked; placed 30 ms earlier since: past 25.
    const { pacer, asked } = scripted([
      { waitMs: 0, booked: true, graceMs: 25, earlierByMs: () => 30 },
      { waitMs: 55, booked: true, graceMs: 25, earlierByMs: () => 20 },
    ]);
    const { useCase, sleeps, taskFor } = await setUp(mailgun, { pacer });
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(asked).to.have.length(2);
    expect(sleeps).to.deep.equal([55]);
    expect(mailgun.sent).to.have.length(1);
  });

  it('hands the task back, unsent and its attempt unspent, after MAX_REBOOKS missed slots in a row', async () => {
    const mailgun = new Transport('mailgun');
    const never = { waitMs: 0, booked: true, graceMs: 25, earlierByMs: () => 26 };
    const { pacer, asked } = scripted(Array.from({ length: MAX_REBOOKS + 1 }, () => never));
    const { useCase, taskFor } = await setUp(mailgun, { pacer });
    const retry = expectTag(await useCase.execute(await taskFor())(), 'Retry');
    expect(retry.attempt).to.equal(1);
    expect(asked).to.have.length(MAX_REBOOKS + 1);
    expect(mailgun.sent).to.deep.equal([]);
  });

  it('paces the transport a failover chain will try: the first one not paused', async () => {
    const asked: string[] = [];
    const pacer: SendPacer = {
      acquire: (transport) => {
        asked.push(transport);
        return TE.right({ waitMs: 0, booked: true });
      },
    };
    const chain = new FailoverEmailSender({
      senders: [new Transport('mailgun'), new Transport('smtp')],
      log: new RecordingLogger(),
    });
    const { useCase, pauses, clock, taskFor } = await setUp(chain, { pacer });
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    await pauses.pause('mailgun', new Date(clock.now().getTime() + 60_000))();
    clock.advance(1000); // past the cache of the pauses
    expectTag(await useCase.execute(await taskFor())(), 'Done');
    expect(asked).to.deep.equal(['mailgun', 'smtp']);
  });
});

describe('handBackDelay', () => {
  it('rounds a wait down to a step of the retry schedule, so the task comes back before its turn', () => {
    const steps = [1000, 5000, 30_000];
    expect(handBackDelay(steps, 1200)).to.equal(1000);
    expect(handBackDelay(steps, 4999)).to.equal(1000);
    expect(handBackDelay(steps, 5000)).to.equal(5000);
    expect(handBackDelay(steps, 600_000)).to.equal(30_000);
    // Shorter than every step: the wait itself (a queue with fixed steps rounds it up).
    expect(handBackDelay([2000, 5000], 1100.4)).to.equal(1101);
  });
});

describe('decide, on a throttle', () => {
  it('is Throttled with the same attempt, whatever the attempt', () => {
    for (const attempt of [1, 2, 3]) {
      expect(decide(throttled('429', 2500), attempt, policy)).to.deep.equal({
        _tag: 'Throttled',
        attempt,
        delayMs: 2500,
        reason: 'throttled: 429',
      });
    }
  });

  it('pauses at least MIN_THROTTLE_PAUSE_MS and at most MAX_THROTTLE_PAUSE_MS', () => {
    expect(throttlePauseMs(policy, 0)).to.equal(MIN_THROTTLE_PAUSE_MS);
    expect(throttlePauseMs(policy, 86_400_000)).to.equal(MAX_THROTTLE_PAUSE_MS);
    expect(throttlePauseMs(policy, Infinity)).to.equal(MAX_THROTTLE_PAUSE_MS);
    expect(throttlePauseMs(policy, 1e23)).to.equal(MAX_THROTTLE_PAUSE_MS);
    // No time named: the first step.
    expect(throttlePauseMs(policy)).to.equal(2000);
  });

  it('is a plain transient failure once the attempt met MAX_THROTTLES_PER_ATTEMPT', () => {
    const outcome = throttled('429', 2500);
    expect(decide(outcome, 1, policy, MAX_THROTTLES_PER_ATTEMPT)._tag).to.equal('RetryLater');
    expect(decide(outcome, 3, policy, MAX_THROTTLES_PER_ATTEMPT)._tag).to.equal('GiveUp');
    expect(decide(transient('503'), 1, policy)._tag).to.equal('RetryLater');
  });
});
