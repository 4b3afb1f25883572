import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { evolveStatus, isFinalStatus } from '../../src/domain/email-status.js';
import type {
  DomainEvent,
  EmailCancelled,
  EmailRequested,
  EmailScheduled,
  EmailSending,
  EmailSent,
} from '../../src/domain/events.js';
import { recipientsOf } from '../../src/domain/events.js';
import { aRequest, anEvent, anId, draftOptions } from '../support/builders.js';

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

/** An email accepted at `requestedAt` the way the API accepts one: any field the API takes. */
function accepted(fields: Record<string, unknown>, requestedAt: Date): EmailRequest {
  const draft = parseEmailDraft(
    { to: 'ada@example.com', subject: 'Hi', text: 'Hello', ...fields },
    draftOptions(requestedAt),
  );
  if (E.isLeft(draft)) throw new Error(`refused: ${JSON.stringify(draft.left.fields)}`);
  return toEmailRequest(draft.right, anId('status'), requestedAt);
}

describe('Email status with copies and a schedule', () => {
  const t0 = new Date('2026-01-01T00:00:00.000Z');
  const sendAt = '2026-01-02T09:00:00.000Z';
  const later = (iso: string, seconds: number) =>
    new Date(Date.parse(iso) + seconds * 1000).toISOString();
  const email = accepted(
    {
      to: ['ada@example.com', 'Bob <bob@example.com>'],
      cc: 'carol@example.com',
      bcc: ['dave@example.com'],
      send_at: sendAt,
    },
    t0,
  );
  const about = { id: email.id, ...recipientsOf(email), subject: email.subject };
  const scheduled: EmailScheduled = {
    type: 'EmailScheduled',
    ...about,
    at: email.requestedAt,
    sendAt,
  };
  const released: EmailRequested = { type: 'EmailRequested', ...about, at: sendAt };
  const sending: EmailSending = {
    type: 'EmailSending',
    ...about,
    at: later(sendAt, 1),
    attempt: 1,
  };
  const sent: EmailSent = {
    type: 'EmailSent',
    ...about,
    at: later(sendAt, 2),
    attempt: 1,
    providerId: '<x@mg>',
    durationMs: 40,
  };
  const cancelled: EmailCancelled = {
    type: 'EmailCancelled',
    ...about,
    at: later(email.requestedAt, 3600),
  };
  const everyone = [
    'ada@example.com',
    'Bob <bob@example.com>',
    'carol@example.com',
    'dave@example.com',
  ];
  const recipientStates = (status: EmailStatus | undefined) =>
    status?.recipients.map((r) => [r.address, r.status]);

  it("lists every recipient in order to, cc, bcc, each with the email's state", () => {
    const queued = fold([{ ...released, at: email.requestedAt }]);
    expect(queued).to.deep.include({
      to: ['ada@example.com', 'Bob <bob@example.com>'],
      cc: ['carol@example.com'],
      bcc: ['dave@example.com'],
    });
    expect(recipientStates(queued)).to.deep.equal(everyone.map((a) => [a, 'queued']));
    const done = fold([{ ...released, at: email.requestedAt }, sending, sent]);
    expect(recipientStates(done)).to.deep.equal(everyone.map((a) => [a, 'sent']));
  });

  it('has no cc or bcc when the events carry none', () => {
    const status = fold([anEvent.requested(aRequest({ to: 'ada@example.com' }))]);
    expect(status).not.to.have.property('cc');
    expect(status).not.to.have.property('bcc');
    expect(status?.recipients).to.have.length(1);
  });

  it('goes scheduled → queued on its release → sending → sent', () => {
    const held = fold([scheduled]);
    expect(held).to.include({ status: 'scheduled', sendAt, requestedAt: email.requestedAt });
    expect(recipientStates(held)).to.deep.equal(everyone.map((a) => [a, 'scheduled']));
    expect(held?.history).to.deep.equal([
      { at: email.requestedAt, status: 'scheduled', source: 'api', detail: `send at ${sendAt}` },
    ]);
    expect(isFinalStatus('scheduled')).to.equal(false);

    const queued = fold([scheduled, released]);
    // Still accepted when it was accepted: the release is a change, not a new request.
    expect(queued).to.include({ status: 'queued', requestedAt: email.requestedAt, sendAt });
    expect(recipientStates(queued)).to.deep.equal(everyone.map((a) => [a, 'queued']));

    expect(fold([scheduled, released, sending])?.status).to.equal('sending');
    const done = fold([scheduled, released, sending, sent]);
    expect(done).to.include({ status: 'sent', providerId: '<x@mg>', sendAt });
    expect(done?.history.map((c) => [c.status, c.source, c.at])).to.deep.equal([
      ['scheduled', 'api', email.requestedAt],
      ['queued', 'api', sendAt],
      ['sending', 'worker', sending.at],
      ['sent', 'worker', sent.at],
    ]);
  });

  it('is cancelled while scheduled, for good', () => {
    const gone = fold([scheduled, cancelled]);
    expect(gone).to.include({ status: 'cancelled', sendAt });
    expect(recipientStates(gone)).to.deep.equal(everyone.map((a) => [a, 'cancelled']));
    expect(gone?.history.map((c) => [c.status, c.source, c.at])).to.deep.equal([
      ['scheduled', 'api', email.requestedAt],
      ['cancelled', 'api', cancelled.at],
    ]);
    expect(isFinalStatus('cancelled')).to.equal(true);

    // A release or a take that comes after it does not undo it.
    const take = { ...sending, at: later(cancelled.at, 1) };
    expect(fold([scheduled, cancelled, take])).to.deep.equal(gone);
    for (const after of [
      [scheduled, cancelled, released],
      [scheduled, cancelled, released, sending],
      [scheduled, cancelled, sending, { ...sending, attempt: 2, at: later(sendAt, 60) }],
    ]) {
      const status = fold(after);
      expect(status?.status, after.map((e) => e.type).join()).to.equal('cancelled');
      expect(recipientStates(status)).to.deep.equal(everyone.map((a) => [a, 'cancelled']));
    }
  });

  it('changes nothing when an email that is not scheduled is cancelled', () => {
    const requested = { ...released, at: email.requestedAt };
    for (const before of [[requested], [requested, sending], [requested, sending, sent]]) {
      expect(fold([...before, cancelled])).to.deep.equal(fold(before));
    }
  });

  it('gives the same status when a scheduling or a cancellation is folded twice', () => {
    expect(fold([scheduled, scheduled])).to.deep.equal(fold([scheduled]));
    expect(fold([scheduled, cancelled, cancelled, scheduled])).to.deep.equal(
      fold([scheduled, cancelled]),
    );
    expect(fold([scheduled, released, released, scheduled])).to.deep.equal(
      fold([scheduled, released]),
    );
  });

  it('stays queued when the release is seen before the scheduling, and learns its send time', () => {
    const status = fold([released, scheduled]);
    expect(status).to.include({ status: 'queued', sendAt });
  });
});
