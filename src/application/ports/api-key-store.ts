import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * What a key may do: `send` (POST and DELETE emails), `read` (GET emails), `admin`
 * (suppressions, webhooks, dead letters). A key holds one or more.
 */
export const SCOPES = ['send', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const isScope = (s: string): s is Scope => SCOPES.some((scope) => scope === s);

/**
 * One API key as stored: never the key itself, only its SHA-256 digest (hex). `keyId` is the
 * random, public part of the key (after `em_`) by which it is found; `prefix` is what `list`
 * shows so a person can tell keys apart (`em_` and the key id).
 */
export interface ApiKeyRecord {
  readonly keyId: string;
  readonly name: string;
  readonly prefix: string;
  /** SHA-256 of the whole key, lowercase hex (64 characters). */
  readonly digest: string;
  /** Never empty, each scope once, in `SCOPES` order. */
  readonly scopes: readonly Scope[];
  readonly createdAt: Date;
  readonly lastUsedAt?: Date;
}

/** `create` with a name a live key already has: names are how people revoke keys. */
export interface KeyNameTaken {
  readonly _tag: 'KeyNameTaken';
  readonly name: string;
}

/**
 * The API keys, shared by every server. A revoked key is gone for every look-up at once (it is
 * kept, revoked, for the record, but never found, listed or touched again), and its name may be
 * given to a new key.
 */
export interface ApiKeyStore {
  /** Stores a new key; `KeyNameTaken` when a live key has this name. */
  create(record: ApiKeyRecord): TaskEither<StoreUnavailable | KeyNameTaken, void>;
  /** The live key with this key id, if any. */
  find(keyId: string): TaskEither<StoreUnavailable, Option<ApiKeyRecord>>;
  /** Every live key, oldest first. */
  list(): TaskEither<StoreUnavailable, readonly ApiKeyRecord[]>;
  /** Revokes the live key named `name` at `at`; answers whether there was one. */
  revoke(name: string, at: Date): TaskEither<StoreUnavailable, boolean>;
  /** Sets the live key's last use to `at` (never moves it back). */
  touch(keyId: string, at: Date): TaskEither<StoreUnavailable, void>;
  /**
   * Remembers that key `keyId` was used from client `address`; answers true the first time
   * this pair is seen by any server (the audit log says so), false afterwards, and false with
   * nothing recorded for a key that is revoked or unknown.
   */
  noteAddress(keyId: string, address: string, at: Date): TaskEither<StoreUnavailable, boolean>;
}
