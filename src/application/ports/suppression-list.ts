import * as E from 'fp-ts/lib/Either.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { InvalidCursor, StoreUnavailable } from './email-log.js';
import { invalidCursor, isListableTime } from './email-log.js';
import { LONE_SURROGATE } from '../../domain/email-address.js';

/** Why an address is on the list: a provider's report, or an operator's hand. */
export const SUPPRESSION_REASONS = ['bounce', 'complaint', 'unsubscribe', 'manual'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/**
 * One suppressed address. `address` is the mailbox key: the local part as given and the domain
 * in lowercase ASCII (A-labels), so `Ada@Bücher.de` and `Ada@xn--bcher-kva.de` are one entry.
 */
export interface Suppression {
  readonly address: string;
  readonly reason: SuppressionReason;
  readonly createdAt: Date;
  /** The email whose report put it there, or the operator's note. */
  readonly detail?: string;
}

/** One page of `SuppressionList.list`. */
export interface SuppressionPage {
  readonly entries: readonly Suppression[];
  /** Absent on the last page. */
  readonly nextCursor?: string;
}

/** Where a page ends: the last entry's time and address. */
export type SuppressionPosition = Pick<Suppression, 'createdAt' | 'address'>;

/**
 * The cursor every SuppressionList adapter writes for "after this entry": its time (ms) and
 * address, as base64url JSON. One format, so a cursor means the same whichever store is behind.
 */
export const encodeSuppressionCursor = (entry: SuppressionPosition): string =>
  Buffer.from(JSON.stringify([entry.createdAt.getTime(), entry.address])).toString('base64url');

/** The position a cursor names, or undefined when `encodeSuppressionCursor` did not write it. */
export function decodeSuppressionCursor(cursor: string): SuppressionPosition | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    // A time every store can compare (`isListableTime`), and an address without control
    // characters or lone surrogates, as no mailbox key has: anything else would fail in the
    // database (a 503 a client would retry for ever), not be refused.
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      isListableTime(Number(value[0])) &&
      typeof value[1] === 'string' &&
      // eslint-disable-next-line no-control-regex
      /^[^\u0000-\u001f\u007f]{1,320}$/.test(value[1]) &&
      !LONE_SURROGATE.test(value[1])
    ) {
      return { createdAt: new Date(Number(value[0])), address: value[1] };
    }
  } catch {
    // not base64url JSON: no cursor a list wrote
  }
  return undefined;
}

/**
 * Where a page of `SuppressionList.list` starts: undefined for the first page, the position a
 * cursor names, or `InvalidCursor` for one no list wrote. Every adapter reads `cursor` so.
 */
export function readSuppressionCursor(
  cursor: string | undefined,
): E.Either<InvalidCursor, SuppressionPosition | undefined> {
  if (cursor === undefined) return E.right(undefined);
  const after = decodeSuppressionCursor(cursor);
  return after === undefined ? E.left(invalidCursor) : E.right(after);
}

/**
 * Addresses no email is sent to any more: added by permanent bounces, complaints and
 * unsubscribes (provider events) and by hand, removed by hand. Shared by every server and worker.
 */
export interface SuppressionList {
  /** Adds `entry` (a second add of an address keeps the first entry); answers whether it was new. */
  add(entry: Suppression): TaskEither<StoreUnavailable, boolean>;
  /** Removes the address; answers whether it was there. */
  remove(address: string): TaskEither<StoreUnavailable, boolean>;
  /** Those of `addresses` (mailbox keys) that are suppressed, in one look-up. */
  suppressed(addresses: readonly string[]): TaskEither<StoreUnavailable, ReadonlySet<string>>;
  /**
   * Entries newest first, `limit` a page; `cursor` is the previous page's `nextCursor` (opaque,
   * the store's own); `nextCursor` is absent on the last page. A cursor the list never wrote is
   * `InvalidCursor` (a 400), never an empty page a client would take for the end of the list.
   */
  list(
    limit: number,
    cursor?: string,
  ): TaskEither<StoreUnavailable | InvalidCursor, SuppressionPage>;
}
