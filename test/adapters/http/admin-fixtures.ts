// What the tests of the operator pages share: a dead-letter box to look into, and a client that
// keeps cookies and reads hidden fields the way a browser without JavaScript does.
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  DeadLetter,
  DeadLetterBox,
  ReplaySelector,
} from '../../../src/application/ports/dead-letter-box.js';
import type { QueueUnavailable } from '../../../src/application/ports/email-queue.js';
import { queueUnavailable } from '../../../src/application/ports/email-queue.js';

/** What Chromium sends when it navigates: HTML first, anything else at a lower q. */
export const BROWSER_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8';

let n = 0;

/** A dead letter as a worker leaves one: refused by the provider on the first attempt. */
export function aDeadLetter(overrides: Partial<DeadLetter> = {}): DeadLetter {
  n += 1;
  return {
    id: `dead-letter-${String(n).padStart(4, '0')}`,
    to: ['Ada <ada@example.com>', 'bob@example.org'],
    subject: `Refused ${n}`,
    reason: 'permanent: Mailgun 400: to parameter is not a valid address',
    attempts: 1,
    failedAt: '2030-01-02T03:04:05.000Z',
    history: [],
    ...overrides,
  };
}

/**
 * A dead-letter box in memory that records what was asked of it, with the semantics of the real
 * ones: an id selects every letter of that email, `all` every letter; `down` makes every call a
 * QueueUnavailable, as a broker that does not answer.
 */
export class FakeDeadLetterBox implements DeadLetterBox {
  letters: DeadLetter[] = [];
  down: string | undefined;
  readonly replays: ReplaySelector[] = [];
  purges = 0;
  /** Called with the letters each replay put back (the worker's part, in a test that wants it). */
  onReplay: (letters: readonly DeadLetter[]) => void = () => undefined;

  constructor(letters: readonly DeadLetter[] = []) {
    this.letters = [...letters];
  }

  list(): TE.TaskEither<QueueUnavailable, readonly DeadLetter[]> {
    if (this.down !== undefined) return TE.left(queueUnavailable(this.down));
    return TE.right([...this.letters]);
  }

  replay(selector: ReplaySelector): TE.TaskEither<QueueUnavailable, number> {
    if (this.down !== undefined) return TE.left(queueUnavailable(this.down));
    this.replays.push(selector);
    const taken = this.letters.filter((l) => 'all' in selector || l.id === selector.id);
    this.letters = this.letters.filter((l) => !taken.includes(l));
    this.onReplay(taken);
    return TE.right(taken.length);
  }

  purge(): TE.TaskEither<QueueUnavailable, number> {
    if (this.down !== undefined) return TE.left(queueUnavailable(this.down));
    this.purges += 1;
    const count = this.letters.length;
    this.letters = [];
    return TE.right(count);
  }
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** The value of the hidden field `name` in `html` (the first one). */
export function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (match?.[1] === undefined) throw new Error(`no ${name} in the page`);
  return match[1]
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'");
}

/**
 * A browser as far as HTTP goes: it sends a navigation's `Accept`, keeps the cookies the server
 * sets and sends them back, and never follows a redirect by itself (a test reads each 303).
 */
export class PageClient {
  readonly jar = new Map<string, string>();
  constructor(readonly base: string) {}

  get cookie(): string {
    return [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return this.keep(
      await fetch(`${this.base}${path}`, {
        redirect: 'manual',
        headers: { accept: BROWSER_ACCEPT, cookie: this.cookie, ...headers },
      }),
    );
  }

  /** Posts a url-encoded form (repeat a field by giving a list). */
  async post(
    path: string,
    fields: Record<string, string | readonly string[]>,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(fields)) {
      for (const v of typeof value === 'string' ? [value] : value) body.append(name, v);
    }
    return this.keep(
      await fetch(`${this.base}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          accept: BROWSER_ACCEPT,
          'content-type': 'application/x-www-form-urlencoded',
          cookie: this.cookie,
          ...headers,
        },
        body: body.toString(),
      }),
    );
  }

  /** Signs in through /login as a person would (guarded access only). */
  async signIn(name: string, password: string): Promise<void> {
    const page = await this.get('/login');
    const done = await this.post('/login', {
      _csrf: hidden(page.text, '_csrf'),
      next: '/',
      username: name,
      password,
    });
    if (done.status !== 303) throw new Error(`sign-in answered ${done.status}: ${done.text}`);
  }

  private async keep(res: Response): Promise<Answer> {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const expired = attributes.some((a) => /^\s*expires=.*1970/i.test(a));
      if (expired || pair.slice(at + 1) === '') this.jar.delete(name);
      else this.jar.set(name, pair.slice(at + 1));
    }
    return { status: res.status, headers: res.headers, text: await res.text() };
  }
}
