import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import type { EmailProcess } from '../support/process.js';
import { eventually, startListening } from '../support/process.js';

describe('email dev (one process, in memory, outbox sender)', function () {
  this.timeout(30_000);
  let outbox: string;
  let proc: EmailProcess;
  let url: string;

  before(async () => {
    outbox = await mkdtemp(join(tmpdir(), 'email-dev-'));
    ({ proc, url } = await startListening(['dev'], {
      OUTBOX_DIR: outbox,
      MAIL_FROM: 'Email Example <noreply@example.com>',
    }));
  });

  after(async () => {
    await proc?.stop();
    await rm(outbox, { recursive: true, force: true });
  });

  const emlFor = (id: string) =>
    eventually(
      async () => {
        const files = await readdir(outbox);
        return files.includes(`${id}.eml`) ? readFile(join(outbox, `${id}.eml`)) : undefined;
      },
      10_000,
      `${id}.eml in the outbox`,
    );

  it('turns a JSON request into an RFC 5322 message in the outbox', async () => {
    const response = await fetch(`${url}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        to: ['Ada Lovelace <ada@example.com>', 'bob@example.org'],
        subject: 'Hello from the queue ✉',
        text: 'It works.',
      }),
    });
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
      10_000,
      'status sent',
    );
    expect(sent).to.include({ id, status: 'sent' });
    expect(sent.provider_id).to.be.a('string').and.not.empty;
  });

  it('prints what the original example printed, as structured lines', async () => {
    // The status says sent once the log line of the send was written: it may still be in the pipe.
    await eventually(
      async () =>
        proc.records.some((r) => /^Time to send an email: \d+\.\d\ds$/.test(r.msg))
          ? true
          : undefined,
      10_000,
      'a "Time to send an email" line',
    );
    const messages = proc.records.map((r) => r.msg);
    expect(messages).to.include('Starting Queue Worker');
    expect(
      messages.some((m) =>
        m.startsWith('Initiating email send to ada@example.com, bob@example.org.'),
      ),
    ).to.equal(true);
    expect(messages.some((m) => /^Time to send an email: \d+\.\d\ds$/.test(m))).to.equal(true);
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

  it('refuses hostile input with a 4xx, writes nothing, and keeps serving', async () => {
    const before = await readdir(outbox);
    const attempts = [
      {
        body: '{"to": "a@example.com", "subject": "x\\r\\nBcc: eve@evil.com", "text": "t"}',
        type: 'application/json',
        status: 400,
      },
      {
        body: '{"to": "a@example.com\\r\\nBcc: eve@evil.com", "subject": "x", "text": "t"}',
        type: 'application/json',
        status: 400,
      },
      { body: '{"to": ', type: 'application/json', status: 400 },
      { body: 'to=a@example.com', type: 'text/plain', status: 415 },
      {
        body: JSON.stringify({ to: 'a@example.com', subject: 's', text: 'x'.repeat(1_100_000) }),
        type: 'application/json',
        status: 413,
      },
    ];
    for (const attempt of attempts) {
      const r = await fetch(`${url}/emails`, {
        method: 'POST',
        headers: { 'content-type': attempt.type },
        body: attempt.body,
      });
      expect(r.status, attempt.body.slice(0, 60)).to.equal(attempt.status);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.message).to.be.a('string').and.not.empty;
    }
    const csrfless = await fetch(`${url}/`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'to=a%40example.com&subject=s&text=t',
    });
    expect(csrfless.status).to.equal(403);
    // Rather than wait a while for nothing: a valid email after them, then the outbox must hold
    // exactly what it held before plus that one.
    const barrier = await fetch(`${url}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'a@example.com', subject: 'After the hostile ones', text: 't' }),
    });
    expect(barrier.status).to.equal(202);
    const { id: barrierId } = (await barrier.json()) as { id: string };
    await emlFor(barrierId);
    expect((await readdir(outbox)).sort()).to.deep.equal([...before, `${barrierId}.eml`].sort());
    expect((await fetch(`${url}/healthz`)).status).to.equal(200);
  });

  it('stops cleanly on SIGTERM', async () => {
    const { code } = await proc.stop('SIGTERM');
    await proc.closed;
    expect(code).to.equal(0);
    expect(proc.records.map((r) => r.msg)).to.include('Stopped cleanly');
  });
});
