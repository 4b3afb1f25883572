import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { domainToAscii } from '../../src/adapters/idna/idna.js';
import { InMemorySuppressionList } from '../../src/adapters/memory/in-memory-suppression-list.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import type { ProviderReport } from '../../src/application/record-provider-event.js';
import { RecordProviderEvent } from '../../src/application/record-provider-event.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { right } from '../contracts/email-log.contract.js';
import { aRequest, anAddress, anEvent, anId, at } from '../support/builders.js';
import { RecordingEvents, RecordingLogger, fixedClock, switchable } from '../support/fakes.js';

function setup() {
  const emails = switchable(new InMemoryEmailLog());
  const suppressions = switchable(new InMemorySuppressionList());
  const events = new RecordingEvents();
  const log = new RecordingLogger();
  const clock = fixedClock();
  const ledger = switchable(new InMemoryDeliveryLedger());
  const useCase = new RecordProviderEvent(
    emails.store,
    events,
    suppressions.store,
    ledger.store,
    clock,
    log,
    { domainToAscii },
  );
  const sentEmail = async (request: EmailRequest): Promise<EmailRequest> => {
    await right(emails.store.record(request));
    await right(emails.store.apply(anEvent.sent(request, { at: at(1) })));
    return request;
  };
  const statusOf = async (request: EmailRequest): Promise<EmailStatus> => {
    const found = await right(emails.store.get(request.id));
    if (O.isNone(found)) throw new Error('no such email');
    return found.value;
  };
  const listed = async () => (await right(suppressions.store.list(50))).entries;
  return { emails, suppressions, ledger, events, log, clock, useCase, sentEmail, statusOf, listed };
}

let n = 0;
const report = (
  request: EmailRequest,
  recipient: string,
  kind: ProviderReport['kind'],
  o: Partial<ProviderReport> = {},
): ProviderReport => ({
  emailId: request.id,
  at: at(30),
  recipient: anAddress(recipient),
  kind,
  source: 'mailgun',
  providerEventId: `mailgun-event-${(n += 1)}`,
  ...o,
});

const states = (s: EmailStatus): Record<string, string> =>
  Object.fromEntries(s.recipients.map((r) => [r.address, r.status]));

