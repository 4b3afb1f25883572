// One email with every field the API takes, sent over real HTTP to the Mailgun stand-in, and what
// the stand-in refuses the way Mailgun does (tried with hand-made forms: our API never sends them).
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { createHash } from 'node:crypto';
import { domainToAscii } from '../../../src/adapters/idna/idna.js';
import { MailgunEmailSender } from '../../../src/adapters/mailgun/mailgun-email-sender.js';
import { textAlternative } from '../../../src/adapters/mime/text-alternative.js';
import type { AttachmentStore } from '../../../src/application/ports/attachment-store.js';
import type { AttachmentRef, EmailRequest } from '../../../src/domain/email-request.js';
import { parseEmailDraft, toEmailRequest } from '../../../src/domain/email-request.js';
import type { MailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { anId, draftOptions, T0 } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { FROM, MAILGUN_DOMAIN, MAILGUN_KEY } from './support.js';

/** The port's semantics in memory: content-addressed by SHA-256, the same bytes one entry. */
function memoryAttachments(): AttachmentStore & { readonly bytes: Map<string, Uint8Array> } {
  const bytes = new Map<string, Uint8Array>();
  return {
    bytes,
    put: (_id, content) => {
      const digest = createHash('sha256').update(content).digest('hex');
      bytes.set(digest, content);
      return TE.right({ digest, size: content.length });
    },
    get: (digest) => TE.right(O.fromNullable(bytes.get(digest))),
    purgeOrphans: () => TE.right(0),
  };
}

interface FileSpec {
  readonly filename: string;
  readonly bytes: Buffer;
  readonly contentType?: string;
  readonly contentId?: string;
}

/**
 * A request made as the API makes one: the draft parsed, its files put in the store. `files` are
 * added as they are, bytes given directly (too large to go through base64 in a test).
 */
async function aFullRequest(
  input: Record<string, unknown>,
  store: AttachmentStore,
  files: readonly FileSpec[] = [],
) {
  const draft = parseEmailDraft(input, { ...draftOptions(), domainToAscii });
  if (E.isLeft(draft)) throw new Error(`the parser refuses ${JSON.stringify(draft.left.fields)}`);
  const id = anId('full');
  const refs: AttachmentRef[] = [];
  const given: FileSpec[] = (draft.right.attachments ?? []).map(
    ({ content, size: _size, ...f }) => ({ ...f, bytes: Buffer.from(content, 'base64') }),
  );
  for (const file of [...given, ...files]) {
    const stored = await store.put(id, file.bytes)();
    if (E.isLeft(stored)) throw new Error('the in-memory store failed');
    refs.push({
      filename: file.filename,
      digest: stored.right.digest,
      size: stored.right.size,
      ...(file.contentType !== undefined ? { contentType: file.contentType } : {}),
      ...(file.contentId !== undefined ? { contentId: file.contentId } : {}),
    });
  }
  return toEmailRequest(draft.right, id, T0, refs);
}

const KEY_HEADER = `Basic ${Buffer.from(`api:${MAILGUN_KEY}`).toString('base64')}`;

// Every byte value once: an encoding that mangles any of them (a charset, a line-ending rule)
// cannot give the same bytes back.
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
// The smallest PNG: the signature, IHDR for 1x1, IDAT and IEND (its CRCs are not checked here).
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f5e3b40000000049454e44ae426082',
  'hex',
);

