import * as E from 'fp-ts/lib/Either.js';
import { Container } from 'inversify';
import type { DeadLetter, ReplaySelector } from '../application/ports/email-queue.js';
import type { Logger } from '../application/ports/system.js';
import type { Config } from '../adapters/config/config.js';
import { coreModule, rabbitMqModule } from './modules.js';
import { resolve } from './services.js';

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
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n${letters.length} dead letter${letters.length === 1 ? '' : 's'}.\n`;
}

/** Runs one dead-letter command against RabbitMQ; returns the exit code. */
export async function runDeadLetters(
  config: Config,
  log: Logger,
  command: Command,
): Promise<number> {
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
    const box = resolve(container, 'DeadLetterBox');
    const result =
      command.kind === 'list'
        ? E.map((letters: readonly DeadLetter[]) =>
            command.json ? `${JSON.stringify(letters, null, 2)}\n` : formatTable(letters),
          )(await box.list()())
        : command.kind === 'replay'
          ? E.map((n: number) => `Replayed ${n} dead letter${n === 1 ? '' : 's'}.\n`)(
              await box.replay(command.selector)(),
            )
          : E.map((n: number) => `Purged ${n} dead letter${n === 1 ? '' : 's'}.\n`)(
              await box.purge()(),
            );
    if (E.isLeft(result)) {
      process.stderr.write(`email dead-letters: ${result.left.reason}\n`);
      return 1;
    }
    process.stdout.write(result.right);
    if (
      command.kind === 'replay' &&
      'id' in command.selector &&
      result.right.startsWith('Replayed 0')
    ) {
      process.stderr.write(`No dead letter has the id ${command.selector.id}.\n`);
      return 1;
    }
    return 0;
  } finally {
    await connection.close();
  }
}
