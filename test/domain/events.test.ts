import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../../src/domain/email-request.js';
import { DomainEvent, acceptedEvent, eventKey, recipientsOf } from '../../src/domain/events.js';
import { anId, draftOptions } from '../support/builders.js';

const t0 = new Date('2026-11-28T10:00:00.000Z');

/** An email accepted at `t0` the way the API accepts one: any field the API takes. */
function accepted(fields: Record<string, unknown> = {}): EmailRequest {
  const draft = parseEmailDraft(
    { to: 'ada@example.com', subject: 'Hi', text: 'Hello', ...fields },
    draftOptions(t0),
  );
  if (E.isLeft(draft)) throw new Error(`refused: ${JSON.stringify(draft.left.fields)}`);
  return toEmailRequest(draft.right, anId('event'), t0);
}

/** What a consumer in another process reads: the event through JSON and the codec. */
const overTheWire = (event: unknown) => DomainEvent.decode(JSON.parse(JSON.stringify(event)));

describe('Domain events', () => {
  describe('acceptedEvent', () => {
    it('announces an email sent at once as requested, at its acceptance', () => {
      const email = accepted();
      const event = acceptedEvent(email);
      expect(event).to.deep.equal({
        type: 'EmailRequested',
        id: email.id,
        at: '2026-11-28T10:00:00.000Z',
        to: ['ada@example.com'],
        subject: 'Hi',
      });
      expect(eventKey(event)).to.equal('requested');
      expect(overTheWire(event)).to.deep.equal(E.right(event));
    });

    it('announces an email with a send_at as scheduled, with its send time', () => {
      const email = accepted({ send_at: '2026-12-01T10:00:00+01:00' });
      const event = acceptedEvent(email);
      expect(event).to.deep.equal({
        type: 'EmailScheduled',
        id: email.id,
        at: '2026-11-28T10:00:00.000Z',
        to: ['ada@example.com'],
        subject: 'Hi',
        sendAt: '2026-12-01T09:00:00.000Z',
      });
      expect(eventKey(event)).to.equal('scheduled');
      expect(overTheWire(event)).to.deep.equal(E.right(event));
    });

    it('carries cc and bcc when the email has them, and only then', () => {
      const email = accepted({
        to: ['ada@example.com', 'bob@example.com'],
        cc: 'carol@example.com',
        bcc: ['dave@example.com'],
        send_at: '2026-12-01T09:00:00Z',
      });
      const event = acceptedEvent(email);
      expect(event).to.deep.include({
        to: ['ada@example.com', 'bob@example.com'],
        cc: ['carol@example.com'],
        bcc: ['dave@example.com'],
      });
      expect(overTheWire(event)).to.deep.equal(E.right(event));
      const onlyCc = acceptedEvent(accepted({ cc: 'carol@example.com' }));
      expect(Object.keys(onlyCc)).to.include('cc').and.not.include('bcc');
    });
  });

  it('recipientsOf gives to, cc and bcc, leaving out the ones not given', () => {
    const full = accepted({ cc: ['carol@example.com'], bcc: 'dave@example.com' });
    expect(recipientsOf(full)).to.deep.equal({
      to: ['ada@example.com'],
      cc: ['carol@example.com'],
      bcc: ['dave@example.com'],
    });
    expect(recipientsOf(accepted())).to.deep.equal({ to: ['ada@example.com'] });
  });

  describe('the DomainEvent codec', () => {
    const about = {
      id: 'abcdefgh12345678',
      at: t0.toISOString(),
      to: ['a@example.com'],
      subject: 's',
    };

    it('decodes a cancellation, routed as cancelled', () => {
      const cancelled = { type: 'EmailCancelled', ...about, bcc: ['b@example.com'] };
      const decoded = overTheWire(cancelled);
      expect(decoded).to.deep.equal(E.right(cancelled));
      if (E.isRight(decoded)) expect(eventKey(decoded.right)).to.equal('cancelled');
    });

    it('refuses a scheduling without its send time, and a forged copy recipient', () => {
      expect(E.isRight(overTheWire({ type: 'EmailScheduled', ...about }))).to.equal(false);
      expect(
        E.isRight(
          overTheWire({
            type: 'EmailRequested',
            ...about,
            cc: ['a@example.com\r\nBcc: e@evil.com'],
          }),
        ),
      ).to.equal(false);
      expect(
        E.isRight(overTheWire({ type: 'EmailCancelled', ...about, bcc: 'b@example.com' })),
      ).to.equal(false);
    });
  });
});
