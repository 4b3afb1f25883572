import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { ApiKeyRecord, ApiKeyStore, KeyNameTaken, Scope } from './ports/api-key-store.js';
import { SCOPES } from './ports/api-key-store.js';
import type { SecretTokens } from './ports/credentials.js';
import type { StoreUnavailable } from './ports/email-log.js';
import type { Clock, Logger } from './ports/system.js';

/**
 * A key is `em_`, a 12-character key id (9 random bytes, base64url) by which it is found, `_`,
 * and a 43-character secret (32 random bytes: 256 bits, beyond the 128 any guess could cover).
 * The prefix makes a leaked key recognisable to secret scanners and to the person who finds it.
 */
export const API_KEY_PATTERN = /^em_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{43})$/;
const KEY_ID_BYTES = 9;
const KEY_SECRET_BYTES = 32;

/**
 * What the keys of `API_KEYS` are called in audit lines (each is counted apart, see `Principal`).
 * No database key may take it, or it would be counted with them and look like them in the log.
 */
export const ENVIRONMENT_KEY_NAME = 'API_KEYS';

/** Names people give keys: what `revoke NAME` takes and the audit log shows. */
export const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * How long a looked-up key is trusted without asking the store again. Under the second in which
 * a revocation must reach every server, with room for the look-up itself.
 */
export const KEY_CACHE_MS = 500;
/** `last used` is written at most this often per key and server: a time for people, not a log. */
export const TOUCH_EVERY_MS = 60_000;
/** Pairs of key and address a server remembers as already noted, before it starts afresh. */
const SEEN_ADDRESSES_MAX = 10_000;

/** Who made a request: a key from the store or from `API_KEYS`, or a signed-in operator. */
/** A request made with a live API key. */
export interface KeyPrincipal {
  readonly _tag: 'Key';
  /**
   * What the key's requests are counted under: its key id, which no other key ever has (a name
   * may pass to a new key after a revocation); for an `API_KEYS` key, `env:` and the start of its
   * digest, so each of them has its own count.
   */
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly Scope[];
}

export type Principal = KeyPrincipal | { readonly _tag: 'Operator'; readonly name: string };

export type KeyRefusal =
  /** No key, or not one of ours (malformed, unknown, revoked): 401. */
  | { readonly _tag: 'Unauthenticated' }
  /** A live key without the scope the route needs: 403. */
  | { readonly _tag: 'MissingScope'; readonly name: string; readonly scope: Scope };

export interface InvalidKeyRequest {
  readonly _tag: 'InvalidKeyRequest';
  readonly message: string;
}

export interface CreatedKey {
  /** The key itself: shown once, never stored. */
  readonly key: string;
  readonly record: ApiKeyRecord;
}

export interface ApiKeysDeps {
  readonly store: ApiKeyStore;
  readonly tokens: SecretTokens;
  readonly clock: Clock;
  readonly log: Logger;
  /** Keys from `API_KEYS`: every scope, not revocable but by removing them from the setting. */
  readonly environmentKeys?: readonly string[];
}

interface Cached {
  readonly record: O.Option<ApiKeyRecord>;
  readonly until: number;
}

/** The scopes of a `--scopes` list, or what is wrong with it. Order and repeats do not matter. */
export function parseScopes(raw: string): E.Either<string, readonly Scope[]> {
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = names.filter((n) => !SCOPES.some((s) => s === n));
  if (names.length === 0) return E.left(`give at least one scope of ${SCOPES.join(', ')}`);
  if (unknown.length > 0) {
    return E.left(`unknown scope ${unknown.join(', ')}: the scopes are ${SCOPES.join(', ')}`);
  }
  return E.right(SCOPES.filter((s) => names.includes(s)));
}

/**
 * API keys: created and revoked by an operator (the CLI), checked on every API request.
 *
 * A check costs no round trip in the common case: a key's record is cached for `KEY_CACHE_MS`,
 * so a revocation is honoured by every server within that time. The secret part is compared as
 * a SHA-256 digest in constant time (`SecretTokens.same`), after the look-up by key id; keys from
 * `API_KEYS` are compared the same way, each of them, whatever matched first.
 */
export class ApiKeys {
  private readonly cache = new Map<string, Cached>();
  private readonly touched = new Map<string, number>();
  private readonly seen = new Set<string>();
  private readonly environmentDigests: readonly string[];

  constructor(private readonly deps: ApiKeysDeps) {
    this.environmentDigests = (deps.environmentKeys ?? []).map((k) => deps.tokens.digest(k));
  }

