import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { createHash } from 'node:crypto';
import { RequestEmail } from '../../src/application/request-email.js';
import type { RequestEmailOptions } from '../../src/application/request-email.js';
import type { AttachmentStore } from '../../src/application/ports/attachment-store.js';
import type { IdempotencyStore } from '../../src/application/ports/idempotency-store.js';
import { IN_PROGRESS_TIMEOUT_MS } from '../../src/application/ports/idempotency-store.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { ScheduledEmails } from '../../src/application/ports/scheduled-emails.js';
import { InMemoryAttachmentStore } from '../../src/adapters/memory/in-memory-attachment-store.js';
import { InMemoryScheduledEmails } from '../../src/adapters/memory/in-memory-scheduled-emails.js';
import { InMemorySuppressionList } from '../../src/adapters/memory/in-memory-suppression-list.js';
import { domainToAscii } from '../../src/adapters/idna/idna.js';
import type { SuppressionList } from '../../src/application/ports/suppression-list.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../src/adapters/memory/in-memory-stores.js';
import type { EmailId } from '../../src/domain/email-request.js';
import { encodedSizeOf, parseEmailDraft } from '../../src/domain/email-request.js';
import { T0, draftOptions } from '../support/builders.js';
import {
  RecordingEvents,
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
  switchable,
} from '../support/fakes.js';

const input = { to: 'Ada <ada@example.com>', subject: 'Hello', text: 'Hi Ada' };

