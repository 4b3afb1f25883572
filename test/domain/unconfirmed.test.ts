import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { awaitsReport, evolveStatus } from '../../src/domain/email-status.js';
import type { DomainEvent, EmailUnconfirmed, ProviderReported } from '../../src/domain/events.js';
import { DomainEvent as DomainEventCodec, EmailSent, eventKey } from '../../src/domain/events.js';
import { eventSource } from '../../src/domain/email-status.js';
import { aRequest, anAddress, anEvent, at } from '../support/builders.js';

const email = aRequest({ to: ['ada@example.org', 'bob@example.com'], requestedAt: 0 });

const unconfirmed = (o: Partial<EmailUnconfirmed> = {}): EmailUnconfirmed => ({
  type: 'EmailUnconfirmed',
  id: email.id,
  at: at(3601),
  to: email.to,
  subject: email.subject,
  transport: 'mailgun',
  deadlineMs: 3_600_000,
  ...o,
});

const report = (o: Partial<ProviderReported> = {}): ProviderReported => ({
  type: 'ProviderReported',
  id: email.id,
  at: at(30),
  to: email.to,
  subject: email.subject,
  recipient: anAddress('ada@example.org'),
  kind: 'delivered',
  source: 'mailgun',
  providerEventId: 'ev-1',
  ...o,
});

const fold = (events: readonly DomainEvent[]): EmailStatus => {
  const status = events.reduce<EmailStatus | undefined>((s, e) => evolveStatus(s, e), undefined);
  if (status === undefined) return expect.fail('nothing folded');
  return status;
};

/** Accepted, taken and sent through Mailgun at second 2. */
const sentByMailgun: readonly DomainEvent[] = [
  anEvent.requested(email),
  anEvent.sending(email, { at: at(1) }),
  anEvent.sent(email, { at: at(2), transport: 'mailgun' }),
];

describe('EmailUnconfirmed (the watchdog for silence)', () => {
  it('is a worker event with the routing key unconfirmed, and decodes as a domain event', () => {
    expect(eventKey(unconfirmed())).to.equal('unconfirmed');
    expect(eventSource(unconfirmed())).to.equal('worker');
    expect(E.isRight(DomainEventCodec.decode(unconfirmed()))).to.equal(true);
  });

  it('notes who sent an email: EmailSent carries its transport, and older events still decode', () => {
    const withTransport = anEvent.sent(email, { transport: 'mailgun' });
    const { transport: _t, ...older } = withTransport;
    expect(E.isRight(EmailSent.decode(older))).to.equal(true);
    expect(fold(sentByMailgun).sentBy).to.equal('mailgun');
    expect(fold([anEvent.requested(email), anEvent.sent(email)])).not.to.have.property('sentBy');
  });

  it('adds a history line without changing the status, the recipients or the attempts', () => {
    const before = fold(sentByMailgun);
    const after = evolveStatus(before, unconfirmed());
    expect(after.status).to.equal('sent');
    expect(after.recipients).to.deep.equal(before.recipients);
    expect(after.attempts).to.deep.equal(before.attempts);
    expect(after.history.at(-1)).to.deep.equal({
      at: at(3601),
      status: 'unconfirmed',
      source: 'worker',
      detail: 'no report from mailgun on any recipient within 1h',
    });
    expect(awaitsReport(before)).to.equal(true);
    expect(awaitsReport(after)).to.equal(false);
  });

  it('writes the deadline as a person reads it', () => {
    const line = (deadlineMs: number) =>
      evolveStatus(fold(sentByMailgun), unconfirmed({ deadlineMs })).history.at(-1)?.detail;
    expect(line(30_000)).to.equal('no report from mailgun on any recipient within 30s');
    expect(line(900_000)).to.equal('no report from mailgun on any recipient within 15m');
  });

  it('changes nothing when folded twice, even from another worker with another clock', () => {
    const once = evolveStatus(fold(sentByMailgun), unconfirmed());
    expect(evolveStatus(once, unconfirmed())).to.deep.equal(once);
    expect(evolveStatus(once, unconfirmed({ at: at(3700) }))).to.deep.equal(once);
  });

  it('is ignored once a provider reported on any recipient, even without changing the status', () => {
    const delivered = fold([...sentByMailgun, report()]);
    expect(delivered.status).to.equal('sent'); // bob has no report yet
    expect(evolveStatus(delivered, unconfirmed())).to.deep.equal(delivered);
    const deferred = fold([...sentByMailgun, report({ kind: 'deferred' })]);
    expect(evolveStatus(deferred, unconfirmed())).to.deep.equal(deferred);
    // A report that came before the worker's `sent` counts as well.
    const early = fold([anEvent.requested(email), report({ at: at(1) }), sentByMailgun[2]!]);
    expect(evolveStatus(early, unconfirmed())).to.deep.equal(early);
  });

  it('is ignored unless the email is sent: on its way, failed, or reported on', () => {
    for (const events of [
      [anEvent.requested(email)],
      [anEvent.requested(email), anEvent.sending(email, { at: at(1) })],
      [anEvent.requested(email), anEvent.failed(email, { at: at(1) })],
      [
        ...sentByMailgun,
        report(),
        report({ recipient: anAddress('bob@example.com'), providerEventId: 'ev-2' }),
      ],
    ]) {
      const status = fold(events);
      expect(evolveStatus(status, unconfirmed()), status.status).to.deep.equal(status);
    }
  });

  it('keeps its line when a late report comes, which moves the status as usual', () => {
    const flagged = evolveStatus(fold(sentByMailgun), unconfirmed());
    const late = [
      report({ at: at(4000) }),
      report({ at: at(4001), recipient: anAddress('bob@example.com'), providerEventId: 'ev-2' }),
    ].reduce(evolveStatus, flagged);
    expect(late.status).to.equal('delivered');
    expect(late.history.map((c) => [c.status, c.source])).to.deep.equal([
      ['queued', 'api'],
      ['sending', 'worker'],
      ['sent', 'worker'],
      ['unconfirmed', 'worker'],
      ['delivered', 'provider'],
      ['delivered', 'provider'],
    ]);
  });
});
