import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import type { RetryPolicy } from '../../domain/delivery.js';
import { parseDelays } from '../../domain/delivery.js';
import type { EmailAddress } from '../../domain/email-address.js';
import { parseEmailAddress } from '../../domain/email-address.js';

/** A value that prints as `[redacted]` in logs, errors, JSON and util.inspect. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[redacted]';
  }
}

export type Role = 'dev' | 'server' | 'worker' | 'dead-letters';
export type TransportName = 'outbox' | 'mailgun' | 'smtp';

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly workerPort: number;
  readonly amqpUrl?: Secret;
  readonly queuePrefix: string;
  readonly transports: readonly [TransportName, ...TransportName[]];
  readonly mailFrom: EmailAddress;
  readonly mailgun?: { readonly apiKey: Secret; readonly apiBase: string };
  readonly smtpUrl?: Secret;
  readonly outboxDir: string;
  readonly workerConcurrency: number;
  readonly retry: RetryPolicy;
  readonly sendTimeoutMs: number;
  readonly logLevel: string;
  readonly shutdownGraceMs: number;
  /** Signs CSRF tokens; shared by every server instance behind one address. Random if unset. */
  readonly csrfSecret?: Secret;
}

/** One problem with one variable; `value` is omitted for secrets. */
export interface ConfigProblem {
  readonly variable: string;
  readonly message: string;
}

const intIn = (name: string, min: number, max: number) =>
  new t.Type<number, string, unknown>(
    name,
    (u): u is number => typeof u === 'number',
    (u, c) => {
      const n = typeof u === 'string' && /^\d+$/.test(u.trim()) ? Number(u) : NaN;
      return Number.isInteger(n) && n >= min && n <= max ? t.success(n) : t.failure(u, c);
    },
    String,
  );

type Env = Readonly<Record<string, string | undefined>>;

interface Field<A> {
  readonly variable: string;
  readonly expected: string;
  readonly secret?: boolean;
  readonly decode: (raw: string) => E.Either<string | undefined, A>;
}

const fromCodec =
  <A>(codec: t.Decoder<unknown, A>) =>
  (raw: string) =>
    E.mapLeft(() => undefined)(codec.decode(raw));

const field = <A>(
  variable: string,
  expected: string,
  decode: Field<A>['decode'],
  secret = false,
): Field<A> => ({
  variable,
  expected,
  decode,
  secret,
});

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const TRANSPORTS: readonly TransportName[] = ['outbox', 'mailgun', 'smtp'];

