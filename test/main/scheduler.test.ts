import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { ScheduledEmails } from '../../src/application/ports/scheduled-emails.js';
import { ReleaseScheduled } from '../../src/application/release-scheduled.js';
import { InMemoryScheduledEmails } from '../../src/adapters/memory/in-memory-scheduled-emails.js';
import { InMemoryEmailLog } from '../../src/adapters/memory/in-memory-stores.js';
import { systemClock } from '../../src/adapters/system/system.js';
import type { Scheduler } from '../../src/main/scheduler.js';
import { startScheduler } from '../../src/main/scheduler.js';
import { aRequest } from '../support/builders.js';
import { RecordingEvents, RecordingLogger, RecordingQueue, switchable } from '../support/fakes.js';
import { eventually, sleep } from '../support/waiting.js';

/** A scheduler on the real clock over in-memory stores; `at` records when each was published. */
function running(everyMs: number) {
  const emails = new InMemoryEmailLog();
  const scheduled = switchable<ScheduledEmails>(new InMemoryScheduledEmails());
  const publishedAt = new Map<string, number>();
  const queue = new RecordingQueue();
  const timedQueue = {
    publish: (request: Parameters<RecordingQueue['publish']>[0]) => {
      publishedAt.set(request.id, Date.now());
      return queue.publish(request);
    },
  };
  const log = new RecordingLogger();
  const release = new ReleaseScheduled(
    scheduled.store,
    emails,
    timedQueue,
    new RecordingEvents(),
    systemClock,
    log,
  );
  return {
    emails,
    scheduled,
    publishedAt,
    log,
    start: (): Scheduler => startScheduler(release, scheduled.store, systemClock, log, { everyMs }),
    /** Records a request and holds it until `inMs` from now; answers the due time. */
    async hold(inMs: number): Promise<{ id: string; dueMs: number }> {
      const request = aRequest();
      const dueMs = Date.now() + inMs;
      await emails.record(request)();
      await scheduled.store.hold(request.id, new Date(dueMs))();
      return { id: request.id, dueMs };
    },
  };
}

describe('startScheduler (the poller of scheduled emails)', () => {
  let scheduler: Scheduler | undefined;
  afterEach(async () => {
    await scheduler?.stop();
    scheduler = undefined;
  });

  it('queues an email within a poll of its time, not before', async () => {
    const s = running(250);
    scheduler = s.start();
    const { id, dueMs } = await s.hold(400);
    const at = await eventually(() => s.publishedAt.get(id), { timeoutMs: 3_000 });
    expect(at).to.be.at.least(dueMs);
    expect(at - dueMs).to.be.below(1_000);
  });

  it('wakes at the next due time when it is sooner than the next poll', async () => {
    const s = running(60_000);
    const { id, dueMs } = await s.hold(300);
    const late = await s.hold(600);
    // The first look (at start) finds nothing due; only the due times can wake it in time.
    scheduler = s.start();
    const at = await eventually(() => s.publishedAt.get(late.id), { timeoutMs: 3_000 });
    expect(at - late.dueMs).to.be.within(0, 1_000);
    expect(s.publishedAt.get(id)! - dueMs).to.be.within(0, 1_000);
  });

  it('says once that the store is down, and once that it is back', async () => {
    const s = running(20);
    scheduler = s.start();
    s.scheduled.down = true;
    await eventually(() => s.log.lines.some((l) => l.level === 'warn'));
    // Several polls fail meanwhile, and say nothing more.
    await sleep(100);
    s.scheduled.down = false;
    const held = await s.hold(0);
    await eventually(() => s.publishedAt.get(held.id));
    // The run that finds the store back releases the email before it says so.
    expect(s.log.lines.map((l) => [l.level, l.message])).to.deep.equal([
      ['warn', 'Scheduled emails cannot be read; trying again'],
      ['info', 'Scheduled email released to the queue'],
      ['info', 'Scheduled emails can be read again'],
    ]);
  });

  it('stops after the run in flight, and runs no more', async () => {
    let runs = 0;
    let finish: () => void = () => undefined;
    const release = {
      execute: () => async () => {
        runs += 1;
        await new Promise<void>((resolve) => (finish = resolve));
        return E.right(0);
      },
    };
    const nextDue = { nextDue: () => TE.right(undefined) };
    const log = new RecordingLogger();
    const stopping = startScheduler(release, nextDue, systemClock, log, { everyMs: 10 });
    await eventually(() => runs === 1);
    let stopped = false;
    const stop = stopping.stop().then(() => (stopped = true));
    await sleep(50);
    expect(stopped).to.equal(false);
    finish();
    await stop;
    // Five polls' time: none comes.
    await sleep(50);
    expect(runs).to.equal(1);
    expect(log.lines).to.deep.equal([]);
  });
});
