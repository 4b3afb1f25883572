import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { InMemoryEmailLog } from '../../src/adapters/memory/in-memory-stores.js';
import { recordAllAndAnnounce } from '../../src/application/email-history.js';
import type { Applied } from '../../src/application/ports/email-log.js';
import type { DomainEvent } from '../../src/domain/events.js';
import { aRequest, anEvent, at } from '../support/builders.js';
import { RecordingEvents, switchable } from '../support/fakes.js';

describe('recordAllAndAnnounce', () => {
  it('writes the events together, then announces each one that was news, in order', async () => {
    const emails = new InMemoryEmailLog();
    const events = new RecordingEvents();
    const heard: [string, string][] = [];
    const change = recordAllAndAnnounce(emails, events, (event, applied: Applied) =>
      heard.push([event.type, applied.status.status]),
    );
    const r = aRequest();
    await emails.record(r)();
    const sending = anEvent.sending(r, { attempt: 1, at: at(1) });
    const sent = anEvent.sent(r, { attempt: 1, at: at(2) });
    const done = await change([sending, sent])();
    expect(E.isRight(done) && done.right.status.status).to.equal('sent');
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSending', 'EmailSent']);
    expect(heard).to.deep.equal([['EmailSent', 'sent']]);

    // The same two again (a replay): no news, nothing announced.
    await change([sending, sent])();
    expect(events.events).to.have.length(2);
  });

  it('announces only the news of a batch whose first event the log already had', async () => {
    const emails = new InMemoryEmailLog();
    const events = new RecordingEvents();
    const change = recordAllAndAnnounce(emails, events);
    const r = aRequest();
    await emails.record(r)();
    const sending: DomainEvent = anEvent.sending(r, { attempt: 1, at: at(1) });
    await emails.apply(sending)();
    await change([sending, anEvent.sent(r, { attempt: 1, at: at(2) })])();
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailSent']);
  });

  it('announces nothing when the log does not answer, and answers its StoreUnavailable', async () => {
    const emails = switchable(new InMemoryEmailLog());
    const events = new RecordingEvents();
    const r = aRequest();
    await emails.store.record(r)();
    emails.down = true;
    const done = await recordAllAndAnnounce(
      emails.store,
      events,
    )([anEvent.sending(r, { attempt: 1, at: at(1) })])();
    expect(E.isLeft(done) && done.left._tag).to.equal('StoreUnavailable');
    expect(events.events).to.deep.equal([]);
  });
});
