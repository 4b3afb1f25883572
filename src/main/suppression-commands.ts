import * as E from 'fp-ts/lib/Either.js';
import type { Suppression, SuppressionReason } from '../application/ports/suppression-list.js';
import { SUPPRESSION_REASONS } from '../application/ports/suppression-list.js';
import type { Logger } from '../application/ports/system.js';
import { domainToAscii } from '../adapters/idna/idna.js';
import { SqlSuppressionList } from '../adapters/postgres/sql-suppression-list.js';
import { systemClock } from '../adapters/system/system.js';
import { mailboxKey, parseEmailAddress } from '../domain/email-address.js';
import type { CommandResult } from './access-commands.js';
import type { OpenDatabase } from './database.js';
import { formatRows } from './table.js';

export const SUPPRESSIONS_USAGE = `Usage:
  email suppressions list [--json]            every suppressed address, newest first
  email suppressions add ADDRESS [--reason R] [--detail TEXT]
                                              R: ${SUPPRESSION_REASONS.join(', ')} (default manual)
  email suppressions remove ADDRESS           email may be sent to it again
`;

export type SuppressionsCommand =
  | { readonly kind: 'list'; readonly json: boolean }
  | {
      readonly kind: 'add';
      readonly address: string;
      readonly reason: SuppressionReason;
      readonly detail?: string;
    }
  | { readonly kind: 'remove'; readonly address: string };

const isReason = (value: string): value is SuppressionReason =>
  SUPPRESSION_REASONS.some((r) => r === value);

/** The command, or what is wrong with the arguments (for the usage message). */
export function parseSuppressionsArgs(
  args: readonly string[],
): E.Either<string, SuppressionsCommand> {
  const [verb, ...rest] = args;
  if (verb === 'list' && (rest.length === 0 || (rest.length === 1 && rest[0] === '--json'))) {
    return E.right({ kind: 'list', json: rest[0] === '--json' });
  }
  if (verb === 'remove' && rest.length === 1 && rest[0] !== undefined) {
    return E.right({ kind: 'remove', address: rest[0] });
  }
  if (verb === 'add' && rest[0] !== undefined && !rest[0].startsWith('--')) {
    const [address, ...flags] = rest;
    let reason: SuppressionReason = 'manual';
    let detail: string | undefined;
    for (let i = 0; i < flags.length; i += 2) {
      const [flag, value] = [flags[i], flags[i + 1]];
      if (value === undefined) return E.left(`${flag} needs a value`);
      if (flag === '--reason') {
        if (!isReason(value)) {
          return E.left(`unknown reason "${value}": use ${SUPPRESSION_REASONS.join(', ')}`);
        }
        reason = value;
      } else if (flag === '--detail') detail = value;
      else return E.left(`unknown option ${flag}`);
    }
    return E.right({ kind: 'add', address, reason, ...(detail !== undefined ? { detail } : {}) });
  }
  return E.left('expected list, add ADDRESS or remove ADDRESS');
}

/** The mailbox key of what was typed, or why it is no address. */
function keyOf(typed: string): E.Either<string, string> {
  const parsed = parseEmailAddress(typed, domainToAscii);
  return E.isLeft(parsed)
    ? E.left(`"${typed}" is not a valid address: ${parsed.left.message}`)
    : E.right(mailboxKey(parsed.right, domainToAscii));
}

/** Every entry, page after page: the list is for a person to read, or a program to keep. */
async function everything(
  list: SqlSuppressionList,
): Promise<E.Either<string, readonly Suppression[]>> {
  const all: Suppression[] = [];
  let cursor: string | undefined;
  do {
    const page = await list.list(500, cursor)();
    if (E.isLeft(page)) {
      // The cursors are the list's own, handed straight back: refusing one is a bug.
      if (page.left._tag === 'InvalidCursor') throw new Error('the list refused its own cursor');
      return E.left(page.left.reason);
    }
    all.push(...page.right.entries);
    cursor = page.right.nextCursor;
  } while (cursor !== undefined);
  return E.right(all);
}

const listed = (entries: readonly Suppression[], json: boolean): string =>
  json
    ? `${JSON.stringify(
        entries.map((s) => ({
          address: s.address,
          reason: s.reason,
          detail: s.detail ?? null,
          created_at: s.createdAt.toISOString(),
        })),
        null,
        2,
      )}\n`
    : entries.length === 0
      ? 'No suppressed addresses.\n'
      : formatRows(
          ['ADDRESS', 'REASON', 'CREATED', 'DETAIL'],
          entries.map((s) => [s.address, s.reason, s.createdAt.toISOString(), s.detail ?? '']),
        );

/**
 * `email suppressions …` against `db`: 0 when done, 1 when it could not be (an address that is
 * no address, one not on the list to remove, the database failing). `log` gets the audit lines.
 */
export async function runSuppressions(
  command: SuppressionsCommand,
  db: OpenDatabase,
  log: Logger,
): Promise<CommandResult> {
  const list = new SqlSuppressionList(db.client);
  if (command.kind === 'list') {
    const entries = await everything(list);
    return E.isLeft(entries)
      ? { code: 1, stderr: entries.left }
      : { code: 0, stdout: listed(entries.right, command.json) };
  }
  const key = keyOf(command.address);
  if (E.isLeft(key)) return { code: 1, stderr: key.left };
  const address = key.right;
  if (command.kind === 'add') {
    const added = await list.add({
      address,
      reason: command.reason,
      createdAt: systemClock.now(),
      ...(command.detail !== undefined ? { detail: command.detail } : {}),
    })();
    if (E.isLeft(added)) return { code: 1, stderr: added.left.reason };
    if (!added.right) {
      return {
        code: 0,
        stdout: `${address} was on the suppression list already; its entry stands.\n`,
      };
    }
    log.info(
      { audit: 'suppression-added', address, reason: command.reason },
      'Address added to the suppression list',
    );
    return { code: 0, stdout: `Added ${address} (${command.reason}): no email goes to it now.\n` };
  }
  const removed = await list.remove(address)();
  if (E.isLeft(removed)) return { code: 1, stderr: removed.left.reason };
  if (!removed.right) return { code: 1, stderr: `${address} is not on the suppression list` };
  log.info({ audit: 'suppression-removed', address }, 'Address removed from the suppression list');
  return { code: 0, stdout: `Removed ${address}: email may be sent to it again.\n` };
}
