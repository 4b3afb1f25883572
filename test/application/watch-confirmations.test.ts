import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { DeliverEmail } from '../../src/application/deliver-email.js';
import type { EmailLog } from '../../src/application/ports/email-log.js';
import type { EmailSender } from '../../src/application/ports/email-sender.js';
import { WatchConfirmations } from '../../src/application/watch-confirmations.js';
import { FailoverEmailSender } from '../../src/adapters/failover/failover-email-sender.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
} from '../../src/adapters/memory/in-memory-stores.js';
import type { DeliveryOutcome } from '../../src/domain/delivery.js';
import { sent, transient } from '../../src/domain/delivery.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { aRequest, aTask, anAddress, anEvent } from '../support/builders.js';
import { RecordingEvents, RecordingLogger, fixedClock, switchable } from '../support/fakes.js';

const HOUR = 3_600_000;

/**
 * The watchdog over an in-memory log, on a clock the test moves from T0 (2026-11-28T10:00Z),
 * with a deadline of an hour unless told otherwise.
 */
function scene(options: { batchSize?: number; maxBatches?: number } = {}) {
  const clock = fixedClock();
  const emails = switchable<EmailLog>(new InMemoryEmailLog());
  const events = new RecordingEvents();
  const watch = new WatchConfirmations(emails.store, events, clock, HOUR, {
    batchSize: options.batchSize ?? 100,
    maxBatches: options.maxBatches ?? 10,
  });
  const now = (): string => clock.now().toISOString();
  return {
    clock,
    emails,
    events,
    watch,
    /** Records a request and has `transport` accept it now (no transport: the event says none). */
    async sentBy(transport: string | undefined, request: EmailRequest = aRequest()) {
      await emails.store.record(request)();
      await emails.store.apply(anEvent.sending(request, { at: now() }))();
      await emails.store.apply(
        anEvent.sent(request, {
          at: now(),
          ...(transport !== undefined ? { transport } : {}),
        }),
      )();
      return request;
    },
    /** What the sweep answered; a Left fails the test. */
    async sweep(): Promise<number> {
      const swept = await watch.sweep()();
      if (E.isLeft(swept)) return expect.fail(`sweep answered ${swept.left.reason}`);
      return swept.right;
    },
    async status(request: EmailRequest): Promise<EmailStatus> {
      const found = await emails.store.get(request.id)();
      if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('email not in the log');
      return found.right.value;
    },
  };
}

const unconfirmedLines = (s: EmailStatus) => s.history.filter((c) => c.status === 'unconfirmed');

