import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { CancelEmail } from '../../src/application/cancel-email.js';
import { ReleaseScheduled } from '../../src/application/release-scheduled.js';
import { RequestEmail } from '../../src/application/request-email.js';
import type { EmailLog } from '../../src/application/ports/email-log.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { ScheduledEmails } from '../../src/application/ports/scheduled-emails.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../src/adapters/memory/in-memory-stores.js';
import { InMemoryScheduledEmails } from '../../src/adapters/memory/in-memory-scheduled-emails.js';
import type { EmailId } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { anId } from '../support/builders.js';
import {
  RecordingEvents,
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
  switchable,
} from '../support/fakes.js';

const MINUTE = 60_000;

/** An email log that keeps requests but refuses every change of status. */
class RefusingChanges extends InMemoryEmailLog {
  override apply() {
    return TE.left(storeUnavailable('the database is not reachable (test)'));
  }
}
const LEASE_MS = 30_000;

/**
 * The real RequestEmail, ReleaseScheduled and CancelEmail over the in-memory adapters, on one
 * clock that a test moves: what a server and a worker on one database do, without the timers.
 */
function scene(limit = 100) {
  const clock = fixedClock('2026-11-28T10:00:00.000Z');
  const queue = new RecordingQueue();
  const emails = switchable<EmailLog>(new InMemoryEmailLog());
  const scheduled = switchable<ScheduledEmails>(new InMemoryScheduledEmails());
  const log = new RecordingLogger();
  // Every announcement reads the log as it is then: the log must be written before the bus hears.
  const seen: Array<{ type: string; status: string | undefined }> = [];
  const events = new RecordingEvents(async (event) => {
    const found = await emails.store.get(event.id)();
    seen.push({
      type: event.type,
      status: E.isRight(found) ? O.toUndefined(found.right)?.status : 'store down',
    });
  });
  const request = new RequestEmail(
    queue,
    emails.store,
    events,
    new InMemoryIdempotencyStore(),
    sequentialIds('sched'),
    clock,
    log,
    { scheduled: scheduled.store },
  );
  const release = new ReleaseScheduled(scheduled.store, emails.store, queue, events, clock, log, {
    leaseMs: LEASE_MS,
    limit,
  });
  const cancel = new CancelEmail(scheduled.store, emails.store, events, clock, log);
  const inMs = (ms: number): string => new Date(clock.now().getTime() + ms).toISOString();

  return {
    clock,
    queue,
    emails,
    scheduled,
    log,
    events,
    seen,
    release,
    cancel,
    /** Accepts an email held until `sendInMs` from now; answers its id. */
    async schedule(sendInMs: number, extra: object = {}): Promise<EmailId> {
      const accepted = await request.execute({
        to: 'Ada <ada@example.com>',
        cc: 'carol@example.org',
        bcc: 'dan@example.net',
        subject: 'Later',
        text: 'Hello, later.',
        send_at: inMs(sendInMs),
        ...extra,
      })();
      if (E.isLeft(accepted)) throw new Error(`not accepted: ${JSON.stringify(accepted.left)}`);
      expect(accepted.right.status).to.equal('scheduled');
      return accepted.right.id;
    },
    /** Accepts an email for sending at once. */
    async sendNow(): Promise<EmailId> {
      const accepted = await request.execute({
        to: 'ada@example.com',
        subject: 'Now',
        text: 'Hi',
      })();
      if (E.isLeft(accepted)) throw new Error(`not accepted: ${JSON.stringify(accepted.left)}`);
      return accepted.right.id;
    },
    async released(): Promise<number> {
      const result = await release.execute()();
      if (E.isLeft(result)) throw new Error(`store down: ${result.left.reason}`);
      return result.right;
    },
    async status(id: EmailId): Promise<EmailStatus | undefined> {
      const found = await emails.store.get(id)();
      if (E.isLeft(found)) throw new Error('store down');
      return O.toUndefined(found.right);
    },
    async nextDue(): Promise<Date | undefined> {
      const next = await scheduled.store.nextDue()();
      if (E.isLeft(next)) throw new Error('store down');
      return next.right;
    },
  };
}

