import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { DeliverEmail } from '../../src/application/deliver-email.js';
import type { EmailTask } from '../../src/application/ports/email-queue.js';
import { InMemoryDeliveryLedger } from '../../src/adapters/memory/in-memory-stores.js';
import { permanent, sent, transient } from '../../src/domain/delivery.js';
import type { DeliveryOutcome, RetryPolicy } from '../../src/domain/delivery.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../../src/domain/email-request.js';
import { RecordingEvents, RecordingLogger, ScriptedSender, fixedClock } from '../support/fakes.js';

const policy: RetryPolicy = { maxAttempts: 3, delaysMs: [1000, 5000] };

function task(attempt = 1): EmailTask {
  const draft = parseEmailDraft({
    to: ['ada@example.com', 'Bob <bob@example.org>'],
    subject: 'S',
    text: 'T',
  });
  if (E.isLeft(draft)) throw new Error('bad fixture');
  const request = toEmailRequest(draft.right, 'deliver-0001' as EmailId, new Date());
  return { request, attempt, history: [] };
}

function setUp(outcomes: DeliveryOutcome[]) {
  const sender = new ScriptedSender(outcomes);
  const events = new RecordingEvents();
  const ledger = new InMemoryDeliveryLedger();
  const log = new RecordingLogger();
  const useCase = new DeliverEmail(sender, events, ledger, policy, fixedClock(), log);
  return { sender, events, ledger, log, useCase };
}

describe('DeliverEmail', () => {
  it('sends, records the delivery and says Done', async () => {
    const { useCase, events, sender, log } = setUp([sent('<p1@mailgun>')]);
    const result = await useCase.execute(task())();
    expect(result).to.deep.equal(E.right({ _tag: 'Done' }));
    expect(sender.sent).to.have.length(1);
    expect(events.events).to.have.length(1);
    expect(events.events[0]).to.include({
      type: 'EmailDelivered',
      providerId: '<p1@mailgun>',
      attempt: 1,
    });
    expect(log.text()).to.contain('Initiating email send to ada@example.com, bob@example.org.');
    expect(log.text()).to.match(/Time to send an email: \d+\.\d\ds/);
  });

  it('does not send again an id it has already delivered, but announces the delivery again', async () => {
    const { useCase, sender, events } = setUp([sent('<p1@mailgun>')]);
    await useCase.execute(task())();
    const again = await useCase.execute(task())();
    expect(again).to.deep.equal(E.right({ _tag: 'Done' }));
    expect(sender.sent).to.have.length(1);
    // The first announcement may be what failed before the redelivery.
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailDelivered', 'EmailDelivered']);
    expect(events.events[1]).to.include({ providerId: '<p1@mailgun>' });
  });

  it('asks for a retry after the scheduled step on a transient failure', async () => {
    const { useCase, events, sender } = setUp([transient('Mailgun 503', 2000)]);
    const result = await useCase.execute(task())();
    if (E.isLeft(result) || result.right._tag !== 'Retry') expect.fail(JSON.stringify(result));
    expect(result.right).to.include({ attempt: 2, delayMs: 5000 });
    expect(sender.attempts).to.deep.equal([1]);
    expect(result.right.history).to.have.length(1);
    expect(result.right.history[0]).to.include({
      attempt: 1,
      outcome: 'transient',
      detail: 'Mailgun 503',
    });
    expect(events.events[0]).to.include({
      type: 'EmailDeliveryRetried',
      attempt: 1,
      delayMs: 5000,
    });
  });

  it('dead-letters at once on a permanent failure', async () => {
    const { useCase, events } = setUp([permanent('Mailgun 400: bad address')]);
    const result = await useCase.execute(task())();
    if (E.isLeft(result) || result.right._tag !== 'DeadLetter') expect.fail(JSON.stringify(result));
    expect(result.right.reason).to.contain('Mailgun 400: bad address');
    expect(events.events[0]).to.include({ type: 'EmailDeliveryFailed', outcome: 'permanent' });
  });

  it('dead-letters when the last attempt fails too, keeping the history it was given', async () => {
    const { useCase, events, sender } = setUp([transient('timeout')]);
    const previous = {
      ...task(3),
      history: [{ attempt: 1, at: 'a', outcome: 'transient' as const, detail: 'x' }],
    };
    const result = await useCase.execute(previous)();
    if (E.isLeft(result) || result.right._tag !== 'DeadLetter') expect.fail(JSON.stringify(result));
    expect(result.right.reason).to.contain('out of attempts (3 of 3)');
    expect(result.right.history.map((h) => h.attempt)).to.deep.equal([1, 3]);
    expect(sender.attempts).to.deep.equal([3]); // the sender is told which attempt this is
    expect(events.events[0]).to.include({ type: 'EmailDeliveryFailed', outcome: 'transient' });
  });
});
