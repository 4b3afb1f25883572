// The listener and the signal handling every role shares (src/main/runtime.ts): what a slow
// client, a stop with live pages open, and a signal sent twice do to a running process.
import { expect } from 'chai';
import { connect } from 'node:net';
import { createHttpApp } from '../../src/adapters/http/app.js';
import type { Listening } from '../../src/main/runtime.js';
import { REPEATED_SIGNAL_MS, listen, shutdownSignalHandler } from '../../src/main/runtime.js';
import { aRequest, anEvent } from '../support/builders.js';
import { RecordingLogger } from '../support/fakes.js';
import { eventually, sleep } from '../support/waiting.js';
import type { TestApp } from '../adapters/http/harness.js';
import { testApp } from '../adapters/http/harness.js';

const email = aRequest({ id: 'email-00000077', requestedAt: new Date('2030-01-02T03:04:05Z') });

/** An open event stream: the statuses heard so far, and whether the server ended it. */
interface Stream {
  readonly statuses: string[];
  ended: boolean;
}

async function openStream(url: string): Promise<Stream> {
  const res = await fetch(`${url}/emails/${email.id}/events`);
  expect(res.status).to.equal(200);
  const stream: Stream = { statuses: [], ended: false };
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const match of value.matchAll(/"status":"(\w+)"/g)) stream.statuses.push(match[1]!);
      }
      stream.ended = true;
    } catch {
      // cut rather than ended: `ended` stays false
    }
  })();
  await eventually(() => stream.statuses.length > 0);
  return stream;
}

describe('the HTTP listener (runtime.listen)', function () {
  this.timeout(20_000);
  let app: TestApp;
  let closing: AbortController;
  let http: Listening;

  beforeEach(async () => {
    closing = new AbortController();
    app = testApp({ closing: closing.signal });
    await app.change(anEvent.requested(email));
    // A 1 s limit stands for the 30 s one, so the test need not wait half a minute.
    http = await listen(createHttpApp(app.deps).callback(), 0, '127.0.0.1', 'PORT', {
      requestTimeoutMs: 1_000,
    });
  });
  afterEach(async () => {
    await http.close(0);
    expect(app.log.errors()).to.deep.equal([]);
  });

  it('cuts a body trickled slower than the request timeout, with 408', async () => {
    const { port } = new URL(http.url);
    const socket = connect(Number(port), '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    const closed = new Promise<number>((resolve) =>
      socket.once('close', () => resolve(Date.now())),
    );
    await new Promise((resolve) => socket.once('connect', resolve));
    const started = Date.now();
    socket.write(
      'POST /emails HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'Content-Length: 1000\r\n\r\n{',
    );
    // One byte every 100 ms: the body would take 100 s.
    const trickle = setInterval(() => socket.writable && socket.write(' '), 100);
    const end = await closed;
    clearInterval(trickle);
    expect(end - started)
      .to.be.at.least(900)
      .and.below(3_000);
    expect(answer).to.match(/^HTTP\/1\.1 408 /);
    expect(app.queue.published).to.deep.equal([]);
  });

  it('answers what Node refuses before the app in the JSON error form, and closes', async () => {
    const { port } = new URL(http.url);
    /** Sends `raw` on a fresh connection and answers all it got back before the close. */
    const exchange = (raw: string) =>
      new Promise<string>((resolve, reject) => {
        let answer = '';
        const socket = connect(Number(port), '127.0.0.1', () => socket.write(raw));
        socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
        socket.on('close', () => resolve(answer)).on('error', reject);
      });
    const errorOf = (answer: string) =>
      (JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string } })
        .error.code;

    const huge = await exchange(
      `GET /emails HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'x'.repeat(20_000)}\r\n\r\n`,
    );
    expect(huge).to.match(/^HTTP\/1\.1 431 /);
    expect(huge).to.include('Content-Type: application/json');
    expect(errorOf(huge)).to.equal('headers_too_large');

    const garbage = await exchange('NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).to.match(/^HTTP\/1\.1 400 /);
    expect(errorOf(garbage)).to.equal('malformed_request');
  });

  it('lets an event stream last longer than the request timeout', async () => {
    const stream = await openStream(http.url);
    await sleep(2_500);
    expect(stream.ended).to.equal(false);
    await app.change(anEvent.sending(email, { at: '2030-01-02T03:04:06.000Z' }));
    await eventually(() => stream.statuses.includes('sending'));
    expect(stream.ended).to.equal(false);
  });

  it('stops at once with event streams open, once they are told the server is closing', async () => {
    const streams = [await openStream(http.url), await openStream(http.url)];
    const started = Date.now();
    closing.abort();
    await http.close(5_000);
    expect(Date.now() - started).to.be.below(1_000);
    await eventually(() => streams.every((s) => s.ended));
    expect(app.bus.subscribers).to.equal(0);
  });
});

describe('shutdown signals (runtime.shutdownSignalHandler)', () => {
  /** A handler over a clock the test moves, and the stops and exits it asked for. */
  function handler(stopMs = 50) {
    let now = 1_000_000;
    const exits: number[] = [];
    const stops: string[] = [];
    const log = new RecordingLogger();
    const handle = shutdownSignalHandler(
      log,
      async (signal) => {
        stops.push(signal);
        await sleep(stopMs);
      },
      (code) => exits.push(code),
      () => now,
    );
    return {
      handle,
      exits,
      stops,
      log,
      advance: (ms: number) => {
        now += ms;
      },
    };
  }

  it('stops gracefully on the first signal, then exits 0', async () => {
    const h = handler();
    h.handle('SIGTERM');
    expect(h.stops).to.deep.equal(['SIGTERM']);
    await eventually(() => h.exits.length > 0);
    expect(h.exits).to.deep.equal([0]);
  });

  it('takes a signal repeated within a moment (a process group signalled) as the same stop', async () => {
    const h = handler();
    h.handle('SIGINT');
    h.advance(REPEATED_SIGNAL_MS - 1);
    h.handle('SIGINT');
    h.handle('SIGTERM');
    expect(h.exits).to.deep.equal([]);
    expect(h.stops).to.deep.equal(['SIGINT']);
    await eventually(() => h.exits.length > 0);
    expect(h.exits).to.deep.equal([0]);
    expect(h.log.text()).not.to.contain('exiting now');
  });

  it('exits at once, 130, on a second signal after that moment', () => {
    const h = handler(60_000);
    h.handle('SIGINT');
    h.advance(REPEATED_SIGNAL_MS);
    h.handle('SIGINT');
    expect(h.exits).to.deep.equal([130]);
    expect(h.stops).to.have.length(1);
  });

  it('exits 1 when the stop fails', async () => {
    const log = new RecordingLogger();
    const exits: number[] = [];
    const handle = shutdownSignalHandler(
      log,
      () => Promise.reject(new Error('broker gone')),
      (code) => exits.push(code),
    );
    handle('SIGTERM');
    await eventually(() => exits.length > 0);
    expect(exits).to.deep.equal([1]);
    expect(log.errors()).to.have.length(1);
  });
});
