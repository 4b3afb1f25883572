import { expect } from 'chai';
import type { Harness } from './harness.js';
import { eachHttp, postJson, published } from './harness.js';

const valid = { to: ['ada@example.com', 'Bob <bob@example.org>'], subject: 'Hello', text: 'Hi' };

interface ErrorBody {
  error: { code: string; message: string; fields?: Record<string, string> };
}

async function errorOf(res: Response): Promise<ErrorBody['error']> {
  expect(res.headers.get('content-type')).to.match(/^application\/json/);
  const body = (await res.json()) as ErrorBody;
  expect(body.error.message).to.be.a('string').and.not.equal('');
  return body.error;
}

describe('HTTP JSON API (POST /emails)', () => {
  let h: Harness;
  eachHttp((started) => (h = started));

  it('answers 202 with the id, a Location and status queued, after one publish', async () => {
    const res = await postJson(h, valid);
    expect(res.status).to.equal(202);
    expect(res.headers.get('location')).to.equal('/emails/email-00000001');
    expect(await res.json()).to.deep.equal({ id: 'email-00000001', status: 'queued' });
    expect(published(h)).to.deep.equal(['email-00000001']);
    expect(h.queue.published[0]!.to).to.deep.equal(['ada@example.com', 'Bob <bob@example.org>']);
  });

  it('accepts a single address, html, and a charset parameter', async () => {
    const res = await postJson(
      h,
      { to: 'ada@example.com', subject: 'S', html: '<p>Hi</p>' },
      { 'content-type': 'application/json; charset=utf-8' },
    );
    expect(res.status).to.equal(202);
    expect(h.queue.published[0]).to.include({ html: '<p>Hi</p>' });
  });

  it('refuses CRLF injection in to and subject with field messages', async () => {
    const res = await postJson(h, {
      to: ['ada@example.com', 'x@example.com\r\nBcc: victim@example.com'],
      subject: 'Hi\r\nBcc: victim@example.com',
      text: 'T',
    });
    expect(res.status).to.equal(400);
    const error = await errorOf(res);
    expect(error.code).to.equal('invalid_request');
    expect(error.fields).to.have.keys('to[1]', 'subject');
    expect(error.fields!['to[1]']).to.contain('line break');
    expect(error.fields!.subject).to.contain('no CR or LF');
    expect(published(h)).to.deep.equal([]);
  });

  it('refuses wrong types, missing fields and unknown fields, all at once', async () => {
    const res = await postJson(h, { to: 42, subject: ['x'], text: {}, colour: 'red' });
    const error = await errorOf(res);
    expect(res.status).to.equal(400);
    expect(error.fields).to.have.keys('to', 'subject', 'text', 'colour');
    const notObject = await postJson(h, '"just a string"');
    expect(notObject.status).to.equal(400);
    expect((await errorOf(notObject)).fields).to.have.key('body');
    expect(published(h)).to.deep.equal([]);
  });

  it('answers malformed JSON with 400 malformed_json', async () => {
    for (const body of ['{"to": ', 'nope']) {
      const res = await postJson(h, body);
      expect(res.status, body).to.equal(400);
      expect((await errorOf(res)).code).to.equal('malformed_json');
    }
  });

  it('refuses a __proto__ key anywhere as such, not as malformed JSON', async () => {
    const bodies = [
      '{"__proto__": {"x": 1}}',
      '{"to": "ada@example.com", "subject": "s", "text": "t", "metadata": {"__proto__": "x"}}',
    ];
    for (const body of bodies) {
      const res = await postJson(h, body);
      expect(res.status, body).to.equal(400);
      const error = await errorOf(res);
      expect(error.code).to.equal('invalid_request');
      expect(error.message).to.include('a key named "__proto__"');
    }
    expect(published(h)).to.deep.equal([]);
  });

  it('answers a body over 1 MB with 413 too_large', async () => {
    const res = await postJson(h, { ...valid, text: 'x'.repeat(1_000_001) });
    expect(res.status).to.equal(413);
    expect((await errorOf(res)).code).to.equal('too_large');
    expect(published(h)).to.deep.equal([]);
  });

  it('answers other content types with 415 unsupported_media_type', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
      const res = await postJson(h, JSON.stringify(valid), { 'content-type': type });
      expect(res.status, type).to.equal(415);
      expect((await errorOf(res)).code).to.equal('unsupported_media_type');
    }
    expect(published(h)).to.deep.equal([]);
  });

  it('reads JSON in UTF-8 only: another declared charset is a 415, not mangled letters', async () => {
    const latin1 = Buffer.from(JSON.stringify({ ...valid, subject: 'café' }), 'latin1');
    for (const charset of [
      'iso-8859-1',
      'bogus',
      'utf-16',
      // Koa's parser gives up on these, and would have read them as UTF-8.
      'latin1;',
      'latin1; x',
      'latin1; charset=utf-8',
    ]) {
      const res = await fetch(`${h.url}/emails`, {
        method: 'POST',
        headers: { 'content-type': `application/json; charset=${charset}` },
        body: latin1,
      });
      expect(res.status, charset).to.equal(415);
      const error = await errorOf(res);
      expect(error.code).to.equal('unsupported_media_type');
      expect(error.message).to.include('in UTF-8');
    }
    expect(published(h)).to.deep.equal([]);
    for (const charset of ['UTF-8', 'utf8', '"utf-8"']) {
      const res = await postJson(
        h,
        { ...valid, subject: 'café' },
        {
          'content-type': `application/json; charset=${charset}`,
        },
      );
      expect(res.status, charset).to.equal(202);
    }
    expect(h.queue.published.map((r) => r.subject)).to.deep.equal(['café', 'café', 'café']);
  });

  it('answers a repeated Idempotency-Key with the first answer, publishing nothing', async () => {
    const first = await postJson(h, valid, { 'idempotency-key': 'order-42' });
    const second = await postJson(h, valid, { 'idempotency-key': 'order-42' });
    expect(first.status).to.equal(202);
    expect(second.status).to.equal(202);
    expect(await second.json()).to.deep.equal(await first.json());
    expect(second.headers.get('location')).to.equal(first.headers.get('location'));
    expect(second.headers.get('idempotent-replayed')).to.equal('true');
    expect(published(h)).to.have.length(1);
  });

  it('answers the same Idempotency-Key with another body with 409', async () => {
    await postJson(h, valid, { 'idempotency-key': 'order-42' });
    const res = await postJson(
      h,
      { ...valid, subject: 'Other' },
      { 'idempotency-key': 'order-42' },
    );
    expect(res.status).to.equal(409);
    expect((await errorOf(res)).code).to.equal('idempotency_conflict');
    expect(published(h)).to.have.length(1);
  });

  it('refuses an Idempotency-Key that is empty, too long or not visible ASCII', async () => {
    for (const key of ['', 'k'.repeat(201), 'with space', 'é']) {
      const res = await fetch(`${h.url}/emails`, {
        method: 'POST',
        headers: new Headers([
          ['content-type', 'application/json'],
          ['idempotency-key', key],
        ]),
        body: JSON.stringify(valid),
      }).catch(() => undefined);
      // fetch itself refuses some header values; those never reach a server.
      if (res === undefined) continue;
      expect(res.status, JSON.stringify(key)).to.equal(400);
      expect((await errorOf(res)).code).to.equal('invalid_request');
    }
    expect(published(h)).to.deep.equal([]);
  });

  it('answers 503 queue_unavailable with Retry-After when the queue is down', async () => {
    h.queue.down = true;
    const res = await postJson(h, valid, { 'idempotency-key': 'k-1' });
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.equal('5');
    expect((await errorOf(res)).code).to.equal('queue_unavailable');
    expect(published(h)).to.deep.equal([]);
    // The key was released: the client's retry goes through.
    h.queue.down = false;
    expect((await postJson(h, valid, { 'idempotency-key': 'k-1' })).status).to.equal(202);
    expect(published(h)).to.have.length(1);
  });

  it('answers PUT /emails with 405 and an Allow header', async () => {
    const res = await fetch(`${h.url}/emails`, { method: 'PUT' });
    expect(res.status).to.equal(405);
    expect(res.headers.get('allow')).to.contain('POST').and.contain('GET');
    expect((await errorOf(res)).code).to.equal('method_not_allowed');
  });
});
