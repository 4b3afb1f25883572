import * as E from 'fp-ts/lib/Either.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import { ApiKeys, parseScopes } from '../application/api-keys.js';
import { Operators } from '../application/operators.js';
import type { Scope } from '../application/ports/api-key-store.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { Argon2PasswordHasher } from '../adapters/crypto/argon2-password-hasher.js';
import { NodeSecretTokens } from '../adapters/crypto/node-secret-tokens.js';
import { SqlApiKeyStore } from '../adapters/postgres/sql-api-key-store.js';
import { SqlOperatorStore } from '../adapters/postgres/sql-operator-store.js';
import { SqlSessionStore } from '../adapters/postgres/sql-session-store.js';
import { systemClock } from '../adapters/system/system.js';
import type { OpenDatabase } from './database.js';
import { signInFailures } from './access.js';
import { openCommandDatabase } from './database.js';
import { formatRows } from './table.js';

export const API_KEYS_USAGE = `Usage:
  email api-keys create --name NAME [--scopes send,read,admin]
                                  prints a new key once (default scopes: send,read)
  email api-keys list [--json]    name, prefix, scopes, created, last used
  email api-keys revoke NAME      refused by every server within a second
`;

export const USERS_USAGE = `Usage:
  email users add NAME            the password is read from standard input (12 characters or more)
  email users list [--json]       the people who may sign in to the web pages
  email users remove NAME         also ends their sessions
`;

export type ApiKeysCommand =
  | { readonly kind: 'create'; readonly name: string; readonly scopes: readonly Scope[] }
  | { readonly kind: 'list'; readonly json: boolean }
  | { readonly kind: 'revoke'; readonly name: string };

export type UsersCommand =
  | { readonly kind: 'add'; readonly name: string }
  | { readonly kind: 'list'; readonly json: boolean }
  | { readonly kind: 'remove'; readonly name: string };

/** The command, or what is wrong with the arguments (for the usage message). */
export function parseApiKeysArgs(args: readonly string[]): E.Either<string, ApiKeysCommand> {
  const [verb, ...rest] = args;
  if (verb === 'list' && (rest.length === 0 || (rest.length === 1 && rest[0] === '--json'))) {
    return E.right({ kind: 'list', json: rest[0] === '--json' });
  }
  if (verb === 'revoke' && rest.length === 1 && rest[0] !== undefined) {
    return E.right({ kind: 'revoke', name: rest[0] });
  }
  if (verb === 'create') {
    let name: string | undefined;
    let scopes: E.Either<string, readonly Scope[]> = E.right(['send', 'read']);
    for (let i = 0; i < rest.length; i += 2) {
      const [flag, value] = [rest[i], rest[i + 1]];
      if (value === undefined) return E.left(`${flag} needs a value`);
      if (flag === '--name') name = value;
      else if (flag === '--scopes') scopes = parseScopes(value);
      else return E.left(`unknown option ${flag}`);
    }
    if (name === undefined) return E.left('create needs --name NAME');
    if (E.isLeft(scopes)) return scopes;
    return E.right({ kind: 'create', name, scopes: scopes.right });
  }
  return E.left('expected create, list or revoke');
}

export function parseUsersArgs(args: readonly string[]): E.Either<string, UsersCommand> {
  const [verb, ...rest] = args;
  if (verb === 'list' && (rest.length === 0 || (rest.length === 1 && rest[0] === '--json'))) {
    return E.right({ kind: 'list', json: rest[0] === '--json' });
  }
  if ((verb === 'add' || verb === 'remove') && rest.length === 1 && rest[0] !== undefined) {
    return E.right({ kind: verb, name: rest[0] });
  }
  return E.left('expected add NAME, list or remove NAME');
}

const iso = (d: Date | undefined): string => (d === undefined ? '' : d.toISOString());

/** A command's output and exit status; `stderr` says what went wrong, in a person's words. */
export interface CommandResult {
  readonly code: number;
  readonly stdout?: string;
  readonly stderr?: string;
}

async function run<A>(
  task: TaskEither<{ readonly _tag: string }, A>,
  onRight: (a: A) => CommandResult,
  describe: (e: { readonly _tag: string; readonly [k: string]: unknown }) => string,
): Promise<CommandResult> {
  const result = await task();
  return E.isRight(result) ? onRight(result.right) : { code: 1, stderr: describe(result.left) };
}

