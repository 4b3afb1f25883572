// Review of pacing: each test named BUG or GAP fails on this branch and shows what is wrong.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliverEmailOptions } from '../../src/application/deliver-email.js';
import { DeliverEmail } from '../../src/application/deliver-email.js';
import type { EmailSender } from '../../src/application/ports/email-sender.js';
import type { Disposition } from '../../src/application/ports/email-task-source.js';
import type { Expedited, RetryQueue } from '../../src/application/ports/retry-queue.js';
import { RetryNow } from '../../src/application/retry-now.js';
import { FailoverEmailSender } from '../../src/adapters/failover/failover-email-sender.js';
import { outcomeOf } from '../../src/adapters/mailgun/mailgun-response.js';
import { isThrottleReply } from '../../src/adapters/smtp/smtp-outcome.js';
import { InMemorySendPacer } from '../../src/adapters/memory/in-memory-send-pacer.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import { InMemoryTransportPauses } from '../../src/adapters/memory/in-memory-transport-pauses.js';
import type { DeliveryOutcome, RetryPolicy } from '../../src/domain/delivery.js';
import { sent, throttled, transient } from '../../src/domain/delivery.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { aRequest, aTask } from '../support/builders.js';
import { RecordingEvents, RecordingLogger, fixedClock } from '../support/fakes.js';

const policy: RetryPolicy = { maxAttempts: 3, delaysMs: [2000, 5000] };

class Transport implements EmailSender {
  readonly sent: EmailRequest[] = [];
  constructor(
    readonly name: string,
    private readonly outcomes: DeliveryOutcome[] = [],
    private readonly always?: DeliveryOutcome,
  ) {}
  send(request: EmailRequest) {
    return async () => {
      this.sent.push(request);
      return this.outcomes.shift() ?? this.always ?? sent(`<${request.id}@${this.name}>`);
    };
  }
}

function setUp(
  sender: EmailSender,
  {
    clock = fixedClock(),
    ...options
  }: Partial<DeliverEmailOptions> & { clock?: ReturnType<typeof fixedClock> } = {},
) {
  const emails = new InMemoryEmailLog();
  const events = new RecordingEvents();
  const pauses = new InMemoryTransportPauses();
  const useCase = new DeliverEmail(
    sender,
    emails,
    events,
    new InMemoryDeliveryLedger(),
    policy,
    clock,
    new RecordingLogger(),
    {
      holder: 'worker-a',
      pauses,
      sleep: async (ms) => clock.advance(ms),
      ...options,
    },
  );
  const task = async () => {
    const request = aRequest();
    await emails.record(request)();
    return aTask({ request });
  };
  return { useCase, emails, events, clock, pauses, task };
}

