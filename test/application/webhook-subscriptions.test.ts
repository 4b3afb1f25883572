// Managing outgoing webhook endpoints: what an operator may add (and what each refusal says),
// the ids and secrets drawn for them (the secret in the Standard Webhooks format, checked with
// the reference library), and that no list ever carries a secret. The in-memory store, and the
// real SecretTokens or a scripted one where the exact bytes matter.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { Webhook } from 'standardwebhooks';
import { NodeSecretTokens } from '../../src/adapters/crypto/node-secret-tokens.js';
import { InMemoryWebhookEndpoints } from '../../src/adapters/memory/in-memory-webhook-stores.js';
import type { SecretTokens } from '../../src/application/ports/credentials.js';
import type { WebhookEndpoints } from '../../src/application/ports/webhook-endpoints.js';
import type { InvalidWebhookEndpoint } from '../../src/application/webhook-subscriptions.js';
import {
  MAX_WEBHOOK_URL_CHARS,
  WEBHOOK_ENDPOINT_ID,
  WEBHOOK_SECRET_PATTERN,
  WebhookSubscriptions,
} from '../../src/application/webhook-subscriptions.js';
import { fixedClock, switchable } from '../support/fakes.js';

const NOW = '2030-01-02T03:04:05.000Z';

/** Tokens whose random bytes are given: 0xfb 0xff… is `-_` in base64url and `+/` in base64. */
class ScriptedTokens implements SecretTokens {
  readonly asked: number[] = [];
  random(bytes: number): string {
    this.asked.push(bytes);
    return Buffer.alloc(bytes, this.asked.length === 1 ? 0x41 : 0xfb).toString('base64url');
  }
  digest(): string {
    throw new Error('not used');
  }
  same(): boolean {
    throw new Error('not used');
  }
}

function subscriptions(tokens: SecretTokens = new NodeSecretTokens()) {
  const store = switchable<WebhookEndpoints>(new InMemoryWebhookEndpoints());
  const inner = store.store;
  return {
    store,
    use: new WebhookSubscriptions(inner, tokens, fixedClock(NOW)),
  };
}

const refusal = async (
  use: WebhookSubscriptions,
  url: string,
  events: readonly string[] = [],
): Promise<InvalidWebhookEndpoint> => {
  const added = await use.add(url, events)();
  if (E.isRight(added)) expect.fail(`${url} was taken`);
  if (added.left._tag !== 'InvalidWebhookEndpoint') expect.fail(added.left._tag);
  return added.left;
};