const storeReason = (e: { readonly _tag: string; readonly [k: string]: unknown }): string =>
  e._tag === 'StoreUnavailable' ? String(e.reason) : e._tag;

/** `email api-keys …` against `db`; `log` receives the audit lines. */
export async function runApiKeys(
  command: ApiKeysCommand,
  db: OpenDatabase,
  log: Logger,
): Promise<CommandResult> {
  const keys = new ApiKeys({
    store: new SqlApiKeyStore(db.client),
    tokens: new NodeSecretTokens(),
    clock: systemClock,
    log,
  });
  switch (command.kind) {
    case 'create':
      return run(
        keys.create(command.name, command.scopes),
        ({ key, record }) => ({
          code: 0,
          stdout: `${key}\n`,
          stderr: `Created the API key "${record.name}" (${record.scopes.join(', ')}). It is shown once: keep it now, it cannot be shown again.\n`,
        }),
        (e) =>
          e._tag === 'KeyNameTaken'
            ? `a live key is already named "${command.name}": revoke it first, or choose another name`
            : e._tag === 'InvalidKeyRequest'
              ? String(e.message)
              : storeReason(e),
      );
    case 'list':
      return run(
        keys.list(),
        (records) => ({
          code: 0,
          stdout: command.json
            ? `${JSON.stringify(
                records.map((r) => ({
                  name: r.name,
                  prefix: r.prefix,
                  scopes: r.scopes,
                  created_at: iso(r.createdAt),
                  last_used_at: r.lastUsedAt === undefined ? null : iso(r.lastUsedAt),
                })),
                null,
                2,
              )}\n`
            : records.length === 0
              ? 'No API keys.\n'
              : formatRows(
                  ['NAME', 'PREFIX', 'SCOPES', 'CREATED', 'LAST USED'],
                  records.map((r) => [
                    r.name,
                    r.prefix,
                    r.scopes.join(','),
                    iso(r.createdAt),
                    r.lastUsedAt === undefined ? 'never' : iso(r.lastUsedAt),
                  ]),
                ),
        }),
        storeReason,
      );
    case 'revoke':
      return run(
        keys.revoke(command.name),
        (revoked) =>
          revoked
            ? { code: 0, stdout: `Revoked the API key "${command.name}".\n` }
            : { code: 1, stderr: `no live API key is named "${command.name}"` },
        storeReason,
      );
  }
}

/** `email users …` against `db`; `password` is read only by `add`. */
export async function runUsers(
  command: UsersCommand,
  db: OpenDatabase,
  log: Logger,
  password: () => Promise<string>,
): Promise<CommandResult> {
  const operators = new Operators({
    operators: new SqlOperatorStore(db.client),
    sessions: new SqlSessionStore(db.client),
    hasher: new Argon2PasswordHasher(),
    tokens: new NodeSecretTokens(),
    clock: systemClock,
    log,
    failures: signInFailures(db),
  });
  switch (command.kind) {
    case 'add':
      return run(
        operators.add(command.name, await password()),
        (op) => ({ code: 0, stdout: `Added "${op.name}": they can sign in now.\n` }),
        (e) =>
          e._tag === 'OperatorExists'
            ? `"${command.name}" exists already: remove them first to set a new password`
            : e._tag === 'InvalidOperator'
              ? String(e.message)
              : storeReason(e),
      );
    case 'list':
      return run(
        operators.list(),
        (list) => ({
          code: 0,
          stdout: command.json
            ? `${JSON.stringify(
                list.map((o) => ({ name: o.name, created_at: iso(o.createdAt) })),
                null,
                2,
              )}\n`
            : list.length === 0
              ? 'No users.\n'
              : formatRows(
                  ['NAME', 'CREATED'],
                  list.map((o) => [o.name, iso(o.createdAt)]),
                ),
        }),
        storeReason,
      );
    case 'remove':
      return run(
        operators.remove(command.name),
        (removed) =>
          removed
            ? { code: 0, stdout: `Removed "${command.name}" and ended their sessions.\n` }
            : { code: 1, stderr: `no user is named "${command.name}"` },
        storeReason,
      );
  }
}

/** Opens the command database (DATABASE_URL, else DATA_DIR's), runs `work`, closes it. */
export async function withCommandDatabase<A>(
  config: Config,
  log: Logger,
  work: (db: OpenDatabase) => Promise<A>,
): Promise<A> {
  const db = await openCommandDatabase(config, log);
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}
