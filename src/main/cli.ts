#!/usr/bin/env node
import 'reflect-metadata';
import * as E from 'fp-ts/lib/Either.js';
import { pino } from 'pino';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { describeProblems, loadConfig } from '../adapters/config/config.js';
import { createLogger } from '../adapters/logging/logger.js';
import { migrate, migrateSql } from '../adapters/postgres/migrate.js';
import { DataDirUnusable, PgliteDatabase } from '../adapters/postgres/pglite-database.js';
import type { Running } from './runtime.js';
import { DEAD_LETTERS_USAGE, parseDeadLettersArgs, runDeadLetters } from './dead-letters.js';
import { startDev } from './dev.js';
import { startServer } from './server.js';
import { startWorker } from './worker.js';
import { onShutdownSignal } from './runtime.js';

const starters: Record<
  'dev' | 'server' | 'worker',
  (config: Config, log: Logger) => Promise<Running>
> = {
  dev: startDev,
  server: startServer,
  worker: startWorker,
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
  const start = starters[role];
  const running = await start(config.right, log);
  onShutdownSignal(log, () => running.stop());
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
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn', 'migrate', pino.destination(2));
  const url = config.right.databaseUrl;
  const { applied } = url
    ? await migrate(url.reveal(), log)
    : await migrateEmbedded(config.right.dataDir, log);
  process.stdout.write(
    applied.length === 0
      ? 'The database is up to date.\n'
      : `Applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}\n`,
  );
  return 0;
}

/** The embedded database in DATA_DIR, the one `email dev` uses, brought up to date. */
async function migrateEmbedded(dataDir: string, log: Logger): Promise<{ applied: string[] }> {
  const database = await PgliteDatabase.open({ dataDir, logger: log });
  try {
    return await migrateSql(database, log);
  } finally {
    await database.close();
  }
}

async function deadLetters(args: readonly string[]): Promise<number> {
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
  return runDeadLetters(config.right, log, parsed);
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
