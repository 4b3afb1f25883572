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
import { eventually } from '../support/waiting.js';
import { RecordingEvents, RecordingLogger, ScriptedSender, fixedClock } from '../support/fakes.js';

describe('SendSlots', () => {
  it('gives out at most its limit, then serves waiters first come, first served', async () => {
    const slots = new SendSlots(2);
    const a = await slots.take();
    await slots.take();
    const order: string[] = [];
    const c = slots.take().then((release) => (order.push('c'), release));
    const d = slots.take().then((release) => (order.push('d'), release));
    await Promise.resolve();
    expect(order).to.deep.equal([]);
    expect(slots.inUse).to.equal(2);
    a();
    (await c)();
    (await d)();
    expect(order).to.deep.equal(['c', 'd']);
  });

  it('ignores a slot given back twice: it cannot become two slots', async () => {
    const slots = new SendSlots(1);
    const release = await slots.take();
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
    const useCase = new DeliverEmail(
      sender,
      emails,
      new RecordingEvents(),
      ledger,
      { maxAttempts: 3, delaysMs: [1000] },
      clock,
      new RecordingLogger(),
      { holder: 'worker-a', sendSlots: slots, ...options },
    );
    return { emails, atProvider, slots, useCase, ledger, clock };
  }

  it('holds a second email back while the first is at the provider', async () => {
    const { emails, atProvider, useCase } = await setUp();
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    // The second is claimed and shows `sending`, ready to go the moment the slot is free.
    await eventually(async () => (await statusOf(emails, second.id)) === 'sending');
    expect(atProvider.map((s) => s.request.id)).to.deep.equal(['slots-0001']);
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
    const apply = emails.apply.bind(emails);
    emails.apply = (event, basis?: Applied) => async () => {
      if (event.type === 'EmailSent' && event.id === first.id) await held;
      return apply(event, basis)();
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
});
