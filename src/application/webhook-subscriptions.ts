import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { WebhookEventType } from '../domain/webhook.js';
import { parseWebhookEventTypes } from '../domain/webhook.js';
import type { SecretTokens } from './ports/credentials.js';
import type { StoreUnavailable } from './ports/email-log.js';
import type { WebhookEndpoint, WebhookEndpoints } from './ports/webhook-endpoints.js';
import type { Clock } from './ports/system.js';

/** The longest endpoint URL taken, in characters (UTF-16 code units), as given and as stored. */
export const MAX_WEBHOOK_URL_CHARS = 2048;

/**
 * An endpoint id: `we_` and 16 base64url characters (12 random bytes, 96 bits: no two endpoints
 * ever draw the same). The prefix tells it from an email id, and from `mailgun` in the path of
 * `POST /webhooks/mailgun`.
 */
export const WEBHOOK_ENDPOINT_ID = /^we_[A-Za-z0-9_-]{16}$/;
const ID_BYTES = 12;

/**
 * A signing secret: `whsec_` and the standard base64 (with `+` and `/`, not base64url) of 24
 * random bytes (192 bits), the format the Standard Webhooks libraries read
 * (https://www.standardwebhooks.com/, "Signature scheme"; they take the secret between 24 and
 * 64 bytes). 24 bytes make 32 characters without padding.
 */
export const WEBHOOK_SECRET_PATTERN = /^whsec_[A-Za-z0-9+/]{32}$/;
const SECRET_BYTES = 24;

/**
 * What an operator asked for cannot be an endpoint: `message` says why and what to give instead,
 * for a person to read (the API's 400, the command's error line); `field` is the input it is
 * about. Never a secret: messages do not repeat the URL, which may carry a token in its query.
 */
export interface InvalidWebhookEndpoint {
  readonly _tag: 'InvalidWebhookEndpoint';
  readonly message: string;
  readonly field: 'url' | 'events';
}

/** A new endpoint, and its signing secret: in this answer and in the store, nowhere else. */
export interface AddedWebhookEndpoint {
  /** As listed: no secret. */
  readonly endpoint: WebhookEndpoint;
  /** `whsec_…` (see WEBHOOK_SECRET_PATTERN); show it once, to the operator who added it. */
  readonly secret: string;
}

const invalid = (
  field: InvalidWebhookEndpoint['field'],
  message: string,
): InvalidWebhookEndpoint => ({
  _tag: 'InvalidWebhookEndpoint',
  field,
  message,
});

const EXAMPLE = 'such as https://example.com/webhooks/email';

/**
 * The URL deliveries go to, as the WHATWG URL parser writes it (`HTTPS://Example.com` becomes
 * `https://example.com/`: the form every later request uses), or why it cannot be one.
 */
