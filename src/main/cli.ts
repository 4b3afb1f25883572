#!/usr/bin/env node
import 'reflect-metadata';
import * as E from 'fp-ts/lib/Either.js';
import { pino } from 'pino';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { describeProblems, loadConfig } from '../adapters/config/config.js';
import { createLogger } from '../adapters/logging/logger.js';
import { migrate } from '../adapters/postgres/migrate.js';
import { redactDatabaseUrl } from '../adapters/postgres/pg-database.js';
import { DataDirUnusable } from '../adapters/postgres/pglite-data-dir.js';
import { isConnectionError, safeReason } from '../adapters/postgres/sql-client.js';
import type { Running } from './runtime.js';
import type { CommandResult } from './access-commands.js';
import type { OpenDatabase } from './database.js';
import { migrateOpened } from './database.js';
import { onShutdownSignal } from './runtime.js';
import { limitHeapGrowth } from './heap.js';

/**
 * Each role's module is loaded only when that role starts, and each command's when it runs:
 * what one role needs and another does not (the worker's transports, the server's pages and
 * argon2, the embedded database) stays out of the other's memory.
 */
const starters: Record<
  'dev' | 'server' | 'worker',
  (config: Config, log: Logger) => Promise<Running>
> = {
  dev: async (config, log) => (await import('./dev.js')).startDev(config, log),
  server: async (config, log) => (await import('./server.js')).startServer(config, log),
  worker: async (config, log) => (await import('./worker.js')).startWorker(config, log),
};

const USAGE = `Usage: email <command>

Commands:
  dev                      server and worker in one process, on an embedded database in DATA_DIR
                           (no broker, no account)
  server                   the HTTP server; publishes to RabbitMQ at AMQP_URL, state in DATABASE_URL
  worker                   the worker; consumes from RabbitMQ and sends with MAIL_TRANSPORT
  migrate                  applies the database migrations to DATABASE_URL, or to DATA_DIR's
                           embedded database without it (roles also do at start)
  dead-letters list [--json]           show what could not be delivered (left in place)
  dead-letters replay --id ID | --all  put dead letters back on the tasks queue
  dead-letters purge                   delete every dead letter
                           (RabbitMQ's with AMQP_URL; else the embedded queue's, as email dev)
  api-keys create --name NAME [--scopes send,read,admin]   prints a new API key once
  api-keys list [--json] | api-keys revoke NAME
  users add NAME           adds a person who signs in to the pages (password on standard input)
  users list [--json] | users remove NAME
  suppressions add ADDRESS [--reason bounce|complaint|unsubscribe|manual]
                           no email is sent to ADDRESS any more
  suppressions list [--json] | suppressions remove ADDRESS
  webhooks add URL [--events sent,bounced]
                           a webhook endpoint; prints its id and signing secret (shown once)
  webhooks list [--json] | webhooks remove ID
                           (in DATABASE_URL; else in DATA_DIR's embedded database, as email dev)
  --help                   this text

Configuration is read from the environment; see README.md, "Configuration".
`;

