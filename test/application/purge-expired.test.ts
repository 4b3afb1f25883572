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
import { InMemoryAttachmentStore } from '../../src/adapters/memory/in-memory-attachment-store.js';
import type { EmailId, EmailRequest } from '../../src/domain/email-request.js';
import { aRequest, anEvent, anId } from '../support/builders.js';
import { fixedClock, switchable } from '../support/fakes.js';

const DAY = 24 * 60 * 60 * 1000;
const HOUR = 60 * 60 * 1000;

const noSessions = () => new InMemorySessionStore(new InMemoryOperatorStore());

/** Attachments over `emails`, stored at `storedAt` (the clock the store reads on `put`). */
const attachmentsOf = (emails: InMemoryEmailLog, storedAt = '2026-10-01T00:00:00.000Z') => {
  const clock = fixedClock(storedAt);
  return { store: new InMemoryAttachmentStore(emails, clock), clock };
};

/** Stores `text` for email `id`; answers its digest. */
const putFile = async (store: InMemoryAttachmentStore, id: EmailId, text: string) => {
  const stored = await store.put(id, new TextEncoder().encode(text))();
  if (E.isLeft(stored)) throw new Error(stored.left.reason);
  return stored.right.digest;
};

const isStored = async (store: InMemoryAttachmentStore, digest: string): Promise<boolean> => {
  const found = await store.get(digest)();
  return E.isRight(found) && O.isSome(found.right);
};

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

    // Files stored 31 days ago: two carried only by old emails, one by an old and a recent one.
    const attachments = attachmentsOf(emails, new Date(now - 31 * DAY).toISOString());
    const onlyOld0 = await putFile(attachments.store, old[0]!.id, 'old-0');
    const onlyOld1 = await putFile(attachments.store, old[1]!.id, 'old-1');
    const shared = await putFile(attachments.store, old[2]!.id, 'shared');
    await putFile(attachments.store, recent1.id, 'shared');

    const purge = new PurgeExpired(
      emails,
      keys,
      ledger,
      sessions,
      attachments.store,
      { retentionDays: 30, batchSize: 3, maxBatches: 10 },
      clock,
    );
    expect(await purge.execute()()).to.deep.equal(
      E.right({
        emails: 7,
        idempotencyKeys: 1,
        ledgerEntries: 7,
        sessions: 1,
        attachments: 2,
        webhookDeliveries: 0,
      }),
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
    expect(await isStored(attachments.store, onlyOld0)).to.equal(false);
    expect(await isStored(attachments.store, onlyOld1)).to.equal(false);
    expect(await isStored(attachments.store, shared), 'a file a recent email carries').to.equal(
      true,
    );
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
      attachmentsOf(emails).store,
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
      attachmentsOf(emails).store,
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

  it('keeps the files of an old email still on its way, and files whose email may be coming', async () => {
    const clock = fixedClock('2026-11-30T12:00:00.000Z');
    const now = clock.now().getTime();
    const emails = new InMemoryEmailLog();
    const [queued, sent] = ['queued', 'sent'].map((s) =>
      request(`${s}-email`, new Date(now - 40 * DAY)),
    );
    await emails.record(queued!)();
    await recordSent(emails, sent!);
    const attachments = attachmentsOf(emails, new Date(now - 40 * DAY).toISOString());
    const forQueued = await putFile(attachments.store, queued!.id, 'for the queued email');
    const forSent = await putFile(attachments.store, sent!.id, 'for the sent email');
    // Never recorded: long ago (the API failed after storing it), and a moment ago (the API may
    // be recording its email right now).
    const abandoned = await putFile(attachments.store, anId('abandoned'), 'abandoned');
    attachments.clock.advance(40 * DAY - 1000);
    const arriving = await putFile(attachments.store, anId('arriving'), 'arriving');
    const purge = new PurgeExpired(
      emails,
      new InMemoryIdempotencyStore(),
      new InMemoryDeliveryLedger(),
      noSessions(),
      attachments.store,
      { retentionDays: 30, batchSize: 10, maxBatches: 10 },
      clock,
    );

    // The sent email goes, and in the same run the file only it carried.
    const purged = await purge.execute()();
    expect(E.isRight(purged) && [purged.right.emails, purged.right.attachments]).to.deep.equal([
      1, 2,
    ]);
    expect(await isStored(attachments.store, forSent)).to.equal(false);
    expect(await isStored(attachments.store, abandoned)).to.equal(false);
    expect(await isStored(attachments.store, forQueued)).to.equal(true);
    expect(await isStored(attachments.store, arriving)).to.equal(true);
  });

  it('answers StoreUnavailable when the log is down, deleting nothing', async () => {
    const emails = switchable(new InMemoryEmailLog());
    emails.down = true;
    const purge = new PurgeExpired(
      emails.store,
      new InMemoryIdempotencyStore(),
      new InMemoryDeliveryLedger(),
      noSessions(),
      attachmentsOf(new InMemoryEmailLog()).store,
      { retentionDays: 30, batchSize: 2, maxBatches: 2 },
      fixedClock(),
    );
    const result = await purge.execute()();
    expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
  });
});
