import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { DeliverEmailOptions, Every } from '../../src/application/deliver-email.js';
import { DeliverEmail, STORE_WAIT_LOG_EVERY_MS } from '../../src/application/deliver-email.js';
import { RecordProviderEvent } from '../../src/application/record-provider-event.js';
import type { Disposition, EmailTask } from '../../src/application/ports/email-task-source.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import { notStarted, permanent, sent, transient, uncertain } from '../../src/domain/delivery.js';
import type { DeliveryOutcome, RetryPolicy } from '../../src/domain/delivery.js';
import type { DomainEvent } from '../../src/domain/events.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { Applied } from '../../src/application/ports/email-log.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { evolveStatus } from '../../src/domain/email-status.js';
import { acceptedEvent } from '../../src/domain/events.js';
import { InMemorySuppressionList } from '../../src/adapters/memory/in-memory-suppression-list.js';
import { domainToAscii } from '../../src/adapters/idna/idna.js';
import type { SuppressionList } from '../../src/application/ports/suppression-list.js';
import { aRequest, aTask, anAttempt } from '../support/builders.js';
import { eventually, sleep } from '../support/waiting.js';
import {
  RecordingEvents,
  RecordingLogger,
  ScriptedSender,
  fixedClock,
  switchable,
} from '../support/fakes.js';

const policy: RetryPolicy = { maxAttempts: 3, delaysMs: [1000, 5000] };

// Every test delivers this one email; each task is an attempt at it.
const request = aRequest({
  id: 'deliver-0001',
  to: ['ada@example.com', 'Bob <bob@example.org>'],
  requestedAt: new Date('2026-11-28T09:59:00.000Z'),
});
const task = (attempt = 1): EmailTask => aTask({ request, attempt });

async function setUp(outcomes: DeliveryOutcome[], options: Partial<DeliverEmailOptions> = {}) {
  const sender = new ScriptedSender(outcomes);
  const events = new RecordingEvents();
  const ledger = switchable(new InMemoryDeliveryLedger());
  const emails = switchable(new InMemoryEmailLog());
  const log = new RecordingLogger();
  const clock = fixedClock();
  await emails.store.record(request)();
  /** A worker on the same provider, stores and clock: another process, as far as claims go. */
  const worker = (holder: string, workerLog = new RecordingLogger()): DeliverEmail =>
    new DeliverEmail(sender, emails.store, events, ledger.store, policy, clock, workerLog, {
      ...options,
      holder,
    });
  const useCase = worker('worker-a', log);
  const status = async (): Promise<EmailStatus> => {
    const found = await emails.store.get(request.id)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('email not in the log');
    return found.right.value;
  };
  return { sender, events, ledger, emails, log, clock, useCase, worker, status };
}

/** Holds every send at the provider until `open()`; `waiting` counts the sends held. */
function gate(sender: ScriptedSender): { open(): void; waiting(): number } {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  let waiting = 0;
  const send = sender.send.bind(sender);
  sender.send = (r) => async () => {
    waiting += 1;
    await opened;
    return send(r)();
  };
  return { open: () => open(), waiting: () => waiting };
}

/** Asks as a queue does after a Redeliver, until the answer is something else. */
async function untilDecided(useCase: DeliverEmail, t: EmailTask): Promise<Disposition> {
  for (let asks = 0; asks < 100; asks += 1) {
    const disposition = await useCase.execute(t)();
    if (disposition._tag !== 'Redeliver') return disposition;
    await sleep(1);
  }
  return expect.fail('still Redeliver after 100 asks');
}

const expectTag = <T extends Disposition['_tag']>(
  d: Disposition,
  tag: T,
): Extract<Disposition, { _tag: T }> => {
  if (d._tag !== tag) return expect.fail(`expected ${tag}, got ${JSON.stringify(d)}`);
  return d as Extract<Disposition, { _tag: T }>;
};