describe('WatchConfirmations (the watchdog for silence)', () => {
  it('flags a Mailgun send with no report once its deadline has passed, and not before', async () => {
    const s = scene();
    const email = await s.sentBy('mailgun');
    // An hour after the send is still within the hour.
    s.clock.advance(HOUR);
    expect(await s.sweep()).to.equal(0);
    expect(unconfirmedLines(await s.status(email))).to.deep.equal([]);

    s.clock.advance(1);
    expect(await s.sweep()).to.equal(1);
    const status = await s.status(email);
    expect(status.status).to.equal('sent');
    expect(unconfirmedLines(status)).to.deep.equal([
      {
        at: s.clock.now().toISOString(),
        status: 'unconfirmed',
        source: 'worker',
        detail: 'no report from mailgun on any recipient within 1h',
      },
    ]);
    // Announced once written, for /metrics and the live pages.
    expect(s.events.events.map((e) => e.type)).to.deep.equal(['EmailUnconfirmed']);
    expect(s.events.events[0]).to.deep.include({
      id: email.id,
      to: email.to,
      subject: email.subject,
      transport: 'mailgun',
      deadlineMs: HOUR,
    });
  });

  it('flags an email once: a second sweep, or another worker, finds nothing new', async () => {
    const s = scene();
    const email = await s.sentBy('mailgun');
    s.clock.advance(2 * HOUR);
    // Another worker reads the same candidate now, and writes its note only after ours.
    const read = await s.emails.store.unconfirmed('mailgun', s.clock.now(), 100)();
    const candidates = E.isRight(read) ? read.right : expect.fail('the log did not answer');
    expect(candidates.map((c) => c.id)).to.deep.equal([email.id]);
    const stale = new Proxy(s.emails.store, {
      get: (target, property, receiver) =>
        property === 'unconfirmed'
          ? () => TE.right(candidates)
          : Reflect.get(target, property, receiver),
    });
    const other = new WatchConfirmations(stale, s.events, s.clock, HOUR);

    expect(await s.sweep()).to.equal(1);
    const status = await s.status(email);
    s.clock.advance(HOUR);
    expect(await s.sweep()).to.equal(0);
    expect(await other.sweep()()).to.deep.equal(E.right(0));
    expect(await s.status(email)).to.deep.equal(status);
    expect(s.events.events).to.have.length(1);
  });

  it('never flags what SMTP, the outbox, or an unnamed transport sent', async () => {
    const s = scene();
    const quiet = [await s.sentBy('smtp'), await s.sentBy('outbox'), await s.sentBy(undefined)];
    s.clock.advance(2 * HOUR);
    expect(await s.sweep()).to.equal(0);
    for (const email of quiet) expect(unconfirmedLines(await s.status(email))).to.deep.equal([]);
    expect(s.events.events).to.deep.equal([]);
  });

  it('leaves alone an email with a report on any one recipient, whatever it said', async () => {
    const s = scene();
    const email = await s.sentBy(
      'mailgun',
      aRequest({ to: ['ada@example.org', 'bob@example.com'] }),
    );
    await s.emails.store.apply(
      anEvent.reported(email, {
        at: s.clock.now().toISOString(),
        recipient: anAddress('ada@example.org'),
        kind: 'deferred',
      }),
    )();
    s.clock.advance(2 * HOUR);
    expect(await s.sweep()).to.equal(0);
    expect((await s.status(email)).status).to.equal('sent');
  });

  it('goes through batch after batch in one sweep, up to its limit, then on the next', async () => {
    const s = scene({ batchSize: 2, maxBatches: 2 });
    const emails: EmailRequest[] = [];
    for (let i = 0; i < 5; i += 1) {
      emails.push(await s.sentBy('mailgun'));
      s.clock.advance(1000);
    }
    s.clock.advance(HOUR);
    expect(await s.sweep()).to.equal(4);
    // Oldest first: the newest is left for the next sweep.
    const flagged = await Promise.all(emails.map(async (e) => unconfirmedLines(await s.status(e))));
    expect(flagged.map((lines) => lines.length)).to.deep.equal([1, 1, 1, 1, 0]);
    expect(await s.sweep()).to.equal(1);
    expect(await s.sweep()).to.equal(0);
  });

  it('answers StoreUnavailable when the log does not answer, and flags on the next sweep', async () => {
    const s = scene();
    const email = await s.sentBy('mailgun');
    s.clock.advance(2 * HOUR);
    s.emails.down = true;
    const swept = await s.watch.sweep()();
    expect(E.isLeft(swept) && swept.left._tag).to.equal('StoreUnavailable');
    expect(s.events.events).to.deep.equal([]);
    s.emails.down = false;
    expect(await s.sweep()).to.equal(1);
    expect(unconfirmedLines(await s.status(email))).to.have.length(1);
  });

  describe('with failover (MAIL_TRANSPORT=mailgun,smtp)', () => {
    /** A provider of that name that answers `outcome` every time. */
    const provider = (name: string, outcome: DeliveryOutcome): EmailSender => ({
      name,
      send: () => async () => outcome,
    });

    /** Sends one email through the chain with the real DeliverEmail, then sweeps after 2 h. */
    async function sendThrough(senders: readonly EmailSender[]) {
      const s = scene();
      const failover = new FailoverEmailSender({ senders, log: new RecordingLogger() });
      const deliver = new DeliverEmail(
        failover,
        s.emails.store,
        s.events,
        new InMemoryDeliveryLedger(),
        { maxAttempts: 3, delaysMs: [1000] },
        s.clock,
        new RecordingLogger(),
        { holder: 'worker-a' },
      );
      const task = aTask();
      await s.emails.store.record(task.request)();
      expect((await deliver.execute(task)())._tag).to.equal('Done');
      s.clock.advance(2 * HOUR);
      return { status: await s.status(task.request), flagged: await s.sweep() };
    }

    it('flags an email the mailgun transport sent', async () => {
      const { status, flagged } = await sendThrough([
        provider('mailgun', sent('<m@mg>')),
        provider('smtp', sent('<s@smtp>')),
      ]);
      expect(status.sentBy).to.equal('mailgun');
      expect(flagged).to.equal(1);
    });

    it('does not flag one that SMTP sent after Mailgun failed for now', async () => {
      const { status, flagged } = await sendThrough([
        provider('mailgun', transient('503 from Mailgun')),
        provider('smtp', sent('<s@smtp>')),
      ]);
      expect(status.sentBy).to.equal('smtp');
      expect(flagged).to.equal(0);
    });
  });
});
