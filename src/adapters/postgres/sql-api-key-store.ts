import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type {
  ApiKeyRecord,
  ApiKeyStore,
  KeyNameTaken,
} from '../../application/ports/api-key-store.js';
import { SCOPES } from '../../application/ports/api-key-store.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { SqlClient } from './sql-client.js';
import { attempt, StoreFault } from './sql-client.js';

interface KeyRow {
  readonly key_id: string;
  readonly name: string;
  readonly prefix: string;
  readonly digest: string;
  readonly scopes: readonly string[];
  readonly created_at: Date;
  readonly last_used_at: Date | null;
}

const COLUMNS = 'key_id, name, prefix, digest, scopes, created_at, last_used_at';

/**
 * In `SCOPES` order, each once. A scope this version does not know (written by a newer server
 * during a rolling deploy) is left out: it grants nothing here.
 */
const toRecord = (row: KeyRow): ApiKeyRecord => ({
  keyId: row.key_id,
  name: row.name,
  prefix: row.prefix,
  digest: row.digest,
  scopes: SCOPES.filter((scope) => row.scopes.includes(scope)),
  createdAt: new Date(row.created_at),
  ...(row.last_used_at !== null ? { lastUsedAt: new Date(row.last_used_at) } : {}),
});

const sqlState = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;

/**
 * The API keys in `api_keys` and the addresses each was used from in `api_key_addresses` (see
 * `migrations/`), shared by every server. Each operation is one statement, so PostgreSQL settles
 * every race: the partial unique index on live names decides which of two `create`s with one name
 * wins, the primary key of the addresses which server sees an address first. A revoked row stays,
 * and every statement here reads only rows `WHERE revoked_at IS NULL`.
 */
export class SqlApiKeyStore implements ApiKeyStore {
  constructor(private readonly sql: SqlClient) {}

  create(record: ApiKeyRecord): TE.TaskEither<StoreUnavailable | KeyNameTaken, void> {
    return pipe(
      attempt(async () => {
        try {
          // Only a live name is an expected conflict (the arbiter is the partial index); a taken
          // key id is a bug in whoever made the id, and fails the statement.
          const rows = await this.sql.query(
            `INSERT INTO api_keys (key_id, name, prefix, digest, scopes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6::timestamptz)
             ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
             RETURNING key_id`,
            [
              record.keyId,
              record.name,
              record.prefix,
              record.digest,
              [...record.scopes],
              record.createdAt.toISOString(),
            ],
          );
          return rows.length > 0;
        } catch (err) {
          if (sqlState(err) === '23505') throw new StoreFault('an API key with this key id exists');
          throw err;
        }
      }),
      TE.flatMap((created) =>
        created
          ? TE.right(undefined)
          : TE.left<KeyNameTaken>({ _tag: 'KeyNameTaken', name: record.name }),
      ),
    );
  }

  find(keyId: string): TE.TaskEither<StoreUnavailable, O.Option<ApiKeyRecord>> {
    return attempt(async () => {
      const rows = await this.sql.query<KeyRow>(
        `SELECT ${COLUMNS} FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL`,
        [keyId],
      );
      return O.map(toRecord)(O.fromNullable(rows[0]));
    });
  }

  list(): TE.TaskEither<StoreUnavailable, readonly ApiKeyRecord[]> {
    return attempt(async () => {
      // Ties broken by the key id's bytes, as the in-memory store compares strings.
      const rows = await this.sql.query<KeyRow>(
        `SELECT ${COLUMNS} FROM api_keys WHERE revoked_at IS NULL
         ORDER BY created_at, key_id COLLATE "C"`,
      );
      return rows.map(toRecord);
    });
  }

  revoke(name: string, at: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query(
        `UPDATE api_keys SET revoked_at = $2::timestamptz
         WHERE name = $1 AND revoked_at IS NULL RETURNING key_id`,
        [name, at.toISOString()],
      );
      return rows.length > 0;
    });
  }

  touch(keyId: string, at: Date): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      // GREATEST ignores NULL: the first touch sets the time, a late one never moves it back.
      await this.sql.query(
        `UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $2::timestamptz)
         WHERE key_id = $1 AND revoked_at IS NULL`,
        [keyId, at.toISOString()],
      );
    });
  }

  /**
   * A key that is not live (revoked, or never created) remembers nothing and answers false: a
   * revoked key is touched no more, and nothing is audited for it.
   */
  noteAddress(keyId: string, address: string, at: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query(
        `INSERT INTO api_key_addresses (key_id, address, first_seen_at)
         SELECT key_id, $2, $3::timestamptz FROM api_keys
          WHERE key_id = $1 AND revoked_at IS NULL
         ON CONFLICT (key_id, address) DO NOTHING
         RETURNING key_id`,
        [keyId, address, at.toISOString()],
      );
      return rows.length > 0;
    });
  }
}