describe('pacing review', () => {
  // parseRetryAfter reads any run of digits: `Retry-After: 99999999999999999999` is 1e23 ms, and
  // `new Date(now + 1e23)` is an Invalid Date whose toISOString() throws in pauseThrottled. The
  // task handler rejects ("Task handler failed"), nothing is recorded (no throttle line, so
  // MAX_THROTTLES_PER_ATTEMPT never counts), and the task is redelivered as long as it lasts.
  it('BUG: an absurd Retry-After still gives a disposition (no RangeError from a send)', async () => {
    const reply = {
      status: 429,
      body: '{"message":"Too many"}',
      retryAfter: '99999999999999999999',
    };
    const mailgun = new Transport('mailgun', [outcomeOf(reply, Date.now())]);
    const { useCase, task } = setUp(mailgun);
    let result: Disposition | Error;
    try {
      result = await useCase.execute(await task())();
    } catch (error) {
      result = error as Error;
    }
    expect(result).not.to.be.instanceOf(Error);
  });

  // No upper bound on a pause: `Retry-After: 31536000` (or an HTTP date in 9999) pauses the
  // transport for every worker for a year, and a pause only ever moves later (no command
  // clears it: only SQL on transport_pauses).
  it('GAP: a pause after a throttle is capped (here: at most an hour)', async () => {
    const year = 365 * 24 * 3600 * 1000;
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: Too many requests', year)]);
    const { useCase, clock, pauses, task } = setUp(mailgun);
    await useCase.execute(await task())();
    const until = await pauses.pausedUntil('mailgun')();
    const ms = E.isRight(until) ? (until.right?.getTime() ?? 0) - clock.now().getTime() : NaN;
    expect(ms).to.be.at.most(3600_000);
  });

  // Mailgun's 420 is its per-domain sending/recipient limit ("Domain … is not allowed to send:
  // recipient limit exceeded, try again after <date>", mailgun/mailgun-java#50): a rate limit
  // with a time, mapped to a plain transient, so every email spends attempts on it and the
  // transport is not paused for the other workers.
  it('GAP: Mailgun 420 "limit exceeded, try again after …" is a throttle', () => {
    const now = Date.parse('2026-11-30T21:00:00Z');
    const outcome = outcomeOf(
      {
        status: 420,
        body: JSON.stringify({
          message:
            'Domain mg.example.com is not allowed to send: recipient limit exceeded, try again after Mon, 30 Nov 2026 21:10:00 UTC',
        }),
      },
      now,
    );
    expect(outcome).to.include({ _tag: 'Transient', retryAfterMs: 600_000 });
    expect(outcome).to.have.property('throttled', true);
  });

  // A failover chain paces the transport it tries first; while that one fails (an outage: every
  // send moves on, or its circuit is open) every send lands on the next transport unpaced,
  // so SMTP_RATE is not held at all during a Mailgun outage (documented as a limitation).
  it('GAP: SMTP_RATE holds for the sends a failover chain moves on to SMTP', async () => {
    const mailgun = new Transport('mailgun', [], transient('Mailgun 503: Service Unavailable'));
    const smtp = new Transport('smtp');
    const chain = new FailoverEmailSender({ senders: [mailgun, smtp], log: new RecordingLogger() });
    const clock = fixedClock();
    const pacer = new InMemorySendPacer(
      { mailgun: { limit: 100, windowMs: 1000 }, smtp: { limit: 1, windowMs: 60_000 } },
      () => clock.monotonicMs(),
    );
    const { useCase, task } = setUp(chain, { pacer });
    for (let i = 0; i < 5; i += 1) await useCase.execute(await task())();
    // SMTP_RATE=1/min: one send within this (simulated) second, not five.
    expect(smtp.sent).to.have.length(1);
  });

  // "Retry now" on an email retrying after a throttle: the waiting task still has attempt 1
  // (a throttle spends none), but RetryNow asks the queue for attempt 2, the one after the last
  // recorded line. On the SQL queue that finds nothing (409 NotWaiting); on RabbitMQ a copy of
  // attempt 2 runs next to the waiting attempt 1, and one attempt more is counted.
  it('BUG: "Retry now" on a throttled email brings forward the attempt that waits (1)', async () => {
    const mailgun = new Transport('mailgun', [throttled('Mailgun 429: Too many requests', 60_000)]);
    const { useCase, emails, events, clock, task } = setUp(mailgun);
    const t = await task();
    const retry = await useCase.execute(t)();
    expect(retry).to.deep.include({ _tag: 'Retry', attempt: 1 });
    const asked: number[] = [];
    const queue: RetryQueue = {
      expedite: (_r: EmailRequest, attempt: number) => {
        asked.push(attempt);
        return TE.right<never, Expedited>('copied');
      },
    };
    await new RetryNow(queue, emails, events, clock, new RecordingLogger()).execute(t.request.id)();
    expect(asked).to.deep.equal([1]);
  });

  // THROTTLE_WORDS matches any "limit…": a full mailbox or an oversized message (a limit of one
  // recipient or one message) reads as a throttle, pauses SMTP for every worker and spends no
  // attempt on up to MAX_THROTTLES_PER_ATTEMPT tries per attempt.
  it('GAP: an SMTP 452/451 about a mailbox or message size limit is not a throttle', () => {
    expect(isThrottleReply(452, '452 4.2.2 Mailbox size limit exceeded')).to.equal(false);
    expect(isThrottleReply(451, '451 4.3.0 Message size exceeds fixed limit')).to.equal(false);
  });

  // README: `email_pacing_wait_seconds` "(sends that waited, and how long)". Each hand-back is
  // counted as a wait of the whole time still to go, so one email that waits 132 s and goes
  // round the queue every 30 s counts five waits summing ~400 s.
  it('DOC: one email that waited once is counted as one wait of about its wait', async () => {
    const waits: number[] = [];
    const pacing = {
      pacingWaited: (_t: string, ms: number) => void waits.push(ms),
      pacingTokens: () => undefined,
      transportThrottled: () => undefined,
      transportPaused: () => undefined,
    };
    const clock = fixedClock();
    const pacer = new InMemorySendPacer({ mailgun: { limit: 1, windowMs: 60_000 } }, () =>
      clock.monotonicMs(),
    );
    const mailgun = new Transport('mailgun');
    const { useCase, task } = setUp(mailgun, { pacer, pacing, clock });
    await useCase.execute(await task())();
    const second = await task();
    for (let i = 0; i < 10 && mailgun.sent.length < 2; i += 1) {
      await useCase.execute(second)();
      clock.advance(30_000);
    }
    expect(mailgun.sent).to.have.length(2);
    expect(waits.length, JSON.stringify(waits)).to.equal(1);
  });
});