export function parseWebhookUrl(input: string): E.Either<InvalidWebhookEndpoint, string> {
  if (input.trim() === '') {
    return E.left(invalid('url', `url is required: give the endpoint's absolute URL, ${EXAMPLE}.`));
  }
  if (input.length > MAX_WEBHOOK_URL_CHARS) {
    return E.left(
      invalid(
        'url',
        `url is ${input.length} characters long; at most ${MAX_WEBHOOK_URL_CHARS} are taken.`,
      ),
    );
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return E.left(
      invalid(
        'url',
        `url must be an absolute URL with its scheme and host, ${EXAMPLE}; a relative URL or a bare host name is not one.`,
      ),
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return E.left(
      invalid(
        'url',
        `url must start with https:// (or http://), not ${url.protocol}: webhooks are HTTP POST requests.`,
      ),
    );
  }
  if (url.username !== '' || url.password !== '') {
    // The URL is stored as it is and shown in every list and every delivery's record: a
    // password in it would be shown to every operator. The signature is the receiver's check.
    return E.left(
      invalid(
        'url',
        'url must not contain a user name or password (user:password@): the URL is stored and shown to every operator in lists and delivery records. Remove them, and have the receiver check the webhook signature instead.',
      ),
    );
  }
  // `#` alone parses to an empty hash too: `href` ending in `#` is the only sign of it.
  if (url.hash !== '' || url.href.endsWith('#')) {
    return E.left(
      invalid(
        'url',
        'url must not contain a fragment (#…): a fragment is never sent to the server, so it could not tell endpoints apart. Remove it.',
      ),
    );
  }
  if (url.href.length > MAX_WEBHOOK_URL_CHARS) {
    // An internationalised host written as A-labels, or escaped characters, can make it longer.
    return E.left(
      invalid(
        'url',
        `url is ${url.href.length} characters long once written out in full; at most ${MAX_WEBHOOK_URL_CHARS} are taken.`,
      ),
    );
  }
  return E.right(url.href);
}

/** The event filter as a person writes it (`parseWebhookEventTypes`; empty: every type). */
export const parseWebhookEvents = (
  names: readonly string[],
): E.Either<InvalidWebhookEndpoint, readonly WebhookEventType[]> =>
  pipe(
    parseWebhookEventTypes(names),
    E.mapLeft((message) => invalid('events', message)),
  );

/** The named fields only: whatever a store hands back, no secret leaves through a list. */
const asListed = (e: WebhookEndpoint): WebhookEndpoint => ({
  id: e.id,
  url: e.url,
  events: [...e.events],
  createdAt: e.createdAt,
});

/**
 * How operators manage the outgoing webhook endpoints (the admin API and `email webhooks`):
 * add one (its id and signing secret are drawn here), list them, remove one. Deliveries read the
 * same store; they are not this use case's business.
 */
export class WebhookSubscriptions {
  constructor(
    private readonly endpoints: WebhookEndpoints,
    private readonly tokens: SecretTokens,
    private readonly clock: Clock,
  ) {}

  /**
   * Adds an endpoint that gets `events` (names as `parseWebhookEventTypes` reads them; empty:
   * every type) at `url` (see `parseWebhookUrl`). The URL is checked first, then the events: one
   * problem is answered, the first. The secret is in the answer, and stored as it is (it has to
   * sign every delivery); the caller shows it once.
   */
  add(
    url: string,
    events: readonly string[],
  ): TE.TaskEither<StoreUnavailable | InvalidWebhookEndpoint, AddedWebhookEndpoint> {
    const checked = pipe(
      parseWebhookUrl(url),
      E.chain((href) =>
        pipe(
          parseWebhookEvents(events),
          E.map((types) => ({ href, types })),
        ),
      ),
    );
    if (E.isLeft(checked)) return TE.left(checked.left);
    const { href, types } = checked.right;
    const endpoint: WebhookEndpoint = {
      id: `we_${this.tokens.random(ID_BYTES)}`,
      url: href,
      events: types,
      createdAt: this.clock.now(),
    };
    // SecretTokens gives base64url; Standard Webhooks wants the standard alphabet.
    const secret = `whsec_${Buffer.from(this.tokens.random(SECRET_BYTES), 'base64url').toString('base64')}`;
    return pipe(
      this.endpoints.add({ ...endpoint, secret }),
      TE.map(() => ({ endpoint, secret })),
    );
  }

  /** Every endpoint, oldest first, without secrets. */
  list(): TE.TaskEither<StoreUnavailable, readonly WebhookEndpoint[]> {
    return pipe(
      this.endpoints.list(),
      TE.map((all) => all.map(asListed)),
    );
  }

  /**
   * Removes the endpoint `id`: nothing more is sent to it. False when there is none (an id that
   * is not of the `we_` form is none, without asking the store).
   */
  remove(id: string): TE.TaskEither<StoreUnavailable, boolean> {
    if (!WEBHOOK_ENDPOINT_ID.test(id)) return TE.right(false);
    return this.endpoints.remove(id);
  }
}