describe('DeliverEmail', () => {
  it('says which transport took the email, on the event and in the status', async () => {
    const { useCase, events, status } = await setUp([sent('<p1@mailgun>')]);
    expectTag(await useCase.execute(task())(), 'Done');
    expect(events.events[1]).to.include({ type: 'EmailSent', transport: 'scripted' });
    expect((await status()).sentBy).to.equal('scripted');
  });

  it('sends, records the send in the ledger and the log, and says Done', async () => {
    const { useCase, events, sender, log, ledger, status } = await setUp([sent('<p1@mailgun>')]);
    const result = await useCase.execute(task())();
    expect(result).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSending', 'EmailSent']);
    expect(events.events[1]).to.include({ providerId: '<p1@mailgun>', attempt: 1 });
    expect(await ledger.store.sent(request.id)()).to.deep.equal(E.right('<p1@mailgun>'));
    const now = await status();
    expect(now.status).to.equal('sent');
    expect(now.history.map((c) => [c.status, c.source])).to.deep.equal([
      ['queued', 'api'],
      ['sending', 'worker'],
      ['sent', 'worker'],
    ]);
    expect(now.recipients.map((r) => r.status)).to.deep.equal(['sent', 'sent']);
    expect(log.text()).to.contain('Initiating email send to ada@example.com, bob@example.org.');
    expect(log.text()).to.match(/Time to send an email: \d+\.\d\ds/);
  });

  /** Every write the worker asks of the log: the events of each, and the basis it gave. */
  function writes(emails: { store: InMemoryEmailLog }) {
    const seen: { types: string[]; basis: [string | undefined, number | undefined] }[] = [];
    const note = (events: readonly DomainEvent[], basis?: Applied) =>
      seen.push({
        types: events.map((e) => e.type),
        basis: [basis?.status.status, basis?.version],
      });
    const apply = emails.store.apply.bind(emails.store);
    emails.store.apply = (event, basis) => (note([event], basis), apply(event, basis));
    const applyAll = emails.store.applyAll.bind(emails.store);
    emails.store.applyAll = (events, basis) => (note(events, basis), applyAll(events, basis));
    return seen;
  }

  it("writes a short send's 'sending' with its 'sent', in one write, stamped when the send began", async () => {
    const { useCase, emails, clock, sender, status } = await setUp([sent('<p1@mailgun>')]);
    const seen = writes(emails);
    const send = sender.send.bind(sender);
    sender.send = (r) => async () => (clock.advance(40), send(r)());
    expectTag(await useCase.execute(task())(), 'Done');
    expect(seen.map((w) => w.types)).to.deep.equal([['EmailSending', 'EmailSent']]);
    const [, sending, done] = (await status()).history;
    expect([sending?.status, sending?.at]).to.deep.equal(['sending', '2026-11-28T10:00:00.000Z']);
    expect([done?.status, done?.at]).to.deep.equal(['sent', '2026-11-28T10:00:00.040Z']);
  });

  it("writes 'sending' while a long send runs, then folds 'sent' onto the log's answer", async () => {
    const { useCase, emails, sender, status } = await setUp([sent('<p1@mailgun>')], {
      sendingMarkAfterMs: 5,
    });
    const seen = writes(emails);
    const provider = gate(sender);
    const running = useCase.execute(task())();
    await eventually(() => provider.waiting() === 1);
    // Still at the provider, past SENDING_MARK_AFTER_MS (5 here): the page says so.
    await eventually(async () => (await status()).status === 'sending');
    provider.open();
    expectTag(await running, 'Done');
    expect(seen).to.deep.equal([
      { types: ['EmailSending'], basis: [undefined, undefined] },
      { types: ['EmailSent'], basis: ['sending', undefined] },
    ]);
    expect((await status()).history.map((c) => c.status)).to.deep.equal([
      'queued',
      'sending',
      'sent',
    ]);
  });

  it("reads 'queued' while a short send is at the provider, and writes once, after it", async () => {
    const timers: { work: () => void; cancelled: boolean }[] = [];
    const { useCase, emails, sender, status } = await setUp([sent('<p1@mailgun>')], {
      after: (work) => {
        const timer = { work, cancelled: false };
        timers.push(timer);
        return () => (timer.cancelled = true);
      },
    });
    const seen = writes(emails);
    const provider = gate(sender);
    const running = useCase.execute(task())();
    await eventually(() => provider.waiting() === 1);
    expect((await status()).status).to.equal('queued');
    expect(seen).to.deep.equal([]);
    provider.open();
    expectTag(await running, 'Done');
    expect(timers.map((t) => t.cancelled)).to.deep.equal([true]);
    // A timer that fired all the same (after the outcome took the mark) writes nothing more.
    timers[0]!.work();
    await useCase.execute(task(2))();
    expect(seen.map((w) => w.types)).to.deep.equal([['EmailSending', 'EmailSent'], ['EmailSent']]);
    expect((await status()).history.map((c) => c.status)).to.deep.equal([
      'queued',
      'sending',
      'sent',
    ]);
  });

  it("stops the 'sending' timer as soon as the provider answers, before the claim's release", async () => {
    const timers: { cancelled: boolean }[] = [];
    const { useCase, ledger } = await setUp([transient('a 503 from the provider')], {
      after: () => {
        const timer = { cancelled: false };
        timers.push(timer);
        return () => (timer.cancelled = true);
      },
    });
    const stoppedAtRelease: boolean[] = [];
    const release = ledger.store.release.bind(ledger.store);
    ledger.store.release = (...args) => (
      stoppedAtRelease.push(timers.every((t) => t.cancelled)),
      release(...args)
    );
    expectTag(await useCase.execute(task())(), 'Retry');
    expect(stoppedAtRelease).to.deep.equal([true]);
  });

  it("writes a long send's 'sending' with its outcome when its own write failed", async () => {
    const fired: (() => void)[] = [];
    const { useCase, emails, sender, status } = await setUp([sent('<p1@mailgun>')], {
      after: (work) => (fired.push(work), () => undefined),
    });
    const seen = writes(emails);
    const provider = gate(sender);
    const running = useCase.execute(task())();
    await eventually(() => provider.waiting() === 1);
    // The send has run long enough: its `sending` is written, and the log refuses it.
    emails.down = true;
    fired[0]!();
    emails.down = false;
    expect((await status()).status).to.equal('queued');
    provider.open();
    expectTag(await running, 'Done');
    expect(seen.map((w) => w.types)).to.deep.equal([['EmailSending', 'EmailSent']]);
    expect((await status()).history.map((c) => c.status)).to.deep.equal([
      'queued',
      'sending',
      'sent',
    ]);
  });

  it('forgets the basis once decided: a later task of the same id starts without one', async () => {
    const { useCase, emails } = await setUp([sent('<p1@mailgun>')]);
    const seen = writes(emails);
    expectTag(await useCase.execute(task())(), 'Done');
    // A later task of the same id starts without a basis: the log may have moved meanwhile.
    await useCase.execute(task(2))();
    expect(seen.map((w) => w.basis[0])).to.deep.equal([undefined, undefined]);
  });

  it("folds a first attempt's first change onto the entry as recorded, a retry's onto none", async () => {
    const { useCase, emails } = await setUp([sent('<p1@mailgun>'), sent('<p2@mailgun>')]);
    // A log that keeps versions, as the SQL one does: it can say what `record` left.
    emails.store.recordedBasis = (r) => ({
      status: evolveStatus(undefined, acceptedEvent(r)),
      changed: true,
      version: 1,
    });
    const seen = writes(emails);
    expectTag(await useCase.execute(task())(), 'Done');
    expect(seen[0]).to.deep.equal({ types: ['EmailSending', 'EmailSent'], basis: ['queued', 1] });
    seen.length = 0;
    const retried = aRequest();
    await emails.store.record(retried)();
    const retry = aTask({ request: retried, attempt: 2, history: [anAttempt(1)] });
    expectTag(await useCase.execute(retry)(), 'Done');
    expect(seen[0]).to.deep.equal({
      types: ['EmailSending', 'EmailSent'],
      basis: [undefined, undefined],
    });
  });

  it('builds no info line when the logger drops them, and still warns', async () => {
    const { worker } = await setUp([transient('a 503 from the provider')]);
    const quiet = new (class extends RecordingLogger {
      isLevelEnabled(level: string): boolean {
        return level !== 'info';
      }
      override info(fields: object, message: string): void {
        // The logger would drop it: a caller that checked never gets here for the send lines.
        super.info(fields, message);
      }
    })();
    expectTag(await worker('worker-q', quiet).execute(task())(), 'Retry');
    expect(quiet.text()).not.to.contain('Initiating email send');
    expect(quiet.text()).not.to.contain('Time to send');
    expect(quiet.text()).to.contain('Send failed for now');
  });

  it('does not send again an id the ledger knows, and announces nothing new', async () => {
    const { useCase, sender, events, status } = await setUp([sent('<p1@mailgun>')]);
    await useCase.execute(task())();
    const again = await useCase.execute(task(2))();
    expect(again).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    // The log already said sent: no event, so nothing listening counts the send twice.
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSending', 'EmailSent']);
    expect((await status()).status).to.equal('sent');
  });

  it('makes a task handed over again while its send runs wait, then not send again', async () => {
    const { useCase, sender } = await setUp([sent('<p1@mailgun>')]);
    // The broker redelivers after a lost connection while the first send is still running.
    const [first, second] = await Promise.all([
      useCase.execute(task())(),
      useCase.execute(task())(),
    ]);
    expect(first).to.deep.equal({ _tag: 'Done' });
    expect(second).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
  });

  it('repairs the log when the ledger knows a send the log missed', async () => {
    const { useCase, sender, ledger, status } = await setUp([]);
    await ledger.store.record(request.id, '<earlier@mailgun>', new Date())();
    expect(await useCase.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(0);
    expect(await status()).to.include({ status: 'sent', providerId: '<earlier@mailgun>' });
  });

  it('does not send again an email whose timed-out send the provider reported on', async () => {
    // Every attempt timed out; the provider had taken the last one and reports a delivery.
    const timedOut = transient('Mailgun did not answer within 30000 ms');
    const { useCase, sender, events, emails, ledger, clock, log, status } = await setUp([
      timedOut,
      timedOut,
      timedOut,
    ]);
    expectTag(await useCase.execute(task(1))(), 'Retry');
    expectTag(await useCase.execute(task(2))(), 'Retry');
    expectTag(await useCase.execute(task(3))(), 'DeadLetter');
    expect((await status()).status).to.equal('failed');
    const reports = new RecordProviderEvent(
      emails.store,
      events,
      new InMemorySuppressionList(),
      ledger.store,
      clock,
      log,
    );
    const delivered = await reports.execute({
      emailId: request.id,
      at: new Date(clock.now().getTime() + 60_000).toISOString(),
      recipient: request.to[0]!,
      kind: 'delivered',
      source: 'mailgun',
      providerEventId: 'ev-1',
      providerMessageId: '<p3@mailgun>',
    })();
    expect(delivered).to.deep.equal(E.right('recorded'));

    // The operator replays the dead letter: a new task, a fresh attempt budget.
    expect(await useCase.execute(task(1))()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(3);
    // One of its two recipients reported: sent, now with the provider's id of the send.
    expect(await status()).to.include({ status: 'sent', providerId: '<p3@mailgun>' });
  });

  it('hands a send the stop kept from starting back to the queue, its claim freed, no attempt spent', async () => {
    const { useCase, worker, sender, events, status } = await setUp([
      notStarted('the worker is stopping; not sent'),
    ]);
    let told = 0;
    Object.assign(sender, { stopStarting: () => (told += 1) });
    useCase.stopSending();
    expect(told).to.equal(1);
    expect(await useCase.execute(task())()).to.deep.equal({
      _tag: 'Redeliver',
      reason: 'the worker is stopping; not sent',
    });
    expect((await status()).attempts).to.deep.equal([]);
    expect(events.events.map((e) => e.type)).to.deep.equal([]);
    // Another worker takes the task at once: the claim was freed, and the attempt is the same.
    expect(await worker('worker-b').execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(2);
    expect((await status()).status).to.equal('sent');
  });

  it('asks for a retry after the scheduled step on a transient failure', async () => {
    const { useCase, events, sender, status } = await setUp([transient('Mailgun 503', 2000)]);
    const retry = expectTag(await useCase.execute(task())(), 'Retry');
    expect(retry).to.include({ attempt: 2, delayMs: 5000 });
    expect(sender.sent).to.have.length(1);
    expect(retry.history).to.have.length(1);
    expect(retry.history[0]).to.include({
      attempt: 1,
      outcome: 'transient',
      detail: 'Mailgun 503',
    });
    expect(events.events[1]).to.include({
      type: 'EmailDeliveryRetried',
      attempt: 1,
      delayMs: 5000,
    });
    const now = await status();
    expect(now.status).to.equal('retrying');
    expect(now.attempts[0]).to.include({ outcome: 'transient', detail: 'Mailgun 503' });
  });

  it("logs an outcome's hint for the operator and stores only its public reason", async () => {
    const hint = 'Mailgun rejected the API key (401): check MAILGUN_API_KEY';
    const refused = permanent('Mailgun refused our API credentials (401)', hint);
    const { useCase, events, log, status } = await setUp([refused]);
    const dead = expectTag(await useCase.execute(task())(), 'DeadLetter');
    expect(log.lines.filter((l) => l.message === hint)).to.deep.equal([
      {
        level: 'warn',
        fields: {
          emailId: request.id,
          attempt: 1,
          transport: 'scripted',
          reason: 'Mailgun refused our API credentials (401)',
        },
        message: hint,
      },
    ]);
    // Neither the attempt, the events, the dead letter nor the email's log carry it.
    expect(dead.history).to.deep.equal([
      {
        attempt: 1,
        at: '2026-11-28T10:00:00.000Z',
        outcome: 'permanent',
        detail: 'Mailgun refused our API credentials (401)',
        durationMs: 0,
      },
    ]);
    const stored = JSON.stringify({ dead, events: events.events, status: await status() });
    expect(stored).to.contain('Mailgun refused our API credentials (401)');
    expect(stored).not.to.contain('MAILGUN_API_KEY');
  });

  it("logs a send's hint as news on its one line, not as a warning", async () => {
    const { useCase, log, status } = await setUp([
      sent('<p1@example.org>', 'written to /o/p1.eml'),
    ]);
    expect(await useCase.execute(task())()).to.deep.equal({ _tag: 'Done' });
    const lines = log.lines.filter((l) => JSON.stringify(l).includes('/o/p1.eml'));
    expect(lines.map((l) => [l.level, l.message])).to.deep.equal([
      ['info', 'Time to send an email: 0.00s'],
    ]);
    expect(lines[0]?.fields).to.deep.include({ emailId: request.id, outcome: 'Sent' });
    expect(JSON.stringify(await status())).not.to.contain('/o/p1.eml');
  });

  it('dead-letters at once on a permanent failure', async () => {
    const { useCase, events, status } = await setUp([permanent('Mailgun 400: bad address')]);
    const dead = expectTag(await useCase.execute(task())(), 'DeadLetter');
    expect(dead.reason).to.contain('Mailgun 400: bad address');
    expect(events.events[1]).to.include({ type: 'EmailDeliveryFailed', outcome: 'permanent' });
    expect(await status()).to.include({ status: 'failed' });
  });

  it('dead-letters when the last attempt fails too, keeping the history it was given', async () => {
    const { useCase, events, sender } = await setUp([transient('timeout')]);
    const previous = {
      ...task(3),
      history: [{ attempt: 1, at: 'a', outcome: 'transient' as const, detail: 'x' }],
    };
    const dead = expectTag(await useCase.execute(previous)(), 'DeadLetter');
    expect(dead.reason).to.contain('out of attempts (3 of 3)');
    expect(dead.history.map((h) => h.attempt)).to.deep.equal([1, 3]);
    expect(sender.sent).to.have.length(1);
    expect(events.events[1]).to.include({ type: 'EmailDeliveryFailed', outcome: 'transient' });
  });

  it('takes an uncertain failure (a JSON 404) at its word on the third attempt', async () => {
    const { useCase } = await setUp([
      uncertain('Mailgun 404 (may be temporary): Domain not found'),
      uncertain('Mailgun 404 (may be temporary): Domain not found'),
    ]);
    expectTag(await useCase.execute(task(2))(), 'Retry');
    const dead = expectTag(await useCase.execute(task(3))(), 'DeadLetter');
    expect(dead.reason).to.match(/^permanent: Mailgun 404 .* attempt 3, so taken at its word$/);
  });

  it('sends nothing and asks for a redelivery while the ledger is down', async () => {
    const { useCase, sender, ledger, log } = await setUp([sent('<p1@mailgun>')]);
    ledger.down = true;
    const wait = expectTag(await useCase.execute(task())(), 'Redeliver');
    expect(wait.reason).to.contain('not reachable');
    // Nothing went out: the queue may hand this one back at a stop.
    expect(wait).not.to.have.property('sent');
    expect(sender.sent).to.have.length(0);
    expect(log.text()).to.contain('tried again');
  });

  it('while only the email log is down, sends once and writes the whole attempt when it is back', async () => {
    const { useCase, sender, emails, status } = await setUp([sent('<p1@mailgun>')]);
    emails.down = true;
    // The claim (the ledger) guards the send; the outcome waits for the log.
    expectTag(await useCase.execute(task())(), 'Redeliver');
    expect(sender.sent).to.have.length(1);
    emails.down = false;
    expectTag(await useCase.execute(task())(), 'Done');
    expect(sender.sent).to.have.length(1);
    expect((await status()).history.map((c) => c.status)).to.deep.equal([
      'queued',
      'sending',
      'sent',
    ]);
  });

  for (const [outcome, decided] of [
    [transient('a 503 from the provider'), 'Retry'],
    [permanent('550 no such user'), 'DeadLetter'],
  ] as const) {
    it(`after a failed attempt the log could not take, writes it on the redelivery and answers ${decided}, sending once`, async () => {
      const { useCase, sender, emails, status } = await setUp([outcome, sent('<p2@mailgun>')]);
      // The queue asks again with the same task after a Redeliver.
      const asked = task();
      emails.down = true;
      expectTag(await useCase.execute(asked)(), 'Redeliver');
      expectTag(await useCase.execute(asked)(), 'Redeliver');
      expect(sender.sent).to.have.length(1);
      emails.down = false;
      expectTag(await useCase.execute(asked)(), decided);
      expect(sender.sent).to.have.length(1);
      const history = (await status()).history.map((c) => c.status);
      expect(history).to.deep.equal([
        'queued',
        'sending',
        decided === 'Retry' ? 'retrying' : 'failed',
      ]);
    });
  }

  it('answers a kept outcome only to its own task: another task of the email is decided afresh', async () => {
    const { useCase, sender, emails } = await setUp([
      transient('a 503 from the provider'),
      sent('<p2@mailgun>'),
    ]);
    const asked = task();
    emails.down = true;
    expectTag(await useCase.execute(asked)(), 'Redeliver');
    emails.down = false;
    // The same email's next attempt (a retry another worker wrote, say): sent, not answered
    // with the first task's retry.
    expectTag(await useCase.execute(task(2))(), 'Done');
    expect(sender.sent).to.have.length(2);
    // A new delivery of the first attempt (after a lost connection) is decided afresh too:
    // the ledger says it is sent.
    expectTag(await useCase.execute(task())(), 'Done');
    expect(sender.sent).to.have.length(2);
  });

  it('after a send the ledger could not record, records it on the redelivery instead of sending again', async () => {
    const { useCase, sender, ledger, emails, log, status } = await setUp([sent('<p1@mailgun>')]);
    // The ledger goes down during the send: the provider accepted, nothing is recorded yet.
    const original = sender.send.bind(sender);
    sender.send = (request) => async () => {
      const outcome = await original(request)();
      ledger.down = true;
      emails.down = true;
      return outcome;
    };
    // It says that the send went out, so that a stopping queue keeps it rather than hand it on.
    expect(expectTag(await useCase.execute(task())(), 'Redeliver')).to.include({ sent: true });
    expect(sender.sent).to.have.length(1);
    expect(await ledger.store.sent(request.id)()).to.satisfy(E.isLeft);

    // Still down: the task comes back and waits again, and is still not sent a second time.
    expect(expectTag(await useCase.execute(task())(), 'Redeliver')).to.include({ sent: true });
    expect(sender.sent).to.have.length(1);
    // Named once, by id: if this worker dies now, another one sends it again.
    const named = log.lines.filter((l) => l.level === 'warn' && 'sent' in l.fields);
    expect(named.map((l) => l.fields)).to.deep.equal([
      {
        emailId: request.id,
        attempt: 1,
        reason: 'the database is not reachable (test)',
        waiting: 1,
        sent: true,
      },
    ]);

    ledger.down = false;
    emails.down = false;
    expect(await useCase.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    expect(await ledger.store.sent(request.id)()).to.deep.equal(E.right('<p1@mailgun>'));
    expect(await status()).to.include({ status: 'sent', providerId: '<p1@mailgun>' });
  });
});

describe('DeliverEmail with a suppression list', () => {
  /** The one email's recipients are ada@example.com and Bob <bob@example.org>. */
  async function suppressing(...addresses: string[]) {
    const list = switchable<SuppressionList>(new InMemorySuppressionList());
    for (const address of addresses) {
      await list.store.add({ address, reason: 'complaint', createdAt: new Date(0) })();
    }
    const fx = await setUp([sent('<p1@mailgun>')], { suppressions: list.store, domainToAscii });
    /** Whether another worker could take the send now: the claim is free. */
    const claimFree = async () => {
      const claim = await fx.ledger.store.claim(request.id, 'worker-z', fx.clock.now(), 1000)();
      return E.isRight(claim) && claim.right._tag === 'Claimed';
    };
    return { ...fx, list, claimFree };
  }

  it('sends to the recipients not on the list, under the same id', async () => {
    const { useCase, sender, events, log, status } = await suppressing('bob@example.org');
    expect(await useCase.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    expect(sender.sent[0]).to.include({ id: request.id, subject: request.subject });
    expect(sender.sent[0]?.to).to.deep.equal(['ada@example.com']);
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSending', 'EmailSent']);
    expect((await status()).status).to.equal('sent');
    expect(log.text()).to.contain('Initiating email send to ada@example.com.');
    expect(log.lines.find((l) => l.message.includes('dropped'))?.fields).to.deep.include({
      suppressed: ['bob@example.org'],
    });
  });

  it('settles an email with nobody left as suppressed: final, no attempt, nothing sent', async () => {
    const { useCase, sender, events, status, claimFree } = await suppressing(
      'ada@example.com',
      'bob@example.org',
    );
    expect(await useCase.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(0);
    expect(events.events).to.have.length(1);
    expect(events.events[0]).to.deep.include({
      type: 'EmailSuppressed',
      id: request.id,
      suppressed: ['ada@example.com', 'Bob <bob@example.org>'],
    });
    const now = await status();
    expect(now.status).to.equal('suppressed');
    expect(now.attempts).to.deep.equal([]);
    expect(now.recipients.map((r) => r.status)).to.deep.equal(['suppressed', 'suppressed']);
    expect(now.history.map((c) => c.status)).to.deep.equal(['queued', 'suppressed']);
    expect(await claimFree()).to.equal(true);
  });

  it('asks for a redelivery, sending nothing, while the list does not answer', async () => {
    const { useCase, sender, list, events, claimFree } = await suppressing('bob@example.org');
    list.down = true;
    const wait = expectTag(await useCase.execute(task())(), 'Redeliver');
    expect(wait.reason).to.contain('not reachable');
    expect(wait).not.to.have.property('sent');
    expect(sender.sent).to.have.length(0);
    expect(events.events).to.have.length(0);
    // Nothing went out: another worker need not wait for this one's claim to run out.
    expect(await claimFree()).to.equal(true);
  });

  it('sends once the list answers again, to the recipients it allows', async () => {
    const { useCase, sender, list } = await suppressing('bob@example.org');
    list.down = true;
    expectTag(await useCase.execute(task())(), 'Redeliver');
    list.down = false;
    expect(await untilDecided(useCase, task())).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent.map((r) => r.to)).to.deep.equal([['ada@example.com']]);
  });

  /**
   * Sends `request`, recorded, once, with `suppressed` on a list of its own; answers what went,
   * and the email's status after.
   */
  async function sendOnce(
    request: EmailRequest,
    suppressed: string,
  ): Promise<{ sent: EmailRequest[]; status: EmailStatus }> {
    const list = new InMemorySuppressionList();
    await list.add({ address: suppressed, reason: 'bounce', createdAt: new Date(0) })();
    const sender = new ScriptedSender([sent('<p1@mailgun>')]);
    const emails = new InMemoryEmailLog();
    await emails.record(request)();
    const useCase = new DeliverEmail(
      sender,
      emails,
      new RecordingEvents(),
      new InMemoryDeliveryLedger(),
      policy,
      fixedClock(),
      new RecordingLogger(),
      { holder: 'worker-a', suppressions: list, domainToAscii },
    );
    expect(await useCase.execute(aTask({ request }))()).to.deep.equal({ _tag: 'Done' });
    const found = await emails.get(request.id)();
    if (E.isLeft(found) || O.isNone(found.right)) throw new Error('no status');
    return { sent: sender.sent, status: found.right.value };
  }

  it('matches an internationalised domain by its ASCII form, whatever its case', async () => {
    const idn = aRequest({ id: 'deliver-idn-1', to: ['info@Bücher.DE', 'ada@example.com'] });
    const { sent: went } = await sendOnce(idn, 'info@xn--bcher-kva.de');
    expect(went.map((r) => r.to)).to.deep.equal([['ada@example.com']]);
  });

  it('sends nothing, cc and bcc included, once every To recipient is on the list', async () => {
    const copied = aRequest({
      id: 'deliver-cc-1',
      to: ['dan@example.com'],
      cc: ['carol@example.com'],
      bcc: ['eve@example.com'],
    });
    const { sent: went, status } = await sendOnce(copied, 'dan@example.com');
    expect(went).to.deep.equal([]);
    expect(status.status).to.equal('suppressed');
    expect(status.history.at(-1)?.detail).to.equal(
      'not sent: every To recipient is suppressed (dan@example.com)',
    );
  });

  it('does not take back a send the ledger knows, whatever the list says since', async () => {
    const { useCase, sender, list, events, status } = await suppressing();
    await useCase.execute(task())();
    await list.store.add({
      address: 'ada@example.com',
      reason: 'bounce',
      createdAt: new Date(0),
    })();
    await list.store.add({
      address: 'bob@example.org',
      reason: 'bounce',
      createdAt: new Date(0),
    })();
    expect(await useCase.execute(task(2))()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSending', 'EmailSent']);
    expect((await status()).status).to.equal('sent');
  });
});

describe('DeliverEmail on two workers sharing one ledger', () => {
  it('sends a task both were given at once only once: the other waits, then finds it sent', async () => {
    const { worker, sender, events, status } = await setUp([sent('<p1@mailgun>')]);
    const held = gate(sender);
    const logB = new RecordingLogger();
    const [a, b] = [worker('worker-a'), worker('worker-b', logB)];
    const [byA, byB] = [a.execute(task())(), b.execute(task())()];
    // One of them claimed the send and is at the provider; the other one is told to wait.
    const waiting = expectTag(await byB, 'Redeliver');
    expect(waiting.reason).to.match(/another worker \(worker-a\) is sending it/);
    expect(waiting).not.to.have.property('sent');
    await eventually(() => expect(held.waiting()).to.equal(1));
    // Asked again while the send runs: still waiting, still not sending, logged once.
    expectTag(await b.execute(task())(), 'Redeliver');
    expect(logB.lines.map((l) => l.message)).to.deep.equal([
      'Another worker is sending this email; waiting for its outcome',
    ]);
    held.open();
    expect(await byA).to.deep.equal({ _tag: 'Done' });
    expect(await b.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSending', 'EmailSent']);
    expect(await status()).to.include({ status: 'sent', providerId: '<p1@mailgun>' });
  });

  it('sends once when both race with no one holding the send, whatever the order', async () => {
    const { worker, sender } = await setUp([]);
    const workers = [worker('worker-a'), worker('worker-b'), worker('worker-c')];
    const decided = await Promise.all(workers.map((w) => untilDecided(w, task())));
    expect(decided).to.deep.equal(workers.map(() => ({ _tag: 'Done' })));
    expect(sender.sent).to.have.length(1);
  });

  it("lets the waiting worker send when the other one's send failed and freed the claim", async () => {
    const { worker, sender } = await setUp([transient('Mailgun 503'), sent('<p2@mailgun>')]);
    const held = gate(sender);
    const [a, b] = [worker('worker-a'), worker('worker-b')];
    const byA = a.execute(task())();
    await eventually(() => expect(held.waiting()).to.equal(1));
    expectTag(await b.execute(task())(), 'Redeliver');
    held.open();
    expectTag(await byA, 'Retry');
    // Nothing went out: the other task of this id sends at once, without waiting for a lease.
    expect(await b.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(2);
  });

  it('takes over the claim of a worker that died mid-send once its lease ends', async () => {
    const { useCase, ledger, clock, sender, status } = await setUp([sent('<p1@mailgun>')], {
      claimLeaseMs: 15_000,
    });
    await ledger.store.claim(request.id, 'worker-dead', clock.now(), 15_000)();
    clock.advance(14_999);
    expectTag(await useCase.execute(task())(), 'Redeliver');
    expect(sender.sent).to.have.length(0);
    clock.advance(1);
    // At least once: had the dead worker's send gone out, this is the second one.
    expect(await useCase.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
    expect(await status()).to.include({ status: 'sent', providerId: '<p1@mailgun>' });
  });

  it('renews its claim while a send runs longer than the lease, and stops after', async () => {
    const timers = new Set<() => void>();
    const every: Every = (work, everyMs) => {
      expect(everyMs).to.equal(1000 / 3);
      timers.add(work);
      return () => timers.delete(work);
    };
    const { worker, sender, clock } = await setUp([sent('<p1@mailgun>')], {
      claimLeaseMs: 1000,
      every,
    });
    const held = gate(sender);
    const [a, b] = [worker('worker-a'), worker('worker-b')];
    const byA = a.execute(task())();
    await eventually(() => expect(held.waiting()).to.equal(1));
    for (let renewal = 0; renewal < 5; renewal += 1) {
      clock.advance(900);
      for (const renew of timers) renew();
      await sleep(1);
      expectTag(await b.execute(task())(), 'Redeliver');
    }
    held.open();
    expect(await byA).to.deep.equal({ _tag: 'Done' });
    expect(timers.size).to.equal(0);
    expect(await b.execute(task())()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(1);
  });
});

describe('DeliverEmail during a store outage', () => {
  it('logs the first wait, then at most a line every 10 s with how many tasks wait', async () => {
    const { worker, ledger, clock, sender } = await setUp([]);
    const log = new RecordingLogger();
    const useCase = worker('worker-a', log);
    const tasks = Array.from({ length: 50 }, () => aTask({ request: aRequest() }));
    ledger.down = true;
    for (let ask = 0; ask < 3; ask += 1) {
      for (const t of tasks) expectTag(await useCase.execute(t)(), 'Redeliver');
    }
    const warnings = () => log.lines.filter((l) => l.level === 'warn');
    expect(warnings()).to.have.length(1);
    expect(warnings()[0]!.fields).to.include({ emailId: tasks[0]!.request.id, waiting: 1 });

    clock.advance(STORE_WAIT_LOG_EVERY_MS - 1);
    for (const t of tasks) await useCase.execute(t)();
    expect(warnings()).to.have.length(1);
    clock.advance(1);
    for (const t of tasks) await useCase.execute(t)();
    expect(warnings()).to.have.length(2);
    expect(warnings()[1]!.fields).to.include({ waiting: 50 });
    expect(warnings()[1]!.message).to.equal(
      'A store did not answer; the task waits and is tried again',
    );

    ledger.down = false;
    for (const t of tasks) expect(await useCase.execute(t)()).to.deep.equal({ _tag: 'Done' });
    expect(sender.sent).to.have.length(50);
    const over = log.lines.filter((l) => l.message.startsWith('The stores answer again'));
    expect(over).to.have.length(1);
    // A new outage is logged at once again.
    ledger.down = true;
    await useCase.execute(aTask({ request: aRequest() }))();
    expect(warnings()).to.have.length(3);
  });
  // Review (rev2): recordSend starts the ledger's write and the log's, then awaits the log first.
  // Should the log's answer reject (a bug), the ledger's promise was never watched: rejecting too,
  // it became an unhandled rejection, which ends a Node process. Promise.all watched both.
  it('leaves no rejection unhandled when the log and the ledger both fail a send', async () => {
    const sender = new ScriptedSender([sent('<p1@mailgun>')]);
    const emails = new InMemoryEmailLog();
    await emails.record(request)();
    // The worker writes its changes through applyAll (a short send's `sending` with its `sent`).
    const applyAll = emails.applyAll.bind(emails);
    emails.applyAll = (events, basis) =>
      events.some((event) => event.type === 'EmailSent')
        ? () => Promise.reject(new Error('log bug'))
        : applyAll(events, basis);
    const ledger = new InMemoryDeliveryLedger();
    ledger.record = () => () =>
      new Promise((_, reject) => setTimeout(() => reject(new Error('ledger bug')), 5));
    const useCase = new DeliverEmail(
      sender,
      emails,
      new RecordingEvents(),
      ledger,
      policy,
      fixedClock(),
      new RecordingLogger(),
      { holder: 'worker-a' },
    );
    const unhandled: unknown[] = [];
    const theirs = process.listeners('unhandledRejection');
    process.removeAllListeners('unhandledRejection');
    const mine = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', mine);
    try {
      await useCase
        .execute(task())()
        .catch(() => undefined);
      await sleep(30);
    } finally {
      process.off('unhandledRejection', mine);
      for (const listener of theirs) process.on('unhandledRejection', listener);
    }
    expect(unhandled.map(String)).to.deep.equal([]);
  });
});
