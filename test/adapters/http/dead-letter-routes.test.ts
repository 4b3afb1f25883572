// The dead letters over the JSON API: `GET /dead-letters`, `POST /dead-letters/replay` and
// `POST /dead-letters/purge`, what `email dead-letters list|replay|purge` does, for admin keys.
import { expect } from 'chai';
import type { AccessFixture } from '../../support/access.js';
import { guardedAccess } from '../../support/access.js';
import { FakeDeadLetterBox, aDeadLetter } from './admin-fixtures.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

interface ErrorBody {
  readonly error: { code: string; message: string; fields?: Record<string, string> };
}

interface Listed {
  readonly data: {
    id: string;
    to: string[];
    subject: string;
    reason: string;
    reason_kind: string;
    attempts: number;
    failed_at: string;
  }[];
  readonly counts: { total: number; by_reason: Record<string, number> };
}

const OUT_OF_ATTEMPTS = 'out of attempts (8 of 8): Mailgun 503: try again later';

describe('dead letters over the JSON API', () => {
  let h: Harness;
  let box: FakeDeadLetterBox;

  afterEach(async () => h?.close());

  const send = (path: string, method: string, body?: unknown, headers: object = {}) =>
    fetch(`${h.url}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined
        ? { body: typeof body === 'string' ? body : JSON.stringify(body) }
        : {}),
    });
  const list = async (headers: object = {}): Promise<Listed> => {
    const res = await send('/dead-letters', 'GET', undefined, headers);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    return (await res.json()) as Listed;
  };
  const replay = (body: unknown, headers: object = {}) =>
    send('/dead-letters/replay', 'POST', body, headers);
  const purge = (body: unknown, headers: object = {}) =>
    send('/dead-letters/purge', 'POST', body, headers);
  const refused = async (res: Response, status: number): Promise<ErrorBody['error']> => {
    expect(res.status).to.equal(status);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    return ((await res.json()) as ErrorBody).error;
  };

  describe('guarded', () => {
    let fx: AccessFixture;
    let admin: Record<string, string>;

    beforeEach(async () => {
      box = new FakeDeadLetterBox([aDeadLetter(), aDeadLetter()]);
      fx = guardedAccess();
      h = await startHttp({ deadLetters: box, ...fx.deps });
      admin = { authorization: `Bearer ${await fx.key('ops', ['admin'])}` };
    });

    it('answers only a key with the admin scope: 401 without one, 403 with a send,read key', async () => {
      const sender = { authorization: `Bearer ${await fx.key('app', ['send', 'read'])}` };
      const calls = (headers: object) => [
        send('/dead-letters', 'GET', undefined, headers),
        replay({ all: true }, headers),
        purge({ confirm: true }, headers),
      ];
      for (const res of await Promise.all(calls({}))) {
        expect((await refused(res, 401)).code).to.equal('unauthorized');
        expect(res.headers.get('www-authenticate')).to.match(/^Bearer/);
      }
      for (const res of await Promise.all(calls(sender))) {
        expect((await refused(res, 403)).message).to.match(/\badmin scope\b/);
      }
      // Nothing of it reached the queue.
      expect(box.replays).to.deep.equal([]);
      expect(box.purges).to.equal(0);
      expect((await list(admin)).counts.total).to.equal(2);
    });

    it('lets an admin key replay and purge, and writes who did it in the audit lines', async () => {
      const [first] = box.letters;
      const one = await replay({ id: first!.id }, admin);
      expect(one.status).to.equal(200);
      expect(await one.json()).to.deep.equal({ replayed: 1 });
      const gone = await purge({ confirm: true }, admin);
      expect(await gone.json()).to.deep.equal({ purged: 1 });
      const audit = h.log.lines.filter((l) => 'audit' in l.fields);
      expect(audit.map((l) => l.fields)).to.deep.equal([
        {
          audit: 'dead-letters-replayed',
          selection: { kind: 'one', id: first!.id },
          replayed: 1,
          by: 'ops',
        },
        { audit: 'dead-letters-purged', purged: 1, by: 'ops' },
      ]);
    });

    it('keeps JSON for a key even when the client prefers HTML', async () => {
      const res = await send('/dead-letters', 'GET', undefined, { ...admin, accept: 'text/html' });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^application\/json/);
    });
  });

  describe('open (email dev on loopback)', () => {
    beforeEach(async () => {
      box = new FakeDeadLetterBox();
      h = await startHttp({ deadLetters: box });
    });

    it('lists every letter with its reason sorted into a kind, and the counts by kind', async () => {
      const refusedOne = aDeadLetter({ subject: 'Refused <b>bold</b>', attempts: 2 });
      const outOfAttempts = aDeadLetter({ reason: OUT_OF_ATTEMPTS, attempts: 8 });
      const malformed = aDeadLetter({ id: 'unknown', reason: 'malformed: not JSON', to: [] });
      box.letters = [refusedOne, outOfAttempts, malformed];
      const listed = await list();
      expect(listed.data[0]).to.deep.equal({
        id: refusedOne.id,
        to: ['Ada <ada@example.com>', 'bob@example.org'],
        subject: 'Refused <b>bold</b>',
        reason: refusedOne.reason,
        reason_kind: 'permanent',
        attempts: 2,
        failed_at: '2030-01-02T03:04:05.000Z',
      });
      expect(listed.data.map((l) => l.reason_kind)).to.deep.equal([
        'permanent',
        'out_of_attempts',
        'malformed',
      ]);
      expect(listed.counts).to.deep.equal({
        total: 3,
        by_reason: { permanent: 1, out_of_attempts: 1, malformed: 1, broker: 0, other: 0 },
      });
      // No Accept, or */*: JSON, as every API client of this address expects.
      const any = await send('/dead-letters', 'GET', undefined, { accept: '*/*' });
      expect(any.headers.get('content-type')).to.match(/^application\/json/);
      expect(any.headers.get('vary')).to.match(/\bAccept\b/i);
      expect(any.headers.get('cache-control')).to.equal('no-store');
    });

    it('refuses query parameters it does not know', async () => {
      const error = await refused(await send('/dead-letters?reason=permanent', 'GET'), 400);
      expect(error.code).to.equal('invalid_request');
      expect(error.fields).to.have.keys(['reason']);
    });

    it('replays one letter by its id, then says 404 for it', async () => {
      const [a, b] = [aDeadLetter(), aDeadLetter()];
      box.letters = [a, b];
      const res = await replay({ id: a.id });
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ replayed: 1 });
      expect(box.replays).to.deep.equal([{ id: a.id }]);
      expect((await list()).data.map((l) => l.id)).to.deep.equal([b.id]);
      const again = await refused(await replay({ id: a.id }), 404);
      expect(again.code).to.equal('not_found');
      expect(again.message).to.contain(a.id).and.contain('GET /dead-letters');
    });

    it('replays every letter, or only those of one reason', async () => {
      const permanent = [aDeadLetter(), aDeadLetter()];
      const exhausted = aDeadLetter({ reason: OUT_OF_ATTEMPTS });
      box.letters = [permanent[0]!, exhausted, permanent[1]!];
      const some = await replay({ all: true, reason: 'out_of_attempts' });
      expect(await some.json()).to.deep.equal({ replayed: 1 });
      expect((await list()).data.map((l) => l.id)).to.deep.equal(permanent.map((l) => l.id));
      const rest = await replay({ all: true });
      expect(await rest.json()).to.deep.equal({ replayed: 2 });
      expect((await list()).data).to.deep.equal([]);
      // Nothing left: a replay of all is not an error, it replays none.
      expect(await (await replay({ all: true })).json()).to.deep.equal({ replayed: 0 });
    });

    it('refuses a replay body that selects nothing, or two things, naming every problem', async () => {
      box.letters = [aDeadLetter()];
      const cases: [unknown, string[]][] = [
        [{}, ['id']],
        ['"all"', ['body']],
        [{ all: false }, ['all']],
        [{ id: 7 }, ['id']],
        [{ id: 'x', all: true }, ['all']],
        [{ all: true, reason: 'whim' }, ['reason']],
        [{ id: 'x', reason: 'permanent' }, ['reason']],
        [{ all: true, colour: 'red' }, ['colour']],
      ];
      for (const [body, fields] of cases) {
        const error = await refused(await replay(body), 400);
        expect(error.code, JSON.stringify(body)).to.equal('invalid_request');
        expect(Object.keys(error.fields ?? {}), JSON.stringify(body)).to.deep.equal(fields);
      }
      const one = await refused(await replay({ all: true, reason: 'whim' }), 400);
      expect(one.message).to.equal(
        'reason must be one of permanent, out_of_attempts, malformed, broker, other.',
      );
      const form = await send('/dead-letters/replay', 'POST', 'all=yes', {
        'content-type': 'text/plain',
      });
      expect((await refused(form, 415)).message).to.contain('application/json');
      expect(box.replays).to.deep.equal([]);
    });

    it('purges only when the body says {"confirm": true}', async () => {
      box.letters = [aDeadLetter(), aDeadLetter(), aDeadLetter()];
      for (const body of [{}, { confirm: 'yes' }, { confirm: false }, '[]']) {
        const error = await refused(await purge(body), 400);
        expect(error.fields, JSON.stringify(body)).to.have.property(
          typeof body === 'string' ? 'body' : 'confirm',
        );
      }
      const stray = await refused(await purge({}), 400);
      expect(stray.message).to.contain('confirm must be true');
      expect(box.purges, 'a stray POST purged nothing').to.equal(0);
      expect((await list()).counts.total).to.equal(3);
      const res = await purge({ confirm: true });
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ purged: 3 });
      expect((await list()).counts.total).to.equal(0);
    });

    it('answers 503 with Retry-After while the queue does not answer, and says what happened', async () => {
      box.letters = [aDeadLetter()];
      box.down = 'not connected to RabbitMQ';
      for (const res of [
        await send('/dead-letters', 'GET'),
        await replay({ all: true }),
        await purge({ confirm: true }),
      ]) {
        const error = await refused(res, 503);
        expect(res.headers.get('retry-after')).to.equal('5');
        expect(error.code).to.equal('queue_unavailable');
        expect(error.message).to.contain('not connected to RabbitMQ');
      }
      box.down = undefined;
      expect((await list()).counts.total).to.equal(1);
    });
  });
});