describe('RecordProviderEvent', () => {
  it('answers unknown for an email it does not know, and records nothing', async () => {
    const fx = setup();
    const result = await fx.useCase.execute(report(aRequest(), 'ada@example.org', 'bounced'))();
    expect(result).to.deep.equal(E.right('unknown'));
    expect(fx.events.events).to.deep.equal([]);
    expect(await fx.listed()).to.deep.equal([]);
    expect((await right(fx.emails.store.list({ limit: 10 }))).data).to.deep.equal([]);
  });

  it('answers unknown for an address the email was not sent to, and records nothing', async () => {
    const fx = setup();
    const email = await fx.sentEmail(
      aRequest({ to: ['ada@example.org'], cc: ['bob@example.org'] }),
    );
    const before = await fx.statusOf(email);
    for (const kind of ['complained', 'bounced', 'delivered'] as const) {
      const result = await fx.useCase.execute(report(email, 'nobody@example.org', kind))();
      expect(result).to.deep.equal(E.right('unknown'));
    }
    expect(await fx.statusOf(email)).to.deep.equal(before);
    expect(fx.events.events).to.deep.equal([]);
    expect(await fx.listed()).to.deep.equal([]);
    expect(fx.log.lines.map((l) => l.message)).to.include(
      'A provider reported on an address the email was not sent to; ignored',
    );
  });

  it('answers unknown for a recipient dropped as suppressed, who was never sent to', async () => {
    const fx = setup();
    const email = aRequest({ to: ['ada@example.org'] });
    const requested = { ...anEvent.requested(email), suppressed: [anAddress('zed@example.org')] };
    await right(fx.emails.store.apply(requested));
    await right(fx.emails.store.apply(anEvent.sent(email, { at: at(1) })));
    expect(states(await fx.statusOf(email))).to.deep.equal({
      'ada@example.org': 'sent',
      'zed@example.org': 'suppressed',
    });
    const result = await fx.useCase.execute(report(email, 'zed@example.org', 'complained'))();
    expect(result).to.deep.equal(E.right('unknown'));
    expect(fx.events.events).to.deep.equal([]);
    expect(await fx.listed()).to.deep.equal([]);
  });

  it('records a delivery on its recipient, announces it once, and takes a repeat as known', async () => {
    const fx = setup();
    const email = await fx.sentEmail(aRequest({ to: ['Ada Lovelace <ada@example.org>'] }));
    const delivered = report(email, 'ada@example.org', 'delivered');
    expect(await fx.useCase.execute(delivered)()).to.deep.equal(E.right('recorded'));
    expect(await fx.useCase.execute(delivered)()).to.deep.equal(E.right('repeated'));
    const status = await fx.statusOf(email);
    expect(status.status).to.equal('delivered');
    expect(states(status)).to.deep.equal({ 'Ada Lovelace <ada@example.org>': 'delivered' });
    expect(fx.events.events.map((e) => e.type)).to.deep.equal(['ProviderReported']);
    expect(fx.events.events[0]).to.deep.include({
      id: email.id,
      at: at(30),
      recipient: 'Ada Lovelace <ada@example.org>',
      kind: 'delivered',
      providerEventId: delivered.providerEventId,
    });
    expect(await fx.listed()).to.deep.equal([]);
  });

  it('suppresses the address of a bounce, a complaint and an unsubscribe, with the email', async () => {
    const fx = setup();
    const email = await fx.sentEmail(
      aRequest({ to: ['gone@example.org', 'angry@example.org', 'done@example.org', 'ok@x.org'] }),
    );
    for (const [who, kind] of [
      ['gone@example.org', 'bounced'],
      ['angry@example.org', 'complained'],
      ['done@example.org', 'unsubscribed'],
      ['ok@x.org', 'delivered'],
      ['ok@x.org', 'deferred'],
    ] as const) {
      expect(E.isRight(await fx.useCase.execute(report(email, who, kind))())).to.equal(true);
    }
    const entries = await fx.listed();
    expect(
      entries.map(({ address, reason, detail }) => ({ address, reason, detail })),
    ).to.have.deep.members([
      { address: 'gone@example.org', reason: 'bounce', detail: email.id },
      { address: 'angry@example.org', reason: 'complaint', detail: email.id },
      { address: 'done@example.org', reason: 'unsubscribe', detail: email.id },
    ]);
    expect(entries.every((e) => e.createdAt.getTime() === fx.clock.now().getTime())).to.equal(true);
    expect(states(await fx.statusOf(email))).to.deep.equal({
      'gone@example.org': 'bounced',
      'angry@example.org': 'complained',
      'done@example.org': 'delivered',
      'ok@x.org': 'delivered',
    });
  });

  it('finds the recipient whatever spelling the provider reports its mailbox in', async () => {
    const fx = setup();
    const email = await fx.sentEmail(aRequest({ to: ['Ada <Ada@Bücher.de>'] }));
    await right(fx.useCase.execute(report(email, 'ada@xn--bcher-kva.de', 'bounced')));
    expect(states(await fx.statusOf(email))).to.deep.equal({ [email.to[0]!]: 'bounced' });
    // The list keys mailboxes as the accept-time check does: the local part as given.
    expect((await fx.listed()).map((e) => e.address)).to.deep.equal(['Ada@xn--bcher-kva.de']);
  });

  it('answers StoreUnavailable when the log or the list is down, and records again after', async () => {
    const fx = setup();
    const email = await fx.sentEmail(aRequest({ to: 'gone@example.org' }));
    const bounce = report(email, 'gone@example.org', 'bounced', { reason: '550 no such user' });

    fx.emails.down = true;
    const logDown = await fx.useCase.execute(bounce)();
    expect(E.isLeft(logDown) && logDown.left._tag).to.equal('StoreUnavailable');
    fx.emails.down = false;

    fx.suppressions.down = true;
    const listDown = await fx.useCase.execute(bounce)();
    expect(E.isLeft(listDown) && listDown.left._tag).to.equal('StoreUnavailable');
    fx.suppressions.down = false;
    expect(await fx.listed()).to.deep.equal([]);

    // The provider sends it again: the log knows it already, the list takes it now.
    expect(await fx.useCase.execute(bounce)()).to.deep.equal(E.right('repeated'));
    expect((await fx.listed()).map((e) => e.address)).to.deep.equal(['gone@example.org']);
    expect((await fx.statusOf(email)).status).to.equal('bounced');
  });

  it('records a report on an email whose send is not recorded yet, without rolling it up', async () => {
    const fx = setup();
    const email = aRequest({ to: 'ada@example.org', id: anId('early') });
    await right(fx.emails.store.record(email));
    await right(fx.useCase.execute(report(email, 'ada@example.org', 'delivered')));
    const before = await fx.statusOf(email);
    expect(before.status).to.equal('queued');
    expect(states(before)).to.deep.equal({ 'ada@example.org': 'delivered' });
    await right(fx.emails.store.apply(anEvent.sent(email, { at: at(1) })));
    expect((await fx.statusOf(email)).status).to.equal('delivered');
  });

  describe('the send a report proves, in the delivery ledger', () => {
    const failedEmail = async (fx: ReturnType<typeof setup>, name: string) => {
      const email = aRequest({ to: 'ada@example.org', id: anId(name) });
      await right(fx.emails.store.record(email));
      await right(fx.emails.store.apply(anEvent.failed(email, { at: at(5) })));
      return email;
    };
    const claim = (fx: ReturnType<typeof setup>, email: EmailRequest) =>
      right(fx.ledger.store.claim(email.id, 'worker-b', new Date(at(40)), 60_000));

    it('is recorded with the message id when no send was, so a retry or a replay finds it sent', async () => {
      const fx = setup();
      const email = await failedEmail(fx, 'timedout');
      const delivered = report(email, 'ada@example.org', 'delivered', {
        providerMessageId: '<20261202.1@mg.example.org>',
      });
      expect(await fx.useCase.execute(delivered)()).to.deep.equal(E.right('recorded'));
      expect((await fx.statusOf(email)).status).to.equal('delivered');
      expect(await claim(fx, email)).to.deep.equal({
        _tag: 'AlreadySent',
        providerId: '<20261202.1@mg.example.org>',
      });
    });

    it('is recorded with the report’s own id when the report names no message', async () => {
      const fx = setup();
      const email = await failedEmail(fx, 'noid');
      const bounce = report(email, 'ada@example.org', 'bounced', { providerEventId: 'ev-42' });
      await right(fx.useCase.execute(bounce));
      expect(await claim(fx, email)).to.deep.equal({
        _tag: 'AlreadySent',
        providerId: 'mailgun event ev-42',
      });
    });

    it('is left alone when the worker recorded the send: its record is the one kept', async () => {
      const fx = setup();
      const email = await fx.sentEmail(aRequest({ to: 'ada@example.org', id: anId('sent') }));
      await right(
        fx.useCase.execute(
          report(email, 'ada@example.org', 'delivered', { providerMessageId: '<other@mg>' }),
        ),
      );
      // Nothing in the ledger: the worker's record of the send is not this store's (fx.sentEmail
      // wrote only the log), and the report did not add one.
      expect(await claim(fx, email)).to.deep.equal({ _tag: 'Claimed' });
    });

    it('answers StoreUnavailable when the ledger is down, and records it when the report comes again', async () => {
      const fx = setup();
      const email = await failedEmail(fx, 'ledgerdown');
      const delivered = report(email, 'ada@example.org', 'delivered', {
        providerMessageId: '<again@mg.example.org>',
      });
      fx.ledger.down = true;
      const down = await fx.useCase.execute(delivered)();
      expect(E.isLeft(down) && down.left._tag).to.equal('StoreUnavailable');
      fx.ledger.down = false;
      expect(await fx.useCase.execute(delivered)()).to.deep.equal(E.right('repeated'));
      expect(await claim(fx, email)).to.deep.equal({
        _tag: 'AlreadySent',
        providerId: '<again@mg.example.org>',
      });
    });
  });
});
