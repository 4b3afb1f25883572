import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import * as t from 'io-ts';
import type { DeadLetter, ReplaySelector } from '../../application/ports/dead-letter-box.js';
import type { EmailTask } from '../../application/ports/email-task-source.js';
import type { Logger } from '../../application/ports/system.js';
import { AttemptRecord } from '../../domain/delivery.js';
import { EmailRequest } from '../../domain/email-request.js';

/**
 * The wire format of a task, shared by the RabbitMQ adapter and the in-memory queue so that both
 * carry the same bytes and fail on the same inputs. Bodies are `{ "v": 1, "request": … }`; the
 * attempt and history travel in headers, so a retry does not rewrite the body.
 */
export const TASK_VERSION = 1;
/** History beyond this is dropped (oldest first): AMQP headers are capped at 64 KiB in all. */
export const MAX_HISTORY = 20;

export const HEADERS = {
  attempt: 'x-attempt',
  history: 'x-history',
  deadReason: 'x-dead-reason',
  attempts: 'x-attempts',
  failedAt: 'x-failed-at',
  /** Present (true) on a copy an operator's "Retry now" queued ahead of the waiting task. */
  expedited: 'x-expedited',
} as const;

export type Headers = Record<string, unknown>;

/** What a queue stores: the bytes plus the few properties the protocol carries beside them. */
export interface WireMessage {
  readonly body: Buffer;
  readonly messageId: string | undefined;
  readonly headers: Headers;
}

/** AMQP properties every task and dead letter is published with. */
export const WIRE_PROPERTIES = { persistent: true, contentType: 'application/json' } as const;

const TaskBody = t.type({ v: t.literal(TASK_VERSION), request: EmailRequest });

export const malformed = (what: string): string => `malformed: ${what}`;

/**
 * The body and headers of `task`. A first attempt with no history carries neither header: their
 * absence decodes as attempt 1 and no history (`decodeAttempt`, `decodeHistory`), and every task
 * the server accepts is one, so its publish encodes a smaller AMQP table.
 */
export function encodeTask(task: EmailTask): WireMessage {
  const headers: Headers = {};
  if (task.attempt !== 1 || task.history.length > 0) {
    headers[HEADERS.attempt] = task.attempt;
    headers[HEADERS.history] = encodeHistory(task.history);
  }
  if (task.expedited === true) headers[HEADERS.expedited] = true;
  return {
    body: Buffer.from(JSON.stringify({ v: TASK_VERSION, request: task.request })),
    messageId: task.request.id,
    headers,
  };
}

/** A request's first attempt, as the server publishes it. */
export const encodeNewTask = (request: EmailRequest): WireMessage =>
  encodeTask({ request, attempt: 1, history: [] });

/**
 * Decodes a task, re-validating every address. Left is a short, header-safe description of what
 * is wrong (paths, never values: a value may hold the CR/LF that made it invalid).
 */
export function decodeTask(
  body: Buffer,
  headers: Headers | undefined,
): E.Either<string, EmailTask> {
  return pipe(
    decodeBody(body),
    E.map((request) => ({
      request,
      attempt: decodeAttempt(headers?.[HEADERS.attempt]),
      history: decodeHistory(headers?.[HEADERS.history]),
      // Only our own mark counts: anything else is an ordinary task, acted on as one.
      ...(headers?.[HEADERS.expedited] === true ? { expedited: true as const } : {}),
    })),
  );
}

function decodeBody(body: Buffer): E.Either<string, EmailRequest> {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return E.left('body is not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return E.left('body is not a JSON object');
  }
  const version = (json as Record<string, unknown>).v;
  if (version !== TASK_VERSION) {
    return E.left(`unsupported schema version ${String(JSON.stringify(version) ?? 'missing')}`);
  }
  return pipe(
    TaskBody.decode(json),
    E.bimap(
      (errors) => `invalid ${describePaths(errors)}`,
      (decoded) => decoded.request,
    ),
  );
}

function describePaths(errors: t.Errors): string {
  const paths = new Set(
    errors.map((e) =>
      e.context
        // An intersection's members are keyed 0, 1…: they are not a step in the path.
        .filter((c, i) => c.key !== '' && !isIntersection(e.context[i - 1]?.type))
        .map((c) => c.key)
        .join('.'),
    ),
  );
  const text = [...paths].filter((p) => p !== '').join(', ');
  return text.length > 200 ? `${text.slice(0, 197)}...` : text || 'request';
}

function isIntersection(type: t.Decoder<unknown, unknown> | undefined): boolean {
  // A brand or refinement validates with its inner type's context: look through it.
  let inner: unknown = type;
  while (inner instanceof t.RefinementType) inner = (inner as t.RefinementType<t.Any>).type;
  return inner instanceof t.IntersectionType;
}

/** 1-based; anything missing or odd counts as a first attempt rather than poisoning the task. */
export function decodeAttempt(raw: unknown): number {
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : 1;
}

export function encodeHistory(history: readonly AttemptRecord[]): string {
  return JSON.stringify(history.slice(-MAX_HISTORY));
}

