import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { DeliverEmailOptions, Every } from '../../src/application/deliver-email.js';
import { DeliverEmail } from '../../src/application/deliver-email.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { SendSlots } from '../../src/application/send-slots.js';
import type { Disposition } from '../../src/application/ports/email-task-source.js';
import type { Applied } from '../../src/application/ports/email-log.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { aRequest, aTask } from '../support/builders.js';
import { eventually, sleep } from '../support/waiting.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { SendPacer } from '../../src/application/ports/send-pacer.js';
import { InMemorySendPacer } from '../../src/adapters/memory/in-memory-send-pacer.js';
import { RecordingEvents, RecordingLogger, ScriptedSender, fixedClock } from '../support/fakes.js';

describe('SendSlots', () => {
  it('gives out at most its limit, then serves waiters first come, first served', async () => {
    const slots = new SendSlots(2);
    const a = (await slots.take())!;
    await slots.take();
    const order: string[] = [];
    const c = slots.take().then((release) => (order.push('c'), release));
    const d = slots.take().then((release) => (order.push('d'), release));
    await Promise.resolve();
    expect(order).to.deep.equal([]);
    expect(slots.inUse).to.equal(2);
    a();
    (await c)!();
    (await d)!();
    expect(order).to.deep.equal(['c', 'd']);
  });

  it('hands a free slot over at once with tryTake, and none when every slot is taken or closed', async () => {
    const slots = new SendSlots(1);
    const release = slots.tryTake();
    expect(release).to.be.a('function');
    expect(slots.inUse).to.equal(1);
    expect(slots.tryTake()).to.equal(undefined);
    const waiter = slots.take();
    release!();
    // The freed slot went to the waiter, not back to the free ones.
    expect(slots.tryTake()).to.equal(undefined);
    (await waiter)!();
    expect(slots.inUse).to.equal(0);
    slots.close();
    expect(slots.tryTake()).to.equal(undefined);
  });

  it('ignores a slot given back twice: it cannot become two slots', async () => {
    const slots = new SendSlots(1);
    const release = (await slots.take())!;
    release();
    release();
    expect(slots.inUse).to.equal(0);
    await slots.take();
    expect(slots.inUse).to.equal(1);
    let second = false;
    void slots.take().then(() => (second = true));
    await Promise.resolve();
    expect(second).to.equal(false);
  });

  it('once closed, answers every waiter and every later caller with no slot', async () => {
    const slots = new SendSlots(1);
    const held = (await slots.take())!;
    const waiter = slots.take();
    slots.close();
    expect(await waiter).to.equal(undefined);
    expect(await slots.take()).to.equal(undefined);
    held();
    expect(slots.inUse).to.equal(0);
  });

  it('refuses a limit that is not a whole number of at least 1', () => {
    expect(() => new SendSlots(0)).to.throw(RangeError, /whole number/);
    expect(() => new SendSlots(1.5)).to.throw(RangeError, /whole number/);
  });
});