describe('RequestEmail', () => {
  let queue: RecordingQueue;
  let events: RecordingEvents;
  let emails: { store: InMemoryEmailLog; down: boolean };
  let keys: { store: IdempotencyStore; down: boolean };
  let clock: ReturnType<typeof fixedClock>;
  let log: RecordingLogger;
  let files: { store: AttachmentStore; down: boolean };
  let held: { store: ScheduledEmails; down: boolean };
  let useCase: RequestEmail;

  /** The use case as the composition root makes it, with these options on top. */
  const build = (options: RequestEmailOptions = {}) =>
    new RequestEmail(queue, emails.store, events, keys.store, sequentialIds(), clock, log, {
      allowedFromDomains: ['example.com'],
      attachments: files.store,
      scheduled: held.store,
      ...options,
    });

  beforeEach(() => {
    queue = new RecordingQueue();
    events = new RecordingEvents();
    emails = switchable(new InMemoryEmailLog());
    keys = switchable<IdempotencyStore>(new InMemoryIdempotencyStore());
    clock = fixedClock();
    log = new RecordingLogger();
    files = switchable<AttachmentStore>(new InMemoryAttachmentStore(emails.store, clock));
    held = switchable<ScheduledEmails>(new InMemoryScheduledEmails());
    useCase = build();
  });

  const statusOf = async (id: string) => {
    const found = await emails.store.get(id as EmailId)();
    return E.isRight(found) ? O.toUndefined(found.right)?.status : 'store down';
  };

  it('queues a valid request once and announces it', async () => {
    const result = await useCase.execute(input)();
    expect(result).to.deep.equal(
      E.right({ id: 'email-00000001', repeated: false, status: 'queued' }),
    );
    expect(queue.published).to.have.length(1);
    expect(queue.published[0]).to.include({
      id: 'email-00000001',
      subject: 'Hello',
      text: 'Hi Ada',
    });
    expect(queue.published[0]?.to).to.deep.equal(['Ada <ada@example.com>']);
    expect(events.events.map((e) => e.type)).to.deep.equal(['EmailRequested']);
    expect(await statusOf('email-00000001')).to.equal('queued');
  });

  it('records nothing and publishes nothing while the email log is down', async () => {
    emails.down = true;
    const result = await useCase.execute(input)();
    expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
    expect(queue.published).to.have.length(0);
    expect(events.events).to.have.length(0);
  });

  it('queues nothing for invalid input and says what is wrong', async () => {
    const result = await useCase.execute({ to: 'nope', subject: 'Hi\r\nBcc: x@evil.com' })();
    if (E.isRight(result)) expect.fail('accepted');
    expect(result.left._tag).to.equal('InvalidEmailRequest');
    expect(
      result.left._tag === 'InvalidEmailRequest' && Object.keys(result.left.fields).sort(),
    ).to.deep.equal(['subject', 'text', 'to']);
    expect(queue.published).to.have.length(0);
    expect(events.events).to.have.length(0);
  });

  it('reports the queue being down, and announces nothing', async () => {
    queue.down = true;
    const result = await useCase.execute(input)();
    expect(E.isLeft(result) && result.left._tag).to.equal('QueueUnavailable');
    expect(events.events).to.have.length(0);
    // The client hears 503: the email never was, and the log does not pretend otherwise.
    expect(await statusOf('email-00000001')).to.equal(undefined);
  });

  it('answers a repeated idempotency key with the first id and publishes nothing more', async () => {
    const first = await useCase.execute(input, 'key-1')();
    const again = await useCase.execute({ ...input }, 'key-1')();
    expect(first).to.deep.equal(
      E.right({ id: 'email-00000001', repeated: false, status: 'queued' }),
    );
    expect(again).to.deep.equal(
      E.right({ id: 'email-00000001', repeated: true, status: 'queued' }),
    );
    expect(queue.published).to.have.length(1);
  });

  it('refuses the same key with another payload', async () => {
    await useCase.execute(input, 'key-2')();
    const other = await useCase.execute({ ...input, subject: 'Other' }, 'key-2')();
    expect(other).to.deep.equal(
      E.left({ _tag: 'IdempotencyConflict', reason: 'different-payload' }),
    );
    expect(queue.published).to.have.length(1);
  });

  it('frees a key whose request was not accepted, so the client can retry it', async () => {
    queue.down = true;
    expect(E.isLeft(await useCase.execute(input, 'key-3')())).to.equal(true);
    queue.down = false;
    const retried = await useCase.execute(input, 'key-3')();
    expect(E.isRight(retried) && retried.right.repeated).to.equal(false);
    expect(queue.published).to.have.length(1);
  });

  it('still answers accepted when the key cannot be completed after the email was queued', async () => {
    const original = keys.store.complete.bind(keys.store);
    keys.store.complete = (key) => {
      keys.down = true;
      return original(key);
    };
    const first = await useCase.execute(input, 'key-4')();
    expect(first).to.deep.equal(
      E.right({ id: 'email-00000001', repeated: false, status: 'queued' }),
    );
    expect(queue.published).to.have.length(1);
    expect(log.text()).to.contain('could not be marked complete');

    // The honest retry: "in progress" for a while, then the same id again (sent once, thanks
    // to the delivery ledger), never a second email with another id.
    keys.down = false;
    keys.store.complete = original;
    const soon = await useCase.execute(input, 'key-4')();
    expect(soon).to.deep.equal(E.left({ _tag: 'IdempotencyConflict', reason: 'in-progress' }));
    clock.advance(IN_PROGRESS_TIMEOUT_MS + 1);
    const later = await useCase.execute(input, 'key-4')();
    expect(later).to.deep.equal(
      E.right({ id: 'email-00000001', repeated: false, status: 'queued' }),
    );
  });
  describe('with attachments', () => {
    const pdf = Buffer.from('%PDF-1.7 the quarterly report\n'.repeat(40));
    const logo = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]);
    const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const withFiles = {
      ...input,
      html: '<img src="cid:logo@example.com">',
      attachments: [
        {
          filename: 'report.pdf',
          content: pdf.toString('base64'),
          content_type: 'application/pdf',
        },
        {
          filename: 'logo.png',
          content: logo.toString('base64'),
          content_type: 'image/png',
          content_id: 'logo@example.com',
        },
      ],
    };
    const stored = async (digest: string) => {
      const found = await files.store.get(digest)();
      return E.isRight(found) ? O.toUndefined(found.right) : 'store down';
    };

    it('stores each file and queues refs to them, never their bytes', async () => {
      const result = await useCase.execute(withFiles)();
      expect(result).to.deep.equal(
        E.right({ id: 'email-00000001', repeated: false, status: 'queued' }),
      );
      expect(queue.published).to.have.length(1);
      expect(queue.published[0]?.attachments).to.deep.equal([
        {
          filename: 'report.pdf',
          digest: sha256(pdf),
          size: pdf.length,
          contentType: 'application/pdf',
        },
        {
          filename: 'logo.png',
          digest: sha256(logo),
          size: logo.length,
          contentType: 'image/png',
          contentId: 'logo@example.com',
        },
      ]);
      expect(await stored(sha256(pdf))).to.deep.equal(new Uint8Array(pdf));
      expect(await stored(sha256(logo))).to.deep.equal(new Uint8Array(logo));
      const task = JSON.stringify(queue.published[0]);
      expect(task).not.to.contain(pdf.toString('base64').slice(0, 40));
      expect(task).not.to.contain('"content"');
      expect(await statusOf('email-00000001')).to.equal('queued');
    });

    it('answers StoreUnavailable while the attachment store is down, and keeps nothing', async () => {
      files.down = true;
      const result = await useCase.execute(withFiles)();
      expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
      expect(await statusOf('email-00000001')).to.equal(undefined);
      expect(queue.published).to.have.length(0);
      expect(events.events).to.have.length(0);
    });

    it('frees the idempotency key when the files could not be stored', async () => {
      files.down = true;
      expect(E.isLeft(await useCase.execute(withFiles, 'key-files')())).to.equal(true);
      files.down = false;
      const retried = await useCase.execute(withFiles, 'key-files')();
      expect(E.isRight(retried) && retried.right.repeated).to.equal(false);
      expect(queue.published).to.have.length(1);
    });

    describe('over the largest message', () => {
      const sizeOf = (request: unknown) => {
        const draft = parseEmailDraft(request, draftOptions(clock.now()));
        if (E.isLeft(draft)) expect.fail(JSON.stringify(draft.left.fields));
        return encodedSizeOf(draft.right);
      };

      it('answers MessageTooLarge, naming the size and the limit, and stores nothing', async () => {
        const size = sizeOf(withFiles);
        // Counted as base64, a third larger than the files, not as their own size.
        expect(size).to.be.greaterThan(((pdf.length + logo.length) * 4) / 3);
        const result = await build({ maxMessageBytes: size - 1 }).execute(withFiles, 'key-big')();
        expect(result).to.deep.equal(E.left({ _tag: 'MessageTooLarge', size, limit: size - 1 }));
        expect(await stored(sha256(pdf))).to.equal(undefined);
        expect(await statusOf('email-00000001')).to.equal(undefined);
        expect(queue.published).to.have.length(0);
        expect(events.events).to.have.length(0);
      });

      it('accepts a message of exactly the limit', async () => {
        const size = sizeOf(withFiles);
        const result = await build({ maxMessageBytes: size }).execute(withFiles)();
        expect(E.isRight(result)).to.equal(true);
      });

      it('refuses in prepare, before anything is stored, for a batch to check every email', () => {
        const prepared = build({ maxMessageBytes: 1000 }).prepare(withFiles);
        expect(E.isLeft(prepared) && prepared.left._tag).to.equal('MessageTooLarge');
      });
    });
  });

  describe('with send_at', () => {
    const sendAt = '2026-11-28T12:00:00.000Z';
    const later = { ...input, send_at: '2026-11-28T13:00:00+01:00' };
    const takeDue = async (at: string) => {
      const due = await held.store.takeDue(new Date(at), 60_000, 10)();
      return E.isRight(due) ? due.right : 'store down';
    };

    it('records it as scheduled, holds it until then, and does not queue it', async () => {
      const result = await useCase.execute(later)();
      expect(result).to.deep.equal(
        E.right({ id: 'email-00000001', repeated: false, status: 'scheduled' }),
      );
      expect(queue.published).to.have.length(0);
      expect(await statusOf('email-00000001')).to.equal('scheduled');
      expect(await takeDue('2026-11-28T11:59:59.999Z')).to.deep.equal([]);
      expect(await takeDue(sendAt)).to.deep.equal(['email-00000001']);
      const request = await emails.store.request('email-00000001' as EmailId)();
      expect(E.isRight(request) && O.toUndefined(request.right)?.sendAt).to.equal(sendAt);
    });

    it('announces EmailScheduled with its send time, and nothing else', async () => {
      await useCase.execute(later)();
      expect(events.events).to.deep.equal([
        {
          type: 'EmailScheduled',
          id: 'email-00000001',
          at: clock.now().toISOString(),
          to: ['Ada <ada@example.com>'],
          subject: 'Hello',
          sendAt,
        },
      ]);
    });

    it('answers StoreUnavailable (503) when it cannot be held, and forgets the record', async () => {
      held.down = true;
      const result = await useCase.execute(later)();
      expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
      expect(await statusOf('email-00000001')).to.equal(undefined);
      expect(queue.published).to.have.length(0);
      expect(events.events).to.have.length(0);
    });

    it('answers a repeated idempotency key with the same id, still scheduled, held once', async () => {
      const first = await useCase.execute(later, 'key-later')();
      const again = await useCase.execute({ ...later }, 'key-later')();
      expect(first).to.deep.equal(
        E.right({ id: 'email-00000001', repeated: false, status: 'scheduled' }),
      );
      expect(again).to.deep.equal(
        E.right({ id: 'email-00000001', repeated: true, status: 'scheduled' }),
      );
      expect(await takeDue(sendAt)).to.deep.equal(['email-00000001']);
      expect(events.events).to.have.length(1);
      expect(queue.published).to.have.length(0);
    });

    it('takes the same time in another offset as the same request', async () => {
      await useCase.execute(later, 'key-offset')();
      const again = await useCase.execute({ ...input, send_at: sendAt }, 'key-offset')();
      expect(E.isRight(again) && again.right).to.include({ id: 'email-00000001', repeated: true });
    });
  });

  it('takes the same key with fields in another order as a repeat, not a conflict', async () => {
    const first = {
      to: ['Ada <ada@example.com>', 'bob@example.com'],
      subject: 'Hello',
      text: 'Hi Ada',
      headers: { 'X-Campaign': 'spring', 'X-Run': '7' },
      metadata: { user: '42', plan: 'pro' },
      tags: ['welcome'],
    };
    const reordered = {
      tags: ['welcome'],
      metadata: { plan: 'pro', user: '42' },
      headers: { 'X-Run': '7', 'X-Campaign': 'spring' },
      text: 'Hi Ada',
      subject: 'Hello',
      to: ['Ada <ada@example.com>', 'bob@example.com'],
    };
    await useCase.execute(first, 'key-order')();
    const again = await useCase.execute(reordered, 'key-order')();
    expect(again).to.deep.equal(
      E.right({ id: 'email-00000001', repeated: true, status: 'queued' }),
    );
    expect(queue.published).to.have.length(1);
    // The order of the recipients is not the order of fields: it is what the email says.
    const swapped = await useCase.execute({ ...first, to: [...first.to].reverse() }, 'key-order')();
    expect(swapped).to.deep.equal(
      E.left({ _tag: 'IdempotencyConflict', reason: 'different-payload' }),
    );
  });
  describe('with a suppression list', () => {
    let list: { store: SuppressionList; down: boolean };
    let suppressing: RequestEmail;

    const suppress = async (...addresses: string[]) => {
      for (const address of addresses) {
        await list.store.add({ address, reason: 'bounce', createdAt: T0 })();
      }
    };
    const statusOfEmail = async (id: string) => {
      const found = await emails.store.get(id as EmailId)();
      return E.isRight(found) ? O.toUndefined(found.right) : undefined;
    };

    beforeEach(() => {
      list = switchable<SuppressionList>(new InMemorySuppressionList());
      suppressing = build({ suppressions: list.store, domainToAscii });
    });

    const three = {
      to: ['Ada <ada@example.com>', 'bob@example.com'],
      cc: ['carol@example.com'],
      bcc: ['dan@example.com'],
      subject: 'Hello',
      text: 'Hi all',
    };

    /** The first email's answer: queued, with `suppressed` left out. */
    const queuedLeavingOut = (...suppressed: string[]) =>
      E.right({ id: 'email-00000001', repeated: false, status: 'queued', suppressed });

    it('drops the suppressed recipients from to, cc and bcc, and sends to the rest', async () => {
      await suppress('bob@example.com', 'dan@example.com');
      expect(await suppressing.execute(three)()).to.deep.equal(
        queuedLeavingOut('bob@example.com', 'dan@example.com'),
      );
      expect(queue.published).to.have.length(1);
      const queued = queue.published[0];
      expect([queued?.to, queued?.cc, queued?.bcc]).to.deep.equal([
        ['Ada <ada@example.com>'],
        ['carol@example.com'],
        undefined,
      ]);
      expect(events.events).to.have.length(1);
      expect(events.events[0]).to.deep.include({
        type: 'EmailRequested',
        to: ['Ada <ada@example.com>'],
        suppressed: ['bob@example.com', 'dan@example.com'],
      });
      const status = await statusOfEmail('email-00000001');
      expect(status?.status).to.equal('queued');
      expect(status?.recipients).to.deep.equal([
        { address: 'Ada <ada@example.com>', status: 'queued' },
        { address: 'carol@example.com', status: 'queued' },
        { address: 'bob@example.com', status: 'suppressed' },
        { address: 'dan@example.com', status: 'suppressed' },
      ]);
      // The log keeps the request as it is sent: the worker reads it to send it again.
      const kept = await emails.store.request('email-00000001' as EmailId)();
      expect(E.isRight(kept) && O.toUndefined(kept.right)?.to).to.deep.equal([
        'Ada <ada@example.com>',
      ]);
    });

    it('refuses an email whose every To recipient is suppressed, though cc and bcc are not', async () => {
      await suppress('ada@example.com', 'bob@example.com');
      expect(await suppressing.execute(three)()).to.deep.equal(
        E.left({
          _tag: 'AllRecipientsSuppressed',
          suppressed: ['Ada <ada@example.com>', 'bob@example.com'],
        }),
      );
      expect(queue.published).to.deep.equal([]);
      expect(await statusOfEmail('email-00000001')).to.equal(undefined);
    });

    it('answers as before, without a suppressed list, when nobody is on the list', async () => {
      await suppress('zed@example.com');
      const result = await suppressing.execute(three)();
      expect(result).to.deep.equal(
        E.right({ id: 'email-00000001', repeated: false, status: 'queued' }),
      );
      expect(queue.published[0]?.bcc).to.deep.equal(['dan@example.com']);
      expect(events.events[0]).not.to.have.property('suppressed');
    });

    it('refuses an email whose every recipient is suppressed, and keeps nothing', async () => {
      await suppress('bob@example.com');
      const result = await suppressing.execute(
        { ...input, to: 'Bob <bob@example.com>' },
        'k-all',
      )();
      expect(result).to.deep.equal(
        E.left({ _tag: 'AllRecipientsSuppressed', suppressed: ['Bob <bob@example.com>'] }),
      );
      expect(queue.published).to.have.length(0);
      expect(events.events).to.have.length(0);
      expect(await statusOf('email-00000001')).to.equal(undefined);
      // The key was let go: once the address is off the list, the same request is accepted.
      await list.store.remove('bob@example.com')();
      const retried = await suppressing.execute(
        { ...input, to: 'Bob <bob@example.com>' },
        'k-all',
      )();
      expect(E.isRight(retried) && retried.right.repeated).to.equal(false);
      expect(queue.published).to.have.length(1);
    });

    it('finds an internationalised domain in either form and in any case, the local part exactly', async () => {
      await suppress('info@xn--bcher-kva.de', 'sales@bücher.de');
      for (const to of ['info@bücher.de', 'Info Desk <info@BÜCHER.DE>', 'info@XN--BCHER-KVA.de']) {
        const result = await suppressing.execute({ ...input, to })();
        expect(E.isLeft(result) && result.left._tag, to).to.equal('AllRecipientsSuppressed');
      }
      // Keys are made by the caller: an entry typed with a U-label is never found.
      const sales = await suppressing.execute({ ...input, to: 'sales@bücher.de' })();
      expect(E.isRight(sales)).to.equal(true);
      // RFC 5321 lets the receiving host tell the local part's case apart.
      const other = await suppressing.execute({ ...input, to: 'INFO@bücher.de' })();
      expect(E.isRight(other) && other.right.suppressed).to.equal(undefined);
    });

    it('answers a repeated key as the first time, the dropped recipients included', async () => {
      await suppress('bob@example.com');
      const first = await suppressing.execute(three, 'k-repeat')();
      // What the list says now does not change what was accepted then.
      await list.store.remove('bob@example.com')();
      await suppress('carol@example.com');
      const again = await suppressing.execute(three, 'k-repeat')();
      expect(first).to.deep.equal(
        E.right({
          id: 'email-00000001',
          repeated: false,
          status: 'queued',
          suppressed: ['bob@example.com'],
        }),
      );
      expect(again).to.deep.equal(
        E.right({
          id: 'email-00000001',
          repeated: true,
          status: 'queued',
          suppressed: ['bob@example.com'],
        }),
      );
      expect(queue.published).to.have.length(1);
    });

    it('records a taken-over key once: the same recipients, one queued change', async () => {
      await suppress('bob@example.com');
      const original = keys.store.complete.bind(keys.store);
      keys.store.complete = () => TE.left(storeUnavailable('the database is not reachable'));
      await suppressing.execute(three, 'k-takeover')();
      keys.store.complete = original;
      clock.advance(IN_PROGRESS_TIMEOUT_MS + 1);
      const later = await suppressing.execute(three, 'k-takeover')();
      expect(E.isRight(later) && later.right).to.deep.include({
        id: 'email-00000001',
        repeated: false,
        suppressed: ['bob@example.com'],
      });
      const status = await statusOfEmail('email-00000001');
      expect(status?.history.map((c) => c.status)).to.deep.equal(['queued']);
      expect(status?.recipients.map((r) => r.status)).to.deep.equal([
        'queued',
        'queued',
        'queued',
        'suppressed',
      ]);
    });

    it('answers StoreUnavailable while the list does not answer, and keeps nothing', async () => {
      list.down = true;
      const result = await suppressing.execute(input, 'k-down')();
      expect(E.isLeft(result) && result.left._tag).to.equal('StoreUnavailable');
      expect(queue.published).to.have.length(0);
      expect(events.events).to.have.length(0);
      expect(await statusOf('email-00000001')).to.equal(undefined);
      list.down = false;
      const retried = await suppressing.execute(input, 'k-down')();
      expect(E.isRight(retried) && retried.right.repeated).to.equal(false);
    });

    it('keeps the dropped recipients of a scheduled email as suppressed while it waits', async () => {
      await suppress('bob@example.com');
      const sendAt = new Date(clock.now().getTime() + 3_600_000).toISOString();
      const result = await suppressing.execute({ ...three, cc: [], bcc: [], send_at: sendAt })();
      expect(E.isRight(result) && result.right).to.deep.include({
        status: 'scheduled',
        suppressed: ['bob@example.com'],
      });
      const status = await statusOfEmail('email-00000001');
      expect(status?.status).to.equal('scheduled');
      expect(status?.recipients).to.deep.equal([
        { address: 'Ada <ada@example.com>', status: 'scheduled' },
        { address: 'bob@example.com', status: 'suppressed' },
      ]);
      expect(queue.published).to.have.length(0);
    });

    it('records a batch email whose every recipient is suppressed as suppressed, never queued', async () => {
      await suppress('bob@example.com');
      const draft = suppressing.prepare({ ...input, to: 'bob@example.com' });
      if (E.isLeft(draft)) return expect.fail('the draft is valid');
      const result = await suppressing.accept(draft.right, 'batch-1-0' as EmailId)();
      expect(result).to.deep.equal(
        E.right({
          id: 'batch-1-0',
          repeated: false,
          status: 'suppressed',
          suppressed: ['bob@example.com'],
        }),
      );
      expect(queue.published).to.have.length(0);
      expect(events.events.map((e) => e.type)).to.deep.equal(['EmailRequested', 'EmailSuppressed']);
      const status = await statusOfEmail('batch-1-0');
      expect(status?.status).to.equal('suppressed');
      expect(status?.recipients).to.deep.equal([
        { address: 'bob@example.com', status: 'suppressed' },
      ]);
    });
  });
});
