// `email server` and `email worker` as child processes against the real broker and a real
// PostgreSQL, the way an operator runs them: one QUEUE_PREFIX and one database per fixture,
// every process killed, every queue and exchange deleted and the database dropped afterwards,
// even when a test fails half-way.
import { connect } from 'amqplib';
import { createConnection, createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { topologyNames } from '../../src/adapters/rabbitmq/topology.js';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import type { TestDatabase } from './postgres.js';
import { migratedDatabase } from './postgres.js';
import type { EmailProcess } from './process.js';
import { runEmail } from './process.js';
import { AMQP_URL, deleteEventQueues, deleteTopology, uniquePrefix } from './rabbitmq.js';
import { eventually } from './waiting.js';

/** Short retry steps, so a retry test takes a fraction of a second; teardown deletes these. */
export const RETRY_DELAYS = '200ms,400ms';
export const RETRY_DELAYS_MS: readonly number[] = [200, 400];
/** Outgoing webhooks retried quickly too: three attempts within a second. */
export const WEBHOOK_RETRY_DELAYS = '300ms,600ms';
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [300, 600];

export const MAILGUN_KEY = 'key-roles-test-0123456789';
/** The key every role of these tests accepts (`API_KEYS`), with every scope. */
export const TEST_API_KEY = 'test-roles-key-0123456789abcdef';
/** What an API request of these tests sends to be let in. */
export const AUTHORIZED = { authorization: `Bearer ${TEST_API_KEY}` } as const;
export const MAIL_FROM = 'Example <noreply@mg.example.com>';

type Env = Record<string, string | undefined>;

// Mocha's --exit ends this process without running anyone's cleanup: never leave children behind.
const everyChild = new Set<EmailProcess>();
process.once('exit', () => {
  for (const proc of everyChild) {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  }
});

/** Resolves once the process has exited and all its output has been read. */
export const closed = (proc: EmailProcess): Promise<void> => proc.closed;

export interface Started {
  readonly proc: EmailProcess;
  readonly url: string;
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RolesOptions {
  /**
   * Share another fixture's database and QUEUE_PREFIX: two servers on one database and one
   * broker, each with its own environment. The other fixture owns both: its `cleanup` drops the
   * database (call it last).
   */
  readonly shareWith?: Roles;
  /**
   * A database the test runs itself (a private PostgreSQL cluster): used as is, never created,
   * migrated or dropped here.
   */
  readonly databaseUrl?: string;
}

/**
 * Processes, broker objects and the database of one test (or describe), all under one unique
 * prefix. The database is made (with every migration applied, so a role's first request never
 * races its own start-up migration) before the first process starts, and dropped in `cleanup`.
 */
export class Roles {
  readonly prefix: string;
  private readonly processes = new Set<EmailProcess>();
  private owned: Promise<TestDatabase> | undefined;
  private url: string | undefined;

  constructor(
    private readonly base: Env = {},
    private readonly options: RolesOptions = {},
  ) {
    this.prefix = options.shareWith?.prefix ?? uniquePrefix('roles');
    this.url = options.databaseUrl;
  }

  /** DATABASE_URL of every process of this fixture; the database is created on the first call. */
  async database(): Promise<string> {
    if (this.url !== undefined) return this.url;
    if (this.options.shareWith) {
      this.url = await this.options.shareWith.database();
      return this.url;
    }
    this.owned ??= migratedDatabase(this.prefix);
    this.url = (await this.owned).url;
    return this.url;
  }

  /** The environment of every process (DATABASE_URL once `database()` has been called). */
  env(extra: Env = {}): Env {
    return {
      AMQP_URL,
      QUEUE_PREFIX: this.prefix,
      RETRY_DELAYS,
      WEBHOOK_RETRY_DELAYS,
      MAIL_FROM,
      SHUTDOWN_GRACE_MS: '10000',
      API_KEYS: TEST_API_KEY,
      // These tests post hundreds of emails a minute with one key: the limit has its own tests.
      RATE_LIMIT: '1000000/min',
      ...(this.url !== undefined ? { DATABASE_URL: this.url } : {}),
      ...this.base,
      ...extra,
    };
  }

  /** Spawns a role; tracked at once, so a start-up that times out is still killed. */
  async spawn(args: string[], extra: Env = {}): Promise<EmailProcess> {
    await this.database();
    const proc = runEmail(args, { PORT: '0', WORKER_PORT: '0', ...this.env(extra) });
    this.processes.add(proc);
    everyChild.add(proc);
    void proc.exited.then(() => everyChild.delete(proc));
    return proc;
  }

  /** Starts `server` or `worker` and waits for its "Listening on" line. */
  async start(role: 'server' | 'worker', extra: Env = {}): Promise<Started> {
    const proc = await this.spawn([role], extra);
    try {
      const line = await proc.waitForLog(
        (r) => typeof r.url === 'string' && r.msg.startsWith('Listening'),
        20_000,
      );
      return { proc, url: String(line.url) };
    } catch (error) {
      const { exitCode, signalCode } = proc.child;
      if (exitCode === null && signalCode === null) throw error;
      throw new Error(
        `email ${role} exited (code ${exitCode}, signal ${signalCode}) before it listened; output:\n${proc.output()}`,
        { cause: error },
      );
    }
  }

  /** Starts a role and waits until its /readyz says 200: broker and database both reached. */
  async startReady(role: 'server' | 'worker', extra: Env = {}): Promise<Started> {
    const started = await this.start(role, extra);
    await readyzIs(started.url, 200, 20_000).catch((error: unknown) => {
      throw new Error(`${String(error)}; output:\n${started.proc.output()}`, { cause: error });
    });
    return started;
  }

  /** Runs a one-shot command (`dead-letters …`, `migrate`) to its end. */
  async cli(args: string[], extra: Env = {}): Promise<CliResult> {
    const proc = await this.spawn(args, { LOG_LEVEL: 'warn', ...extra });
    const { code } = await proc.exited;
    await closed(proc);
    return { code, stdout: proc.stdout.join(''), stderr: proc.stderr.join('') };
  }

  /**
   * Kills what is still running (SIGKILL: nothing is left to finish), deletes the topology and
   * drops the database this fixture made (not one it shares or was given).
   */
  async cleanup(deleteBrokerObjects = true): Promise<void> {
    await Promise.all([...this.processes].map((proc) => proc.stop('SIGKILL')));
    this.processes.clear();
    try {
      if (deleteBrokerObjects) {
        await deleteTopology(AMQP_URL, this.prefix, RETRY_DELAYS_MS, WEBHOOK_RETRY_DELAYS_MS);
        await deleteEventQueues(this.prefix);
      }
    } finally {
      // A database that failed to be made failed the test already; nothing to drop then.
      const owned = await this.owned?.catch(() => undefined);
      this.owned = undefined;
      await owned?.drop();
    }
  }
}

/** Ready messages and consumers of one of the prefix's queues, as the broker counts them. */
export async function queueDepth(
  prefix: string,
  queue: 'send' | 'dead',
): Promise<{ messageCount: number; consumerCount: number }> {
  const names = topologyNames(prefix);
  const model = await connect(AMQP_URL);
  model.on('error', () => undefined);
  try {
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    const { messageCount, consumerCount } = await channel.checkQueue(
      queue === 'send' ? names.sendQueue : names.deadQueue,
    );
    await channel.close();
    return { messageCount, consumerCount };
  } finally {
    await model.close();
  }
}

/** What `rabbitmqctl list_connections` shows for a role's connection. */
export const connectionName = (role: string, proc: EmailProcess): string =>
  `email ${role} (pid ${proc.child.pid ?? '?'})`;

export interface Posted {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly location: string | null;
  /** The Idempotent-Replayed header: "true" when an earlier answer was repeated. */
  readonly replayed: string | null;
  readonly body: { id?: string; status?: string; error?: { code: string; message: string } };
}

let sequence = 0;

/** A JSON API request; the subject is unique so that a failure message says which one. */
export async function postEmail(
  url: string,
  body: object = {},
  headers: Record<string, string> = {},
): Promise<Posted> {
  sequence += 1;
  const response = await fetch(`${url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...AUTHORIZED, ...headers },
    body: JSON.stringify({
      to: 'ada@example.com',
      subject: `Hello ${sequence}`,
      text: `Message number ${sequence}`,
      ...body,
    }),
  });
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    location: response.headers.get('location'),
    replayed: response.headers.get('idempotent-replayed'),
    body: (await response.json()) as Posted['body'],
  };
}

/** POST that must be accepted; returns the id. */
export async function queueEmail(url: string, body: object = {}): Promise<string> {
  const posted = await postEmail(url, body);
  if (posted.status !== 202 || typeof posted.body.id !== 'string') {
    throw new Error(`expected 202 with an id, got ${posted.status} ${JSON.stringify(posted.body)}`);
  }
  return posted.body.id;
}

/** GET /emails/:id as JSON (snake_case, as the API answers it). */
export interface StatusView {
  readonly id: string;
  readonly status: string;
  readonly to: string[];
  readonly subject: string;
  readonly created_at?: string;
  readonly recipients: { address: string; status: string }[];
  readonly attempts: {
    attempt: number;
    at: string;
    outcome: string;
    detail: string;
    duration_ms?: number;
  }[];
  readonly events: { at: string; status: string; source: string; detail?: string }[];
  readonly failovers?: { at: string; from: string; to: string; reason: string }[];
  readonly provider_id?: string;
  readonly sent_at?: string;
  readonly duration_ms?: number;
  readonly next_attempt_at?: string;
  readonly failed_at?: string;
  readonly reason?: string;
}

export async function statusOf(url: string, id: string): Promise<StatusView | undefined> {
  const response = await fetch(`${url}/emails/${id}`, {
    headers: { accept: 'application/json', ...AUTHORIZED },
  });
  if (response.status === 200) return (await response.json()) as StatusView;
  await response.arrayBuffer();
  return undefined;
}

/** Polls GET /emails/:id until it shows `status`. */
export const waitForStatus = (url: string, id: string, status: string, timeoutMs = 15_000) =>
  eventually(
    async () => {
      const view = await statusOf(url, id);
      return view?.status === status ? view : undefined;
    },
    { timeoutMs: timeoutMs, what: `GET /emails/${id} to say ${status}` },
  );

export async function httpStatus(url: string): Promise<number> {
  const response = await fetch(url);
  await response.arrayBuffer();
  return response.status;
}

/** Polls `${url}/readyz` until it answers `status`. */
export const readyzIs = (url: string, status: number, timeoutMs = 15_000): Promise<true> =>
  eventually(async () => ((await httpStatus(`${url}/readyz`)) === status ? true : undefined), {
    timeoutMs: timeoutMs,
    what: `${url}/readyz to be ${status}`,
  });

/** Runs `fn` over `items` with at most `limit` calls in flight, keeping the order of results. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** How many times each value occurs. */
export function tally(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

export interface BrokerProxy {
  /** AMQP_URL through the proxy. */
  readonly url: string;
  /** Drops every connection through it and refuses new ones: the broker is "unreachable". */
  cut(): void;
  /** Lets connections through again. */
  restore(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of the broker, for the faults `rabbitmqctl` cannot make: a broker that
 * stays unreachable for a while, from one process's point of view only.
 */
export async function startBrokerProxy(target = new URL(AMQP_URL)): Promise<BrokerProxy> {
  let open = true;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connectTcp(target);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    sockets.add(client).add(upstream);
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = new URL(AMQP_URL);
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const connectTcp = (target: URL): Socket =>
  createConnection(Number(target.port || 5672), target.hostname);

/** A Mailgun stand-in and a `Roles` fixture whose workers send to it (MAIL_TRANSPORT=mailgun). */
export async function startMailgunRoles(
  env: Record<string, string> = {},
): Promise<{ roles: Roles; mailgun: MailgunStandIn }> {
  const mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: MAILGUN_KEY });
  const roles = new Roles({
    MAIL_TRANSPORT: 'mailgun',
    MAILGUN_API_BASE: mailgun.baseUrl,
    MAILGUN_API_KEY: MAILGUN_KEY,
    ...env,
  });
  return { roles, mailgun };
}

export async function stopMailgunRoles(roles?: Roles, mailgun?: MailgunStandIn): Promise<void> {
  await roles?.cleanup();
  await mailgun?.close();
}

/** A `Roles` fixture whose workers write `.eml` files into a fresh temporary outbox. */
export async function startOutboxRoles(): Promise<{ roles: Roles; outbox: string }> {
  const outbox = await mkdtemp(join(tmpdir(), 'email-roles-'));
  return { roles: new Roles({ MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: outbox }), outbox };
}

export async function stopOutboxRoles(roles?: Roles, outbox?: string): Promise<void> {
  await roles?.cleanup();
  if (outbox) await rm(outbox, { recursive: true, force: true });
}

/**
 * The value of the metric `name` that has one line (labels aside, such as the role) on the
 * `/metrics` of the role at `url`; undefined when the process does not show it.
 */
export async function metricValue(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}