describe('DeliverEmail with send slots (WORKER_CONCURRENCY)', () => {
  const first = aRequest({ id: 'slots-0001', to: ['ada@example.com'] });
  const second = aRequest({ id: 'slots-0002', to: ['bob@example.org'] });

  const statusOf = async (emails: InMemoryEmailLog, id: string) => {
    const found = await emails.get(id as EmailId)();
    return E.isRight(found) && found.right._tag === 'Some' ? found.right.value.status : undefined;
  };

  async function setUp(options: Partial<DeliverEmailOptions> = {}) {
    const emails = new InMemoryEmailLog();
    await emails.record(first)();
    await emails.record(second)();
    const sender = new ScriptedSender([]);
    // Every send waits at the provider until let go, one by one.
    const atProvider: { request: EmailRequest; answer(): void }[] = [];
    const send = sender.send.bind(sender);
    sender.send = (request) => async () => {
      await new Promise<void>((answer) => atProvider.push({ request, answer }));
      return send(request)();
    };
    const slots = new SendSlots(1);
    const ledger = new InMemoryDeliveryLedger();
    const clock = fixedClock();
    const log = new RecordingLogger();
    const useCase = new DeliverEmail(
      sender,
      emails,
      new RecordingEvents(),
      ledger,
      { maxAttempts: 3, delaysMs: [1000] },
      clock,
      log,
      { holder: 'worker-a', sendSlots: slots, ...options },
    );
    return { emails, atProvider, slots, useCase, ledger, clock, log };
  }

  it('holds a second email back while the first is at the provider', async () => {
    const { emails, atProvider, useCase, ledger, clock } = await setUp();
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    // The second is claimed, ready to go the moment the slot is free (another worker is Busy).
    await eventually(async () => {
      const claim = await ledger.claim(second.id, 'worker-b', clock.now(), 1000)();
      return E.isRight(claim) && claim.right._tag === 'Busy';
    });
    expect(atProvider.map((s) => s.request.id)).to.deep.equal(['slots-0001']);
    // Nothing is written before a send: it still reads `queued`.
    expect(await statusOf(emails, second.id)).to.equal('queued');
    atProvider[0]!.answer();
    await eventually(() => atProvider.length === 2);
    atProvider[1]!.answer();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    expect(await two).to.deep.equal({ _tag: 'Done' });
  });

  it('lets the next send go while the previous outcome is still being recorded', async () => {
    const { emails, atProvider, useCase, slots } = await setUp();
    // The email log takes the first email's `sent` only when told to.
    let recordFirstSent = (): void => undefined;
    const held = new Promise<void>((resolve) => (recordFirstSent = resolve));
    const applyAll = emails.applyAll.bind(emails);
    emails.applyAll = (events, basis?: Applied) => async () => {
      if (events.some((e) => e.type === 'EmailSent' && e.id === first.id)) await held;
      return applyAll(events, basis)();
    };
    let oneDone: Disposition | undefined;
    const one = useCase
      .execute(aTask({ request: first }))()
      .then((d) => (oneDone = d));
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    atProvider[0]!.answer();
    // The second email reaches the provider although the first is not recorded yet.
    await eventually(() => atProvider.length === 2);
    expect(oneDone).to.equal(undefined);
    expect(slots.inUse).to.equal(1);
    atProvider[1]!.answer();
    expect(await two).to.deep.equal({ _tag: 'Done' });
    recordFirstSent();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    expect(slots.inUse).to.equal(0);
    expect(await statusOf(emails, first.id)).to.equal('sent');
  });

  it('renews the claim of an email waiting for a slot, so that no other worker takes it', async () => {
    const timers = new Set<() => void>();
    const every: Every = (work) => {
      timers.add(work);
      return () => timers.delete(work);
    };
    const { atProvider, useCase, ledger, clock } = await setUp({ claimLeaseMs: 1000, every });
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    // Long past the lease: the renewals (the first send's, and the waiting second's) keep both.
    for (let renewal = 0; renewal < 5; renewal += 1) {
      clock.advance(900);
      for (const renew of [...timers]) renew();
      await eventually(async () => {
        const claim = await ledger.claim(second.id, 'worker-b', clock.now(), 1000)();
        return E.isRight(claim) && claim.right._tag === 'Busy';
      });
    }
    atProvider[0]!.answer();
    await eventually(() => atProvider.length === 2);
    atProvider[1]!.answer();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    expect(await two).to.deep.equal({ _tag: 'Done' });
    expect(timers.size).to.equal(0);
  });

  it('gives the slot back when a decision ends without a send', async () => {
    const { atProvider, useCase, slots } = await setUp();
    // The first email is sent and recorded; its task comes again: already sent, no send.
    const one = useCase.execute(aTask({ request: first }))();
    await eventually(() => atProvider.length === 1);
    atProvider[0]!.answer();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    expect(await useCase.execute(aTask({ request: first, attempt: 2 }))()).to.deep.equal({
      _tag: 'Done',
    });
    expect(atProvider).to.have.length(1);
    expect(slots.inUse).to.equal(0);
  });
  it('does not send an email whose claim passed to another worker while it waited for a slot', async () => {
    const timers = new Set<() => void>();
    const every: Every = (work) => {
      timers.add(work);
      return () => timers.delete(work);
    };
    const { atProvider, useCase, ledger, clock, log } = await setUp({ claimLeaseMs: 1000, every });
    let outage = false;
    const claim = ledger.claim.bind(ledger);
    ledger.claim = (id, holder, at, leaseMs) =>
      outage && holder === 'worker-a'
        ? TE.left(storeUnavailable('the ledger is down'))
        : claim(id, holder, at, leaseMs);
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1 && timers.size === 2);
    // worker-a cannot reach the ledger past the lease; worker-b takes the waiting email's claim.
    outage = true;
    clock.advance(1500);
    for (const renew of [...timers]) renew();
    const byB = await ledger.claim(second.id, 'worker-b', clock.now(), 1000)();
    expect(E.isRight(byB) && byB.right._tag).to.equal('Claimed');
    outage = false;
    for (const renew of [...timers]) renew();
    await eventually(() => log.text().includes('while waiting for a send slot'));
    atProvider[0]!.answer();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    const answer = await two;
    expect(answer).to.include({ _tag: 'Redeliver' });
    expect(JSON.stringify(answer)).to.contain('another worker');
    expect(atProvider.map((s) => s.request.id)).to.deep.equal(['slots-0001']);
  });

  it('sends back the tasks waiting for a slot when the worker stops, unsent and unclaimed', async () => {
    const { atProvider, useCase, ledger, clock } = await setUp();
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    useCase.stopSending();
    expect(await two).to.deep.equal({
      _tag: 'Redeliver',
      reason: 'the worker is stopping; not sent',
    });
    // Its claim is free: another worker may send it at once.
    const byB = await ledger.claim(second.id, 'worker-b', clock.now(), 1000)();
    expect(E.isRight(byB) && byB.right._tag).to.equal('Claimed');
    // The send under way finishes and is recorded.
    atProvider[0]!.answer();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    expect(atProvider).to.have.length(1);
  });

  it('with pacing, does not start a send whose pace slot came after the worker began stopping', async () => {
    // Its pace slot is 200 ms away: it waits in hand, and the stop comes during that wait.
    const pacer: SendPacer = { acquire: () => TE.right({ waitMs: 200, booked: true }) };
    let stopping = (): void => undefined;
    const { atProvider, useCase, ledger, clock, slots } = await setUp({
      pacer,
      sleep: () => {
        stopping();
        return Promise.resolve();
      },
    });
    stopping = () => useCase.stopSending();
    expect(await useCase.execute(aTask({ request: first }))()).to.deep.equal({
      _tag: 'Redeliver',
      reason: 'the worker is stopping; not sent',
    });
    expect(atProvider).to.have.length(0);
    // Its claim is free, and its send slot given back.
    const byB = await ledger.claim(first.id, 'worker-b', clock.now(), 1000)();
    expect(E.isRight(byB) && byB.right._tag).to.equal('Claimed');
    expect(slots.inUse).to.equal(0);
  });

  it('with pacing, takes the send slot before booking a pace slot: one booking per send', async () => {
    const base = new InMemorySendPacer({ scripted: { limit: 20, windowMs: 1000 } });
    const bookings: string[] = [];
    const pacer: SendPacer = {
      acquire: (transport, maxWaitMs, slots) => {
        bookings.push(transport);
        return base.acquire(transport, maxWaitMs, slots);
      },
    };
    const { atProvider, useCase, slots } = await setUp({ pacer });
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    // Real time passes at the provider, longer than a pace slot's grace (25 ms at 20/s): a pace
    // slot booked by the waiting task now would be missed and booked again.
    await sleep(300);
    expect(bookings).to.have.length(1);
    atProvider[0]!.answer();
    await eventually(() => atProvider.length === 2);
    atProvider[1]!.answer();
    expect(await one).to.deep.equal({ _tag: 'Done' });
    expect(await two).to.deep.equal({ _tag: 'Done' });
    expect(bookings).to.have.length(2);
    expect(slots.inUse).to.equal(0);
  });
});
