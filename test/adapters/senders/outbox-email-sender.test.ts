import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { simpleParser } from 'mailparser';
import { buildRawMessage } from '../../../src/adapters/mime/mime-message.js';
import { OutboxEmailSender } from '../../../src/adapters/outbox/outbox-email-sender.js';
import {
  FakeAttachments,
  emailSenderContract,
  withFiles,
} from '../../contracts/email-sender.contract.js';
import { aRequest } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { parseRaw } from '../../support/mail-receivers.js';
import { FROM } from './support.js';

async function emlFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => []);
  return names.filter((n) => n.endsWith('.eml') && !n.startsWith('.'));
}

emailSenderContract(
  'OutboxEmailSender',
  async () => {
    const base = await mkdtemp(join(tmpdir(), 'outbox-contract-'));
    const dir = join(base, 'outbox');
    const sender = new OutboxEmailSender({
      dir,
      from: FROM,
      log: recordingLogger(),
      attachments: new FakeAttachments(),
    });
    // A regular file where the directory should be: mkdir fails (ENOTDIR/EEXIST) even for root,
    // which a chmod would not achieve.
    const breakDir = async (): Promise<void> => {
      await rm(dir, { recursive: true, force: true });
      await writeFile(dir, 'not a directory');
    };
    return {
      sender,
      from: FROM,
      failNext: async (kind) => {
        if (kind === 'transient') await breakDir();
      },
      stopReceiver: breakDir,
      received: async () => {
        const files = (await stat(dir).catch(() => undefined))?.isDirectory()
          ? await emlFiles(dir)
          : [];
        return Promise.all(files.map(async (f) => parseRaw(await readFile(join(dir, f)))));
      },
      close: () => rm(base, { recursive: true, force: true }),
    };
  },
  {
    permanent:
      'no file-system error is the email’s fault, so the outbox answers transient to all of them',
    timeout: 'a local write has no timeout; a hung disk is outside what the sender bounds',
  },
);

describe('OutboxEmailSender', () => {
  let base: string;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'outbox-'));
  });
  afterEach(() => rm(base, { recursive: true, force: true }));

  it('writes {dir}/{id}.eml, creating the directory, and names the path only in the hint', async () => {
    const dir = join(base, 'a', 'b');
    const request = aRequest();
    const outcome = await new OutboxEmailSender({ dir, from: FROM, log: recordingLogger() }).send(
      request,
    )();
    expect(outcome).to.deep.equal({
      _tag: 'Sent',
      providerId: `<${request.id}@sender.example.org>`,
      hint: `written to ${join(dir, `${request.id}.eml`)}`,
    });
    expect(await readdir(dir)).to.deep.equal([`${request.id}.eml`]);
  });

  it('overwrites the same file on a second send of the same id, leaving no temp file', async () => {
    const sender = new OutboxEmailSender({ dir: base, from: FROM, log: recordingLogger() });
    const request = aRequest();
    await sender.send(request)();
    const outcome = await sender.send(request)();
    expect(outcome._tag).to.equal('Sent');
    expect(await readdir(base)).to.deep.equal([`${request.id}.eml`]);
    const mail = await simpleParser(await readFile(join(base, `${request.id}.eml`)));
    expect(mail.headers.get('x-email-id')).to.equal(request.id);
  });

  it('writes text alone as text/plain and text with html as multipart/alternative', async () => {
    const sender = new OutboxEmailSender({ dir: base, from: FROM, log: recordingLogger() });
    const plain = aRequest({ text: 'only text' });
    const both = aRequest({ text: 'text', html: '<p>html</p>' });
    await sender.send(plain)();
    await sender.send(both)();
    const head = async (id: string): Promise<string> =>
      (await readFile(join(base, `${id}.eml`), 'utf8')).split('\r\n\r\n')[0] ?? '';
    expect(await head(plain.id)).to.match(/^Content-Type: text\/plain/m);
    expect(await head(both.id)).to.match(/^Content-Type: multipart\/alternative/m);
    expect(await head(both.id)).to.match(/^Date: /m);
  });

  it('writes exactly the octets buildRawMessage builds, attachments included', async () => {
    const store = new FakeAttachments();
    const sender = new OutboxEmailSender({
      dir: base,
      from: FROM,
      log: recordingLogger(),
      attachments: store,
    });
    const file = Uint8Array.from({ length: 256 }, (_, i) => i);
    const request = withFiles(aRequest({ text: 'one\ntwo\rthree' }), store, [
      { filename: 'bytes.bin', content: file, contentType: 'application/octet-stream' },
    ]);
    expect((await sender.send(request)())._tag).to.equal('Sent');
    const written = await readFile(join(base, `${request.id}.eml`));
    expect(written.equals(await buildRawMessage(request, FROM, new Map(store.files)))).to.equal(
      true,
    );
    const mail = await simpleParser(written);
    expect(Buffer.from(mail.attachments[0]?.content ?? []).equals(file)).to.equal(true);
  });

  it('answers transient, writing nothing, when an attachment cannot be loaded', async () => {
    const store = new FakeAttachments();
    const file = { filename: 'a.txt', content: new TextEncoder().encode('a file') };
    const request = withFiles(aRequest(), store, [file]);
    const open = (attachments?: FakeAttachments) =>
      new OutboxEmailSender({
        dir: base,
        from: FROM,
        log: recordingLogger(),
        ...(attachments ? { attachments } : {}),
      });
    const missing = await open(new FakeAttachments()).send(request)();
    const unwired = await open().send(request)();
    store.down = true;
    const down = await open(store).send(request)();
    for (const [outcome, hint] of [
      [missing, /is not in the attachment store/],
      [unwired, /no attachment store/],
      [down, /attachment store is unavailable/],
    ] as const) {
      expect(outcome).to.deep.include({
        _tag: 'Transient',
        reason: 'an attachment could not be loaded',
      });
      expect(outcome.hint).to.match(hint);
    }
    expect(await emlFiles(base)).to.deep.equal([]);
  });

  it('answers transient and logs what to fix when the directory cannot be written', async () => {
    const dir = join(base, 'file');
    await writeFile(dir, 'x');
    const log = recordingLogger();
    const outcome = await new OutboxEmailSender({ dir, from: FROM, log }).send(aRequest())();
    expect(outcome._tag).to.equal('Transient');
    expect(outcome._tag === 'Transient' && outcome.reason).to.match(
      /^could not write the message to the outbox \((EEXIST|ENOTDIR)\)$/,
    );
    // The folder and what to check are the operator's: in the hint and the log.
    expect(outcome.hint).to.include(dir).and.include('OUTBOX_DIR');
    expect(log.lines.map((l) => l.level)).to.deep.equal(['error']);
    expect(log.lines[0]?.message).to.include('OUTBOX_DIR').and.include(dir);
  });
});
