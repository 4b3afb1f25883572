// What the RabbitMQ tests need from the machine: a broker, names no other run uses, a way to cut
// our own connections from the broker's side, and a logger that keeps what it was told.
import type { ChannelModel } from 'amqplib';
import { connect } from 'amqplib';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { RabbitMqConnectionOptions } from '../../src/adapters/rabbitmq/connection.js';
import { RabbitMqConnection, redactUrl } from '../../src/adapters/rabbitmq/connection.js';
import { topologyNames } from '../../src/adapters/rabbitmq/topology.js';
import { WEBHOOK_RETRY_DELAYS_MS } from '../../src/domain/webhook.js';

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** Fails (never skips) when the broker is missing: a green run must mean the tests ran. */
export async function requireRabbitMq(url = AMQP_URL): Promise<void> {
  try {
    const model = await connect(url, { timeout: 3000 });
    await model.close();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `RabbitMQ is not reachable at ${redactUrl(url)} (${why}) — start it with \`rabbitmq-server -detached\``,
      { cause: err },
    );
  }
}

/**
 * A started connection to AMQP_URL that has declared its topology, reconnecting after 100 ms
 * (unless `options` says otherwise); fails the test when it is not ready within 10 s.
 */
export async function readyConnection(
  options: Omit<RabbitMqConnectionOptions, 'url'>,
): Promise<RabbitMqConnection> {
  const connection = new RabbitMqConnection({ url: AMQP_URL, initialBackoffMs: 100, ...options });
  connection.start();
  if (!(await connection.whenReady(10_000))) throw new Error('RabbitMQ connection not ready');
  return connection;
}

/** A QUEUE_PREFIX of its own for each fixture, so runs and tests never see each other's tasks. */
export const uniquePrefix = (label = 'test'): string =>
  `${label}-${randomBytes(4).toString('hex')}`;

const run = promisify(execFile);

/**
 * Has the broker close every connection whose client-given name is `name`, as
 * `rabbitmqctl close_all_connections` would, but without cutting the connections of other
 * suites that may be using the same broker at the same time. Returns how many it closed.
 */
export async function closeConnectionsNamed(name: string): Promise<number> {
  const { stdout } = await run('rabbitmqctl', [
    'list_connections',
    'pid',
    'client_properties',
    '--no-table-headers',
    '--quiet',
  ]);
  const pids = stdout
    .split('\n')
    .filter((line) => line.includes(`{"connection_name","${name}"}`))
    .map((line) => line.split('\t')[0] ?? '')
    .filter((pid) => pid.startsWith('<'));
  for (const pid of pids) await run('rabbitmqctl', ['close_connection', pid, 'test: forced close']);
  return pids.length;
}

/**
 * Deletes the per-process events queues of a prefix (`<prefix>.events.<host>.<pid>.<random>`),
 * which a server deletes itself on a clean stop but leaves behind when a test kills it; their
 * `x-expires` would remove them only minutes later.
 */
export async function deleteEventQueues(prefix: string): Promise<number> {
  const { stdout } = await run('rabbitmqctl', [
    'list_queues',
    'name',
    '--no-table-headers',
    '--quiet',
  ]);
  const names = stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.startsWith(`${prefix}.events.`));
  for (const name of names) await run('rabbitmqctl', ['delete_queue', name]);
  return names.length;
}

/**
 * Removes every queue and exchange under `prefix`: a test's or a bench run's teardown, never a
 * role's. Takes a URL (a connection of its own) or an open connection.
 */
export async function deleteTopology(
  target: string | ChannelModel,
  prefix: string,
  retryDelaysMs: readonly number[],
  webhookRetryDelaysMs: readonly number[] = WEBHOOK_RETRY_DELAYS_MS,
): Promise<void> {
  const model = typeof target === 'string' ? await connect(target) : target;
  model.on('error', () => undefined);
  try {
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    const names = topologyNames(prefix);
    const queues = [
      names.sendQueue,
      names.deadQueue,
      ...[...new Set(retryDelaysMs)].map((delayMs) => names.retryQueue(delayMs)),
      names.webhooksQueue,
      names.watchersQueue,
      ...[...new Set(webhookRetryDelaysMs)].map((delayMs) => names.webhookRetryQueue(delayMs)),
    ];
    // deleteQueue and deleteExchange succeed when the object is already gone.
    for (const queue of queues) await channel.deleteQueue(queue);
    for (const exchange of [names.tasksExchange, names.deadExchange, names.eventsExchange]) {
      await channel.deleteExchange(exchange);
    }
    await channel.close();
  } finally {
    if (typeof target === 'string') await model.close();
  }
}

/**
 * The routing keys binding the events exchange of `prefix` to `queue` (by default its webhooks
 * queue), sorted, as `rabbitmqctl list_bindings` shows them: the broker's own word.
 */
export async function boundKeys(prefix: string, queue?: string): Promise<string[]> {
  const names = topologyNames(prefix);
  const { stdout } = await run('rabbitmqctl', [
    'list_bindings',
    'source_name',
    'destination_name',
    'routing_key',
    '--no-table-headers',
    '--quiet',
  ]);
  const target = queue ?? names.webhooksQueue;
  return stdout
    .split('\n')
    .map((line) => line.split('\t'))
    .filter(([source, destination]) => source === names.eventsExchange && destination === target)
    .map(([, , key]) => key ?? '')
    .sort();
}

/** The names of the per-process events queues of `prefix` (`<prefix>.events.<host>.<pid>…`). */
export async function eventQueues(prefix: string): Promise<string[]> {
  const { stdout } = await run('rabbitmqctl', [
    'list_queues',
    'name',
    '--no-table-headers',
    '--quiet',
  ]);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.startsWith(`${prefix}.events.`));
}