/** The exit status of a one-shot command, or 'running' for a role that runs until a signal. */
async function main(argv: readonly string[]): Promise<number | 'running'> {
  const [command] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'dead-letters') return deadLetters(argv.slice(1));
  if (command === 'migrate') return migrateCommand(argv.slice(1));
  if (command === 'api-keys') {
    const { API_KEYS_USAGE, parseApiKeysArgs, runApiKeys } = await import('./access-commands.js');
    const parsed = parseApiKeysArgs(argv.slice(1));
    return E.isLeft(parsed)
      ? usageError(command, parsed.left, API_KEYS_USAGE)
      : accessCommand(command, (db, log) => runApiKeys(parsed.right, db, log));
  }
  if (command === 'users') {
    const { USERS_USAGE, parseUsersArgs, runUsers } = await import('./access-commands.js');
    const parsed = parseUsersArgs(argv.slice(1));
    return E.isLeft(parsed)
      ? usageError(command, parsed.left, USERS_USAGE)
      : accessCommand(command, (db, log) => runUsers(parsed.right, db, log, readPassword));
  }
  if (command === 'suppressions') {
    const { SUPPRESSIONS_USAGE, parseSuppressionsArgs, runSuppressions } =
      await import('./suppression-commands.js');
    const parsed = parseSuppressionsArgs(argv.slice(1));
    return E.isLeft(parsed)
      ? usageError(command, parsed.left, SUPPRESSIONS_USAGE)
      : accessCommand(command, (db, log) => runSuppressions(parsed.right, db, log));
  }
  if (command === 'webhooks') {
    const { WEBHOOKS_USAGE, parseWebhooksArgs, runWebhooks } =
      await import('./webhook-commands.js');
    const parsed = parseWebhooksArgs(argv.slice(1));
    return E.isLeft(parsed)
      ? usageError(command, parsed.left, WEBHOOKS_USAGE)
      : accessCommand(command, (db, log) => runWebhooks(parsed.right, db, log));
  }
  const roles: Record<string, 'dev' | 'server' | 'worker'> = {
    dev: 'dev',
    server: 'server',
    worker: 'worker',
  };
  const role = roles[command];
  if (role === undefined) {
    process.stderr.write(`email: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env, role);
  if (E.isLeft(config)) {
    process.stderr.write(`email ${command}: ${describeProblems(config.left)}\n`);
    return 2;
  }
  const log = createLogger(config.right.logLevel, role);
  limitHeapGrowth();
  // The handler goes in before the role starts: a role logs that it listens before its start
  // returns, and a signal sent on that line must stop it gracefully, not kill it.
  const starting = starters[role](config.right, log);
  onShutdownSignal(log, async () => (await starting).stop());
  await starting;
  return 'running';
}

async function migrateCommand(args: readonly string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write(`email migrate: takes no arguments\n\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env, 'migrate');
  if (E.isLeft(config)) {
    process.stderr.write(`email migrate: ${describeProblems(config.left)}\n`);
    return 2;
  }
  const log = oneShotLogger(
    createLogger(process.env.LOG_LEVEL ?? 'warn', 'migrate', pino.destination(2)),
  );
  const url = config.right.databaseUrl?.reveal();
  try {
    const { applied } = url
      ? await migrate(url, log)
      : await migrateEmbedded(config.right.dataDir, log);
    process.stdout.write(
      applied.length === 0
        ? 'The database is up to date.\n'
        : `Applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}\n`,
    );
    return 0;
  } catch (err) {
    return commandFailed('migrate', err, {
      doing: `migrating ${url ? redactDatabaseUrl(url) : `the embedded database in DATA_DIR=${config.right.dataDir}`}`,
      urls: [url],
      database: true,
    });
  }
}

/**
 * A one-shot command's logger: its outcome is the one line it prints, so what libraries report as
 * errors on the way (node-pg-migrate logs the SQL that failed, with a caret under it) is detail
 * for LOG_LEVEL=info, not a second, louder account of the same failure.
 */
const oneShotLogger = (log: Logger): Logger => ({
  info: (fields, message) => log.info(fields, message),
  warn: (fields, message) => log.info(fields, message),
  error: (fields, message) => log.info(fields, message),
});

/** An error and the causes it carries, outermost first. */
function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let e = err;
  while (e !== undefined && e !== null && chain.length < 8) {
    chain.push(e);
    e = e instanceof Error ? e.cause : undefined;
  }
  return chain;
}

/** The SQLSTATE a driver error carries (five digits or capitals), if any. */
const sqlStateOf = (e: unknown): string | undefined =>
  typeof e === 'object' &&
  e !== null &&
  'code' in e &&
  typeof e.code === 'string' &&
  /^[0-9A-Z]{5}$/.test(e.code)
    ? e.code
    : undefined;

const firstLineOf = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';

const PERMISSION_DENIED =
  'the database user may not create what the migrations need (permission denied, SQLSTATE 42501): migrate as the owner of the database, or grant this user CREATE on it and on its public schema';