describe('WebhookSubscriptions', () => {
  it('adds an endpoint with a we_ id and a whsec_ secret, and stores the secret to sign with', async () => {
    const { use, store } = subscriptions();
    const added = await use.add('https://example.com/hooks?tenant=7', ['sent', 'Email.Bounced'])();
    if (E.isLeft(added)) expect.fail(added.left._tag);
    const { endpoint, secret } = added.right;
    expect(endpoint.id).to.match(WEBHOOK_ENDPOINT_ID);
    expect(secret).to.match(WEBHOOK_SECRET_PATTERN);
    expect(endpoint).to.deep.equal({
      id: endpoint.id,
      url: 'https://example.com/hooks?tenant=7',
      events: ['email.sent', 'email.bounced'],
      createdAt: new Date(NOW),
    });
    expect(endpoint).not.to.have.property('secret');
    const stored = await store.store.get(endpoint.id)();
    if (E.isLeft(stored) || O.isNone(stored.right)) expect.fail('not stored');
    expect(stored.right.value.secret).to.equal(secret);
  });

  it('draws the id from 12 random bytes and the secret from 24, the secret in standard base64', async () => {
    const tokens = new ScriptedTokens();
    const { use } = subscriptions(tokens);
    const added = await use.add('https://example.com/', [])();
    if (E.isLeft(added)) expect.fail(added.left._tag);
    expect(tokens.asked).to.deep.equal([12, 24]);
    expect(added.right.endpoint.id).to.equal(`we_${'QUFB'.repeat(4)}`);
    // 24 bytes of 0xfb: base64url would be `-_-_…`; the Standard Webhooks format is base64.
    expect(added.right.secret).to.equal(`whsec_${'+/v7'.repeat(8)}`);
    expect(Buffer.from(added.right.secret.slice('whsec_'.length), 'base64')).to.deep.equal(
      Buffer.alloc(24, 0xfb),
    );
  });

  it('makes a secret the standardwebhooks library signs and verifies with, and a new one each time', async () => {
    const { use } = subscriptions();
    const secrets = new Set<string>();
    for (let i = 0; i < 20; i += 1) {
      const added = await use.add('https://example.com/hooks', [])();
      if (E.isLeft(added)) expect.fail(added.left._tag);
      secrets.add(added.right.secret);
    }
    expect(secrets.size).to.equal(20);
    for (const secret of secrets) {
      const hook = new Webhook(secret);
      const body = JSON.stringify({ type: 'email.sent', data: { id: 'abc' } });
      const at = new Date();
      const signature = hook.sign('msg_1', at, body);
      const headers = {
        'webhook-id': 'msg_1',
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': signature,
      };
      expect(hook.verify(body, headers)).to.deep.equal(JSON.parse(body));
      expect(() => hook.verify(`${body} `, headers)).to.throw();
    }
  });

  it('keeps the URL as the WHATWG parser writes it', async () => {
    const { use } = subscriptions();
    const added = await use.add('HTTPS://Example.COM:443', [])();
    if (E.isLeft(added)) expect.fail(added.left._tag);
    expect(added.right.endpoint.url).to.equal('https://example.com/');
    const idn = await use.add('http://bücher.example:8080/hook', [])();
    if (E.isLeft(idn)) expect.fail(idn.left._tag);
    expect(idn.right.endpoint.url).to.equal('http://xn--bcher-kva.example:8080/hook');
  });

  it('refuses what cannot be an endpoint URL, saying what to give instead, and stores nothing', async () => {
    const { use } = subscriptions();
    const cases: [string, RegExp][] = [
      ['', /url is required.*https:\/\/example\.com/],
      ['   ', /url is required/],
      ['/webhooks', /absolute URL with its scheme and host.*relative/],
      ['example.com/webhooks', /absolute URL/],
      ['ftp://example.com/in', /must start with https:\/\/.*not ftp:.*HTTP POST/],
      ['javascript:alert(1)', /not javascript:/],
      ['https://ada:hunter2@example.com/hooks', /user name or password.*stored and shown/],
      ['https://ada@example.com/hooks', /user name or password/],
      ['https://example.com/hooks#part', /fragment.*never sent/],
      ['https://example.com/hooks#', /fragment/],
      [`https://example.com/${'a'.repeat(MAX_WEBHOOK_URL_CHARS)}`, /characters long.*at most 2048/],
    ];
    for (const [url, message] of cases) {
      const refused = await refusal(use, url);
      expect(refused.field, url).to.equal('url');
      expect(refused.message, url).to.match(message);
      // Never the password: the message may be logged, or shown to someone else.
      expect(refused.message, url).not.to.contain('hunter2');
    }
    const listed = await use.list()();
    expect(listed).to.deep.equal(E.right([]));
  });

  it('takes a URL of exactly 2048 characters', async () => {
    const { use } = subscriptions();
    const base = 'https://example.com/';
    const url = base + 'a'.repeat(MAX_WEBHOOK_URL_CHARS - base.length);
    const added = await use.add(url, [])();
    if (E.isLeft(added)) expect.fail(added.left._tag);
    expect(added.right.endpoint.url).to.have.length(MAX_WEBHOOK_URL_CHARS);
  });

  it('refuses an unknown event name, naming it and the known ones', async () => {
    const { use } = subscriptions();
    const refused = await refusal(use, 'https://example.com/', ['sent', 'opened']);
    expect(refused.field).to.equal('events');
    expect(refused.message).to.contain('"opened"').and.contain('bounced');
  });

  it('lists oldest first without secrets, and removes by id', async () => {
    const { use } = subscriptions();
    const one = await use.add('https://one.example/', ['failed'])();
    const two = await use.add('https://two.example/', [])();
    if (E.isLeft(one) || E.isLeft(two)) expect.fail('not added');
    const listed = await use.list()();
    if (E.isLeft(listed)) expect.fail(listed.left._tag);
    expect(listed.right.map((e) => e.url)).to.have.members([
      'https://one.example/',
      'https://two.example/',
    ]);
    for (const e of listed.right)
      expect(Object.keys(e)).to.have.members(['id', 'url', 'events', 'createdAt']);
    expect(JSON.stringify(listed.right)).not.to.contain('whsec_');

    expect(await use.remove(one.right.endpoint.id)()).to.deep.equal(E.right(true));
    expect(await use.remove(one.right.endpoint.id)()).to.deep.equal(E.right(false));
    expect(await use.remove('mailgun')()).to.deep.equal(E.right(false));
    const left = await use.list()();
    if (E.isLeft(left)) expect.fail(left.left._tag);
    expect(left.right.map((e) => e.id)).to.deep.equal([two.right.endpoint.id]);
  });

  it('answers StoreUnavailable while the store is down, for each of add, list and remove', async () => {
    const { use, store } = subscriptions();
    store.down = true;
    const added = await use.add('https://example.com/', [])();
    const listed = await use.list()();
    const removed = await use.remove(`we_${'A'.repeat(16)}`)();
    const answers: E.Either<{ readonly _tag: string }, unknown>[] = [added, listed, removed];
    for (const answer of answers) {
      if (E.isRight(answer)) expect.fail('answered while down');
      expect(answer.left._tag).to.equal('StoreUnavailable');
    }
  });
});