const fields = {
  // 0 asks the OS for a free port; the chosen one is logged (tests use this).
  port: field('PORT', 'a port number from 0 to 65535', fromCodec(intIn('port', 0, 65535))),
  workerPort: field(
    'WORKER_PORT',
    'a port number from 0 to 65535',
    fromCodec(intIn('port', 0, 65535)),
  ),
  host: field('HOST', 'a host name or IP address to listen on', (raw) =>
    /^[A-Za-z0-9.:-]+$/.test(raw) ? E.right(raw) : E.left(undefined),
  ),
  amqpUrl: field(
    'AMQP_URL',
    'an amqp:// or amqps:// URL such as amqp://guest:guest@127.0.0.1:5672',
    (raw) =>
      /^amqps?:\/\/[^\s]+$/.test(raw) && URL.canParse(raw)
        ? E.right(new Secret(raw))
        : E.left(undefined),
    true,
  ),
  queuePrefix: field(
    'QUEUE_PREFIX',
    'letters, digits, dots, dashes or underscores (1 to 100)',
    (raw) => (/^[A-Za-z0-9._-]{1,100}$/.test(raw) ? E.right(raw) : E.left(undefined)),
  ),
  transports: field(
    'MAIL_TRANSPORT',
    'outbox, mailgun, smtp, or a comma-separated list such as mailgun,smtp',
    (raw) => {
      const names = raw.split(',').map((s) => s.trim());
      const valid = names.filter((n): n is TransportName => TRANSPORTS.some((x) => x === n));
      const [first, ...rest] = valid;
      return first !== undefined &&
        valid.length === names.length &&
        new Set(valid).size === valid.length
        ? E.right<string | undefined, readonly [TransportName, ...TransportName[]]>([
            first,
            ...rest,
          ])
        : E.left(undefined);
    },
  ),
  mailFrom: field('MAIL_FROM', 'an address such as "Example <noreply@example.com>"', (raw) =>
    E.mapLeft((e: { message: string }) => `"${raw}" ${e.message}`)(parseEmailAddress(raw)),
  ),
  mailgunKey: field(
    'MAILGUN_API_KEY',
    'your Mailgun API key',
    (raw) => (raw.trim() !== '' ? E.right(new Secret(raw.trim())) : E.left(undefined)),
    true,
  ),
  mailgunBase: field(
    'MAILGUN_API_BASE',
    'https://api.mailgun.net/v3/<your domain> (EU: api.eu.mailgun.net)',
    (raw) =>
      /^https?:\/\/[^\s]+$/.test(raw) && URL.canParse(raw)
        ? E.right(raw.replace(/\/+$/, ''))
        : E.left(undefined),
  ),
  smtpUrl: field(
    'SMTP_URL',
    'smtp://user:pass@host:587 or smtps://user:pass@host:465',
    (raw) =>
      /^smtps?:\/\/[^\s]+$/.test(raw) && URL.canParse(raw)
        ? E.right(new Secret(raw))
        : E.left(undefined),
    true,
  ),
  outboxDir: field('OUTBOX_DIR', 'a directory path', (raw) =>
    raw.trim() !== '' ? E.right(raw) : E.left(undefined),
  ),
  concurrency: field(
    'WORKER_CONCURRENCY',
    'a whole number from 1 to 2000',
    fromCodec(intIn('n', 1, 2000)),
  ),
  maxAttempts: field('MAX_ATTEMPTS', 'a whole number from 1 to 100', fromCodec(intIn('n', 1, 100))),
  sendTimeout: field(
    'SEND_TIMEOUT_MS',
    'milliseconds, from 100 to 600000',
    fromCodec(intIn('ms', 100, 600_000)),
  ),
  delays: field('RETRY_DELAYS', 'a list of delays such as 1s,5s,30s,2m,10m,30m,1h', (raw) =>
    E.fromNullable(undefined)(parseDelays(raw)),
  ),
  logLevel: field('LOG_LEVEL', LEVELS.join(', '), (raw) =>
    LEVELS.includes(raw) ? E.right(raw) : E.left(undefined),
  ),
  csrfSecret: field(
    'CSRF_SECRET',
    'a random string of at least 32 characters',
    (raw) => (raw.length >= 32 ? E.right(new Secret(raw)) : E.left(undefined)),
    true,
  ),
  grace: field(
    'SHUTDOWN_GRACE_MS',
    'milliseconds, from 0 to 600000',
    fromCodec(intIn('ms', 0, 600_000)),
  ),
};

const DEFAULTS: Env = {
  PORT: '8080',
  HOST: '127.0.0.1',
  WORKER_PORT: '8081',
  QUEUE_PREFIX: 'email',
  MAIL_TRANSPORT: 'outbox',
  MAIL_FROM: 'Email Example <noreply@localhost>',
  OUTBOX_DIR: './outbox',
  WORKER_CONCURRENCY: '32',
  MAX_ATTEMPTS: '8',
  SEND_TIMEOUT_MS: '15000',
  RETRY_DELAYS: '1s,5s,30s,2m,10m,30m,1h',
  LOG_LEVEL: 'info',
  SHUTDOWN_GRACE_MS: '25000',
};

/**
 * Reads the environment once, at start. Every problem is collected before reporting, so a person
 * fixes their configuration in one go; secrets are never echoed back.
 */