const NO_PASSWORD =
  'the database asks for a password and DATABASE_URL gives none: put it in the URL, postgres://user:password@host/database';

/**
 * Why a command that needed the database failed, in fixed words that say what to do: never the
 * driver's own message (it may quote names and SQL), a stack, or a password.
 */
function databaseReason(err: unknown): string {
  const chain = causes(err);
  const text = chain.map((e) => (e instanceof Error ? e.message : String(e))).join('\n');
  const driver = chain.find((e) => sqlStateOf(e) !== undefined) ?? chain.find(isConnectionError);
  // node-pg-migrate re-throws the driver's error inside a new one: code lost, stack in the text.
  if (sqlStateOf(driver) === '42501' || /permission denied/i.test(text)) return PERMISSION_DENIED;
  // pg's SCRAM client, asked for a password it was not given.
  if (/client password must be a (non-empty )?string/.test(text)) return NO_PASSWORD;
  if (driver !== undefined) return safeReason(driver);
  // node-pg-migrate's own errors (a migration file missing or out of order) say what to fix, on
  // their first line; the rest is a stack. The innermost: the outer ones are our wrappers.
  const own = firstLineOf(chain.at(-1));
  return own !== '' ? own : 'the database failed';
}

/** Everything in `url` that is a secret, so that a message can be scrubbed of it for certain. */
function secretsOf(url: string | undefined): string[] {
  if (url === undefined) return [];
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const decoded = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const values = [parsed.password, decoded(parsed.password)];
  for (const name of ['password', 'sslpassword']) {
    values.push(parsed.searchParams.get(name) ?? '');
  }
  return values.filter((v) => v !== '');
}

/** What a one-shot command was doing, for its failure line, and the URLs whose secrets it held. */
interface CommandContext {
  /** Says what failed: `migrating postgres://u:***@db/email`. */
  readonly doing: string;
  readonly urls: readonly (string | undefined)[];
  /** The reason comes from the database (fixed words), or from a library's first line. */
  readonly database: boolean;
}

/**
 * Prints why a one-shot command failed as one line, `email <command>: <doing> failed: <reason>`,
 * and answers its exit status: 2 for an unusable DATA_DIR (configuration, like a bad variable),
 * else 1.
 */
function commandFailed(command: string, err: unknown, context: CommandContext): number {
  const unusable = err instanceof DataDirUnusable;
  let line = unusable
    ? firstLineOf(err)
    : `${context.doing} failed: ${context.database ? databaseReason(err) : firstLineOf(err)}`;
  // Belt and braces: whatever a library put in a message, a password never goes out.
  for (const secret of context.urls.flatMap(secretsOf)) line = line.split(secret).join('***');
  process.stderr.write(`email ${command}: ${line}\n`);
  return unusable ? 2 : 1;
}

/** The embedded database in DATA_DIR, the one `email dev` uses, brought up to date. */
async function migrateEmbedded(dataDir: string, log: Logger): Promise<{ applied: string[] }> {
  const { PgliteDatabase } = await import('../adapters/postgres/pglite-database.js');
  const database = await PgliteDatabase.open({ dataDir, logger: log, migrateWhenCreated: true });
  try {
    return await migrateOpened(database, log);
  } finally {
    await database.close();
  }
}

function usageError(command: string, problem: string, usage: string): number {
  process.stderr.write(`email ${command}: ${problem}\n\n${usage}`);
  return 2;
}

/**
 * `email api-keys …` and `email users …`: against DATABASE_URL, or DATA_DIR's embedded database
 * (stop `npm start` first: the embedded database has one process at a time). Audit lines go to
 * standard error as JSON; the key, the one thing to keep, alone on standard output.
 */
