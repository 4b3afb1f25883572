import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import { storeUnavailable } from '../../application/ports/email-log.js';
import { canonicalJson } from '../../domain/canonical-json.js';

/**
 * The one SQL surface every SQL store adapter is written against. node-postgres (`PgDatabase`)
 * satisfies it, and so does the embedded engine (`PgliteDatabase`), so each store and each
 * migration runs unchanged on both. Parameters are positional (`$1`, `$2`, …); keep the SQL
 * plain PostgreSQL 15.
 */
export interface SqlClient {
  /**
   * Runs one statement; rejects on any failure (the stores turn that into `StoreUnavailable`).
   * `options.prepared`: see `QueryOptions`.
   */
  query<Row>(
    sql: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<readonly Row[]>;
  /**
   * Runs `work` in one transaction on one connection: committed if it resolves, rolled back if
   * it rejects (the rejection is passed on). Nested calls on `tx` use a savepoint.
   */
  transaction<T>(work: (tx: SqlClient) => Promise<T>): Promise<T>;
}

/** How a statement is run; every option may be ignored by an engine that has no use for it. */
export interface QueryOptions {
  /**
   * A statement of the accept path, run over and over with one text: PostgreSQL prepares it once
   * per connection (a named statement) and skips parsing and planning it on every later run. For
   * fixed texts only (a few per store), never for texts built from a request's filters.
   */
  readonly prepared?: boolean;
}

/** Socket-level codes: the database is not there, or the path to it broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** SQLSTATEs that mean "this server cannot serve you now", not "your query is wrong". */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** node-postgres reports these without a code; the texts are stable across pg 8. */
const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /client has encountered a connection error/i,
  /not queryable/i,
  /cannot use a pool after calling end/i,
  // The embedded engine (PGlite) once closed.
  /PGlite is clos(ed|ing)/i,
];

const codeOf = (err: unknown): string | undefined => {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
};

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : '');

/** An AggregateError (Node's happy-eyeballs connect) keeps the useful code on its first member. */
const firstCause = (err: unknown): unknown =>
  err instanceof AggregateError && err.errors.length > 0 ? err.errors[0] : err;

/**
 * True when `err` says the database cannot be reached or dropped the connection (as opposed to a
 * query it refused): what should turn readiness off at once.
 */
export function isConnectionError(err: unknown): boolean {
  const inner = firstCause(err);
  const code = codeOf(inner) ?? codeOf(err);
  if (code !== undefined) {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08')) {
      return true;
    }
  }
  const message = messageOf(inner) || messageOf(err);
  return CONNECTION_MESSAGES.some((pattern) => pattern.test(message));
}

/**
 * A store's own failure (a row it cannot decode, a race it could not settle), raised inside a
 * store call and answered as `StoreUnavailable`, not a crash. Its message must be safe to show.
 */
export class StoreFault extends Error {
  override readonly name = 'StoreFault';
}

/**
 * A reason fit for a person and a log line. Built only from error codes and fixed words, never
 * from the driver's message, which may quote a host, a database or user name (and the URL it
 * came from) that a 503 body must not show.
 */
export function safeReason(err: unknown): string {
  if (err instanceof StoreFault) return err.message;
  const inner = firstCause(err);
  const code = codeOf(inner) ?? codeOf(err);
  const message = messageOf(inner) || messageOf(err);
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return `the database is not reachable (${code})`;
  }
  if (/timeout exceeded when trying to connect|connection timeout/i.test(message)) {
    return 'the database is not reachable (connect timeout)';
  }
  if (/query read timeout/i.test(message) || code === '57014') {
    return 'the database did not answer in time';
  }
  if (code === '57P01' || code === '57P02' || code === '57P03') {
    return `the database is shutting down or starting up (${code})`;
  }
  if (code === '53300') return 'the database has no free connections (53300)';
  if (code === '3D000') return 'the database does not exist (3D000)';
  if (code === '28P01' || code === '28000') {
    return `the database refused the credentials (${code})`;
  }
  if (code === '42P01') return 'the database is not migrated (42P01: a table is missing)';
  if (code !== undefined && code.startsWith('08')) {
    return `the database connection failed (${code})`;
  }
  if (isConnectionError(err)) return 'the database connection was lost';
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    return `the database refused a statement (SQLSTATE ${code})`;
  }
  return 'the database failed';
}

/** Any thrown value as a `StoreUnavailable` whose reason is safe to show (see `safeReason`). */
export const toStoreUnavailable = (err: unknown): StoreUnavailable =>
  storeUnavailable(safeReason(err));

/**
 * Runs `deleteStatement` (a DELETE without RETURNING) and answers how many rows it deleted: the
 * count comes back from PostgreSQL in one statement, the rows themselves never do.
 */
export async function countDeleted(
  sql: SqlClient,
  deleteStatement: string,
  params: readonly unknown[] = [],
): Promise<number> {
  const rows = await sql.query<{ deleted: number }>(
    `WITH gone AS (${deleteStatement} RETURNING 1) SELECT count(*)::int AS deleted FROM gone`,
    params,
  );
  return rows[0]?.deleted ?? 0;
}

/**
 * A store call as a TaskEither that never rejects: every failure is `StoreUnavailable`. What
 * `TE.tryCatch` does, as a native async function: fp-ts's own is a down-levelled generator, and
 * every statement of the worker's hot path goes through here.
 */
export const attempt =
  <A>(work: () => Promise<A>): TE.TaskEither<StoreUnavailable, A> =>
  async () => {
    try {
      return E.right(await work());
    } catch (err) {
      return E.left(toStoreUnavailable(err));
    }
  };

/**
 * Equality of two JSON values as a document store sees them: jsonb hands objects back with its
 * own key order, so comparing `JSON.stringify` outputs would call an unchanged status changed.
 */
export const sameJson = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);