describe('MailgunEmailSender sends every field of an email to the Mailgun stand-in', () => {
  let standIn: MailgunStandIn;
  let sender: MailgunEmailSender;
  let store: ReturnType<typeof memoryAttachments>;
  let request: EmailRequest;
  const html =
    '<h1>Willkommen</h1><p>Hello <b>Ada</b>, see <a href="https://example.org/start">the guide</a>.</p>' +
    '<p><img src="cid:logo@example.org" alt="Logo"></p>';

  beforeEach(async () => {
    standIn = await startMailgunStandIn({ domain: MAILGUN_DOMAIN, apiKey: MAILGUN_KEY });
    store = memoryAttachments();
    sender = new MailgunEmailSender({
      apiBase: standIn.baseUrl,
      apiKey: MAILGUN_KEY,
      from: FROM,
      timeoutMs: 5000,
      log: recordingLogger(),
      attachments: store,
    });
    request = await aFullRequest(
      {
        from: 'Ünïcode Sender <news@example.org>',
        to: ['Ada Lovelace <ada@example.org>', 'Bücher Info <info@bücher.de>'],
        cc: ['"Carol, C." <carol@example.org>'],
        bcc: 'dave@example.com',
        reply_to: ['Support <support@example.org>', 'help@example.org'],
        subject: 'Everything at once ✓',
        html,
        headers: {
          'X-Campaign': 'autumn-2026',
          'X-Trace': 'a1b2c3',
          'List-Unsubscribe': '<mailto:unsubscribe@example.org?subject=stop>',
        },
        attachments: [
          {
            filename: 'all-bytes.bin',
            content: ALL_BYTES.toString('base64'),
            content_type: 'application/octet-stream',
          },
          {
            filename: 'logo.png',
            content: PNG.toString('base64'),
            content_type: 'image/png',
            content_id: 'logo@example.org',
          },
        ],
        tags: ['welcome', 'onboarding', 'autumn'],
        metadata: { 'user-id': '42', plan: 'pro' },
      },
      store,
    );
  });
  afterEach(async () => {
    sender.close();
    await standIn.close();
  });

  it('is accepted, as a multipart form', async () => {
    const outcome = await sender.send(request)();
    const [m, ...more] = standIn.messages;
    expect(more).to.have.length(0);
    expect(outcome).to.deep.equal({ _tag: 'Sent', providerId: m?.id });
    expect(m?.encoding).to.equal('multipart');
  });

  it('records from, to, cc and bcc, the IDN domain as its A-label and display names as written', async () => {
    await sender.send(request)();
    const [m] = standIn.messages;
    expect(m?.from).to.equal('Ünïcode Sender <news@example.org>');
    expect(m?.to).to.deep.equal([
      'Ada Lovelace <ada@example.org>',
      'Bücher Info <info@xn--bcher-kva.de>',
    ]);
    expect(m?.cc).to.deep.equal(['"Carol, C." <carol@example.org>']);
    expect(m?.bcc).to.deep.equal(['dave@example.com']);
  });

  it('records Reply-To, the extra headers, our id and a Message-ID of the request’s From', async () => {
    await sender.send(request)();
    const [m] = standIn.messages;
    expect(m?.headers).to.deep.equal({
      'Reply-To': 'Support <support@example.org>, help@example.org',
      'Message-Id': `<${request.id}@example.org>`,
      'X-Email-Id': request.id,
      'X-Campaign': 'autumn-2026',
      'X-Trace': 'a1b2c3',
      'List-Unsubscribe': '<mailto:unsubscribe@example.org?subject=stop>',
    });
  });

  it('records one o:tag per tag, and the metadata with our id as v: variables', async () => {
    await sender.send(request)();
    const [m] = standIn.messages;
    expect(m?.tags).to.deep.equal(['welcome', 'onboarding', 'autumn']);
    expect(m?.fields.filter(([k]) => k === 'o:tag')).to.have.length(3);
    expect(m?.variables).to.deep.equal({ 'user-id': '42', plan: 'pro', 'email-id': request.id });
  });

  it('carries the attachment byte for byte, and the inline image under its Content-ID', async () => {
    await sender.send(request)();
    const [m] = standIn.messages;
    expect(m?.attachments.map((f) => [f.filename, f.contentType, f.size])).to.deep.equal([
      ['all-bytes.bin', 'application/octet-stream', 256],
    ]);
    expect(Buffer.from(m?.attachments[0]?.base64 ?? '', 'base64').equals(ALL_BYTES)).to.equal(true);
    // Mailgun names an inline part's Content-ID after its file name: `cid:` in the html finds it.
    expect(m?.inline.map((f) => [f.filename, f.contentType])).to.deep.equal([
      ['logo@example.org', 'image/png'],
    ]);
    expect(Buffer.from(m?.inline[0]?.base64 ?? '', 'base64').equals(PNG)).to.equal(true);
    expect(m?.html).to.equal(html).and.to.include(`cid:${m?.inline[0]?.filename}`);
  });

  it('sends the html and, for an html-only email, the text made from it', async () => {
    await sender.send(request)();
    const [m] = standIn.messages;
    expect(request.text).to.equal(undefined);
    // A multipart form carries line breaks as CRLF (WHATWG HTML, "multipart/form-data encoding").
    expect(m?.text?.replace(/\r\n/g, '\n')).to.equal(textAlternative(request));
    expect(m?.text)
      .to.match(/WILLKOMMEN/i)
      .and.to.include('the guide [https://example.org/start]');
    expect(m?.text).not.to.include('<');
  });

  it('sends nothing for send_at: the schedule is held by us, not by Mailgun', async () => {
    await sender.send(request)();
    const [m] = standIn.messages;
    expect(m?.fields.map(([k]) => k)).not.to.include('o:deliverytime');
  });

  it('is refused with the proxy’s 413 when the message is over 25 MB, and that is permanent', async () => {
    const big = await aFullRequest({ to: 'ada@example.org', subject: 'Big', text: 'x' }, store, [
      { filename: 'big.txt', bytes: Buffer.alloc(26 * 1024 * 1024, 0x61) },
    ]);
    const outcome = await sender.send(big)();
    expect(outcome).to.deep.include({
      _tag: 'Permanent',
      reason: 'Mailgun 413: 413 Request Entity Too Large',
    });
    expect(standIn.messages).to.have.length(0);
  });
});

