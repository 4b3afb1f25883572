// The actions on an email's page over real HTTP: each a confirmation page and a POST with the
// CSRF token, ending on the email's page with a notice, or on a page that says why not.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { EmailId } from '../../../src/domain/email-request.js';
import type { EmailStatus } from '../../../src/domain/email-status.js';
import { guardedAccess } from '../../support/access.js';
import { anEvent } from '../../support/builders.js';
import type { EmailPageApp } from './email-page-app.js';
import { Visitor, accept, hiddenFields, startEmailPageApp } from './email-page-app.js';

const email = { to: ['Ada <ada@example.com>', 'bob@example.com'], subject: 'Hello', text: 'Hi' };
const inADay = () => new Date(Date.now() + 86_400_000).toISOString();

describe('The actions on an email’s page', () => {
  let app: EmailPageApp;
  let visitor: Visitor;

  beforeEach(async () => {
    app = await startEmailPageApp();
    visitor = new Visitor(app.url);
  });

  afterEach(() => app.close());

  const statusOf = async (id: string): Promise<EmailStatus> => {
    const found = await app.emails.get(id as EmailId)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail(`no email ${id}`);
    return found.right.value;
  };

  /** An email a worker tried once and refused for good. */
  const failedEmail = async (input: object = email): Promise<string> => {
    const id = await accept(app, input);
    const found = await app.emails.request(id as EmailId)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('no request');
    await app.change(anEvent.failed(found.right.value, { at: new Date().toISOString() }));
    return id;
  };

  /** An email whose attempt 1 failed for now: attempt 2 waits a minute. */
  const retryingEmail = async (): Promise<string> => {
    const id = await accept(app, email);
    const found = await app.emails.request(id as EmailId)();
    if (E.isLeft(found) || O.isNone(found.right)) return expect.fail('no request');
    const now = new Date().toISOString();
    await app.change(anEvent.sending(found.right.value, { at: now }));
    await app.change(anEvent.retried(found.right.value, { at: now, delayMs: 60_000 }));
    return id;
  };

  describe('Cancel', () => {
    it('is offered on a scheduled email, asks first, and cancels it with the CSRF token', async () => {
      const id = await accept(app, { ...email, send_at: inADay() });
      const page = await visitor.get(`/emails/${id}`);
      expect(page.text).to.contain(`<a class="action-link" href="/emails/${id}/cancel">`);
      expect(page.text).not.to.contain(`/emails/${id}/resend`);

      const confirm = await visitor.get(`/emails/${id}/cancel`);
      expect(confirm.status).to.equal(200);
      expect(confirm.text).to.contain('<h1>Cancel this email?</h1>');
      expect(confirm.text).to.contain(`<form method="post" action="/emails/${id}/cancel"`);
      expect(confirm.text).to.contain(`<a class="confirm-back" href="/emails/${id}">`);
      expect((await statusOf(id)).status).to.equal('scheduled');

      const done = await visitor.post(`/emails/${id}/cancel`, hiddenFields(confirm.text));
      expect(done.status).to.equal(303);
      expect(done.headers.get('location')).to.equal(`/emails/${id}?done=cancelled`);
      expect((await statusOf(id)).status).to.equal('cancelled');
      const after = await visitor.get(`/emails/${id}?done=cancelled`);
      expect(after.text).to.contain('Cancelled: this email will never be sent.');
      // A cancelled email may be sent after all, as a new one.
      expect(after.text).to.contain(`href="/emails/${id}/resend"`);
    });

    it('refuses a post without the CSRF token, and changes nothing', async () => {
      const id = await accept(app, { ...email, send_at: inADay() });
      await visitor.get(`/emails/${id}/cancel`);
      for (const fields of [{}, { _csrf: 'forged' }] as Record<string, string>[]) {
        const res = await visitor.post(`/emails/${id}/cancel`, fields);
        expect(res.status).to.equal(403);
        expect(res.text).to.contain('Nothing was changed');
      }
      // Another browser's token is no better.
      const other = new Visitor(app.url);
      const theirs = hiddenFields((await other.get(`/emails/${id}/cancel`)).text);
      expect((await visitor.post(`/emails/${id}/cancel`, theirs)).status).to.equal(403);
      expect((await statusOf(id)).status).to.equal('scheduled');
    });

    it('is 409, with the reason, for an email that was never scheduled', async () => {
      const id = await accept(app, email);
      const confirm = await visitor.get(`/emails/${id}/cancel`);
      expect(confirm.status).to.equal(409);
      expect(confirm.text).to.contain('Only a scheduled email can be cancelled');
      // The form of a moment ago, posted once the email moved on.
      const scheduled = await accept(app, { ...email, send_at: inADay() });
      const form = hiddenFields((await visitor.get(`/emails/${scheduled}/cancel`)).text);
      const res = await visitor.post(`/emails/${id}/cancel`, form);
      expect(res.status).to.equal(409);
      expect(res.text).to.contain('this one was not scheduled (it is queued)');
      expect(res.text).to.contain(`<a href="/emails/${id}">Back to the email</a>`);
      expect((await statusOf(id)).status).to.equal('queued');
    });
  });

  describe('Retry now', () => {
    it('is offered on a retrying email and brings its next attempt forward', async () => {
      const id = await retryingEmail();
      const page = await visitor.get(`/emails/${id}`);
      expect(page.text).to.contain(`<a class="action-link" href="/emails/${id}/retry">`);
      const confirm = await visitor.get(`/emails/${id}/retry`);
      expect(confirm.text).to.contain('Attempt 2 is due at');
      const done = await visitor.post(`/emails/${id}/retry`, hiddenFields(confirm.text));
      expect(done.status).to.equal(303);
      expect(done.headers.get('location')).to.equal(`/emails/${id}?done=retried`);
      const status = await statusOf(id);
      // The in-memory queue copies, as RabbitMQ does: the waiting task will be dropped.
      expect(status.expedited).to.deep.equal([2]);
      expect(status.history.map((c) => c.status)).to.include('expedited');
      expect((await visitor.get(`/emails/${id}?done=retried`)).text).to.contain(
        'Retrying now: the next attempt is on its way to a worker.',
      );
    });

    it('is 409 for an email that is not retrying, and refuses a post without the token', async () => {
      const queued = await accept(app, email);
      expect((await visitor.get(`/emails/${queued}`)).text).not.to.contain('/retry"');
      expect((await visitor.get(`/emails/${queued}/retry`)).status).to.equal(409);
      const retrying = await retryingEmail();
      const form = hiddenFields((await visitor.get(`/emails/${retrying}/retry`)).text);
      const refused = await visitor.post(`/emails/${queued}/retry`, form);
      expect(refused.status).to.equal(409);
      expect(refused.text).to.contain('Not possible any more: it is queued');
      expect((await visitor.post(`/emails/${retrying}/retry`, {})).status).to.equal(403);
      expect((await statusOf(retrying)).expedited).to.equal(undefined);
    });
  });

  describe('Resend', () => {
    it('sends a failed email again as a new email, and the two pages link to each other', async () => {
      const old = await failedEmail();
      const page = await visitor.get(`/emails/${old}`);
      expect(page.text).to.contain(`<a class="action-link" href="/emails/${old}/resend">`);
      const confirm = await visitor.get(`/emails/${old}/resend`);
      const fields = hiddenFields(confirm.text);
      expect(Object.keys(fields).sort()).to.deep.equal(['_csrf', '_nonce']);

      const done = await visitor.post(`/emails/${old}/resend`, fields);
      expect(done.status).to.equal(303);
      const location = done.headers.get('location') ?? '';
      const fresh = /^\/emails\/([^?]+)\?done=resent$/.exec(location)?.[1];
      expect(fresh, location).to.be.a('string');
      expect(fresh).not.to.equal(old);

      const freshPage = await visitor.get(location);
      expect(freshPage.text).to.contain(
        `Resend of <a href="/emails/${old}"><code>${old}</code></a>.`,
      );
      expect(freshPage.text).to.contain('Resent: this is a new email with the same message');
      const oldPage = await visitor.get(`/emails/${old}`);
      expect(oldPage.text).to.contain(
        `Resent as <a href="/emails/${fresh}"><code>${fresh}</code></a>.`,
      );

      // The same form again (a double click, Back and resubmit): the same new email, not a third.
      const again = await visitor.post(`/emails/${old}/resend`, fields);
      expect(again.headers.get('location')).to.equal(location);
      expect((await statusOf(old)).resentAs).to.deep.equal([fresh]);
      // Its confirmation page now says it was resent already.
      expect((await visitor.get(`/emails/${old}/resend`)).text).to.contain('It was resent already');

      // Without the page's one-time number a post could not be told from the next: refused.
      for (const nonce of [undefined, '', 'short']) {
        const incomplete = await visitor.post(`/emails/${old}/resend`, {
          _csrf: fields._csrf ?? '',
          ...(nonce === undefined ? {} : { _nonce: nonce }),
        });
        expect(incomplete.status, String(nonce)).to.equal(400);
        expect(incomplete.text).to.contain('so nothing was resent');
      }
      expect((await statusOf(old)).resentAs).to.deep.equal([fresh]);
    });

    it('leaves out the recipients on the suppression list, and says so', async () => {
      const old = await failedEmail();
      await app.suppressions.add({
        address: 'bob@example.com',
        reason: 'bounce',
        createdAt: new Date(),
      })();
      const done = await visitor.confirm(`/emails/${old}/resend`);
      expect(done.headers.get('location')).to.match(/\?done=resent-partly$/);
      const page = await visitor.get(done.headers.get('location') ?? '');
      expect(page.text).to.contain('Recipients on the suppression list were left out');
    });

    it('is 409 for an email on its way or sent, and when every recipient is suppressed', async () => {
      const queued = await accept(app, email);
      expect((await visitor.get(`/emails/${queued}`)).text).not.to.contain('/resend"');
      const confirm = await visitor.get(`/emails/${queued}/resend`);
      expect(confirm.status).to.equal(409);
      expect(confirm.text).to.contain('this one is queued');

      const old = await failedEmail();
      const form = hiddenFields((await visitor.get(`/emails/${old}/resend`)).text);
      for (const address of ['ada@example.com', 'bob@example.com']) {
        await app.suppressions.add({ address, reason: 'manual', createdAt: new Date() })();
      }
      const refused = await visitor.post(`/emails/${old}/resend`, form);
      expect(refused.status).to.equal(409);
      expect(refused.text).to.contain('Every To recipient is on the suppression list now');
      expect((await statusOf(old)).resentAs).to.equal(undefined);
      expect((await visitor.post(`/emails/${old}/resend`, {})).status).to.equal(403);
    });
  });

  it('is 404 for an unknown email, on every action', async () => {
    for (const action of ['cancel', 'retry', 'resend']) {
      expect((await visitor.get(`/emails/no-such-email/${action}`)).status).to.equal(404);
    }
  });

  describe('when access is guarded (email server)', () => {
    const NAME = 'alice';
    const PASSWORD = 'correct horse battery staple';

    it('sends a stranger to sign in and changes nothing; a signed-in operator acts', async () => {
      const access = guardedAccess();
      await access.operator(NAME, PASSWORD);
      const guarded = await startEmailPageApp({ deps: access.deps });
      try {
        const id = await accept(guarded, { ...email, send_at: inADay() });
        const stranger = new Visitor(guarded.url);
        const confirm = await stranger.get(`/emails/${id}/cancel`);
        expect(confirm.status).to.equal(303);
        expect(confirm.headers.get('location')).to.equal(
          `/login?next=${encodeURIComponent(`/emails/${id}/cancel`)}`,
        );
        const post = await stranger.post(`/emails/${id}/cancel`, {});
        expect(post.status).to.equal(303);
        expect(post.headers.get('location')).to.equal('/login?next=%2F');
        // A program's key cannot post the form: it has no browser session to match a token.
        const key = await access.key('robot', ['send', 'read']);
        const program = new Visitor(guarded.url, { authorization: `Bearer ${key}` });
        expect((await program.post(`/emails/${id}/cancel`, {})).status).to.equal(403);
        const found = await guarded.emails.get(id as EmailId)();
        expect(E.isRight(found) && O.isSome(found.right) && found.right.value.status).to.equal(
          'scheduled',
        );

        const operator = new Visitor(guarded.url);
        const login = await operator.get('/login');
        const signedIn = await operator.post('/login', {
          ...hiddenFields(login.text),
          username: NAME,
          password: PASSWORD,
        });
        expect(signedIn.status).to.equal(303);
        const done = await operator.confirm(`/emails/${id}/cancel`);
        expect(done.status).to.equal(303);
        expect(done.headers.get('location')).to.equal(`/emails/${id}?done=cancelled`);
        const page = await operator.get(`/emails/${id}?done=cancelled`);
        expect(page.text).to.contain(`Signed in as ${NAME}`);
      } finally {
        await guarded.close();
      }
    });
  });
});
