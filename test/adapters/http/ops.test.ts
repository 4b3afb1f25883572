import { InMemoryEmailLog } from '../../../src/adapters/memory/in-memory-stores.js';
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import type { Harness } from './harness.js';
import { openForm, postForm, postJson, startHttp } from './harness.js';

describe('HTTP operations, fallbacks and safety nets', () => {
  let h: Harness;

  afterEach(async () => {
    expect((await fetch(`${h.url}/healthz`)).status).to.equal(200);
    await h.close();
  });

  it('answers /healthz with 200 {"status":"ok"}', async () => {
    h = await startHttp();
    const res = await fetch(`${h.url}/healthz`);
    expect(res.status).to.equal(200);
    expect(await res.json()).to.deep.equal({ status: 'ok' });
  });

  it('answers /readyz 200 while ready and 503 while not', async () => {
    h = await startHttp();
    expect((await fetch(`${h.url}/readyz`)).status).to.equal(200);
    h.readiness.ready = false;
    const down = await fetch(`${h.url}/readyz`);
    expect(down.status).to.equal(503);
    expect(await down.json()).to.deep.equal({ status: 'unavailable' });
    h.readiness.ready = true;
    expect((await fetch(`${h.url}/readyz`)).status).to.equal(200);
  });

  it('serves /metrics from its source, and 404 without one', async () => {
    h = await startHttp({
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'emails_total 3\n' }),
    });
    const res = await fetch(`${h.url}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('text/plain; version=0.0.4');
    expect(await res.text()).to.equal('emails_total 3\n');
    const without = await startHttp();
    try {
      expect((await fetch(`${without.url}/metrics`)).status).to.equal(404);
    } finally {
      await without.close();
    }
  });

  it('answers an unknown route with 404 in the format asked for', async () => {
    h = await startHttp();
    const page = await fetch(`${h.url}/nope`);
    expect(page.status).to.equal(404);
    expect(await page.text()).to.contain('Page not found');
    const api = await fetch(`${h.url}/nope`, { headers: { accept: 'application/json' } });
    expect(api.status).to.equal(404);
    expect(await api.json()).to.deep.equal({
      error: { code: 'not_found', message: 'There is nothing at this address.' },
    });
  });

  it('answers a wrong method on a known route with 405 and Allow', async () => {
    h = await startHttp();
    const res = await fetch(`${h.url}/`, { method: 'DELETE' });
    expect(res.status).to.equal(405);
    expect(res.headers.get('allow')).to.match(/GET/).and.match(/POST/);
    expect(await res.text()).to.contain('Method not allowed');
  });

  it('sends the security headers on HTML pages', async () => {
    h = await startHttp();
    for (const path of ['/', '/nope']) {
      const res = await fetch(`${h.url}${path}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).to.contain("default-src 'none'");
      expect(csp).to.contain("script-src 'self'");
      expect(csp).to.match(/style-src 'sha256-[A-Za-z0-9+/=]+'/);
      expect(csp).to.contain("frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      expect(res.headers.get('referrer-policy')).to.equal('same-origin');
      expect(res.headers.get('x-frame-options')).to.equal('DENY');
    }
  });

  it('allows exactly the inline stylesheet it sends, by hash', async () => {
    h = await startHttp();
    const res = await fetch(`${h.url}/`);
    const style = /<style>([\s\S]*?)<\/style>/.exec(await res.text())![1]!;
    const hash = createHash('sha256').update(style).digest('base64');
    expect(res.headers.get('content-security-policy')).to.contain(`style-src 'sha256-${hash}'`);
  });

  it('answers a bug with a generic 500, logs it, and keeps serving', async () => {
    const emails = new InMemoryEmailLog();
    emails.get = () => () => Promise.reject(new Error('secret internal detail'));
    h = await startHttp({
      requestEmail: {
        execute: () => () => Promise.reject(new Error('secret internal detail')),
      },
      emails,
    });
    const api = await postJson(h, { to: 'ada@example.com', subject: 'S', text: 'T' });
    expect(api.status).to.equal(500);
    const body = await api.text();
    expect(JSON.parse(body)).to.have.nested.property('error.code', 'internal_error');
    expect(body).not.to.contain('secret');

    const form = await openForm(h);
    const page = await postForm(
      h,
      { to: 'ada@example.com', subject: 'S', text: 'T', _csrf: form.token, _nonce: form.nonce },
      form.cookie,
    );
    expect(page.status).to.equal(500);
    expect(await page.text()).not.to.contain('secret');

    const status = await fetch(`${h.url}/emails/email-00000001`, {
      headers: { accept: 'application/json' },
    });
    expect(status.status).to.equal(500);
    expect(h.log.errors()).to.have.length(3);
    expect(h.log.errors()[0]!.fields).to.have.property('err');
  });
});
