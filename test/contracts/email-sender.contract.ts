// One suite for every EmailSender adapter: what the receiving side gets, and how each failure of
// the receiver comes back as an outcome.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttachmentStore } from '../../src/application/ports/attachment-store.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { EmailSender } from '../../src/application/ports/email-sender.js';
import type { DeliveryOutcome } from '../../src/domain/delivery.js';
import type { EmailAddress } from '../../src/domain/email-address.js';
import { addressParts, mailbox } from '../../src/domain/email-address.js';
import { EmailRequest, parseEmailDraft } from '../../src/domain/email-request.js';
import { aRequest, draftOptions } from '../support/builders.js';
import type { ReceivedEmail } from '../support/mail-receivers.js';

export type FailureKind = 'transient' | 'permanent' | 'timeout';

/**
 * The AttachmentStore the senders that load files are built with in these suites: bytes by
 * their SHA-256, as the real stores keep them, and a switch that makes every read fail.
 */
export class FakeAttachments implements AttachmentStore {
  readonly files = new Map<string, Uint8Array>();
  down = false;

  /** Keeps `content` and answers its digest, the name a request's AttachmentRef gives it. */
  add(content: Uint8Array): string {
    const digest = createHash('sha256').update(content).digest('hex');
    this.files.set(digest, Uint8Array.from(content));
    return digest;
  }

  put(_id: unknown, content: Uint8Array) {
    return TE.right({ digest: this.add(content), size: content.byteLength });
  }

  get(digest: string) {
    return this.down
      ? TE.left(storeUnavailable('the attachment store is down'))
      : TE.right(O.fromNullable(this.files.get(digest)));
  }

  purgeOrphans() {
    return TE.right(0);
  }
}

export interface AFile {
  readonly filename: string;
  readonly content: Uint8Array;
  readonly contentType?: string;
  readonly contentId?: string;
}

/** `request` with `files` attached: each kept in `store`, the request carrying its reference. */
export function withFiles(
  request: EmailRequest,
  store: FakeAttachments,
  files: readonly AFile[],
): EmailRequest {
  const attachments = files.map(({ content, ...file }) => ({
    ...file,
    digest: store.add(content),
    size: content.byteLength,
  }));
  const decoded = EmailRequest.decode({ ...request, attachments });
  if (E.isLeft(decoded)) throw new Error('withFiles: the codec refuses these attachments');
  return decoded.right;
}

export interface SenderFixture {
  readonly sender: EmailSender;
  readonly from: EmailAddress;
  received(): Promise<ReceivedEmail[]>;
  /** Makes the receiver fail the next send this way. */
  failNext(kind: FailureKind): Promise<void>;
  /** The sender's time bound, for the 'timeout' case. */
  readonly timeoutMs?: number;
  /** Takes the receiver away entirely (server down, directory gone). */
  stopReceiver(): Promise<void>;
  close(): Promise<void>;
}

const SLACK_MS = 2000;
const lf = (s: string | undefined): string => (s ?? '').replace(/\r\n/g, '\n').trimEnd();

/**
 * An outcome's reason (or a send's provider id) is shown on the email's page: no configuration
 * variable, IP address, host and port, URL, file path or stack frame (see `DeliveryOutcome`).
 */