  /** Creates a key named `name` with `scopes`; the key is in the answer and nowhere else. */
  create(
    name: string,
    scopes: readonly Scope[],
  ): TE.TaskEither<StoreUnavailable | KeyNameTaken | InvalidKeyRequest, CreatedKey> {
    if (!KEY_NAME.test(name)) {
      return TE.left({
        _tag: 'InvalidKeyRequest',
        message:
          'a key name is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit',
      });
    }
    if (name === ENVIRONMENT_KEY_NAME) {
      // The name the keys of API_KEYS go by, in the audit lines and the rate limits.
      return TE.left({
        _tag: 'InvalidKeyRequest',
        message: `${ENVIRONMENT_KEY_NAME} is the name of the keys from the ${ENVIRONMENT_KEY_NAME} setting: choose another`,
      });
    }
    if (scopes.length === 0) {
      return TE.left({ _tag: 'InvalidKeyRequest', message: 'a key needs at least one scope' });
    }
    const { tokens, clock, store, log } = this.deps;
    const keyId = tokens.random(KEY_ID_BYTES);
    const key = `em_${keyId}_${tokens.random(KEY_SECRET_BYTES)}`;
    const record: ApiKeyRecord = {
      keyId,
      name,
      prefix: `em_${keyId}`,
      digest: tokens.digest(key),
      scopes: SCOPES.filter((s) => scopes.includes(s)),
      createdAt: clock.now(),
    };
    return pipe(
      store.create(record),
      TE.map(() => {
        log.info({ audit: 'api-key-created', key: name, scopes: record.scopes }, 'API key created');
        return { key, record };
      }),
    );
  }

  list(): TE.TaskEither<StoreUnavailable, readonly ApiKeyRecord[]> {
    return this.deps.store.list();
  }

  /** Revokes the live key named `name`; false when there is none. */
  revoke(name: string): TE.TaskEither<StoreUnavailable, boolean> {
    const { store, clock, log } = this.deps;
    return pipe(
      store.revoke(name, clock.now()),
      TE.map((revoked) => {
        if (revoked) log.info({ audit: 'api-key-revoked', key: name }, 'API key revoked');
        return revoked;
      }),
    );
  }

  /**
   * Who `presented` (the text after `Bearer `) is, and whether they hold `scope`. `address` is
   * the client's, for the audit line of a key's first use from it.
   */
  authenticate(
    presented: string | undefined,
    scope: Scope,
    address: string,
  ): TE.TaskEither<StoreUnavailable | KeyRefusal, KeyPrincipal> {
    if (presented === undefined || presented === '') return TE.left({ _tag: 'Unauthenticated' });
    const { tokens } = this.deps;
    const digest = tokens.digest(presented);
    // Every environment key is compared, so the time taken says nothing of which one matched.
    let fromEnvironment = false;
    for (const known of this.environmentDigests) {
      if (tokens.same(known, digest)) fromEnvironment = true;
    }
    if (fromEnvironment) {
      return TE.right({
        _tag: 'Key',
        id: `env:${digest.slice(0, 16)}`,
        name: ENVIRONMENT_KEY_NAME,
        scopes: SCOPES,
      });
    }

    const match = API_KEY_PATTERN.exec(presented);
    const keyId = match?.[1];
    if (keyId === undefined) return TE.left({ _tag: 'Unauthenticated' });
    // Plain async code rather than a pipe: every API request is checked here.
    return async () => {
      const found = await this.lookup(keyId)();
      if (E.isLeft(found)) return found;
      const record = found.right;
      if (O.isNone(record) || !tokens.same(record.value.digest, digest)) {
        return E.left({ _tag: 'Unauthenticated' });
      }
      const key = record.value;
      this.noteUse(key, address);
      if (!key.scopes.includes(scope))
        return E.left({ _tag: 'MissingScope', name: key.name, scope });
      return E.right({ _tag: 'Key', id: key.keyId, name: key.name, scopes: key.scopes });
    };
  }

  private lookup(keyId: string): TE.TaskEither<StoreUnavailable, O.Option<ApiKeyRecord>> {
    const now = this.deps.clock.monotonicMs();
    const cached = this.cache.get(keyId);
    if (cached !== undefined && cached.until > now) return TE.right(cached.record);
    return pipe(
      this.deps.store.find(keyId),
      TE.map((record) => {
        // Unknown ids are cached too: a client retrying with a wrong key costs no round trips.
        if (this.cache.size >= SEEN_ADDRESSES_MAX) this.cache.clear();
        this.cache.set(keyId, { record, until: now + KEY_CACHE_MS });
        return record;
      }),
    );
  }

  /**
   * Records the use in the background: the request does not wait for it, and a failure only
   * costs a log line (the key was valid; its bookkeeping is not worth a 503).
   */
  private noteUse(key: ApiKeyRecord, address: string): void {
    const { store, clock, log } = this.deps;
    const now = clock.monotonicMs();
    const last = this.touched.get(key.keyId);
    if (last === undefined || now - last >= TOUCH_EVERY_MS) {
      this.touched.set(key.keyId, now);
      void store
        .touch(key.keyId, clock.now())()
        .then((done) => {
          if (E.isLeft(done)) {
            log.warn({ key: key.name, reason: done.left.reason }, 'Could not record a key use');
          }
        });
    }
    const pair = `${key.keyId} ${address}`;
    if (this.seen.has(pair)) return;
    if (this.seen.size >= SEEN_ADDRESSES_MAX) this.seen.clear();
    this.seen.add(pair);
    void store
      .noteAddress(key.keyId, address, clock.now())()
      .then((first) => {
        if (E.isLeft(first)) {
          // Forgotten, so that a later request tries again.
          this.seen.delete(pair);
          log.warn({ key: key.name, reason: first.left.reason }, 'Could not record a key use');
        } else if (first.right) {
          log.info(
            { audit: 'api-key-new-address', key: key.name, address },
            'API key used from a new address',
          );
        }
      });
  }
}
