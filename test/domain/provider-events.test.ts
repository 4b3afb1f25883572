import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { STATUS_NAMES, evolveStatus, isFinalStatus } from '../../src/domain/email-status.js';
import type { DomainEvent, ProviderReported } from '../../src/domain/events.js';
import { DomainEvent as DomainEventCodec, eventKey } from '../../src/domain/events.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { aRequest, anAddress, anEvent, at } from '../support/builders.js';

const email = aRequest({ to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'] });
const [ada, bob] = email.to as [EmailRequest['to'][number], EmailRequest['to'][number]];
const requested = anEvent.requested(email);
const sending = anEvent.sending(email, { at: at(1) });
const sent = anEvent.sent(email, { at: at(2) });

let n = 0;
/** A provider's report about `recipient` of `email`, a few seconds after the send. */
const report = (
  recipient: string,
  kind: ProviderReported['kind'],
  o: Partial<ProviderReported> = {},
): ProviderReported => ({
  type: 'ProviderReported',
  id: email.id,
  at: at(10),
  to: email.to,
  subject: email.subject,
  recipient: anAddress(recipient),
  kind,
  source: 'mailgun',
  providerEventId: `event-${(n += 1)}`,
  ...o,
});

const fold = (events: readonly DomainEvent[]): EmailStatus =>
  events.reduce<EmailStatus | undefined>((s, e) => evolveStatus(s, e), undefined)!;

const states = (s: EmailStatus): Record<string, string> =>
  Object.fromEntries(s.recipients.map((r) => [r.address, r.status]));

describe('Provider reports in the email status', () => {
  it('keeps the email sent while its recipients disagree, each with its own state', () => {
    const s = fold([
      requested,
      sending,
      sent,
      report(ada, 'delivered'),
      report('bob@example.com', 'bounced', { at: at(11), reason: '550 5.1.1 no such user' }),
    ]);
    expect(s.status).to.equal('sent');
    expect(states(s)).to.deep.equal({ [ada]: 'delivered', [bob]: 'bounced' });
    expect(s.history.filter((c) => c.source === 'provider')).to.deep.equal([
      { at: at(10), status: 'delivered', source: 'provider', detail: 'ada@example.org delivered' },
      {
        at: at(11),
        status: 'bounced',
        source: 'provider',
        detail: 'bob@example.com bounced: 550 5.1.1 no such user',
      },
    ]);
  });

  it('makes the email delivered when every recipient is, and bounced when every one bounced', () => {
    const delivered = fold([requested, sent, report(ada, 'delivered'), report(bob, 'delivered')]);
    expect(delivered.status).to.equal('delivered');
    expect(states(delivered)).to.deep.equal({ [ada]: 'delivered', [bob]: 'delivered' });
    const bounced = fold([requested, sent, report(ada, 'bounced'), report(bob, 'bounced')]);
    expect(bounced.status).to.equal('bounced');
  });

  it('counts a report about a mailbox whatever its display name and domain case', () => {
    const s = fold([requested, sent, report('ada@EXAMPLE.org', 'delivered')]);
    expect(states(s)[ada]).to.equal('delivered');
  });

  it('applies a report that comes before the send is recorded, and rolls up at the send', () => {
    const early = fold([requested, sending, report(ada, 'delivered'), report(bob, 'delivered')]);
    expect(early.status).to.equal('sending');
    expect(states(early)).to.deep.equal({ [ada]: 'delivered', [bob]: 'delivered' });
    const then = evolveStatus(early, sent);
    expect(then.status).to.equal('delivered');
    expect(states(then)).to.deep.equal({ [ada]: 'delivered', [bob]: 'delivered' });
    expect(then.providerId).to.equal(sent.providerId);

    // One recipient reported early, the other not yet: sent, with the early report kept.
    const half = fold([requested, report(bob, 'bounced'), sending, sent]);
    expect(half.status).to.equal('sent');
    expect(states(half)).to.deep.equal({ [ada]: 'sent', [bob]: 'bounced' });
  });

  it('ends in the same state whatever order the events come in', () => {
    const events: DomainEvent[] = [
      requested,
      sent,
      report(ada, 'delivered'),
      report(ada, 'complained', { at: at(500) }),
      report(bob, 'delivered'),
    ];
    const forward = fold(events);
    const backward = fold([...events].reverse());
    expect(forward.status).to.equal('complained');
    expect(states(forward)).to.deep.equal({ [ada]: 'complained', [bob]: 'delivered' });
    expect(backward.status).to.equal(forward.status);
    expect(backward.recipients).to.deep.equal(forward.recipients);
    expect(backward.history).to.deep.equal(forward.history);
  });

  it('rolls up an email that failed once the provider reports on a send it took after all', () => {
    // Two sends timed out here; the provider had taken the first and says so later.
    const retried = anEvent.retried(email, { at: at(3), reason: 'timed out after 15000ms' });
    const sending2 = anEvent.sending(email, { at: at(70), attempt: 2 });
    const failed = anEvent.failed(email, {
      at: at(90),
      attempt: 2,
      outcome: 'transient',
      reason: 'timed out after 15000ms',
    });
    const delivered = report(ada, 'delivered', { at: at(100) });
    const before = [requested, sending, retried, sending2];

    const lateReport = fold([...before, failed, delivered]);
    expect(lateReport.status).to.equal('sent');
    expect(states(lateReport)).to.deep.equal({ [ada]: 'delivered', [bob]: 'sent' });
    expect(lateReport).not.to.have.property('failedAt');
    expect(lateReport).not.to.have.property('reason');
    expect(lateReport.attempts.map((a) => a.outcome)).to.deep.equal(['transient', 'transient']);

    // The report before the last attempt's failure is recorded: the same state.
    const earlyReport = fold([...before, delivered, failed]);
    expect(earlyReport.status).to.equal(lateReport.status);
    expect(earlyReport.recipients).to.deep.equal(lateReport.recipients);
    expect(earlyReport).not.to.have.property('failedAt');
    expect(earlyReport).not.to.have.property('reason');

    // Every recipient reported: delivered.
    const both = evolveStatus(lateReport, report(bob, 'delivered', { at: at(101) }));
    expect(both.status).to.equal('delivered');
    // A deferral proves it too: the provider retries only what it accepted. In either order.
    const deferred = report(ada, 'deferred', { at: at(100) });
    const lateDeferral = fold([...before, failed, deferred]);
    expect(lateDeferral.status).to.equal('sent');
    expect(states(lateDeferral)).to.deep.equal({ [ada]: 'sent', [bob]: 'sent' });
    expect(lateDeferral).not.to.have.property('failedAt');
    const earlyDeferral = fold([...before, deferred, failed]);
    expect(earlyDeferral.status).to.equal('sent');
    expect(earlyDeferral.recipients).to.deep.equal(lateDeferral.recipients);
    expect(earlyDeferral).not.to.have.property('failedAt');
  });

  it('takes the provider id of a send found in the ledger after a report rolled the email up', () => {
    const failed = anEvent.failed(email, { at: at(90), outcome: 'transient', reason: 'timed out' });
    const rolledUp = fold([requested, sending, failed, report(ada, 'delivered', { at: at(100) })]);
    expect(rolledUp).not.to.have.property('providerId');
    // A replayed dead letter finds the send in the ledger (the report put it there).
    const found = anEvent.sent(email, { at: at(200), attempt: 1, providerId: '<p1@mailgun>' });
    const after = evolveStatus(rolledUp, found);
    expect(after).to.include({ status: 'sent', providerId: '<p1@mailgun>' });
    expect(states(after)).to.deep.equal(states(rolledUp));
    expect(after.history).to.deep.equal(rolledUp.history);
    // The same send found again: no news.
    expect(evolveStatus(after, found)).to.equal(after);
  });

  it('changes nothing when the same report comes twice', () => {
    const delivered = report(ada, 'delivered');
    const once = fold([requested, sent, delivered]);
    expect(evolveStatus(once, delivered)).to.deep.equal(once);
    const deferred = report(bob, 'deferred', { reason: '421 try again later' });
    const twice = fold([requested, sent, deferred, deferred]);
    expect(twice).to.deep.equal(fold([requested, sent, deferred]));
  });

  it('records a deferral and an unsubscribe, which bounce nobody', () => {
    const s = fold([
      requested,
      sent,
      report(bob, 'deferred', { reason: '421 mailbox busy' }),
      report(ada, 'unsubscribed', { at: at(60) }),
    ]);
    // The unsubscribe proves a delivery; the deferral changes no state.
    expect(states(s)).to.deep.equal({ [ada]: 'delivered', [bob]: 'sent' });
    expect(s.status).to.equal('sent');
    expect(s.history.filter((c) => c.source === 'provider').map((c) => c.detail)).to.deep.equal([
      'bob@example.com deferred: 421 mailbox busy',
      'ada@example.org unsubscribed',
    ]);
  });

  it('leaves a suppressed recipient suppressed, and rolls up over the others', () => {
    const withSuppressed = anEvent.requested(email, { suppressed: [anAddress('eve@example.net')] });
    const s = fold([
      withSuppressed,
      sent,
      report(ada, 'delivered'),
      report(bob, 'delivered'),
      report('eve@example.net', 'delivered'),
    ]);
    expect(states(s)['eve@example.net']).to.equal('suppressed');
    expect(s.status).to.equal('delivered');
  });

  it('is a domain event with its own routing key, and the new statuses are known and final', () => {
    const r = report(ada, 'bounced', { reason: 'gone' });
    expect(eventKey(r)).to.equal('provider');
    const decoded = DomainEventCodec.decode(JSON.parse(JSON.stringify(r)));
    expect(E.isRight(decoded) && decoded.right).to.deep.equal(r);
    expect(E.isLeft(DomainEventCodec.decode({ ...r, kind: 'opened' }))).to.equal(true);
    for (const status of ['delivered', 'bounced', 'complained'] as const) {
      expect(STATUS_NAMES).to.include(status);
      expect(isFinalStatus(status)).to.equal(true);
    }
  });
});