/** Keeps the records that decode and drops the rest: history is for people, not for decisions. */
export function decodeHistory(raw: unknown): AttemptRecord[] {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
  if (typeof text !== 'string') return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(json)) return [];
  return json.filter((r): r is AttemptRecord => AttemptRecord.is(r)).slice(-MAX_HISTORY);
}

export interface DeadLetterInfo {
  readonly reason: string;
  readonly attempts: number;
  readonly failedAt: Date;
  readonly history: readonly AttemptRecord[];
}

/** What a dead letter says of a task that does not decode, read leniently from its headers. */
export const undecodable = (headers: Headers, why: string): Omit<DeadLetterInfo, 'failedAt'> => ({
  reason: malformed(why),
  attempts: decodeAttempt(headers[HEADERS.attempt]),
  history: decodeHistory(headers[HEADERS.history]),
});

/**
 * A dead letter keeps the task's original body (so a replay decodes exactly what was sent) and
 * adds why and when it gave up.
 */
export function toDeadLetter(message: WireMessage, info: DeadLetterInfo): WireMessage {
  return {
    body: message.body,
    messageId: message.messageId,
    headers: {
      ...message.headers,
      [HEADERS.deadReason]: info.reason.replace(/[\r\n]+/g, ' '),
      [HEADERS.attempts]: info.attempts,
      [HEADERS.failedAt]: info.failedAt.toISOString(),
      [HEADERS.history]: encodeHistory(info.history),
    },
  };
}

/** What `email dead-letters list` shows; tolerant, since the broker dead-letters on its own too. */
export function describeDeadLetter(message: WireMessage): DeadLetter {
  const headers = message.headers;
  const raw = rawRequest(message.body);
  const death = firstDeath(headers['x-death']);
  const attempts = headers[HEADERS.attempts];
  const failedAt = headers[HEADERS.failedAt];
  const reason = headers[HEADERS.deadReason];
  return {
    id: message.messageId ?? (typeof raw.id === 'string' ? raw.id : 'unknown'),
    to: Array.isArray(raw.to) ? raw.to.filter((a): a is string => typeof a === 'string') : [],
    subject: typeof raw.subject === 'string' ? raw.subject : '',
    reason:
      typeof reason === 'string'
        ? reason
        : death
          ? `broker: ${death.reason} in ${death.queue}`
          : 'unknown',
    attempts: typeof attempts === 'number' ? attempts : decodeAttempt(headers[HEADERS.attempt]),
    failedAt: typeof failedAt === 'string' ? failedAt : (death?.time ?? ''),
    history: decodeHistory(headers[HEADERS.history]),
  };
}

/**
 * The replay policy of every dead-letter box: what goes back on the tasks queue for `letter`.
 * A replay starts over (the original request, a fresh attempt budget, no history). Undefined when
 * `selector` does not pick the letter, or when it does not decode: a malformed letter would only
 * come straight back, so it stays until purged.
 */
export function replayOf(letter: WireMessage, selector: ReplaySelector): WireMessage | undefined {
  if ('id' in selector && describeDeadLetter(letter).id !== selector.id) return undefined;
  const decoded = decodeTask(letter.body, {});
  return E.isLeft(decoded) ? undefined : encodeNewTask(decoded.right.request);
}

function rawRequest(body: Buffer): Record<string, unknown> {
  try {
    const json: unknown = JSON.parse(body.toString('utf8'));
    const request = (json as { request?: unknown } | null)?.request;
    return typeof request === 'object' && request !== null
      ? (request as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/** The most recent `x-death` entry RabbitMQ adds when it dead-letters a message itself. */
function firstDeath(raw: unknown): { reason: string; queue: string; time?: string } | undefined {
  const entry: unknown = Array.isArray(raw) ? raw[0] : undefined;
  if (typeof entry !== 'object' || entry === null) return undefined;
  const e = entry as Record<string, unknown>;
  const seconds = (e.time as { value?: unknown } | undefined)?.value;
  return {
    reason: String(e.reason ?? 'unknown'),
    queue: String(e.queue ?? 'unknown'),
    ...(typeof seconds === 'number' ? { time: new Date(seconds * 1000).toISOString() } : {}),
  };
}

/**
 * What a task source says when a stop's grace period (`SHUTDOWN_GRACE_MS`) has run out, for the
 * tasks it hands back: `unrecorded`, sent but not recorded (an error: another worker may send them
 * again), and `cut`, still being handled, their sends cut off (a warning: an email the provider
 * took meanwhile may go out twice). Email ids; nothing is said of an empty list. Every task
 * source (RabbitMQ, the SQL queue, the in-memory one) says it in these words.
 */
export function reportStop(
  logger: Pick<Logger, 'warn' | 'error'> | undefined,
  unrecorded: readonly (string | null)[],
  cut: readonly string[],
  graceMs: number,
): void {
  if (unrecorded.length > 0) {
    logger?.error(
      { emailIds: unrecorded, graceMs },
      'Stopping with emails sent but not recorded; another worker may send them again',
    );
  }
  if (cut.length > 0) {
    logger?.warn(
      { emailIds: cut, graceMs },
      'Stopping with sends still under way after the grace period; their tasks go back to the queue, and an email the provider took meanwhile may be sent again',
    );
  }
}
