import * as E from 'fp-ts/lib/Either.js';
import { Container } from 'inversify';
import type {
  DeadLetter,
  DeadLetterBox,
  ReplaySelector,
} from '../application/ports/dead-letter-box.js';
import type { QueueUnavailable } from '../application/ports/email-queue.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { SqlEmailQueue } from '../adapters/postgres/sql-email-queue.js';
import { openCommandDatabase } from './database.js';
import { coreModule, rabbitMqModule } from './modules.js';
import { resolve } from './services.js';
import { formatRows } from './table.js';

export const DEAD_LETTERS_USAGE = `Usage:
  email dead-letters list [--json]       show the dead letters (they stay in the queue)
  email dead-letters replay --id ID      put one back on the tasks queue, with a fresh attempt budget
  email dead-letters replay --all        put every one back
  email dead-letters purge               delete every dead letter
`;

type Command =
  | { readonly kind: 'list'; readonly json: boolean }
  | { readonly kind: 'replay'; readonly selector: ReplaySelector }
  | { readonly kind: 'purge' };

export function parseDeadLettersArgs(args: readonly string[]): Command | undefined {
  const [verb, ...rest] = args;
  if (verb === 'list' && (rest.length === 0 || (rest.length === 1 && rest[0] === '--json'))) {
    return { kind: 'list', json: rest[0] === '--json' };
  }
  if (verb === 'replay' && rest.length === 1 && rest[0] === '--all') {
    return { kind: 'replay', selector: { all: true } };
  }
  if (verb === 'replay' && rest.length === 2 && rest[0] === '--id' && rest[1]) {
    return { kind: 'replay', selector: { id: rest[1] } };
  }
  if (verb === 'purge' && rest.length === 0) return { kind: 'purge' };
  return undefined;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function formatTable(letters: readonly DeadLetter[]): string {
  if (letters.length === 0) return 'No dead letters.\n';
  const rows = letters.map((l) => [
    l.id,
    clip(l.to.join(', '), 40),
    clip(l.subject, 40),
    clip(l.reason, 60),
    String(l.attempts),
    l.failedAt,
  ]);
  const header = ['ID', 'RECIPIENTS', 'SUBJECT', 'REASON', 'ATTEMPTS', 'FAILED AT'];
  return `${formatRows(header, rows)}${letters.length} dead letter${letters.length === 1 ? '' : 's'}.\n`;
}

/** What a command printed, and the id asked for if no dead letter had it (exit status 1). */
interface Done {
  readonly text: string;
  readonly missingId?: string;
}

const plural = (n: number, verb: string): string =>
  `${verb} ${n} dead letter${n === 1 ? '' : 's'}.\n`;

async function run(
  box: DeadLetterBox,
  command: Command,
): Promise<E.Either<QueueUnavailable, Done>> {
  switch (command.kind) {
    case 'list':
      return E.map((letters: readonly DeadLetter[]) => ({
        text: command.json ? `${JSON.stringify(letters, null, 2)}\n` : formatTable(letters),
      }))(await box.list()());
    case 'replay':
      return E.map((n: number): Done => ({
        text: plural(n, 'Replayed'),
        ...(n === 0 && 'id' in command.selector ? { missingId: command.selector.id } : {}),
      }))(await box.replay(command.selector)());
    case 'purge':
      return E.map((n: number) => ({ text: plural(n, 'Purged') }))(await box.purge()());
  }
}

/**
 * Runs one dead-letter command against RabbitMQ (AMQP_URL) or, without it, against the embedded
 * queue's database; returns the exit code.
 */
export async function runDeadLetters(
  config: Config,
  log: Logger,
  command: Command,
): Promise<number> {
  if (config.amqpUrl === undefined) return runOnDatabase(config, log, command);
  const container = new Container();
  container.load(
    coreModule(config, log, 'dead-letters'),
    rabbitMqModule(config, log, 'dead-letters'),
  );
  const connection = resolve(container, 'RabbitMqConnection');
  connection.start();
  try {
    if (!(await connection.whenReady(10_000))) {
      process.stderr.write(
        `email dead-letters: RabbitMQ is not reachable at ${connection.redactedUrl}; is it running?\n`,
      );
      return 1;
    }
    return await report(await run(resolve(container, 'DeadLetterBox'), command));
  } finally {
    await connection.close();
  }
}

/**
 * Without AMQP_URL the dead letters are those of the embedded queue: `email dev`'s, in
 * DATABASE_URL or DATA_DIR. The embedded database takes one process at a time, so this asks
 * for `npm start` to be stopped first (DataDirUnusable, exit 2).
 */
async function runOnDatabase(config: Config, log: Logger, command: Command): Promise<number> {
  const db = await openCommandDatabase(config, log);
  try {
    const box = new SqlEmailQueue(db.client, { concurrency: 1, logger: log });
    return await report(await run(box, command));
  } finally {
    await db.close();
  }
}

function report(outcome: E.Either<QueueUnavailable, Done>): number {
  if (E.isLeft(outcome)) {
    process.stderr.write(`email dead-letters: ${outcome.left.reason}\n`);
    return 1;
  }
  process.stdout.write(outcome.right.text);
  if (outcome.right.missingId !== undefined) {
    process.stderr.write(`No dead letter has the id ${outcome.right.missingId}.\n`);
    return 1;
  }
  return 0;
}
