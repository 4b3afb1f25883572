import { expect } from 'chai';
import type { EmailId } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { evolveStatus } from '../../src/domain/email-status.js';
import type { DomainEvent, EmailResent, EmailRetryExpedited } from '../../src/domain/events.js';
import {
  DomainEvent as DomainEventCodec,
  acceptedEvent,
  eventKey,
} from '../../src/domain/events.js';
import { webhookNotice } from '../../src/domain/webhook.js';
import { aRequest, anEvent, at } from '../support/builders.js';

const fold = (events: readonly DomainEvent[]): EmailStatus =>
  events.reduce<EmailStatus | undefined>(evolveStatus, undefined) as EmailStatus;

const request = aRequest({ requestedAt: 0 });
const about = { id: request.id, to: request.to, subject: request.subject };

const expedited = (attempt: number, seconds: number, copied = true): EmailRetryExpedited => ({
  type: 'EmailRetryExpedited',
  ...about,
  at: at(seconds),
  attempt,
  copied,
});

const resent = (as: string, seconds: number): EmailResent => ({
  type: 'EmailResent',
  ...about,
  at: at(seconds),
  resentAs: as as EmailId,
});

describe('An operator’s actions in the status fold', () => {
  const retrying = [
    anEvent.requested(request),
    anEvent.sending(request, { at: at(1) }),
    anEvent.retried(request, { at: at(2), delayMs: 60_000 }),
  ];

  it('"Retry now" keeps the email retrying, its next try now, and marks a copied attempt', () => {
    const status = fold([...retrying, expedited(2, 10)]);
    expect(status.status).to.equal('retrying');
    expect(status.nextAttemptAt).to.equal(at(10));
    expect(status.expedited).to.deep.equal([2]);
    expect(status.history.at(-1)).to.deep.equal({
      at: at(10),
      status: 'expedited',
      source: 'api',
      detail: 'attempt 2 brought forward to now',
    });
    // Twice is once (at least once everywhere).
    expect(fold([...retrying, expedited(2, 10), expedited(2, 10)])).to.deep.equal(status);
    // Moved rather than copied: nothing to drop.
    expect(fold([...retrying, expedited(2, 10, false)]).expedited).to.equal(undefined);
  });

  it('"Retry now" noted after its attempt was made moves no due time', () => {
    const made = [
      ...retrying,
      anEvent.sending(request, { at: at(11), attempt: 2 }),
      anEvent.sent(request, { at: at(12), attempt: 2 }),
    ];
    const status = fold([...made, expedited(2, 10)]);
    expect(status.status).to.equal('sent');
    expect(status.nextAttemptAt).to.equal(undefined);
    expect(status.expedited).to.deep.equal([2]);
  });

  it('"Resend" links the old email to each new one, once each, and changes no status', () => {
    const failed = [anEvent.requested(request), anEvent.failed(request, { at: at(1) })];
    const status = fold([
      ...failed,
      resent('resent-0001', 5),
      resent('resent-0001', 5),
      resent('resent-0002', 6),
    ]);
    expect(status.status).to.equal('failed');
    expect(status.resentAs).to.deep.equal(['resent-0001', 'resent-0002']);
    expect(status.history.filter((c) => c.status === 'resent').map((c) => c.detail)).to.deep.equal([
      'as resent-0001',
      'as resent-0002',
    ]);
  });

  it('keeps the email a resend is of, from its accepted event', () => {
    const fresh = aRequest();
    const accepted = acceptedEvent(fresh, [], request.id);
    expect(accepted).to.include({ type: 'EmailRequested', resendOf: request.id });
    expect(fold([accepted]).resendOf).to.equal(request.id);
    expect(fold([acceptedEvent(fresh)]).resendOf).to.equal(undefined);
  });

  it('travels as any event does, and makes no webhook', () => {
    for (const event of [expedited(2, 10), resent('resent-0001', 5)]) {
      expect(DomainEventCodec.is(JSON.parse(JSON.stringify(event)))).to.equal(true);
      expect(webhookNotice(event)).to.equal(undefined);
    }
    expect(eventKey(expedited(2, 10))).to.equal('expedited');
    expect(eventKey(resent('resent-0001', 5))).to.equal('resent');
  });
});
