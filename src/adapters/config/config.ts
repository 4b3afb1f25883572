import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import type { RetryPolicy } from '../../domain/delivery.js';
import { parseDelays } from '../../domain/delivery.js';
import { EmailAddress, addressParts, parseEmailAddress } from '../../domain/email-address.js';
import { domainToAscii } from '../idna/idna.js';

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

export type Role = 'dev' | 'server' | 'worker' | 'dead-letters' | 'migrate';
export type TransportName = 'outbox' | 'mailgun' | 'smtp';

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly workerPort: number;
  readonly amqpUrl?: Secret;
  /** PostgreSQL for every store; required by server, worker and migrate. */
  readonly databaseUrl?: Secret;
  /** Emails (and what belongs to them) older than this many days are deleted by the worker. */
  readonly retentionDays: number;
  /**
   * The embedded database's folder, for `email dev` and the commands without DATABASE_URL;
   * `memory` keeps nothing.
   */
  readonly dataDir: string;
  readonly queuePrefix: string;
  readonly transports: readonly [TransportName, ...TransportName[]];
  readonly mailFrom: EmailAddress;
  readonly mailgun?: { readonly apiKey: Secret; readonly apiBase: string };
  /**
   * `MAILGUN_WEBHOOK_SIGNING_KEY`: verifies `POST /webhooks/mailgun`; without it that route does
   * not exist (404).
   */
  readonly mailgunWebhookSigningKey?: Secret;
  readonly smtpUrl?: Secret;
  readonly outboxDir: string;
  readonly workerConcurrency: number;
  readonly retry: RetryPolicy;
  /**
   * `CONFIRM_DEADLINE`, in milliseconds: an email Mailgun accepted with no report on any
   * recipient this long after its send is flagged `unconfirmed` by the workers' watchdog.
   */
  readonly confirmDeadlineMs: number;
  /**
   * `WEBHOOK_RETRY_DELAYS`, in milliseconds: the wait before each retry of an outgoing webhook
   * (one retry per step, no repeat), by default 5s,5m,30m,2h,5h,10h,10h.
   */
  readonly webhookRetryDelaysMs: readonly number[];
  readonly sendTimeoutMs: number;
  readonly logLevel: string;
  readonly shutdownGraceMs: number;
  /**
   * `WRITE_BEHIND_MS`, in milliseconds, for `email server`: 0 (the default) writes an accepted
   * email's row before its `202`; from 1 to 1000, the `202` follows the broker's confirm alone
   * and the row is written within this long after it, with the others of that span in one
   * INSERT (docs/architecture.md, "Write-behind").
   */
  readonly writeBehindMs: number;
  /** Signs CSRF tokens; shared by every server instance behind one address. Random if unset. */
  readonly csrfSecret?: Secret;
  /** Signs session cookies; shared by every server behind one address. Random if unset. */
  readonly sessionSecret?: Secret;
  /** `API_KEYS`: keys accepted with every scope besides those in the database. */
  readonly apiKeys: readonly Secret[];
  /** `RATE_LIMIT`: requests per API key (or client address) per window. */
  readonly rateLimit: Rate;
  /**
   * `MAILGUN_RATE`, `SMTP_RATE`: sends per window to that transport, held across every worker
   * (docs/architecture.md, "Pacing"). A transport without one is not paced.
   */
  readonly sendRates?: Readonly<Partial<Record<TransportName, Rate>>>;
  /** `TRUST_PROXY`: believe X-Forwarded-For / -Proto. */
  readonly trustProxy: boolean;
  /** `MAX_MESSAGE_BYTES`: the largest encoded message the API accepts, attachments included. */
  readonly maxMessageBytes: number;
  /**
   * `ALLOWED_FROM_DOMAINS`: the domains a request's `from` may use, lowercase ASCII (A-labels);
   * by default MAIL_FROM's domain.
   */
  readonly allowedFromDomains: readonly string[];
}

/** A rate such as `600/min`: at most `limit` per `windowMs`. */
export interface Rate {
  readonly limit: number;
  readonly windowMs: number;
}

const RATE_UNITS: Readonly<Record<string, number>> = {
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
};