describe('The Mailgun stand-in refuses what Mailgun refuses', () => {
  let standIn: MailgunStandIn;
  beforeEach(async () => {
    standIn = await startMailgunStandIn({ domain: MAILGUN_DOMAIN, apiKey: MAILGUN_KEY });
  });
  afterEach(() => standIn.close());

  const post = (body: URLSearchParams | FormData) =>
    fetch(`${standIn.baseUrl}/messages`, {
      method: 'POST',
      headers: { authorization: KEY_HEADER },
      body,
    });
  const valid: [string, string][] = [
    ['from', 'Sender <s@mg.example.org>'],
    ['to', 'a@example.org'],
    ['subject', 'Hi'],
    ['text', 'Hello'],
  ];
  const multipart = (entries: [string, string][]): FormData => {
    const data = new FormData();
    for (const [k, v] of entries) data.append(k, v);
    return data;
  };
  const refusal = async (res: Response) => [res.status, await res.json()];
  const badAddress = (field: string) => ({
    message: `'${field}' parameter is not a valid address. please check documentation`,
  });

  for (const field of ['to', 'cc', 'bcc']) {
    for (const address of ['jürgen@example.org', 'Jürgen <jürgen@example.org>']) {
      it(`refuses a non-ASCII local part in ${field} (${address}) with 400, in both encodings`, async () => {
        const fields: [string, string][] = [...valid, [field, address]];
        expect(await refusal(await post(new URLSearchParams(fields)))).to.deep.equal([
          400,
          badAddress(field),
        ]);
        expect(await refusal(await post(multipart(fields)))).to.deep.equal([
          400,
          badAddress(field),
        ]);
        expect(standIn.messages).to.have.length(0);
      });
    }
  }

  it('refuses a non-ASCII local part in from', async () => {
    const fields = valid.map(([k, v]): [string, string] =>
      k === 'from' ? [k, 'Sænder <sænder@mg.example.org>'] : [k, v],
    );
    expect(await refusal(await post(new URLSearchParams(fields)))).to.deep.equal([
      400,
      badAddress('from'),
    ]);
  });

  it('accepts a Unicode display name with an ASCII address', async () => {
    const res = await post(new URLSearchParams([...valid, ['cc', 'Jürgen <j@xn--bcher-kva.de>']]));
    expect(res.status).to.equal(200);
    expect(standIn.messages[0]?.cc).to.deep.equal(['Jürgen <j@xn--bcher-kva.de>']);
  });

  it('refuses more than 1000 distinct recipients across to, cc and bcc', async () => {
    const many = (field: string, n: number, from = 0): [string, string][] =>
      Array.from({ length: n }, (_, i): [string, string] => [field, `r${from + i}@example.org`]);
    const base = valid.filter(([k]) => k !== 'to');
    const limit = [...base, ...many('to', 500), ...many('cc', 300, 500), ...many('bcc', 200, 800)];
    expect((await post(new URLSearchParams(limit))).status).to.equal(200);
    // A duplicate is ignored, as Mailgun ignores it; one more distinct address is too many.
    const duplicate = [...limit, ['bcc', 'R0@EXAMPLE.ORG'] as [string, string]];
    expect((await post(new URLSearchParams(duplicate))).status).to.equal(200);
    expect(
      await refusal(await post(new URLSearchParams([...limit, ['bcc', 'one-more@example.org']]))),
    ).to.deep.equal([400, { message: 'Too many recipients; max is 1000' }]);
  });

  for (const [what, drop, message] of [
    ['from', 'from', 'from parameter is missing'],
    ['to', 'to', 'to parameter is missing'],
    ['subject', 'subject', 'subject parameter is missing'],
    ['a body', 'text', "Need at least one of 'text' or 'html' parameters specified"],
  ]) {
    it(`refuses a multipart form without ${what}`, async () => {
      const fields = valid.filter(([k]) => k !== drop);
      expect(await refusal(await post(multipart(fields)))).to.deep.equal([400, { message }]);
    });
  }

  it('refuses more than 10 tags and more than 16 kB of options', async () => {
    const tags = Array.from({ length: 11 }, (_, i): [string, string] => ['o:tag', `t${i}`]);
    expect((await post(new URLSearchParams([...valid, ...tags.slice(0, 10)]))).status).to.equal(
      200,
    );
    expect((await post(new URLSearchParams([...valid, ...tags]))).status).to.equal(400);
    const header: [string, string] = ['h:X-Long', 'x'.repeat(16 * 1024)];
    expect((await post(new URLSearchParams([...valid, header]))).status).to.equal(400);
  });

  it('answers a body over 25 MB with the proxy’s 413 page, after reading it', async () => {
    const data = multipart(valid);
    data.append('attachment', new Blob([Buffer.alloc(25 * 1024 * 1024 + 1)]), 'big.bin');
    const res = await post(data);
    expect(res.status).to.equal(413);
    expect(await res.text()).to.include('<title>413 Request Entity Too Large</title>');
  });

  it('lists recorded files over HTTP with their bytes', async () => {
    const data = multipart(valid);
    data.append('attachment', new Blob([ALL_BYTES], { type: 'application/pdf' }), 'r é.pdf');
    data.append('inline', new Blob([PNG], { type: 'image/png' }), 'logo.png');
    expect((await post(data)).status).to.equal(200);
    const root = standIn.baseUrl.replace(/\/v3\/.*$/, '');
    const [listed] = (await (await fetch(`${root}/__stand-in/messages`)).json()) as {
      attachments: { filename: string; contentType: string; base64: string }[];
      inline: { filename: string }[];
    }[];
    expect(listed?.attachments.map((f) => [f.filename, f.contentType])).to.deep.equal([
      ['r é.pdf', 'application/pdf'],
    ]);
    expect(Buffer.from(listed?.attachments[0]?.base64 ?? '', 'base64').equals(ALL_BYTES)).to.equal(
      true,
    );
    expect(listed?.inline.map((f) => f.filename)).to.deep.equal(['logo.png']);
  });
});