async function accessCommand(
  command: 'api-keys' | 'users' | 'suppressions' | 'webhooks',
  work: (db: OpenDatabase, log: Logger) => Promise<CommandResult>,
): Promise<number> {
  const config = loadConfig(process.env, 'migrate');
  if (E.isLeft(config)) {
    process.stderr.write(`email ${command}: ${describeProblems(config.left)}\n`);
    return 2;
  }
  // The audit lines (a key created, a user removed) at info; the database's own news only when
  // something is wrong, as in the other one-shot commands.
  const log = createLogger(process.env.LOG_LEVEL ?? 'info', command, pino.destination(2));
  const quiet = createLogger(process.env.LOG_LEVEL ?? 'warn', command, pino.destination(2));
  const url = config.right.databaseUrl?.reveal();
  const { withCommandDatabase } = await import('./access-commands.js');
  try {
    const result = await withCommandDatabase(config.right, oneShotLogger(quiet), (db) =>
      work(db, log),
    );
    if (result.stdout) process.stdout.write(result.stdout);
    if (result.stderr) {
      process.stderr.write(
        result.code === 0 ? result.stderr : `email ${command}: ${result.stderr}\n`,
      );
    }
    return result.code;
  } catch (err) {
    return commandFailed(command, err, {
      doing: `opening ${url ? redactDatabaseUrl(url) : `the embedded database in DATA_DIR=${config.right.dataDir}`}`,
      urls: [url],
      database: true,
    });
  }
}

/**
 * The password for `users add`: typed at a terminal without echo, or piped (one line; a final
 * newline is not part of it).
 */
async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Uint8Array));
    // One final line break is the end of the line, not the password; any other is refused by
    // the password rules (one line, no control characters).
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  process.stderr.write('Password (12 characters or more, not shown): ');
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  let typed = '';
  try {
    for await (const chunk of stdin) {
      // An arrow or function key arrives as an escape sequence: none of it is the password.
      // eslint-disable-next-line no-control-regex
      for (const c of String(chunk).replace(/\u001b(\[[0-9;]*[A-Za-z~]|O[A-Za-z]|.)?/g, '')) {
        if (c === '\r' || c === '\n' || c === '\u0004') return typed;
        if (c === '\u0003') throw new Error('cancelled');
        if (c === '\u0015') typed = '';
        else if (c === '\u007f' || c === '\b') typed = [...typed].slice(0, -1).join('');
        // eslint-disable-next-line no-control-regex
        else if (!/[\u0000-\u001f]/.test(c)) typed += c;
      }
    }
    return typed;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

async function deadLetters(args: readonly string[]): Promise<number> {
  const { DEAD_LETTERS_USAGE, parseDeadLettersArgs, runDeadLetters } =
    await import('./dead-letters.js');
  const parsed = parseDeadLettersArgs(args);
  if (parsed === undefined) {
    process.stderr.write(
      `email dead-letters: expected list, replay or purge\n\n${DEAD_LETTERS_USAGE}`,
    );
    return 2;
  }
  const config = loadConfig(process.env, 'dead-letters');
  if (E.isLeft(config)) {
    process.stderr.write(`email dead-letters: ${describeProblems(config.left)}\n`);
    return 2;
  }
  // Logs go to stderr so that `list --json` stays clean on stdout; only warnings by default.
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'dead-letters', pino.destination(2));
  const { amqpUrl, databaseUrl, dataDir } = config.right;
  const url = databaseUrl?.reveal();
  try {
    return await runDeadLetters(config.right, oneShotLogger(log), parsed);
  } catch (err) {
    return commandFailed('dead-letters', err, {
      doing:
        amqpUrl !== undefined
          ? 'reading the dead letters in RabbitMQ'
          : `opening ${url ? redactDatabaseUrl(url) : `the embedded database in DATA_DIR=${dataDir}`}`,
      urls: [url, amqpUrl?.reveal()],
      database: amqpUrl === undefined,
    });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 'running') process.exitCode = code;
  },
  (error: unknown) => {
    // A start-up failure (port in use, broker refused): say it plainly and exit non-zero. A
    // DATA_DIR that cannot be used is configuration, like a bad variable: exit 2.
    process.stderr.write(`email: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof DataDirUnusable ? 2 : 1);
  },
);
