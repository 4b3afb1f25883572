// The open mode (`email dev` on a loopback address) answers only requests addressed to a
// loopback name: a page that rebinds a name of its own to 127.0.0.1 gets a 403, over real HTTP.
import { request } from 'node:http';
import { connect } from 'node:net';
import { expect } from 'chai';
import { hostName, isLoopback } from '../../../src/adapters/http/loopback.js';
import { guardedAccess } from '../../support/access.js';
import type { Harness } from './harness.js';
import { eachHttp, published, startHttp } from './harness.js';

interface Answer {
  readonly status: number;
  readonly text: string;
}

/** A request with the `Host` header given (fetch would send the URL's own). */
function ask(
  url: string,
  host: string | undefined,
  options: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: target.hostname,
        port: target.port,
        path: target.pathname,
        method: options.method ?? 'GET',
        headers: { ...options.headers, ...(host === undefined ? {} : { host }) },
        setHost: host !== undefined,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const email = JSON.stringify({ to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' });
const json = { 'content-type': 'application/json', accept: 'application/json' };

describe('the open mode and the Host header', () => {
  let h: Harness;
  eachHttp((harness) => (h = harness));

  it('refuses a request addressed to another name with 403, sending nothing', async () => {
    const port = new URL(h.url).port;
    const sent = await ask(`${h.url}/emails`, `rebind.attacker.example:${port}`, {
      method: 'POST',
      body: email,
      headers: json,
    });
    expect(sent.status).to.equal(403);
    const { error } = JSON.parse(sent.text) as { error: { code: string; message: string } };
    expect(error.code).to.equal('forbidden');
    expect(error.message).to.include('"rebind.attacker.example:');
    expect(error.message).to.include('localhost, 127.0.0.1 or [::1]');
    expect(published(h)).to.deep.equal([]);

    const listed = await ask(`${h.url}/emails`, `rebind.attacker.example:${port}`, {
      headers: { accept: 'application/json' },
    });
    expect(listed.status).to.equal(403);
    // A page, for a browser.
    const page = await ask(`${h.url}/`, 'rebind.attacker.example');
    expect(page.status).to.equal(403);
    expect(page.text).to.include('Not addressed to this machine');
  });

  it('refuses an HTTP/1.0 request without a Host header', async () => {
    // Node answers an HTTP/1.1 request without one 400 itself; HTTP/1.0 needs none.
    const { port } = new URL(h.url);
    const raw = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.end('GET /emails HTTP/1.0\r\nAccept: application/json\r\n\r\n'),
      );
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text)).on('error', reject);
    });
    expect(raw).to.match(/^HTTP\/1\.1 403 /);
    expect(raw).to.include('needs a Host header');
  });

  it('answers a request addressed by any loopback name, with or without a port', async () => {
    const port = new URL(h.url).port;
    const names = [`localhost:${port}`, `127.0.0.1:${port}`, '127.0.0.2', `[::1]:${port}`];
    for (const [i, host] of [...names, 'LocalHost', 'app.localhost'].entries()) {
      const sent = await ask(`${h.url}/emails`, host, {
        method: 'POST',
        body: email,
        headers: json,
      });
      expect(sent.status, host).to.equal(202);
      expect(published(h)).to.have.length(i + 1);
    }
  });
});

describe('the guarded mode and the Host header', () => {
  it('leaves the Host header to the proxy in front: a key is what it asks for', async () => {
    const { deps } = guardedAccess();
    const h = await startHttp(deps);
    try {
      const answer = await ask(`${h.url}/emails`, 'mail.example.com', {
        method: 'POST',
        body: email,
        headers: json,
      });
      expect(answer.status).to.equal(401);
    } finally {
      await h.close();
    }
  });
});

describe('hostName and isLoopback', () => {
  it('read a Host header as its name, and nothing else as one', () => {
    expect(hostName('LOCALHOST:3000')).to.equal('localhost');
    expect(hostName('[::1]:3000')).to.equal('[::1]');
    expect(hostName('127.0.0.1')).to.equal('127.0.0.1');
    for (const bad of [undefined, '', 'a b', 'user@127.0.0.1', '127.0.0.1/x', 'x:port']) {
      expect(hostName(bad), String(bad)).to.equal(undefined);
    }
  });

  it('tell loopback names from the rest', () => {
    for (const name of ['localhost', 'a.localhost', '127.0.0.1', '127.9.9.9', '[::1]', '::1']) {
      expect(isLoopback(name), name).to.equal(true);
    }
    for (const name of ['localhost.example.com', '128.0.0.1', '0.0.0.0', '::', 'example.com']) {
      expect(isLoopback(name), name).to.equal(false);
    }
  });
});
