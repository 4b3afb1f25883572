import { expect } from 'chai';
import type { EmailId } from '../../../src/domain/email-request.js';
import type { EmailStatus } from '../../../src/domain/email-status.js';
import type { EmailAddress } from '../../../src/domain/email-address.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

const id = 'email-00000042' as EmailId;

const queued: EmailStatus = {
  id,
  status: 'queued',
  to: ['ada@example.com' as EmailAddress],
  subject: 'Hello <b>Ada</b>',
  requestedAt: '2030-01-02T03:04:05.000Z',
  attempts: [],
};

const retrying: EmailStatus = {
  ...queued,
  status: 'retrying',
  attempts: [
    { attempt: 1, at: '2030-01-02T03:04:06.000Z', outcome: 'transient', detail: 'HTTP 503' },
  ],
  nextAttemptAt: '2030-01-02T03:04:11.000Z',
  reason: 'HTTP 503',
};

const delivered: EmailStatus = {
  ...queued,
  status: 'delivered',
  attempts: [
    ...retrying.attempts,
    { attempt: 2, at: '2030-01-02T03:04:12.000Z', outcome: 'sent', detail: '<p1@mailgun>' },
  ],
  providerId: '<p1@mailgun>',
  deliveredAt: '2030-01-02T03:04:12.000Z',
  durationMs: 670,
};

const json = { headers: { accept: 'application/json' } };

/** Reads server-sent events until the stream ends or `until` says enough. */
async function readEvents(
  res: Response,
  onEvent: (data: EmailStatus, count: number) => Promise<void> | void,
): Promise<{ events: EmailStatus[]; ended: boolean }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: EmailStatus[] = [];
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, ended: true };
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      if (!block.includes('event: status') || data === undefined) continue;
      const status = JSON.parse(data.slice(6)) as EmailStatus;
      events.push(status);
      await onEvent(status, events.length);
    }
  }
}

describe('HTTP status (GET /emails/:id and its event stream)', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await startHttp();
  });

  afterEach(async () => {
    expect((await fetch(`${h.url}/healthz`)).status).to.equal(200);
    expect(h.log.errors()).to.deep.equal([]);
    await h.close();
  });

  it('answers JSON with the public fields when Accept prefers it', async () => {
    await h.statuses.save(delivered)();
    const res = await fetch(`${h.url}/emails/${id}`, json);
    expect(res.status).to.equal(200);
    expect(res.headers.get('vary')).to.contain('Accept');
    expect(await res.json()).to.deep.equal({
      id,
      status: 'delivered',
      to: ['ada@example.com'],
      subject: 'Hello <b>Ada</b>',
      requestedAt: '2030-01-02T03:04:05.000Z',
      attempts: delivered.attempts,
      providerId: '<p1@mailgun>',
      deliveredAt: '2030-01-02T03:04:12.000Z',
      durationMs: 670,
    });
  });

  it('renders an escaped HTML page that works without JavaScript', async () => {
    await h.statuses.save(retrying)();
    const res = await fetch(`${h.url}/emails/${id}`);
    const html = await res.text();
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/html/);
    expect(html).to.contain('Retrying: attempt 1 failed for now.');
    expect(html).to.contain(
      '<time datetime="2030-01-02T03:04:11.000Z">2030-01-02 03:04:11 UTC</time>',
    );
    expect(html).to.contain('Hello &lt;b&gt;Ada&lt;/b&gt;');
    expect(html).not.to.contain('<b>Ada</b>');
    expect(html).to.contain('<noscript><meta http-equiv="refresh" content="5"></noscript>');
    expect(html).to.contain(`data-events="/emails/${id}/events"`);
    expect(html).to.contain('<script src="/static/status.js" defer></script>');
  });

  it('shows the provider id and time to send once delivered, and stops updating', async () => {
    await h.statuses.save(delivered)();
    const html = await (await fetch(`${h.url}/emails/${id}`)).text();
    expect(html).to.contain('Delivered.');
    expect(html).to.contain('&lt;p1@mailgun&gt;');
    expect(html).to.contain('0.67 s');
    expect(html).not.to.contain('data-events');
    expect(html).not.to.contain('http-equiv="refresh"');
  });

  it('shows each failover, in the page and in the JSON', async () => {
    const failover = {
      at: '2030-01-02T03:04:12.000Z',
      from: 'mailgun',
      to: 'smtp',
      reason: 'Mailgun 503: <busy>',
    };
    await h.statuses.save({ ...delivered, failovers: [failover] })();
    const html = await (await fetch(`${h.url}/emails/${id}`)).text();
    expect(html).to.contain('Failovers');
    expect(html).to.contain('mailgun failed for now (Mailgun 503: &lt;busy&gt;); tried smtp.');
    const json = (await (
      await fetch(`${h.url}/emails/${id}`, { headers: { accept: 'application/json' } })
    ).json()) as { failovers: unknown };
    expect(json.failovers).to.deep.equal([failover]);
  });

  it('answers 404 for an unknown or invalid id, in the format asked for', async () => {
    for (const path of ['/emails/email-99999999', '/emails/short', '/emails/bad%20id%3Cx%3E']) {
      const asJson = await fetch(`${h.url}${path}`, json);
      expect(asJson.status, path).to.equal(404);
      expect(await asJson.json()).to.have.nested.property('error.code', 'not_found');
      const asHtml = await fetch(`${h.url}${path}`);
      expect(asHtml.status).to.equal(404);
      expect(await asHtml.text()).to.contain('Email not found');
    }
    expect((await fetch(`${h.url}/emails/email-99999999/events`)).status).to.equal(404);
  });

  it('serves the live-update script with a content type the CSP allows', async () => {
    const res = await fetch(`${h.url}/static/status.js`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/javascript/);
    expect(await res.text()).to.contain('new EventSource');
  });

  it('streams the current status at once, each change, and ends after a final one', async () => {
    await h.statuses.save(queued)();
    const res = await fetch(`${h.url}/emails/${id}/events`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
    const { events, ended } = await readEvents(res, async (_status, count) => {
      if (count === 1) await h.statuses.save(retrying)();
      if (count === 2) await h.statuses.save(delivered)();
    });
    expect(events.map((e) => e.status)).to.deep.equal(['queued', 'retrying', 'delivered']);
    expect(events[2]).to.include({ providerId: '<p1@mailgun>', durationMs: 670 });
    expect(ended).to.equal(true);
    expect(h.statuses.watcherCount(id)).to.equal(0);
  });

  it('stops watching the store when the client goes away', async () => {
    await h.statuses.save(queued)();
    const abort = new AbortController();
    const res = await fetch(`${h.url}/emails/${id}/events`, { signal: abort.signal });
    await readEvents(res, () => abort.abort()).catch(() => undefined);
    for (let i = 0; i < 50 && h.statuses.watcherCount(id) > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(h.statuses.watcherCount(id)).to.equal(0);
  });

  it('waits briefly for a just-accepted id before answering 404', async () => {
    const waiting = await startHttp({ statusWaitMs: 2_000 });
    try {
      const pending = fetch(`${waiting.url}/emails/${id}`, json);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await waiting.statuses.save(queued)();
      const res = await pending;
      expect(res.status).to.equal(200);
      expect(await res.json()).to.include({ id, status: 'queued' });
      expect(waiting.statuses.watcherCount(id)).to.equal(0);
    } finally {
      await waiting.close();
    }
  });
});