/** `N/s`, `N/min` or `N/h` (N from 1 to 1,000,000), or undefined. */
export function parseRate(raw: string): Rate | undefined {
  const m = /^\s*(\d{1,7})\s*\/\s*([a-z]+)\s*$/.exec(raw);
  const unit = m?.[2];
  // Own names only: `constructor` is a name every object answers to.
  const windowMs =
    unit !== undefined && Object.hasOwn(RATE_UNITS, unit) ? RATE_UNITS[unit] : undefined;
  const limit = Number(m?.[1]);
  return windowMs !== undefined && limit >= 1 && limit <= 1_000_000
    ? { limit, windowMs }
    : undefined;
}

/**
 * The fastest MAILGUN_RATE or SMTP_RATE accepted, in sends a second: pacing spaces sends a slot
 * apart, timed by a worker's event loop and timers, which time nothing finer than a millisecond
 * or so (`MIN_GRACE_MS`); at a rate faster than this the slots would be shorter than that.
 */
export const MAX_SEND_RATE_PER_S = 1000;

/** MAILGUN_RATE, SMTP_RATE: a rate (`parseRate`) no faster than MAX_SEND_RATE_PER_S. */
function parseSendRate(raw: string): E.Either<string | undefined, Rate> {
  const rate = parseRate(raw);
  if (rate === undefined) return E.left(undefined);
  if (rate.limit * 1000 > MAX_SEND_RATE_PER_S * rate.windowMs) {
    return E.left(
      `must be at most ${MAX_SEND_RATE_PER_S}/s (or ${MAX_SEND_RATE_PER_S * 60}/min): sends cannot be paced any faster (got "${raw.length > 60 ? `${raw.slice(0, 57)}...` : raw}")`,
    );
  }
  return E.right(rate);
}

/** An `API_KEYS` entry: long enough to be a secret, and free of the list's separators. */
const ENVIRONMENT_KEY = /^[\x21-\x2b\x2d-\x7e]{24,512}$/;

