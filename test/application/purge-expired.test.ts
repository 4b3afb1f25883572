import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { PurgeExpired } from '../../src/application/purge-expired.js';
import { IDEMPOTENCY_KEY_TTL_MS } from '../../src/application/ports/idempotency-store.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../src/adapters/memory/in-memory-stores.js';
import {
  InMemoryOperatorStore,
  InMemorySessionStore,
} from '../../src/adapters/memory/in-memory-auth-stores.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import { aRequest, anEvent, anId } from '../support/builders.js';
import { fixedClock, switchable } from '../support/fakes.js';

const DAY = 24 * 60 * 60 * 1000;
const HOUR = 60 * 60 * 1000;

const noSessions = () => new InMemorySessionStore(new InMemoryOperatorStore());

const request = (id: string, requestedAt: Date) => aRequest({ id, requestedAt });

/** Records `r` in `emails` and takes it through one attempt to `sent`. */
async function recordSent(emails: InMemoryEmailLog, r: EmailRequest): Promise<void> {
  await emails.record(r)();
  await emails.apply(anEvent.sending(r))();
  await emails.apply(anEvent.sent(r))();
}

describe('PurgeExpired (retention)', () => {
  it('deletes sent and failed emails older than the retention period in batches, and expired keys and sends', async () => {
    const clock = fixedClock('2026-11-30T12:00:00.000Z');
    const now = clock.now().getTime();
    const emails = new InMemoryEmailLog();
    const keys = new InMemoryIdempotencyStore();
    const ledger = new InMemoryDeliveryLedger();
    // Seven old emails (past 30 days) and two recent ones.
    const old = Array.from({ length: 7 }, (_, i) =>
      request(`old-email-${i}`, new Date(now - 31 * DAY - i * 1000)),
    );
    for (const [i, r] of old.entries()) {
      if (i % 2 === 0) {
        await recordSent(emails, r);
      } else {
        await emails.record(r)();
        await emails.apply(anEvent.failed(r))();
      }
      await ledger.record(r.id, `<${i}@p>`, new Date(now - 31 * DAY))();
    }
    const [recent1, recent2] = [
      request('new-email-1', new Date(now - 29 * DAY)),
      request('new-email-2', new Date(now - 1000)),
    ];
    await recordSent(emails, recent1);
    await recordSent(emails, recent2);
    await ledger.record(recent2.id, '<n@p>', new Date(now - 1000))();
    await keys.claim('old-key', 'p', old[0]!.id, new Date(now - IDEMPOTENCY_KEY_TTL_MS - 1))();
    await keys.claim('new-key', 'p', recent2.id, new Date(now - 1000))();

    // Two sessions: one idle past its 12 hours, one used an hour ago.
    const operators = new InMemoryOperatorStore();
    const sessions = new InMemorySessionStore(operators);
    await operators.add({
      name: 'ada',
      passwordHash: '$argon2id$x',
      createdAt: new Date(now - DAY),
    })();
    for (const [digest, idleMs] of [
      ['idle', 12 * HOUR + 1],
      ['live', HOUR],
    ] as const) {
      const at = new Date(now - idleMs);
      await sessions.create({ digest, operator: 'ada', createdAt: at, lastSeenAt: at })();
    }

    const purge = new PurgeExpired(
      emails,
      keys,
      ledger,
      sessions,
      { retentionDays: 30, batchSize: 3, maxBatches: 10 },
      clock,
    );
    expect(await purge.execute()()).to.deep.equal(
      E.right({ emails: 7, idempotencyKeys: 1, ledgerEntries: 7, sessions: 1 }),
    );
    expect(await sessions.find('idle')()).to.deep.equal(E.right(O.none));
    const live = await sessions.find('live')();
    expect(E.isRight(live) && O.isSome(live.right), 'the session used an hour ago').to.equal(true);
    const left = await emails.list({ limit: 50 })();
    expect(E.isRight(left) && left.right.data.map((e) => e.id)).to.deep.equal([
      'new-email-2',
      'new-email-1',
    ]);
    expect(await ledger.sent(recent2.id)()).to.deep.equal(E.right('<n@p>'));
    // The recent key still answers as the first time.
    const again = await keys.claim('new-key', 'p', anId('other'), clock.now())();
    expect(E.isRight(again) && again.right._tag).to.equal('Conflict');
  });

  it('stops after maxBatches and leaves the rest for the next run', async () => {
    const clock = fixedClock('2026-11-30T12:00:00.000Z');
    const emails = new InMemoryEmailLog();
    for (let i = 0; i < 5; i += 1) {
      await recordSent(
        emails,
        request(`old-email-${i}`, new Date(clock.now().getTime() - 40 * DAY)),
      );
    }
    const purge = new PurgeExpired(
      emails,
      new InMemoryIdempotencyStore(),
      new InMemoryDeliveryLedger(),
      noSessions(),
      { retentionDays: 30, batchSize: 2, maxBatches: 2 },
      clock,
    );
    const first = await purge.execute()();
    expect(E.isRight(first) && first.right.emails).to.equal(4);
    const second = await purge.execute()();
    expect(E.isRight(second) && second.right.emails).to.equal(1);
  });

  it('keeps an old email still on its way, with its request, until it is sent', async () => {
    const clock = fixedClock('2026-11-30T12:00:00.000Z');
    const longAgo = new Date(clock.now().getTime() - 40 * DAY);
    const emails = new InMemoryEmailLog();
    const [queued, retrying, sent] = ['queued', 'retrying', 'sent'].map((s) =>
      request(`${s}-email`, longAgo),
    );
    await emails.record(queued!)();
    await emails.record(retrying!)();
    await emails.apply(anEvent.sending(retrying!))();
    await emails.apply(anEvent.retried(retrying!))();
    await recordSent(emails, sent!);
    const purge = new PurgeExpired(
      emails,
      new InMemoryIdempotencyStore(),
      new InMemoryDeliveryLedger(),
      noSessions(),
      { retentionDays: 30, batchSize: 1, maxBatches: 10 },
      clock,
    );

    const first = await purge.execute()();
    expect(E.isRight(first) && first.right.emails).to.equal(1);
    // The worker will still send these: what it needs and what it writes are kept.
    expect(await emails.request(queued!.id)()).to.deep.equal(E.right(O.some(queued)));
    expect(await emails.request(retrying!.id)()).to.deep.equal(E.right(O.some(retrying)));

    await emails.apply(anEvent.sent(retrying!, { attempt: 2 }))();
    const second = await purge.execute()();
    expect(E.isRight(second) && second.right.emails).to.equal(1);
    expect(await emails.request(retrying!.id)()).to.deep.equal(E.right(O.none));
    expect(await emails.request(queued!.id)()).to.deep.equal(E.right(O.some(queued)));
  });

  it('answers StoreUnavailable when the log is down, deleting nothing', async () => {
    const emails = switchable(new InMemoryEmailLog());
    emails.down = true;
    const purge = new PurgeExpired(
      emails.store,
      new InMemoryIdempotencyStore(),
      new InMemoryDeliveryLedger(),
      noSessions(),
      { retentionDays: 30, batchSize: 2, maxBatches: 2 },
      fixedClock(),
    );
    const result = await purge.execute()();
    expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
  });
});
