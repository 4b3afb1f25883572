import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import type { EmailProcess } from '../support/process.js';
import { startListening, waitForRecord } from '../support/process.js';
import { eventually } from '../support/waiting.js';

const MAIL_FROM = 'Email Example <noreply@example.com>';

/** `email dev` writing into a fresh outbox of its own. */
async function startDev(): Promise<{ proc: EmailProcess; url: string; outbox: string }> {
  const outbox = await mkdtemp(join(tmpdir(), 'email-dev-'));
  const started = await startListening(['dev'], { OUTBOX_DIR: outbox, MAIL_FROM });
  return { ...started, outbox };
}

const postJson = (url: string, body: string, type = 'application/json'): Promise<Response> =>
  fetch(`${url}/emails`, { method: 'POST', headers: { 'content-type': type }, body });

describe('email dev (one process, in memory, outbox sender)', function () {
  this.timeout(30_000);
  // One process for the file, which no test stops or reconfigures: each test sends its own
  // emails, to recipients of its own, and looks only at those.
  let outbox: string;
  let proc: EmailProcess;
  let url: string;

  before(async () => {
    ({ proc, url, outbox } = await startDev());
  });

  after(async () => {
    await proc?.stop();
    if (outbox) await rm(outbox, { recursive: true, force: true });
  });

  /** POSTs a valid email, which must be accepted; returns its id. */
  const queue = async (email: object): Promise<string> => {
    const response = await postJson(url, JSON.stringify(email));
    expect(response.status).to.equal(202);
    return ((await response.json()) as { id: string }).id;
  };

  const emlFor = (id: string) =>
    eventually(
      async () => {
        const files = await readdir(outbox);
        return files.includes(`${id}.eml`) ? readFile(join(outbox, `${id}.eml`)) : undefined;
      },
      { what: `${id}.eml in the outbox` },
    );

  it('turns a JSON request into an RFC 5322 message in the outbox', async () => {
    const response = await postJson(
      url,
      JSON.stringify({
        to: ['Ada Lovelace <ada@example.com>', 'bob@example.org'],
        subject: 'Hello from the queue ✉',
        text: 'It works.',
      }),
    );
    expect(response.status).to.equal(202);
    const { id, status } = (await response.json()) as { id: string; status: string };
    expect(status).to.equal('queued');
    expect(response.headers.get('location')).to.equal(`/emails/${id}`);

    const mail = await simpleParser(await emlFor(id));
    expect(mail.subject).to.equal('Hello from the queue ✉');
    expect(mail.text?.trim()).to.equal('It works.');
    expect(mail.from?.value[0]).to.deep.include({
      address: 'noreply@example.com',
      name: 'Email Example',
    });
    const to = Array.isArray(mail.to) ? mail.to.flatMap((a) => a.value) : (mail.to?.value ?? []);
    expect(to.map((a) => a.address)).to.deep.equal(['ada@example.com', 'bob@example.org']);
    expect(mail.messageId).to.contain(id);

    const sent = await eventually(
      async () => {
        const r = await fetch(`${url}/emails/${id}`, { headers: { accept: 'application/json' } });
        const body = (await r.json()) as { status: string; provider_id?: string };
        return body.status === 'sent' ? body : undefined;
      },
      { what: `GET /emails/${id} to say sent` },
    );
    expect(sent).to.include({ id, status: 'sent' });
    // The message's own id, which the file carries; where the file is, only the log says.
    expect(sent.provider_id).to.equal(mail.messageId);
    await waitForRecord(
      proc,
      (r) => r.emailId === id && r.hint === `written to ${join(outbox, `${id}.eml`)}`,
    );
  });

  it('prints what the original example printed, as structured lines', async () => {
    const id = await queue({
      to: ['Erin <erin@example.com>', 'frank@example.org'],
      subject: 'For the log',
      text: 'Watch the log.',
    });
    // The last line of the send; the ones before it were written, if not all read, by then.
    await waitForRecord(
      proc,
      (r) => r.emailId === id && /^Time to send an email: \d+\.\d\ds$/.test(r.msg),
      `the "Time to send an email" line of ${id}`,
    );
    const ofId = proc.records.filter((r) => r.emailId === id).map((r) => r.msg);
    expect(ofId).to.include('Initiating email send to erin@example.com, frank@example.org.');
    // Printed once at start-up, before any email.
    expect(proc.records.map((r) => r.msg)).to.include('Starting Queue Worker');
  });

  it('sends what the form submits, after a 303 to the status page', async () => {
    const form = await fetch(`${url}/`);
    const html = await form.text();
    const cookie = (form.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const fields = [...html.matchAll(/<input[^>]*type="hidden"[^>]*>/g)].map((m) => m[0]);
    const params = new URLSearchParams();
    for (const input of fields) {
      const name = /name="([^"]+)"/.exec(input)?.[1];
      const value = /value="([^"]*)"/.exec(input)?.[1];
      if (name && value !== undefined) params.set(name, value);
    }
    expect(params.size, `hidden fields in ${html}`).to.be.at.least(1);
    params.set('to', 'carol@example.net');
    params.set('subject', 'From the form');
    params.set('text', 'Sent with the form.');
    const submitted = await fetch(`${url}/`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: params.toString(),
    });
    expect(submitted.status).to.equal(303);
    const location = submitted.headers.get('location') ?? '';
    expect(location).to.match(/^\/emails\/[A-Za-z0-9_-]+$/);
    const id = location.split('/').pop() ?? '';
    const mail = await simpleParser(await emlFor(id));
    expect(mail.subject).to.equal('From the form');
    expect(mail.text?.trim()).to.equal('Sent with the form.');
  });

  it('refuses hostile input with a 4xx, records and writes nothing, and keeps serving', async () => {
    // Every attempt is addressed to one mailbox no other test uses, so that the email log can
    // say afterwards what was accepted for it.
    const victim = 'mallory@example.net';
    const before = await readdir(outbox);
    const attempts = [
      {
        body: `{"to": "${victim}", "subject": "x\\r\\nBcc: eve@evil.com", "text": "t"}`,
        type: 'application/json',
        status: 400,
      },
      {
        body: `{"to": "${victim}\\r\\nBcc: eve@evil.com", "subject": "x", "text": "t"}`,
        type: 'application/json',
        status: 400,
      },
      { body: `{"to": "${victim}", `, type: 'application/json', status: 400 },
      { body: `to=${victim}`, type: 'text/plain', status: 415 },
      // Within the JSON body limit (1.5 × MAX_MESSAGE_BYTES), but a text larger than a body may be.
      {
        body: JSON.stringify({ to: victim, subject: 's', text: 'x'.repeat(1_100_000) }),
        type: 'application/json',
        status: 400,
      },
      // Over the JSON body limit: refused before it is parsed.
      {
        body: JSON.stringify({ to: victim, subject: 's', text: 'x'.repeat(16_000_000) }),
        type: 'application/json',
        status: 413,
      },
    ];
    for (const attempt of attempts) {
      const r = await postJson(url, attempt.body, attempt.type);
      expect(r.status, attempt.body.slice(0, 60)).to.equal(attempt.status);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.message).to.be.a('string').and.not.empty;
    }
    const csrfless = await fetch(`${url}/`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ to: victim, subject: 's', text: 't' }).toString(),
    });
    expect(csrfless.status).to.equal(403);

    // Rather than wait a while for nothing, a valid email after them. The log records an email
    // before the API answers 202, so it lists every one accepted for the victim: this one alone.
    // And once its file is in the outbox, the outbox holds nothing else new.
    const barrierId = await queue({ to: victim, subject: 'After the hostile ones', text: 't' });
    const listed = (await (await fetch(`${url}/emails?to=${victim}`)).json()) as {
      data: { id: string }[];
    };
    expect(listed.data.map((e) => e.id)).to.deep.equal([barrierId]);
    await emlFor(barrierId);
    const added = (await readdir(outbox)).filter((f) => !before.includes(f));
    expect(added).to.deep.equal([`${barrierId}.eml`]);
    expect((await fetch(`${url}/healthz`)).status).to.equal(200);
  });

  it('stops cleanly on SIGTERM', async () => {
    // A process of its own: stopping the shared one would take it from the other tests.
    const own = await startDev();
    try {
      const { code } = await own.proc.stop('SIGTERM');
      await own.proc.closed;
      expect(code).to.equal(0);
      expect(own.proc.records.map((r) => r.msg)).to.include('Stopped cleanly');
    } finally {
      await own.proc.stop('SIGKILL');
      await rm(own.outbox, { recursive: true, force: true });
    }
  });
});