/** One problem with one variable; `value` is omitted for secrets. */
export interface ConfigProblem {
  readonly variable: string;
  readonly message: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * A codec from one environment variable's text. Its name says what is expected, in words a person
 * can act on; a failure may carry a more precise message. Secrets never echo what they were given.
 */
function envVar<A>(
  expected: string,
  parse: (raw: string) => E.Either<string | undefined, A>,
  is: (u: unknown) => u is A,
  secret = false,
): t.Type<A, string, unknown> {
  return new t.Type<A, string, unknown>(
    expected,
    is,
    (u, c) => {
      if (typeof u !== 'string') return t.failure(u, c);
      const parsed = parse(u);
      if (E.isRight(parsed)) return t.success(parsed.right);
      const shown = secret ? '' : ` (got "${u.length > 60 ? `${u.slice(0, 57)}...` : u}")`;
      return t.failure(u, c, parsed.left ?? `must be ${expected}${shown}`);
    },
    String,
  );
}

const aString = (u: unknown): u is string => typeof u === 'string';
const aNumber = (u: unknown): u is number => typeof u === 'number';
const aSecret = (u: unknown): u is Secret => u instanceof Secret;
const aSecretList = (u: unknown): u is Secret[] => Array.isArray(u) && u.every(aSecret);
const aRate = (u: unknown): u is Rate =>
  typeof u === 'object' && u !== null && 'limit' in u && 'windowMs' in u;
const aBoolean = (u: unknown): u is boolean => typeof u === 'boolean';
/**
 * The longest step a retry queue can hold: RabbitMQ takes an `x-message-ttl` below 2^32 ms
 * (about 49 days) and refuses the queue otherwise, which would leave a worker unable to start
 * consuming; 1000 hours is a round number below it.
 */
export const MAX_QUEUE_DELAY_MS = 1000 * 3_600_000;

/** A delay list every step of which a retry queue can hold. */
const queueDelays = (raw: string): E.Either<undefined, [number, ...number[]]> => {
  const delays = parseDelays(raw);
  return delays !== undefined && delays.every((d) => d <= MAX_QUEUE_DELAY_MS)
    ? E.right(delays)
    : E.left(undefined);
};

const aDelayList = (u: unknown): u is [number, ...number[]] =>
  Array.isArray(u) && u.length > 0 && u.every(aNumber);
const aTransportList = (u: unknown): u is [TransportName, ...TransportName[]] =>
  Array.isArray(u) && u.length > 0 && u.every((n) => TRANSPORTS.some((x) => x === n));

const when =
  <A>(test: (raw: string) => boolean, build: (raw: string) => A) =>
  (raw: string): E.Either<undefined, A> =>
    test(raw) ? E.right(build(raw)) : E.left(undefined);

const intIn = (expected: string, min: number, max: number) =>
  envVar(
    expected,
    when((raw) => /^\d+$/.test(raw.trim()) && Number(raw) >= min && Number(raw) <= max, Number),
    aNumber,
  );

const urlOf = (schemes: string) => (raw: string) =>
  new RegExp(`^(${schemes})://\\S+$`).test(raw) && URL.canParse(raw);

/**
 * MAILGUN_API_BASE without its trailing slashes. A user name or password in it is refused: the
 * key goes in MAILGUN_API_KEY (sent as Basic auth), and this URL is logged. A refused value is
 * never echoed, since it may hold one.
 */
function mailgunApiBase(raw: string): E.Either<string | undefined, string> {
  if (!urlOf('https?')(raw)) {
    return E.left(
      'must be https://api.mailgun.net/v3/<your domain> (EU: api.eu.mailgun.net); the value given is not shown, in case it holds a secret',
    );
  }
  const url = new URL(raw);
  if (url.username !== '' || url.password !== '') {
    return E.left(
      'must not hold a user name or password: give the API key in MAILGUN_API_KEY, and the URL as https://api.mailgun.net/v3/<your domain>',
    );
  }
  return E.right(raw.replace(/\/+$/, ''));
}

/**
 * The longest `WRITE_BEHIND_MS`: a second. Longer, the list and the other servers would lag
 * behind the `202`s by more than a person notices, for no fewer statements at any rate this
 * service reaches (a batch is capped at 200 rows).
 */
export const MAX_WRITE_BEHIND_MS = 1000;
/** The shortest `CONFIRM_DEADLINE`, in milliseconds: the watchdog sweeps a second apart at best. */
export const MIN_CONFIRM_DEADLINE_MS = 1000;
/** The longest `CONFIRM_DEADLINE`, in milliseconds: a week. */
export const MAX_CONFIRM_DEADLINE_MS = 7 * 24 * 3_600_000;

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const TRANSPORTS: readonly TransportName[] = ['outbox', 'mailgun', 'smtp'];

function parseTransports(
  raw: string,
): E.Either<undefined, readonly [TransportName, ...TransportName[]]> {
  const names = raw.split(',').map((s) => s.trim());
  const valid = names.filter((n): n is TransportName => TRANSPORTS.some((x) => x === n));
  const [first, ...rest] = valid;
  return first !== undefined &&
    valid.length === names.length &&
    new Set(valid).size === valid.length
    ? E.right([first, ...rest])
    : E.left(undefined);
}

/** A key that signs tokens or cookies, shared by every server behind one address. */
const SigningSecret = envVar(
  'a random string of at least 32 characters',
  when(
    (raw) => raw.length >= 32,
    (raw) => new Secret(raw),
  ),
  aSecret,
  true,
);

const Port = intIn('a port number from 0 to 65535 (0: any free port)', 0, 65535);

/** The variables that always have a value (a default when unset). */
// Exact: each half keeps only its own variables, so merging them cannot bring raw text back.
const Always = t.exact(
  t.type({
    PORT: Port,
    HOST: envVar(
      'a host name or IP address to listen on',
      when((raw) => /^[A-Za-z0-9.:-]+$/.test(raw), String),
      aString,
    ),
    WORKER_PORT: Port,
    QUEUE_PREFIX: envVar(
      'letters, digits, dots, dashes or underscores (1 to 100)',
      when((raw) => /^[A-Za-z0-9._-]{1,100}$/.test(raw), String),
      aString,
    ),
    MAIL_TRANSPORT: envVar(
      'outbox, mailgun, smtp, or a comma-separated list such as mailgun,smtp',
      parseTransports,
      aTransportList,
    ),
    MAIL_FROM: envVar(
      'an address such as "Example <noreply@example.com>"',
      (raw) =>
        E.mapLeft((e: { message: string }) => `"${raw}" ${e.message}`)(parseEmailAddress(raw)),
      EmailAddress.is,
    ),
    OUTBOX_DIR: envVar(
      'a directory path',
      when((raw) => raw.trim() !== '', String),
      aString,
    ),
    WORKER_CONCURRENCY: intIn('a whole number from 1 to 2000', 1, 2000),
    MAX_ATTEMPTS: intIn('a whole number from 1 to 100', 1, 100),
    SEND_TIMEOUT_MS: intIn('milliseconds, from 100 to 600000', 100, 600_000),
    RETRY_DELAYS: envVar(
      'a list of delays such as 1s,5s,30s,2m,10m,30m,1h, each at most 1000h',
      queueDelays,
      aDelayList,
    ),
    WEBHOOK_RETRY_DELAYS: envVar(
      'a list of delays such as 5s,5m,30m,2h,5h,10h,10h, each at most 1000h',
      queueDelays,
      aDelayList,
    ),
    CONFIRM_DEADLINE: envVar(
      'one duration such as 30s, 15m or 1h, from 1s to 168h (7 days)',
      (raw) => {
        // The same notation as one step of RETRY_DELAYS. Under a second the watchdog's sweeps
        // (at least a second apart) could not keep it; Mailgun stops retrying an event after
        // 8 hours, so a deadline of more than a week is a typo, not a policy.
        const [deadline, ...more] = parseDelays(raw) ?? [];
        return deadline !== undefined &&
          more.length === 0 &&
          deadline >= MIN_CONFIRM_DEADLINE_MS &&
          deadline <= MAX_CONFIRM_DEADLINE_MS
          ? E.right(deadline)
          : E.left(undefined);
      },
      aNumber,
    ),
    LOG_LEVEL: envVar(
      LEVELS.join(', '),
      when((raw) => LEVELS.includes(raw), String),
      aString,
    ),
    SHUTDOWN_GRACE_MS: intIn('milliseconds, from 0 to 600000', 0, 600_000),
    WRITE_BEHIND_MS: intIn(
      'milliseconds, from 0 (write each row before its 202) to 1000',
      0,
      MAX_WRITE_BEHIND_MS,
    ),
    RETENTION_DAYS: intIn('a whole number of days from 1 to 3650', 1, 3650),
    DATA_DIR: envVar(
      'a folder for the embedded database, or memory',
      when((raw) => raw.trim() !== '', String),
      aString,
    ),
    RATE_LIMIT: envVar(
      'a rate such as 600/min, 10/s or 5000/h',
      (raw) => E.fromNullable(undefined)(parseRate(raw)),
      aRate,
    ),
    MAX_MESSAGE_BYTES: intIn(
      'a number of bytes from 65536 (64 KiB) to 104857600 (100 MiB)',
      65_536,
      104_857_600,
    ),
    TRUST_PROXY: envVar(
      'true or false',
      when(
        (raw) => /^(true|false|1|0)$/i.test(raw.trim()),
        (raw) => /^(true|1)$/i.test(raw.trim()),
      ),
      aBoolean,
    ),
  }),
);

/** The variables a role may need: checked when present, required by `required` below. */
const Optional = t.exact(
  t.partial({
    AMQP_URL: envVar(
      'an amqp:// or amqps:// URL such as amqp://guest:guest@127.0.0.1:5672',
      when(urlOf('amqps?'), (raw) => new Secret(raw)),
      aSecret,
      true,
    ),
    DATABASE_URL: envVar(
      'a postgres:// or postgresql:// URL such as postgres://postgres@127.0.0.1:5432/email',
      when(urlOf('postgres(?:ql)?'), (raw) => new Secret(raw)),
      aSecret,
      true,
    ),
    MAILGUN_API_KEY: envVar(
      'your Mailgun API key',
      when(
        (raw) => raw.trim() !== '',
        (raw) => new Secret(raw.trim()),
      ),
      aSecret,
      true,
    ),
    MAILGUN_WEBHOOK_SIGNING_KEY: envVar(
      'the webhook signing key of your Mailgun domain (not the API key)',
      when(
        (raw) => /^[\x21-\x7e]{8,512}$/.test(raw.trim()),
        (raw) => new Secret(raw.trim()),
      ),
      aSecret,
      true,
    ),
    MAILGUN_API_BASE: envVar(
      'https://api.mailgun.net/v3/<your domain> (EU: api.eu.mailgun.net)',
      mailgunApiBase,
      aString,
    ),
    SMTP_URL: envVar(
      'smtp://user:pass@host:587 or smtps://user:pass@host:465',
      when(urlOf('smtps?'), (raw) => new Secret(raw)),
      aSecret,
      true,
    ),
    CSRF_SECRET: SigningSecret,
    SESSION_SECRET: SigningSecret,
    ALLOWED_FROM_DOMAINS: envVar(
      'a comma-separated list of domains such as example.com,mg.example.com',
      (raw) => {
        const domains = raw
          .split(',')
          .map((d) => d.trim())
          .filter((d) => d !== '');
        const ascii = domains.map((d) => domainToAscii(d)?.toLowerCase());
        return domains.length > 0 && ascii.every((d) => d !== undefined)
          ? E.right(ascii as string[])
          : E.left(undefined);
      },
      (u: unknown): u is string[] => Array.isArray(u) && u.every(aString),
    ),
    MAILGUN_RATE: envVar('a rate such as 20/s, 600/min or 10000/h', parseSendRate, aRate),
    SMTP_RATE: envVar('a rate such as 20/s, 600/min or 10000/h', parseSendRate, aRate),
    API_KEYS: envVar(
      'a comma-separated list of keys, each 24 to 512 visible characters without commas',
      when(
        (raw) => raw.split(',').every((k) => ENVIRONMENT_KEY.test(k.trim())),
        (raw) => raw.split(',').map((k) => new Secret(k.trim())),
      ),
      aSecretList,
      true,
    ),
  }),
);

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
  CONFIRM_DEADLINE: '1h',
  WEBHOOK_RETRY_DELAYS: '5s,5m,30m,2h,5h,10h,10h',
  LOG_LEVEL: 'info',
  SHUTDOWN_GRACE_MS: '25000',
  WRITE_BEHIND_MS: '0',
  RETENTION_DAYS: '30',
  DATA_DIR: './data',
  RATE_LIMIT: '600/min',
  MAX_MESSAGE_BYTES: '10485760',
  TRUST_PROXY: 'false',
};

