import * as E from 'fp-ts/lib/Either.js';
import type { Logger } from '../application/ports/system.js';
import type { WebhookEndpoint } from '../application/ports/webhook-endpoints.js';
import { WebhookSubscriptions } from '../application/webhook-subscriptions.js';
import { NodeSecretTokens } from '../adapters/crypto/node-secret-tokens.js';
import { SqlWebhookEndpoints } from '../adapters/postgres/sql-webhook-endpoints.js';
import { systemClock } from '../adapters/system/system.js';
import { STATUS_NAMES } from '../domain/email-status.js';
import type { WebhookEventType } from '../domain/webhook.js';
import { parseWebhookEventTypes } from '../domain/webhook.js';
import type { CommandResult } from './access-commands.js';
import type { OpenDatabase } from './database.js';
import { formatRows } from './table.js';

/** `names` joined with commas, in lines of at most `width` characters after `indent`. */
function wrapped(names: readonly string[], indent: string, width = 96): string {
  const lines: string[] = [];
  let line = '';
  for (const [i, name] of names.entries()) {
    const word = i < names.length - 1 ? `${name},` : name;
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line].map((l) => indent + l).join('\n');
}

/** What `email webhooks` prints on standard error with a mistake in its arguments (exit 2). */
export const WEBHOOKS_USAGE = `Usage:
  email webhooks add URL [--events E,E]   a new endpoint: prints its id, then its signing
                                          secret (shown this once)
  email webhooks list [--json]            every endpoint, oldest first (never a secret)
  email webhooks remove ID                nothing more is sent to it
E (default: every event), with or without "email.":
${wrapped(STATUS_NAMES, '  ')}
`;

/** `email webhooks …` as parsed: what to do, with arguments already checked for their form. */
export type WebhooksCommand =
  | {
      readonly kind: 'add';
      readonly url: string;
      /** Checked with `parseWebhookEventTypes`; empty: every event. */
      readonly events: readonly WebhookEventType[];
    }
  | { readonly kind: 'list'; readonly json: boolean }
  | { readonly kind: 'remove'; readonly id: string };

/**
 * The command, or what is wrong with the arguments (for the usage message, exit 2). An unknown
 * event name is such a mistake; a URL that cannot be an endpoint is the use case's to say (exit 1).
 */
export function parseWebhooksArgs(args: readonly string[]): E.Either<string, WebhooksCommand> {
  const [verb, ...rest] = args;
  if (verb === 'list' && (rest.length === 0 || (rest.length === 1 && rest[0] === '--json'))) {
    return E.right({ kind: 'list', json: rest[0] === '--json' });
  }
  if (verb === 'remove' && rest.length === 1 && rest[0] !== undefined) {
    return E.right({ kind: 'remove', id: rest[0] });
  }
  if (verb === 'add' && rest[0] !== undefined && !rest[0].startsWith('--')) {
    const [url, ...flags] = rest;
    // `--events` may be given more than once: the names add up.
    const names: string[] = [];
    for (let i = 0; i < flags.length; i += 2) {
      const [flag, value] = [flags[i], flags[i + 1]];
      if (flag !== '--events') return E.left(`unknown option ${flag}`);
      if (value === undefined) return E.left(`${flag} needs a value, such as sent,bounced`);
      const given = value.split(',');
      if (given.every((n) => n.trim() === '')) {
        return E.left('--events needs at least one event name; leave it out for every event');
      }
      names.push(...given);
    }
    const events = parseWebhookEventTypes(names);
    if (E.isLeft(events)) return events;
    return E.right({ kind: 'add', url, events: events.right });
  }
  return E.left('expected add URL, list or remove ID');
}

const eventsOf = (e: WebhookEndpoint): string =>
  e.events.length === 0 ? 'all' : e.events.join(',');

const listed = (endpoints: readonly WebhookEndpoint[], json: boolean): string =>
  json
    ? `${JSON.stringify(
        endpoints.map((e) => ({
          id: e.id,
          url: e.url,
          events: e.events,
          created_at: e.createdAt.toISOString(),
        })),
        null,
        2,
      )}\n`
    : endpoints.length === 0
      ? 'No webhook endpoints.\n'
      : formatRows(
          ['ID', 'URL', 'EVENTS', 'CREATED'],
          endpoints.map((e) => [e.id, e.url, eventsOf(e), e.createdAt.toISOString()]),
        );

/** The host alone, for the audit line: a receiver's URL may carry a token in its query. */
const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
};

/**
 * `email webhooks …` against `db`: 0 when done, 1 when it could not be (a URL that cannot be an
 * endpoint, an id that names none, the database failing). `add` prints the id and then the
 * signing secret on standard output, one a line, so that a script can read them; what they are,
 * and that the secret is not shown again, goes to standard error. `log` gets the audit lines.
 */
export async function runWebhooks(
  command: WebhooksCommand,
  db: OpenDatabase,
  log: Logger,
): Promise<CommandResult> {
  const subscriptions = new WebhookSubscriptions(
    new SqlWebhookEndpoints(db.client),
    new NodeSecretTokens(),
    systemClock,
  );
  if (command.kind === 'list') {
    const all = await subscriptions.list()();
    return E.isLeft(all)
      ? { code: 1, stderr: all.left.reason }
      : { code: 0, stdout: listed(all.right, command.json) };
  }
  if (command.kind === 'add') {
    const added = await subscriptions.add(command.url, command.events)();
    if (E.isLeft(added)) {
      return {
        code: 1,
        stderr: added.left._tag === 'StoreUnavailable' ? added.left.reason : added.left.message,
      };
    }
    const { endpoint, secret } = added.right;
    log.info(
      {
        audit: 'webhook-endpoint-added',
        id: endpoint.id,
        host: hostOf(endpoint.url),
        events: endpoint.events,
      },
      'Webhook endpoint added',
    );
    return {
      code: 0,
      stdout: `${endpoint.id}\n${secret}\n`,
      stderr:
        `Added webhook endpoint ${endpoint.id} for ${endpoint.url} (events: ${eventsOf(endpoint)}).\n` +
        'Above: its id, then its signing secret. The secret is shown this once and cannot be shown ' +
        'again: give it to the receiver now, to verify the webhook-signature header (Standard ' +
        'Webhooks). To change it, add a new endpoint and remove this one.\n',
    };
  }
  const removed = await subscriptions.remove(command.id)();
  if (E.isLeft(removed)) return { code: 1, stderr: removed.left.reason };
  if (!removed.right) {
    return {
      code: 1,
      stderr: `no webhook endpoint has the id "${command.id}": "email webhooks list" shows them`,
    };
  }
  log.info({ audit: 'webhook-endpoint-removed', id: command.id }, 'Webhook endpoint removed');
  return { code: 0, stdout: `Removed ${command.id}: no more webhooks are sent to it.\n` };
}