export function loadConfig(env: Env, role: Role): E.Either<readonly ConfigProblem[], Config> {
  const problems: ConfigProblem[] = [];
  const read = <A>(f: Field<A>, required: boolean): A | undefined => {
    const raw = env[f.variable] === '' ? undefined : (env[f.variable] ?? DEFAULTS[f.variable]);
    if (raw === undefined) {
      if (required)
        problems.push({ variable: f.variable, message: `is required: set it to ${f.expected}` });
      return undefined;
    }
    const decoded = f.decode(raw);
    if (E.isRight(decoded)) return decoded.right;
    const shown = f.secret ? '' : ` (got "${raw.length > 60 ? `${raw.slice(0, 57)}...` : raw}")`;
    problems.push({
      variable: f.variable,
      message: decoded.left ?? `must be ${f.expected}${shown}`,
    });
    return undefined;
  };

  const needsBroker = role !== 'dev';
  const sends = role === 'dev' || role === 'worker';
  const transports = read(fields.transports, true);
  const uses = (name: TransportName) => sends && (transports?.includes(name) ?? false);
  const mailgunKey = read(fields.mailgunKey, uses('mailgun'));
  const mailgunBase = read(fields.mailgunBase, uses('mailgun'));
  const config = {
    host: read(fields.host, true),
    port: read(fields.port, true),
    workerPort: read(fields.workerPort, true),
    amqpUrl: read(fields.amqpUrl, needsBroker),
    queuePrefix: read(fields.queuePrefix, true),
    transports,
    mailFrom: read(fields.mailFrom, true),
    mailgun: mailgunKey && mailgunBase ? { apiKey: mailgunKey, apiBase: mailgunBase } : undefined,
    smtpUrl: read(fields.smtpUrl, uses('smtp')),
    outboxDir: read(fields.outboxDir, true),
    workerConcurrency: read(fields.concurrency, true),
    maxAttempts: read(fields.maxAttempts, true),
    delaysMs: read(fields.delays, true),
    sendTimeoutMs: read(fields.sendTimeout, true),
    logLevel: read(fields.logLevel, true),
    shutdownGraceMs: read(fields.grace, true),
    csrfSecret: read(fields.csrfSecret, false),
  };
  const { host, port, workerPort, queuePrefix, mailFrom, outboxDir, workerConcurrency } = config;
  const { maxAttempts, delaysMs, sendTimeoutMs, logLevel, shutdownGraceMs } = config;
  if (
    problems.length > 0 ||
    host === undefined ||
    port === undefined ||
    workerPort === undefined ||
    queuePrefix === undefined ||
    transports === undefined ||
    mailFrom === undefined ||
    outboxDir === undefined ||
    workerConcurrency === undefined ||
    maxAttempts === undefined ||
    delaysMs === undefined ||
    sendTimeoutMs === undefined ||
    logLevel === undefined ||
    shutdownGraceMs === undefined
  ) {
    return E.left(problems);
  }
  return E.right({
    host,
    port,
    workerPort,
    queuePrefix,
    transports,
    mailFrom,
    outboxDir,
    workerConcurrency,
    sendTimeoutMs,
    logLevel,
    shutdownGraceMs,
    retry: { maxAttempts, delaysMs },
    ...(config.amqpUrl ? { amqpUrl: config.amqpUrl } : {}),
    ...(config.mailgun ? { mailgun: config.mailgun } : {}),
    ...(config.smtpUrl ? { smtpUrl: config.smtpUrl } : {}),
    ...(config.csrfSecret ? { csrfSecret: config.csrfSecret } : {}),
  });
}

/** The message printed before exiting with status 2. */
export function describeProblems(problems: readonly ConfigProblem[]): string {
  const lines = problems.map((p) => `  ${p.variable} ${p.message}`);
  return `The configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${lines.join('\n')}\nSee README.md, "Configuration".`;
}