/** io-ts errors as one line per variable: the key in the context, the codec's message or name. */
function problemsOf(errors: t.Errors): ConfigProblem[] {
  const byVariable = new Map<string, string>();
  for (const error of errors) {
    const entry = [...error.context].reverse().find((c) => /^[A-Z][A-Z0-9_]*$/.test(c.key));
    if (!entry || byVariable.has(entry.key)) continue;
    byVariable.set(
      entry.key,
      error.message ??
        (error.value === undefined
          ? `is required: set it to ${entry.type.name}`
          : `must be ${entry.type.name}`),
    );
  }
  return [...byVariable].map(([variable, message]) => ({ variable, message }));
}

/**
 * What a role needs beyond the variables that always have a value. Presence is enough here: a
 * variable that is present but malformed already has a problem of its own.
 */
function required(
  transports: readonly TransportName[],
  present: (variable: string) => boolean,
  role: Role,
): ConfigProblem[] {
  const sends = role === 'dev' || role === 'worker';
  const needs: [boolean, keyof typeof Optional.type.props][] = [
    [role === 'server' || role === 'worker', 'AMQP_URL'],
    [role === 'server' || role === 'worker', 'DATABASE_URL'],
    [sends && transports.includes('mailgun'), 'MAILGUN_API_KEY'],
    [sends && transports.includes('mailgun'), 'MAILGUN_API_BASE'],
    [sends && transports.includes('smtp'), 'SMTP_URL'],
  ];
  return needs
    .filter(([needed, variable]) => needed && !present(variable))
    .map(([, variable]) => ({
      variable,
      message: `is required: set it to ${Optional.type.props[variable].name}`,
    }));
}

