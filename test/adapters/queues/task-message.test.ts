import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import {
  MAX_HISTORY,
  decodeTask,
  describeDeadLetter,
  encodeTask,
  replayOf,
  toDeadLetter,
} from '../../../src/adapters/messaging/task-message.js';
import { aRequest, aTask, anAttempt } from '../../support/builders.js';

const record = (attempt: number) => anAttempt(attempt, { detail: `failure ${attempt}` });

describe('The task wire format', () => {
  it('round-trips a task through bytes and headers, with the email id as messageId', () => {
    const task = aTask({ attempt: 3, history: [record(1), record(2)] });
    const wire = encodeTask(task);
    expect(wire.messageId).to.equal(task.request.id);
    expect(JSON.parse(wire.body.toString())).to.deep.equal({ v: 1, request: task.request });
    expect(decodeTask(wire.body, wire.headers)).to.deep.equal(E.right(task));
  });

  it('round-trips every field a request can hold, so the worker sees the request recorded', () => {
    // The worker folds its first change onto the entry it works out from this request
    // (EmailLog.recordedBasis): the request it decodes must be the one the server recorded.
    const request = aRequest({
      from: 'Shop <shop@example.org>',
      cc: ['carol@example.net'],
      bcc: ['dan@example.com'],
      reply_to: ['help@example.org'],
      html: '<p>Hello</p>',
      headers: { 'X-Campaign': 'autumn', 'List-Unsubscribe': '<https://example.org/u>' },
      tags: ['welcome', 'autumn_2026'],
      metadata: { customer: '42', plan: 'pro' },
    });
    const task = aTask({ request });
    const wire = encodeTask(task);
    expect(decodeTask(wire.body, wire.headers)).to.deep.equal(E.right(task));
  });

  it('publishes a first attempt with no header, and a later one or a throttled one with both', () => {
    const first = aTask({ attempt: 1, history: [] });
    expect(encodeTask(first).headers).to.deep.equal({});
    expect(decodeTask(encodeTask(first).body, {})).to.deep.equal(E.right(first));
    const retry = aTask({ attempt: 2, history: [record(1)] });
    expect(Object.keys(encodeTask(retry).headers).sort()).to.deep.equal(['x-attempt', 'x-history']);
    // A first attempt handed back after a throttle keeps its history, and so its headers.
    const throttled = aTask({ attempt: 1, history: [{ ...record(1), throttled: true }] });
    const wire = encodeTask(throttled);
    expect(wire.headers).to.include({ 'x-attempt': 1 });
    expect(decodeTask(wire.body, wire.headers)).to.deep.equal(E.right(throttled));
  });

  it('keeps only the last attempts of a long history', () => {
    const history = Array.from({ length: MAX_HISTORY + 5 }, (_, i) => record(i + 1));
    const wire = encodeTask({ request: aRequest(), attempt: 26, history });
    const decoded = decodeTask(wire.body, wire.headers);
    expect(E.isRight(decoded) && decoded.right.history).to.deep.equal(history.slice(-MAX_HISTORY));
  });

  it('says what is wrong with a malformed task, naming fields but never their values', () => {
    const request = { ...aRequest(), to: ['x@example.org\r\nBcc: evil@example.org'] };
    const cases: Array<[string, string]> = [
      ['{oops', 'body is not JSON'],
      ['[1]', 'body is not a JSON object'],
      ['{"request":{}}', 'unsupported schema version missing'],
      ['{"v":2}', 'unsupported schema version 2'],
      [JSON.stringify({ v: 1, request }), 'invalid request.to.0'],
    ];
    for (const [body, reason] of cases) {
      expect(decodeTask(Buffer.from(body), {})).to.deep.equal(E.left(reason));
    }
  });

  it('describes a dead letter from its headers, or from what RabbitMQ added itself', () => {
    const request = aRequest();
    const wire = encodeTask({ request, attempt: 4, history: [] });
    const failedAt = new Date('2026-11-28T11:00:00.000Z');
    const ours = toDeadLetter(wire, {
      reason: 'permanent:\r\n550',
      attempts: 4,
      failedAt,
      history: [record(4)],
    });
    expect(describeDeadLetter(ours)).to.deep.equal({
      id: request.id,
      to: [...request.to],
      subject: request.subject,
      reason: 'permanent: 550',
      attempts: 4,
      failedAt: failedAt.toISOString(),
      history: [record(4)],
    });
    const byBroker = {
      ...wire,
      headers: {
        ...wire.headers,
        'x-death': [
          {
            reason: 'delivery_limit',
            queue: 'email.send',
            time: { '!': 'timestamp', value: 1795855903 },
          },
        ],
      },
    };
    expect(describeDeadLetter(byBroker)).to.deep.include({
      reason: 'broker: delivery_limit in email.send',
      attempts: 4,
      failedAt: new Date(1795855903 * 1000).toISOString(),
    });
  });

  it('replays a dead letter as a fresh first attempt, and leaves one that is malformed', () => {
    const request = aRequest();
    const letter = toDeadLetter(encodeTask({ request, attempt: 5, history: [record(5)] }), {
      reason: 'out of attempts',
      attempts: 5,
      failedAt: new Date('2026-11-28T11:00:00.000Z'),
      history: [record(5)],
    });
    const replayed = replayOf(letter, { id: request.id });
    expect(replayed && decodeTask(replayed.body, replayed.headers)).to.deep.equal(
      E.right({ request, attempt: 1, history: [] }),
    );
    expect(replayOf(letter, { id: 'someone-else' })).to.equal(undefined);
    const malformed = { ...letter, body: Buffer.from('{"v":1}') };
    expect(replayOf(malformed, { all: true })).to.equal(undefined);
  });
});