describe('ReleaseScheduled', () => {
  it('holds an email until its send_at, then queues it once, recorded before it is announced', async () => {
    const s = scene();
    const id = await s.schedule(MINUTE);
    expect(s.queue.published).to.deep.equal([]);

    s.clock.advance(MINUTE - 1);
    expect(await s.released()).to.equal(0);
    expect(s.queue.published).to.deep.equal([]);
    expect((await s.status(id))?.status).to.equal('scheduled');

    s.clock.advance(1);
    expect(await s.released()).to.equal(1);
    expect(s.queue.published.map((r) => r.id)).to.deep.equal([id]);
    expect(s.queue.published[0]?.sendAt).to.equal('2026-11-28T10:01:00.000Z');

    const status = await s.status(id);
    expect(status?.status).to.equal('queued');
    expect(status?.history.map((c) => [c.status, c.at])).to.deep.equal([
      ['scheduled', '2026-11-28T10:00:00.000Z'],
      ['queued', '2026-11-28T10:01:00.000Z'],
    ]);
    const requested = s.events.events.find((e) => e.type === 'EmailRequested');
    expect(requested).to.deep.include({
      id,
      at: '2026-11-28T10:01:00.000Z',
      to: ['Ada <ada@example.com>'],
      cc: ['carol@example.org'],
      bcc: ['dan@example.net'],
      subject: 'Later',
    });
    expect(s.seen).to.deep.equal([
      { type: 'EmailScheduled', status: 'scheduled' },
      { type: 'EmailRequested', status: 'queued' },
    ]);
    expect(await s.nextDue()).to.equal(undefined);

    // Released means held no more: later runs publish nothing again.
    s.clock.advance(LEASE_MS + 1);
    expect(await s.released()).to.equal(0);
    expect(s.queue.published).to.have.length(1);
  });

  it('releases the earliest due first, at most `limit` a run', async () => {
    const s = scene(2);
    const third = await s.schedule(3_000);
    const first = await s.schedule(1_000);
    const second = await s.schedule(2_000);
    const notYet = await s.schedule(MINUTE);

    s.clock.advance(3_000);
    expect(await s.released()).to.equal(2);
    expect(await s.released()).to.equal(1);
    expect(await s.released()).to.equal(0);
    expect(s.queue.published.map((r) => r.id)).to.deep.equal([first, second, third]);
    expect((await s.status(notYet))?.status).to.equal('scheduled');
    expect(await s.nextDue()).to.deep.equal(new Date(Date.parse('2026-11-28T10:01:00.000Z')));
  });

  it('leaves an email the queue refused leased, and publishes it after the lease', async () => {
    const s = scene();
    const id = await s.schedule(1_000);
    s.clock.advance(1_000);
    s.queue.down = true;
    expect(await s.released()).to.equal(0);
    expect((await s.status(id))?.status).to.equal('scheduled');
    expect(s.log.lines.find((l) => l.level === 'warn')?.message).to.match(/queue refused/);

    // Back at once, but the lease stands: no other run takes it meanwhile.
    s.queue.down = false;
    s.clock.advance(LEASE_MS - 1);
    expect(await s.released()).to.equal(0);
    s.clock.advance(1);
    expect(await s.released()).to.equal(1);
    expect(s.queue.published.map((r) => r.id)).to.deep.equal([id]);
    expect((await s.status(id))?.status).to.equal('queued');
  });

  it('leaves an email whose request cannot be read leased, for another try', async () => {
    const s = scene();
    const id = await s.schedule(1_000);
    s.clock.advance(1_000);
    s.emails.down = true;
    expect(await s.released()).to.equal(0);
    expect(s.queue.published).to.deep.equal([]);

    s.emails.down = false;
    s.clock.advance(LEASE_MS);
    expect(await s.released()).to.equal(1);
    expect((await s.status(id))?.status).to.equal('queued');
  });

  it('releases without sending, and says so, an email whose request is gone from the log', async () => {
    const s = scene();
    const gone = anId('gone');
    await s.scheduled.store.hold(gone, s.clock.now())();
    expect(await s.released()).to.equal(0);
    expect(s.queue.published).to.deep.equal([]);
    expect(await s.nextDue()).to.equal(undefined);
    expect(s.log.errors().map((l) => [l.message, l.fields])).to.deep.equal([
      [
        'Scheduled email has no request in the email log: released without sending',
        { emailId: gone },
      ],
    ]);
  });

  it('answers StoreUnavailable when the scheduled emails cannot be read', async () => {
    const s = scene();
    await s.schedule(1_000);
    s.clock.advance(1_000);
    s.scheduled.down = true;
    const result = await s.release.execute()();
    expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
    expect(s.queue.published).to.deep.equal([]);
  });

  it('counts an email as released once it is queued, even if the log cannot be told', async () => {
    const s = scene();
    const id = await s.schedule(1_000);
    s.clock.advance(1_000);
    // Reads work, writes do not: the request is read, its release cannot be recorded.
    const writesRefused = new RefusingChanges();
    const request = await s.emails.store.request(id)();
    if (E.isLeft(request) || O.isNone(request.right)) throw new Error('no request');
    await writesRefused.record(request.right.value)();
    const release = new ReleaseScheduled(
      s.scheduled.store,
      writesRefused,
      s.queue,
      s.events,
      s.clock,
      s.log,
    );
    expect(await release.execute()()).to.deep.equal(E.right(1));
    expect(s.queue.published.map((r) => r.id)).to.deep.equal([id]);
    expect(await s.nextDue()).to.equal(undefined);
    expect(s.log.lines.map((l) => l.message)).to.include(
      'Scheduled email queued, but its release could not be written to the email log',
    );
  });
});

