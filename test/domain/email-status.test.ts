import { expect } from 'chai';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { evolveStatus } from '../../src/domain/email-status.js';
import type { DomainEvent } from '../../src/domain/events.js';
import { aRequest, anEvent } from '../support/builders.js';

const email = aRequest({
  id: 'abcdefgh12345678',
  to: 'ada@example.com',
  subject: 'Hi',
  requestedAt: new Date('2026-01-01T00:00:00.000Z'),
});
const requested = anEvent.requested(email);
const retried = anEvent.retried(email, {
  at: '2026-01-01T00:00:01.000Z',
  reason: '503',
  durationMs: 12,
  delayMs: 1000,
});
const sending = anEvent.sending(email, { at: '2026-01-01T00:00:02.000Z', attempt: 2 });
const delivered = anEvent.sent(email, {
  at: '2026-01-01T00:00:02.500Z',
  attempt: 2,
  providerId: '<x@mg>',
  durationMs: 420,
});
const failed = anEvent.failed(email, {
  at: '2026-01-01T00:00:03.000Z',
  attempt: 2,
  reason: 'permanent: 400',
  durationMs: 30,
});

const fold = (events: DomainEvent[]): EmailStatus | undefined =>
  events.reduce<EmailStatus | undefined>((s, e) => evolveStatus(s, e), undefined);

describe('Email status', () => {
  it('goes queued → retrying → sending → sent, recording every attempt and every change', () => {
    expect(fold([requested])?.status).to.equal('queued');
    const retrying = fold([requested, retried]);
    expect(retrying).to.include({
      status: 'retrying',
      nextAttemptAt: retried.nextAttemptAt,
    });
    expect(fold([requested, retried, sending])?.status).to.equal('sending');
    const done = fold([requested, retried, sending, delivered]);
    expect(done).to.include({ status: 'sent', providerId: '<x@mg>', durationMs: 420 });
    expect(done?.history.map((c) => [c.status, c.source])).to.deep.equal([
      ['queued', 'api'],
      ['retrying', 'worker'],
      ['sending', 'worker'],
      ['sent', 'worker'],
    ]);
    expect(done?.recipients).to.deep.equal([{ address: 'ada@example.com', status: 'sent' }]);
    expect(done?.attempts.map((a) => a.durationMs)).to.deep.equal([12, 420]);
    expect(done).not.to.have.property('nextAttemptAt');
    expect(done?.attempts.map((a) => [a.attempt, a.outcome])).to.deep.equal([
      [1, 'transient'],
      [2, 'sent'],
    ]);
  });

  it('ends failed with the reason', () => {
    expect(fold([requested, failed])).to.include({ status: 'failed', reason: 'permanent: 400' });
  });

  it('shows a replayed dead letter sent, keeping both attempts', () => {
    const replayed: DomainEvent = { ...delivered, at: '2026-01-01T01:00:00.000Z', attempt: 1 };
    const status = fold([requested, failed, replayed]);
    expect(status).to.include({ status: 'sent' });
    expect(status).not.to.have.property('failedAt');
    expect(status?.attempts.map((a) => a.outcome)).to.deep.equal(['permanent', 'sent']);
    expect(
      fold([requested, failed, { ...delivered, at: '2026-01-01T00:00:00.500Z' }])?.status,
    ).to.equal('failed');
  });

  it('lists each failover from one transport to the next, once', () => {
    const failover = anEvent.failedOver(email, { at: '2026-01-01T00:00:02.100Z' });
    const status = fold([requested, failover, failover, delivered]);
    expect(status?.failovers).to.deep.equal([
      { at: '2026-01-01T00:00:02.100Z', from: 'mailgun', to: 'smtp', reason: 'Mailgun 503' },
    ]);
    expect(status?.status).to.equal('sent');
  });

  it('tolerates events out of order and twice: a final state is never undone', () => {
    const late = fold([
      delivered,
      retried,
      requested,
      delivered,
      { ...delivered, at: '2026-01-01T00:09:00.000Z' },
    ]);
    expect(late).to.include({ status: 'sent', requestedAt: '2026-01-01T00:00:00.000Z' });
    expect(late?.attempts).to.have.length(2);
    expect(late?.to).to.deep.equal(['ada@example.com']);
  });

  it('never goes back to sending once sent, nor for a take older than a failure', () => {
    const late = { ...sending, at: '2026-01-01T00:10:00.000Z' };
    expect(fold([requested, delivered, late])?.status).to.equal('sent');
    const stale = { ...sending, at: '2026-01-01T00:00:02.900Z' };
    expect(fold([requested, failed, stale])?.status).to.equal('failed');
  });

  it('gives the same status when the same event is folded twice', () => {
    const once = fold([requested, sending, retried]);
    const twice = fold([requested, sending, sending, retried, retried, requested]);
    expect(twice).to.deep.equal(once);
  });
});