/**
 * Reads the environment once, at start, with io-ts: every problem is collected before reporting,
 * so a person fixes their configuration in one go; secrets are never echoed back. An empty
 * variable counts as unset.
 */
export function loadConfig(env: Env, role: Role): E.Either<readonly ConfigProblem[], Config> {
  const input: Record<string, string> = {};
  for (const key of new Set([...Object.keys(DEFAULTS), ...Object.keys(env)])) {
    const value = env[key] === undefined || env[key] === '' ? DEFAULTS[key] : env[key];
    if (value !== undefined) input[key] = value;
  }
  const always = Always.decode(input);
  const optional = Optional.decode(input);
  const transports = parseTransports(input.MAIL_TRANSPORT ?? '');
  const problems = [
    ...(E.isLeft(always) ? problemsOf(always.left) : []),
    ...(E.isLeft(optional) ? problemsOf(optional.left) : []),
    ...required(E.isRight(transports) ? transports.right : [], (k) => input[k] !== undefined, role),
  ];
  if (E.isLeft(always) || E.isLeft(optional) || problems.length > 0) return E.left(problems);
  const v = { ...always.right, ...optional.right };
  return E.right({
    host: v.HOST,
    port: v.PORT,
    workerPort: v.WORKER_PORT,
    queuePrefix: v.QUEUE_PREFIX,
    transports: v.MAIL_TRANSPORT,
    mailFrom: v.MAIL_FROM,
    outboxDir: v.OUTBOX_DIR,
    workerConcurrency: v.WORKER_CONCURRENCY,
    sendTimeoutMs: v.SEND_TIMEOUT_MS,
    logLevel: v.LOG_LEVEL,
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS,
    writeBehindMs: v.WRITE_BEHIND_MS,
    retentionDays: v.RETENTION_DAYS,
    dataDir: v.DATA_DIR,
    retry: { maxAttempts: v.MAX_ATTEMPTS, delaysMs: v.RETRY_DELAYS },
    confirmDeadlineMs: v.CONFIRM_DEADLINE,
    webhookRetryDelaysMs: v.WEBHOOK_RETRY_DELAYS,
    ...(v.AMQP_URL ? { amqpUrl: v.AMQP_URL } : {}),
    ...(v.DATABASE_URL ? { databaseUrl: v.DATABASE_URL } : {}),
    ...(v.MAILGUN_API_KEY && v.MAILGUN_API_BASE
      ? { mailgun: { apiKey: v.MAILGUN_API_KEY, apiBase: v.MAILGUN_API_BASE } }
      : {}),
    ...(v.MAILGUN_WEBHOOK_SIGNING_KEY
      ? { mailgunWebhookSigningKey: v.MAILGUN_WEBHOOK_SIGNING_KEY }
      : {}),
    ...(v.SMTP_URL ? { smtpUrl: v.SMTP_URL } : {}),
    ...(v.CSRF_SECRET ? { csrfSecret: v.CSRF_SECRET } : {}),
    ...(v.SESSION_SECRET ? { sessionSecret: v.SESSION_SECRET } : {}),
    apiKeys: v.API_KEYS ?? [],
    rateLimit: v.RATE_LIMIT,
    ...(v.MAILGUN_RATE || v.SMTP_RATE
      ? {
          sendRates: {
            ...(v.MAILGUN_RATE ? { mailgun: v.MAILGUN_RATE } : {}),
            ...(v.SMTP_RATE ? { smtp: v.SMTP_RATE } : {}),
          },
        }
      : {}),
    trustProxy: v.TRUST_PROXY,
    maxMessageBytes: v.MAX_MESSAGE_BYTES,
    allowedFromDomains: v.ALLOWED_FROM_DOMAINS ?? [
      domainToAscii(addressParts(v.MAIL_FROM).domain)?.toLowerCase() ??
        addressParts(v.MAIL_FROM).domain.toLowerCase(),
    ],
  });
}

/** The message printed before exiting with status 2. */
export function describeProblems(problems: readonly ConfigProblem[]): string {
  const lines = problems.map((p) => `  ${p.variable} ${p.message}`);
  return `The configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${lines.join('\n')}\nSee README.md, "Configuration".`;
}