const NOT_PUBLIC =
  /MAILGUN_|SMTP_URL|OUTBOX_DIR|\d{1,3}(?:\.\d{1,3}){3}|localhost|:\/\/|[a-z]:\d{2,5}\b|(?:^|[\s('"=:])\/\w|\.js:|\n\s+at /i;
const expectPublic = (o: DeliveryOutcome): void => {
  expect(o._tag === 'Sent' ? o.providerId : o.reason, 'what the page shows').not.to.match(
    NOT_PUBLIC,
  );
};

/** One suite, run against every EmailSender adapter (STYLE.md "one contract suite per port"). */
export function emailSenderContract(
  name: string,
  open: () => Promise<SenderFixture>,
  /** Failure kinds this adapter cannot produce, each with the honest reason why. */
  cannot: Partial<Record<FailureKind, string>> = {},
): void {
  describe(`${name} honours the EmailSender contract`, function () {
    let fixture: SenderFixture;
    beforeEach(async () => {
      fixture = await open();
    });
    afterEach(async () => {
      await fixture.close();
    });
    const send = (request = aRequest()): Promise<DeliveryOutcome> => fixture.sender.send(request)();

    it('sends, and the receiver can trace the email by its id', async () => {
      const request = aRequest();
      const outcome = await send(request);
      expect(outcome._tag).to.equal('Sent');
      expectPublic(outcome);
      const [got, ...more] = await fixture.received();
      expect(more).to.have.length(0);
      expect(got?.emailId).to.equal(request.id);
      expect(got?.messageId).to.equal(`<${request.id}@${addressParts(fixture.from).domain}>`);
    });

    it('delivers headers and body exactly as the receiver should see them', async () => {
      const subject =
        'Grüße, 你好 ✉: a subject long enough that it must be folded into encoded words';
      const request = aRequest({
        to: [
          'Ada Lovelace <ada@example.org>',
          '"Turing, Alan" <alan@example.org>',
          'grace@example.org',
        ],
        subject,
        text: 'Line one\nLíne twö ✓\n\n-- \nThe sender',
        html: '<p>Hello <b>wörld</b> ✓</p>',
      });
      expect((await send(request))._tag).to.equal('Sent');
      const [got] = await fixture.received();
      const from = addressParts(fixture.from);
      expect(got?.from).to.deep.equal({
        name: from.displayName ?? '',
        address: mailbox(fixture.from),
      });
      expect(got?.to).to.deep.equal([
        { name: 'Ada Lovelace', address: 'ada@example.org' },
        { name: 'Turing, Alan', address: 'alan@example.org' },
        { name: '', address: 'grace@example.org' },
      ]);
      expect(got?.recipients).to.deep.equal([
        'ada@example.org',
        'alan@example.org',
        'grace@example.org',
      ]);
      expect(got?.subject).to.equal(subject);
      expect(lf(got?.text)).to.equal('Line one\nLíne twö ✓\n\n-- \nThe sender');
      expect(lf(got?.html)).to.equal('<p>Hello <b>wörld</b> ✓</p>');
    });

    it('cannot be handed CR or LF in a recipient or the subject; look-alikes reach only their mailboxes', async () => {
      // A sender takes only an EmailRequest, and neither way of making one lets CR or LF in: the
      // parser (the API, the form) and the codec (a task read off the queue) both refuse.
      const valid = aRequest();
      const injections: Record<string, unknown>[] = [
        { to: ['ada@example.org\r\nBcc: evil@evil.example'] },
        { to: ['Ada <ada@example.org>\nBcc: evil@evil.example'] },
        { to: ['ada@example.org\rBcc: evil@evil.example'] },
        { to: ['"Ada\r\nBcc: evil@evil.example" <ada@example.org>'] },
        { subject: 'Hi\r\nBcc: evil@evil.example' },
        { subject: 'Hi\nBcc: evil@evil.example' },
        { subject: 'Hi\rBcc: evil@evil.example' },
        // Control characters other than CR and LF (NEL, U+0085, is one) are refused as well, and
        // so are the Unicode line separators in an address.
        { to: ['"Trudy\u0085Bcc: evil@evil.example" <ok3@example.org>'] },
        { to: ['"Trudy\u2028Bcc: evil@evil.example" <ok3@example.org>'] },
        { subject: 'Hi\u0085X-Injected: yes' },
        { subject: 'Hi\u0000there' },
      ];
      for (const fields of injections) {
        const draft = parseEmailDraft(
          {
            to: 'ada@example.org',
            subject: 'Hi',
            text: 'x',
            ...fields,
          },
          draftOptions(),
        );
        expect(E.isLeft(draft), `parsed ${JSON.stringify(fields)}`).to.equal(true);
        const decoded = EmailRequest.decode({ ...valid, ...fields });
        expect(E.isLeft(decoded), `decoded ${JSON.stringify(fields)}`).to.equal(true);
      }

      // What does get through: header syntax kept inside one quoted display name, and the
      // Unicode line separator (U+2028, not a control character) in the subject. The sender must
      // carry each as text of its own field.
      const request = aRequest({
        to: [
          '"Eve, Bcc: evil@evil.example" <ok@example.org>',
          '"Mallory \\"x\\"; Cc: evil@evil.example" <ok2@example.org>',
        ],
        subject: 'Hi\u2028Bcc: evil@evil.example\u2029X-Injected: yes',
      });
      expect((await send(request))._tag).to.equal('Sent');
      const all = await fixture.received();
      expect(all).to.have.length(1);
      const [got] = all;
      expect(got?.recipients).to.deep.equal(['ok@example.org', 'ok2@example.org']);
      expect(got?.to).to.deep.equal([
        { name: 'Eve, Bcc: evil@evil.example', address: 'ok@example.org' },
        { name: 'Mallory "x"; Cc: evil@evil.example', address: 'ok2@example.org' },
      ]);
      expect(got?.subject).to.equal(request.subject);
      for (const header of ['bcc', 'cc', 'x-injected']) {
        expect(got?.headerNames, header).to.not.include(header);
      }
    });

    it('carries header-like text as content, never as a header or a recipient', async () => {
      const request = aRequest({
        to: '"Bcc: evil@evil.example" <ok@example.org>',
        subject: 'Re: Bcc: evil@evil.example',
        text: 'Hello\r\nBcc: evil@evil.example\r\nX-Injected: yes\r\n\r\nTo: evil@evil.example',
        html: '<p>Cc: evil@evil.example</p>',
      });
      expect((await send(request))._tag).to.equal('Sent');
      const all = await fixture.received();
      expect(all).to.have.length(1);
      const [got] = all;
      expect(got?.recipients).to.deep.equal(['ok@example.org']);
      expect(got?.to).to.deep.equal([
        { name: 'Bcc: evil@evil.example', address: 'ok@example.org' },
      ]);
      expect(got?.headerNames).to.not.include('bcc');
      expect(got?.headerNames).to.not.include('cc');
      expect(got?.headerNames).to.not.include('x-injected');
      expect(got?.subject).to.equal('Re: Bcc: evil@evil.example');
      expect(lf(got?.text)).to.include('Bcc: evil@evil.example\nX-Injected: yes');
    });

    const failing = (kind: FailureKind, title: string, check: (o: DeliveryOutcome) => void) => {
      // A kind the adapter cannot produce is not registered at all (a skip would read as a
      // missing service in CI); the reason stays next to the adapter's fixture.
      if (cannot[kind]) return;
      it(title, async function () {
        await fixture.failNext(kind);
        const started = Date.now();
        const outcome = await send();
        check(outcome);
        expectPublic(outcome);
        if (kind === 'timeout') {
          expect(Date.now() - started).to.be.below((fixture.timeoutMs ?? 0) + SLACK_MS);
        }
        expect(await fixture.received()).to.have.length(0);
      });
    };

    failing('transient', 'answers transient when the receiver fails for now', (o) =>
      expect(o._tag).to.equal('Transient'),
    );
    failing('permanent', 'answers permanent when the receiver refuses the email', (o) =>
      expect(o._tag).to.equal('Permanent'),
    );
    failing('timeout', 'answers transient, within its time bound, when the receiver hangs', (o) => {
      expect(o._tag).to.equal('Transient');
      expect(o._tag === 'Transient' ? o.reason : '').to.match(/timed out/);
    });

    it('never rejects: a receiver that is gone is a transient outcome', async () => {
      await fixture.stopReceiver();
      const outcome = await send();
      expect(outcome._tag).to.equal('Transient');
      // Where the receiver was (an address, a folder) is the operator's to know, not the page's.
      expectPublic(outcome);
    });

    it('sends concurrently without mixing emails up', async () => {
      const requests = Array.from({ length: 6 }, (_, i) => aRequest({ subject: `Email ${i}` }));
      const outcomes = await Promise.all(requests.map((r) => send(r)));
      expect(outcomes.map((o) => o._tag)).to.deep.equal(requests.map(() => 'Sent'));
      const got = await fixture.received();
      const byId = new Map(got.map((g) => [g.emailId, g.subject]));
      expect(byId).to.deep.equal(new Map(requests.map((r) => [r.id, r.subject])));
    });
  });
}
