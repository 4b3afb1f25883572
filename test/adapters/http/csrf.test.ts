import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { createCsrf } from '../../../src/adapters/http/csrf.js';

const sid = 'a'.repeat(43);
const other = 'b'.repeat(43);

describe('CSRF tokens', () => {
  let now = 1_000_000;
  const csrf = createCsrf({ secret: Buffer.from('k'.repeat(32)), ttlMs: 60_000, now: () => now });

  beforeEach(() => {
    now = 1_000_000;
  });

  it('accepts a token for the session it was issued to, within its lifetime', () => {
    const token = csrf.issue(sid);
    now += 59_000;
    expect(csrf.verify(sid, token)).to.deep.equal(E.right(undefined));
  });

  it('says why it refuses a token', () => {
    const token = csrf.issue(sid);
    expect(csrf.verify(undefined, token)).to.deep.equal(E.left('missing-session'));
    expect(csrf.verify(sid, undefined)).to.deep.equal(E.left('missing-token'));
    expect(csrf.verify(sid, ['x'])).to.deep.equal(E.left('missing-token'));
    expect(csrf.verify(sid, 'not-a-token')).to.deep.equal(E.left('malformed-token'));
    expect(csrf.verify(sid, 'x'.repeat(300))).to.deep.equal(E.left('malformed-token'));
    expect(csrf.verify(other, token)).to.deep.equal(E.left('wrong-token'));
    now += 60_001;
    expect(csrf.verify(sid, token)).to.deep.equal(E.left('expired-token'));
  });

  it('binds a token to the signed-in operator too: one issued to a signed-out visitor with the same sid is refused', () => {
    // What the routes see: the browser's cookies, nothing else.
    const browser = (cookies: Record<string, string>) =>
      ({
        cookies: { get: (name: string) => cookies[name], set: () => undefined },
        secure: false,
      }) as unknown as Parameters<typeof csrf.session>[0];
    const attacker = browser({ sid });
    const operator = browser({ sid, email_session: 'operator-session-token' });
    const planted = csrf.issue(csrf.ensureSession(attacker));
    expect(csrf.verify(csrf.session(operator), planted)).to.deep.equal(E.left('wrong-token'));
    // The operator's own pages issue tokens that do verify.
    const own = csrf.issue(csrf.ensureSession(operator));
    expect(csrf.verify(csrf.session(operator), own)).to.deep.equal(E.right(undefined));
    // Signing in again (another session cookie) voids the tokens issued before.
    const again = browser({ sid, email_session: 'a-new-session-token' });
    expect(csrf.verify(csrf.session(again), own)).to.deep.equal(E.left('wrong-token'));
  });

  it('refuses a token whose time was changed, since the time is signed too', () => {
    const [issuedAt, nonce, mac] = Buffer.from(csrf.issue(sid), 'base64url').toString().split('.');
    const moved = Buffer.from(`${Number(issuedAt) + 50_000}.${nonce}.${mac}`).toString('base64url');
    expect(csrf.verify(sid, moved)).to.deep.equal(E.left('wrong-token'));
  });

  it('refuses a token issued by another secret', () => {
    const foreign = createCsrf({ secret: Buffer.from('z'.repeat(32)), now: () => now });
    expect(csrf.verify(sid, foreign.issue(sid))).to.deep.equal(E.left('wrong-token'));
  });
});
