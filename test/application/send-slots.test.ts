import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { DeliverEmail } from '../../src/application/deliver-email.js';
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

  async function setUp() {
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
    const useCase = new DeliverEmail(
      sender,
      emails,
      new RecordingEvents(),
      new InMemoryDeliveryLedger(),
      { maxAttempts: 3, delaysMs: [1000] },
      fixedClock(),
      new RecordingLogger(),
      { holder: 'worker-a', sendSlots: slots },
    );
    return { emails, atProvider, slots, useCase };
  }

  it('holds a second email back while the first is at the provider', async () => {
    const { atProvider, useCase } = await setUp();
    const one = useCase.execute(aTask({ request: first }))();
    const two = useCase.execute(aTask({ request: second }))();
    await eventually(() => atProvider.length === 1);
    // The second has not even claimed its send: no round trip is spent on a send that waits.
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
    const status = await emails.get(first.id)();
    expect(E.isRight(status) && status.right._tag === 'Some' && status.right.value.status).to.equal(
      'sent',
    );
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
