// One suite for every WebhookEndpoints store: an endpoint is kept as added, listed oldest first
// and never with its secret, found by the event types its filter takes (an empty filter takes
// every type), and gone for good once removed.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type {
  SigningWebhookEndpoint,
  WebhookEndpoint,
  WebhookEndpoints,
} from '../../src/application/ports/webhook-endpoints.js';
import type { WebhookEventType } from '../../src/domain/webhook.js';
import { later } from '../support/builders.js';
import { right } from './email-log.contract.js';

/** A store to test, opened empty by the adapter's test file. */
export interface WebhookEndpointsFixture {
  readonly endpoints: WebhookEndpoints;
  /** The same store as another process sees it (its own connections); in memory, the same one. */
  readonly peer: WebhookEndpoints;
  close(): Promise<void>;
}

let made = 0;

/**
 * An endpoint no other test uses: a `we_` id of 16 base32 characters, a secret in the Standard
 * Webhooks format (`whsec_` and the base64 of 24 bytes), made at `later(ms)`.
 */
export function aWebhookEndpoint(
  ms = 0,
  more: Partial<SigningWebhookEndpoint> = {},
): SigningWebhookEndpoint {
  made += 1;
  return {
    id: `we_${made.toString(32).padStart(16, '0')}`,
    url: `https://hooks.example.org/${made}`,
    events: [],
    secret: `whsec_${Buffer.alloc(24, made).toString('base64')}`,
    createdAt: later(ms),
    ...more,
  };
}

/** What `list` answers for `endpoint`: everything but the secret. */
const listed = ({ secret: _secret, ...endpoint }: SigningWebhookEndpoint): WebhookEndpoint =>
  endpoint;

/** Registers the suite `<name> honours the WebhookEndpoints contract`, each test on `open()`. */
export function webhookEndpointsContract(
  name: string,
  open: () => Promise<WebhookEndpointsFixture>,
): void {
  describe(`${name} honours the WebhookEndpoints contract`, function () {
    this.timeout(30_000);
    let fx: WebhookEndpointsFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    const add = (endpoint: SigningWebhookEndpoint, store = fx.endpoints) =>
      right(store.add(endpoint));
    const list = async (store = fx.endpoints): Promise<readonly WebhookEndpoint[]> => {
      const endpoints = await right(store.list());
      for (const endpoint of endpoints) expect(endpoint).not.to.have.property('secret');
      return endpoints;
    };
    const subscribed = async (type: WebhookEventType, store = fx.endpoints) =>
      (await right(store.subscribedTo(type))).map((e) => e.id);

    it('keeps an endpoint as it was added, secret and all, and finds it from another process', async () => {
      const endpoint = aWebhookEndpoint(7, { events: ['email.sent', 'email.bounced'] });
      await add(endpoint);
      expect(await right(fx.peer.get(endpoint.id))).to.deep.equal(O.some(endpoint));
      expect(await right(fx.peer.subscribedTo('email.sent'))).to.deep.equal([endpoint]);
      const [found] = await list(fx.peer);
      expect(found).to.deep.equal(listed(endpoint));
      expect(found!.createdAt.getTime()).to.equal(later(7).getTime());
    });

    it('answers none for an endpoint it does not have', async () => {
      await add(aWebhookEndpoint());
      expect(await right(fx.endpoints.get('we_0000000000000none'))).to.deep.equal(O.none);
    });

    it('lists every endpoint oldest first, ties in byte order of the id, never with a secret', async () => {
      const newest = aWebhookEndpoint(30);
      const oldest = aWebhookEndpoint(10, { events: ['email.failed'] });
      const tieB = aWebhookEndpoint(20, { id: 'we_b000000000000000' });
      const tieA = aWebhookEndpoint(20, { id: 'we_a000000000000000' });
      const tieUpper = aWebhookEndpoint(20, { id: 'we_Z000000000000000' });
      for (const endpoint of [newest, oldest, tieB, tieA, tieUpper]) await add(endpoint);
      expect(await list()).to.deep.equal(
        [oldest, tieUpper, tieA, tieB, newest].map((endpoint) => listed(endpoint)),
      );
      expect(await list(fx.peer)).to.have.length(5);
    });

    it('lists nothing when there is no endpoint', async () => {
      expect(await list()).to.deep.equal([]);
    });

    it('answers the endpoints whose filter takes a type, an empty filter taking every one', async () => {
      const everything = aWebhookEndpoint(1);
      const bounces = aWebhookEndpoint(2, { events: ['email.bounced'] });
      const sentAndBounced = aWebhookEndpoint(3, { events: ['email.sent', 'email.bounced'] });
      const delivered = aWebhookEndpoint(4, { events: ['email.delivered'] });
      for (const endpoint of [delivered, sentAndBounced, bounces, everything]) await add(endpoint);

      expect(await subscribed('email.bounced')).to.deep.equal([
        everything.id,
        bounces.id,
        sentAndBounced.id,
      ]);
      expect(await subscribed('email.sent', fx.peer)).to.deep.equal([
        everything.id,
        sentAndBounced.id,
      ]);
      expect(await subscribed('email.delivered')).to.deep.equal([everything.id, delivered.id]);
      expect(await subscribed('email.failed')).to.deep.equal([everything.id]);
      // With their secrets: what a delivery is signed with.
      expect(await right(fx.endpoints.subscribedTo('email.delivered'))).to.deep.equal([
        everything,
        delivered,
      ]);
    });

    it('answers no endpoint for a type when none takes it', async () => {
      await add(aWebhookEndpoint(1, { events: ['email.sent'] }));
      expect(await subscribed('email.complained')).to.deep.equal([]);
    });

    it('removes an endpoint, answering whether it was there, and finds it nowhere after', async () => {
      const kept = aWebhookEndpoint(1);
      const gone = aWebhookEndpoint(2);
      await add(kept);
      await add(gone);
      expect(await right(fx.peer.remove(gone.id))).to.equal(true);
      expect(await right(fx.endpoints.remove(gone.id))).to.equal(false);
      expect(await right(fx.endpoints.remove('we_0000000000000none'))).to.equal(false);
      expect(await right(fx.endpoints.get(gone.id))).to.deep.equal(O.none);
      expect(await right(fx.peer.get(kept.id))).to.deep.equal(O.some(kept));
      expect(await list()).to.deep.equal([listed(kept)]);
      expect(await subscribed('email.sent')).to.deep.equal([kept.id]);
    });

    it('refuses a second endpoint with an id already used, keeping the first', async () => {
      const first = aWebhookEndpoint(1);
      await add(first);
      const again = await fx.peer.add(aWebhookEndpoint(2, { id: first.id }))();
      expect(E.isLeft(again) && again.left._tag).to.equal('StoreUnavailable');
      expect(await right(fx.endpoints.get(first.id))).to.deep.equal(O.some(first));
      expect(await list()).to.deep.equal([listed(first)]);
    });
  });
}