describe('CancelEmail', () => {
  it('cancels a scheduled email for good: recorded, announced, and never released', async () => {
    const s = scene();
    const id = await s.schedule(MINUTE);
    s.clock.advance(1_000);
    expect(await s.cancel.execute(id)()).to.deep.equal(E.right('cancelled'));

    const status = await s.status(id);
    expect(status?.status).to.equal('cancelled');
    expect(status?.recipients.map((r) => r.status)).to.deep.equal([
      'cancelled',
      'cancelled',
      'cancelled',
    ]);
    expect(status?.history.at(-1)).to.deep.include({
      status: 'cancelled',
      at: '2026-11-28T10:00:01.000Z',
      source: 'api',
    });
    expect(s.seen.at(-1)).to.deep.equal({ type: 'EmailCancelled', status: 'cancelled' });
    expect(s.events.events.at(-1)).to.deep.include({ cc: ['carol@example.org'] });

    s.clock.advance(MINUTE);
    expect(await s.released()).to.equal(0);
    expect(s.queue.published).to.deep.equal([]);
  });

  it('answers cancelled again for a cancelled email, and announces nothing more', async () => {
    const s = scene();
    const id = await s.schedule(MINUTE);
    await s.cancel.execute(id)();
    const announced = s.events.events.length;
    expect(await s.cancel.execute(id)()).to.deep.equal(E.right('cancelled'));
    expect(s.events.events).to.have.length(announced);
  });

  it('answers NotFound for an id never accepted', async () => {
    const s = scene();
    expect(await s.cancel.execute(anId('unknown'))()).to.deep.equal(E.left({ _tag: 'NotFound' }));
  });

  it('refuses an email sent at once: it was never scheduled', async () => {
    const s = scene();
    const id = await s.sendNow();
    expect(await s.cancel.execute(id)()).to.deep.equal(
      E.left({ _tag: 'NotCancellable', status: 'queued', wasScheduled: false }),
    );
  });

  it('refuses an email being released, and one released: sending began', async () => {
    const s = scene();
    const id = await s.schedule(1_000);
    s.clock.advance(1_000);
    // Another worker took it and is publishing it right now.
    await s.scheduled.store.takeDue(s.clock.now(), LEASE_MS, 100)();
    expect(await s.cancel.execute(id)()).to.deep.equal(
      E.left({ _tag: 'NotCancellable', status: 'scheduled', wasScheduled: true }),
    );

    s.clock.advance(LEASE_MS);
    expect(await s.released()).to.equal(1);
    expect(await s.cancel.execute(id)()).to.deep.equal(
      E.left({ _tag: 'NotCancellable', status: 'queued', wasScheduled: true }),
    );
    expect(s.queue.published.map((r) => r.id)).to.deep.equal([id]);
  });

  it('answers StoreUnavailable when the store cannot be asked, and changes nothing', async () => {
    const s = scene();
    const id = await s.schedule(MINUTE);
    s.scheduled.down = true;
    const result = await s.cancel.execute(id)();
    expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
    s.scheduled.down = false;
    expect((await s.status(id))?.status).to.equal('scheduled');
    s.clock.advance(MINUTE);
    expect(await s.released()).to.equal(1);
  });
});
