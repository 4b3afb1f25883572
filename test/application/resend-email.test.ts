import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { InMemoryAttachmentStore } from '../../src/adapters/memory/in-memory-attachment-store.js';
import { InMemoryScheduledEmails } from '../../src/adapters/memory/in-memory-scheduled-emails.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../src/adapters/memory/in-memory-stores.js';
import { InMemorySuppressionList } from '../../src/adapters/memory/in-memory-suppression-list.js';
import type { Accepted, RequestEmailOptions } from '../../src/application/request-email.js';
import { RequestEmail } from '../../src/application/request-email.js';
import { ResendEmail } from '../../src/application/resend-email.js';
import { mailboxKey } from '../../src/domain/email-address.js';
import type { EmailId, EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { anEvent } from '../support/builders.js';
import {
  RecordingEvents,
  RecordingLogger,
  RecordingQueue,
  fixedClock,
  sequentialIds,
} from '../support/fakes.js';

const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001', 'hex');

/** An email with a copy, a file, tags and a header: everything a resend must carry over. */
const input = {
  from: 'Shop <shop@example.com>',
  to: ['Ada <ada@example.com>', 'bob@example.com'],
  cc: 'carol@example.com',
  reply_to: 'help@example.com',
  subject: 'Your receipt',
  text: 'Thanks for your order.',
  html: '<p>Thanks for your <img src="cid:logo"> order.</p>',
  headers: { 'X-Campaign': 'autumn' },
  tags: ['receipt'],
  metadata: { order: '1234' },
  attachments: [
    {
      filename: 'logo.png',
      content: PNG.toString('base64'),
      content_type: 'image/png',
      content_id: 'logo',
    },
    { filename: 'receipt.txt', content: Buffer.from('total: 12').toString('base64') },
  ],
};

describe('ResendEmail', () => {
  let emails: InMemoryEmailLog;
  let queue: RecordingQueue;
  let events: RecordingEvents;
  let files: InMemoryAttachmentStore;
  let suppressions: InMemorySuppressionList;
  let scheduled: InMemoryScheduledEmails;
  let log: RecordingLogger;
  const clock = fixedClock('2026-11-28T10:00:00.000Z');

  const requester = (options: RequestEmailOptions = {}) =>
    new RequestEmail(
      queue,
      emails,
      events,
      new InMemoryIdempotencyStore(),
      sequentialIds('first'),
      clock,
      log,
      {
        allowedFromDomains: ['example.com'],
        attachments: files,
        suppressions,
        scheduled,
        ...options,
      },
    );

  const resender = (options: RequestEmailOptions = {}) =>
    new ResendEmail(
      requester(options),
      emails,
      files,
      new InMemoryIdempotencyStore(),
      events,
      sequentialIds('again'),
      clock,
      log,
    );

  beforeEach(() => {
    emails = new InMemoryEmailLog();
    queue = new RecordingQueue();
    events = new RecordingEvents();
    files = new InMemoryAttachmentStore(emails, clock);
    suppressions = new InMemorySuppressionList();
    scheduled = new InMemoryScheduledEmails();
    log = new RecordingLogger();
  });

  const accepted = async (body: object = input): Promise<Accepted> => {
    const result = await requester().execute(body)();
    if (E.isLeft(result)) return expect.fail(`not accepted: ${JSON.stringify(result.left)}`);
    return result.right;
  };

  const requestOf = async (id: EmailId): Promise<EmailRequest> => {
    const found = await emails.request(id)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail(`no request for ${id}`);
    return found.right.value;
  };

  const statusOf = async (id: EmailId): Promise<EmailStatus> => {
    const found = await emails.get(id)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail(`no status for ${id}`);
    return found.right.value;
  };

  /** The email as a worker leaves it after a permanent refusal. */
  const failed = async (body: object = input): Promise<EmailRequest> => {
    const { id } = await accepted(body);
    const request = await requestOf(id);
    await emails.apply(anEvent.failed(request, { at: '2026-11-28T10:00:01.000Z' }))();
    return request;
  };

  it('sends a failed email again as a new email with the same request, linked both ways', async () => {
    const old = await failed();
    queue.published.length = 0;
    const result = await resender().execute(old.id)();
    expect(result).to.deep.equal(E.right({ id: 'again-00000001', repeated: false }));

    const fresh = await requestOf('again-00000001' as EmailId);
    const { id: _a, requestedAt: _b, ...same } = old;
    const { id: _c, requestedAt: _d, ...copied } = fresh;
    expect(copied).to.deep.equal(same);
    expect(queue.published.map((r) => r.id)).to.deep.equal(['again-00000001']);
    // The same files, by digest, stored for the new email too.
    expect(fresh.attachments?.map((a) => a.filename)).to.deep.equal(['logo.png', 'receipt.txt']);
    for (const ref of fresh.attachments ?? []) {
      const bytes = await files.get(ref.digest)();
      expect(E.isRight(bytes) && O.isSome(bytes.right)).to.equal(true);
    }

    const now = await statusOf(fresh.id);
    expect(now.status).to.equal('queued');
    expect(now.resendOf).to.equal(old.id);
    expect(now.tags).to.deep.equal(['receipt']);
    const before = await statusOf(old.id);
    expect(before.status).to.equal('failed');
    expect(before.resentAs).to.deep.equal(['again-00000001']);
    expect(before.history.find((c) => c.status === 'resent')).to.include({
      status: 'resent',
      source: 'api',
      detail: 'as again-00000001',
    });
    expect(events.events.slice(-2).map((e) => e.type)).to.deep.equal([
      'EmailRequested',
      'EmailResent',
    ]);
  });

  it('answers the same new email to the same form posted twice, and sends it once', async () => {
    const old = await failed();
    queue.published.length = 0;
    const useCase = resender();
    const first = await useCase.execute(old.id, 'nonce-aaaaaaaaaaaaaaaaaaaa')();
    const second = await useCase.execute(old.id, 'nonce-aaaaaaaaaaaaaaaaaaaa')();
    expect(first).to.deep.equal(E.right({ id: 'again-00000001', repeated: false }));
    expect(second).to.deep.equal(E.right({ id: 'again-00000001', repeated: true }));
    expect(queue.published).to.have.length(1);
    expect((await statusOf(old.id)).resentAs).to.deep.equal(['again-00000001']);

    // Another form is another resend, on purpose.
    const third = await useCase.execute(old.id, 'nonce-bbbbbbbbbbbbbbbbbbbb')();
    expect(E.isRight(third) && third.right.id).to.equal('again-00000003');
    expect((await statusOf(old.id)).resentAs).to.deep.equal(['again-00000001', 'again-00000003']);
  });

  it('drops the recipients on the suppression list now, and refuses when nobody is left', async () => {
    const old = await failed();
    await suppressions.add({
      address: mailboxKey(old.to[1]!),
      reason: 'bounce',
      createdAt: new Date(),
    })();
    const partly = await resender().execute(old.id)();
    if (E.isLeft(partly)) return expect.fail(JSON.stringify(partly.left));
    expect(partly.right.suppressed).to.deep.equal(['bob@example.com']);
    const fresh = await statusOf(partly.right.id);
    expect(fresh.recipients.map((r) => [r.address, r.status])).to.deep.equal([
      ['Ada <ada@example.com>', 'queued'],
      ['carol@example.com', 'queued'],
      ['bob@example.com', 'suppressed'],
    ]);

    for (const address of ['ada@example.com', 'carol@example.com']) {
      await suppressions.add({ address, reason: 'manual', createdAt: new Date() })();
    }
    queue.published.length = 0;
    const none = await resender().execute(old.id)();
    expect(none).to.deep.equal(
      E.left({
        _tag: 'AllRecipientsSuppressed',
        suppressed: ['Ada <ada@example.com>', 'bob@example.com', 'carol@example.com'],
      }),
    );
    expect(queue.published).to.deep.equal([]);
    expect((await statusOf(old.id)).resentAs).to.have.length(1);
  });

  it('resends a cancelled scheduled email now, not at its old time', async () => {
    const { id } = await accepted({ ...input, send_at: '2026-11-29T09:00:00Z' });
    await emails.apply({
      type: 'EmailCancelled',
      id,
      at: '2026-11-28T10:00:01.000Z',
      to: (await requestOf(id)).to,
      subject: 'Your receipt',
    })();
    const result = await resender().execute(id)();
    if (E.isLeft(result)) return expect.fail(JSON.stringify(result.left));
    expect((await requestOf(result.right.id)).sendAt).to.equal(undefined);
    expect((await statusOf(result.right.id)).status).to.equal('queued');
  });

  it('refuses an email on its way or delivered, an unknown one, and one whose request is gone', async () => {
    const { id } = await accepted();
    expect(await resender().execute(id)()).to.deep.equal(
      E.left({ _tag: 'NotResendable', status: 'queued' }),
    );
    expect(await resender().execute('nobody-knows-it' as EmailId)()).to.deep.equal(
      E.left({ _tag: 'NotFound' }),
    );
    const request = await requestOf(id);
    const orphan = { ...request, id: 'orphan-0001' as EmailId };
    await emails.apply(anEvent.failed(orphan))();
    expect(await resender().execute(orphan.id)()).to.deep.equal(E.left({ _tag: 'RequestGone' }));
  });

  it("refuses a request today's rules no longer allow, and sends nothing", async () => {
    const old = await failed();
    queue.published.length = 0;
    const result = await resender({ maxMessageBytes: 65_536, allowedFromDomains: [] }).execute(
      old.id,
    )();
    if (E.isRight(result)) return expect.fail('resent');
    expect(result.left._tag).to.equal('NoLongerValid');
    expect(JSON.stringify(result.left)).to.contain('which this service may not send from');
    expect(queue.published).to.deep.equal([]);
  });
});
