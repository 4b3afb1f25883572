import { expect } from 'chai';
import type { MailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { splitAddresses } from '../../../src/stand-ins/mailgun-form.js';
import { faultsTaken } from '../../support/mail-receivers.js';
import { sleep } from '../../support/waiting.js';

const KEY = 'key-stand-in-test';
const auth = (key = KEY): string => `Basic ${Buffer.from(`api:${key}`).toString('base64')}`;

describe('Mailgun stand-in', () => {
  let standIn: MailgunStandIn;
  beforeEach(async () => {
    standIn = await startMailgunStandIn({ domain: 'mg.example.org', apiKey: KEY });
  });
  afterEach(() => standIn.close());

  const post = (body: URLSearchParams | FormData, key?: string, base = standIn.baseUrl) =>
    fetch(`${base}/messages`, { method: 'POST', headers: { authorization: auth(key) }, body });
  const form = (entries: [string, string][]): URLSearchParams => new URLSearchParams(entries);
  const valid: [string, string][] = [
    ['from', 'Sender <s@mg.example.org>'],
    ['to', 'a@example.org'],
    ['subject', 'Hi'],
    ['text', 'Hello'],
  ];

  it('accepts url-encoded forms and answers like Mailgun', async () => {
    const res = await post(form(valid));
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { id: string; message: string };
    expect(body.message).to.equal('Queued. Thank you.');
    expect(body.id).to.match(/^<\d{14}\.\d+\.[0-9a-f]+@mg\.example\.org>$/);
    expect(standIn.messages.map((m) => [m.id, m.encoding])).to.deep.equal([
      [body.id, 'urlencoded'],
    ]);
  });

  it('accepts multipart/form-data, repeated and comma-separated recipients', async () => {
    const data = new FormData();
    for (const [k, v] of valid) data.append(k, v);
    data.append('to', '"Doe, Jo" <jo@example.org>, c@example.org');
    data.append('h:Reply-To', 'r@example.org');
    data.append('v:email-id', 'test_1234abcd');
    expect((await post(data)).status).to.equal(200);
    const [m] = standIn.messages;
    expect(m?.encoding).to.equal('multipart');
    expect(m?.to).to.deep.equal(['a@example.org', '"Doe, Jo" <jo@example.org>', 'c@example.org']);
    expect(m?.headers).to.deep.equal({ 'Reply-To': 'r@example.org' });
    expect(m?.variables).to.deep.equal({ 'email-id': 'test_1234abcd' });
    expect(m?.requestHeaders.authorization).to.equal('Basic ***');
  });

  it('answers a wrong or missing key with 401 Forbidden in plain text', async () => {
    const wrong = await post(form(valid), 'key-wrong');
    expect([wrong.status, await wrong.text()]).to.deep.equal([401, 'Forbidden']);
    const none = await fetch(`${standIn.baseUrl}/messages`, { method: 'POST', body: form(valid) });
    expect([none.status, await none.text()]).to.deep.equal([401, 'Forbidden']);
  });

  it('answers an unknown domain with a JSON 404 and an unknown path with a plain one', async () => {
    const other = standIn.baseUrl.replace('mg.example.org', 'other.example.org');
    const res = await post(form(valid), KEY, other);
    expect([res.status, await res.json()]).to.deep.equal([
      404,
      { message: 'Domain not found: other.example.org' },
    ]);
    const path = await fetch(`${standIn.baseUrl}/nothing`, { method: 'POST', body: form(valid) });
    expect([path.status, path.headers.get('content-type')]).to.deep.equal([
      404,
      'text/plain; charset=utf-8',
    ]);
  });

  const invalid: [string, [string, string][], string][] = [
    ['no from', valid.filter(([k]) => k !== 'from'), 'from parameter is missing'],
    ['no to', valid.filter(([k]) => k !== 'to'), 'to parameter is missing'],
    [
      'a bad to',
      [...valid, ['to', 'not an address']],
      "'to' parameter is not a valid address. please check documentation",
    ],
    ['no subject', valid.filter(([k]) => k !== 'subject'), 'subject parameter is missing'],
    [
      'no body',
      valid.filter(([k]) => k !== 'text'),
      "Need at least one of 'text' or 'html' parameters specified",
    ],
  ];
  for (const [what, fields, message] of invalid) {
    it(`refuses ${what} with 400 in Mailgun's words`, async () => {
      const res = await post(form(fields));
      expect([res.status, await res.json()]).to.deep.equal([400, { message }]);
      expect(standIn.messages).to.have.length(0);
    });
  }

  it('consumes queued faults one per request, then a sticky default, then behaves', async () => {
    standIn.script({ status: 429, retryAfterSeconds: 3 }, { status: 500 });
    standIn.scriptDefault({ status: 503 });
    const first = await post(form(valid));
    expect([first.status, first.headers.get('retry-after')]).to.deep.equal([429, '3']);
    expect((await post(form(valid))).status).to.equal(500);
    expect((await post(form(valid))).status).to.equal(503);
    expect((await post(form(valid))).status).to.equal(503);
    standIn.scriptDefault(undefined);
    expect((await post(form(valid))).status).to.equal(200);
  });

  it('holds every answer of a latency fault, a refusal too, for its latency from arrival', async () => {
    standIn.scriptDefault({ latencyMs: 150 });
    const timed = async (send: () => Promise<Response>) => {
      const started = performance.now();
      const res = await send();
      return { status: res.status, waitedMs: performance.now() - started };
    };
    const [refused, accepted, undecodable] = await Promise.all([
      timed(() => post(form(valid), 'key-wrong')),
      timed(() => post(form(valid))),
      timed(() => post(form([['from', 'not an address']]))),
    ]);
    expect([refused.status, accepted.status, undecodable.status]).to.deep.equal([401, 200, 400]);
    // A lower bound only: the wait starts when the request arrives, after the client sent it.
    for (const answer of [refused, accepted, undecodable]) {
      expect(answer.waitedMs).to.be.at.least(150);
    }
    expect(standIn.messages).to.have.length(1);
  });

  it('records nothing after close(), not even a send that was waiting out its latency', async () => {
    standIn.script({ latencyMs: 200 });
    const sent = post(form(valid)).then(
      (res) => res.status,
      () => 'no answer',
    );
    await faultsTaken(standIn.baseUrl); // it arrived, and waits
    await standIn.close();
    expect(await sent).to.equal('no answer');
    // Real time past its latency: what its wait would have ended in, had close() not come.
    await sleep(300);
    expect(standIn.messages).to.have.length(0);
  });

  it('can be scripted and read over HTTP by another process', async () => {
    const root = standIn.baseUrl.replace(/\/v3\/.*$/, '');
    const script = await fetch(`${root}/__stand-in/faults`, {
      method: 'POST',
      body: JSON.stringify({ queue: [{ latencyMs: 50 }, { status: 502 }] }),
    });
    expect(await script.json()).to.deep.equal({ queued: 2 });
    expect((await post(form(valid))).status).to.equal(200); // delayed, then accepted
    expect((await post(form(valid))).status).to.equal(502);
    const listed = (await (await fetch(`${root}/__stand-in/messages`)).json()) as unknown[];
    expect(listed).to.have.length(1);
    expect((await fetch(`${root}/__stand-in/messages`, { method: 'DELETE' })).status).to.equal(200);
    expect(standIn.messages).to.have.length(0);
    const bad = await fetch(`${root}/__stand-in/faults`, {
      method: 'POST',
      body: '{"status":"x"}',
    });
    expect(bad.status).to.equal(400);
  });

  it('splits comma-separated addresses but not commas inside quotes', () => {
    expect(splitAddresses('a@x.org, "B, C" <b@x.org>,d@x.org')).to.deep.equal([
      'a@x.org',
      '"B, C" <b@x.org>',
      'd@x.org',
    ]);
  });
});
