import * as t from 'io-ts';

/**
 * What a sender reports. Senders answer with one of these and never throw: the decision of what
 * to do next belongs to the core, not to the adapter that happened to see the error.
 *
 * `reason` and a Sent's `providerId` are public: they are stored with the attempt and shown on
 * the email's page and in its JSON to anyone who has its link. They say what happened in words a
 * person can act on and never name a configuration variable, a file path, a host, an address or
 * port, a URL, a stack frame or a credential (`publicText` takes out what a provider's answer may
 * quote). What only an operator can act on (the variable to check, the folder, the host that
 * refused) goes in `hint`: the worker logs it, and nothing stores or shows it.
 */
export type DeliveryOutcome =
  | { readonly _tag: 'Sent'; readonly providerId: string; readonly hint?: string }
  | {
      readonly _tag: 'Transient';
      readonly reason: string;
      readonly retryAfterMs?: number;
      /**
       * The provider's answer may be a refusal or a "not yet", and only time tells: Mailgun's
       * JSON 404 (its API is eventually consistent). `decide` retries it a few times, then takes
       * it at its word.
       */
      readonly uncertain?: true;
      /**
       * The provider refused for its rate, not for the email (Mailgun's 429, an SMTP 421/451/452
       * that speaks of a rate): `decide` pauses the transport until `retryAfterMs` and the
       * attempt does not count (docs/architecture.md, "Pacing"). Anything that does not know
       * the flag (a failover moving to the next transport) reads it as the transient it is.
       */
      readonly throttled?: true;
      /**
       * Nothing went out: the sender was told to start no more sends (the worker is stopping,
       * see `EmailSender.stopStarting`) while this one waited for its turn. `decide` hands the
       * task back to the queue and the attempt does not count; anything that does not know the
       * flag reads it as the transient it is.
       */
      readonly notStarted?: true;
      /** For the worker's log only, never stored or shown: see `DeliveryOutcome`. */
      readonly hint?: string;
    }
  | {
      readonly _tag: 'Permanent';
      readonly reason: string;
      /** For the worker's log only, never stored or shown: see `DeliveryOutcome`. */
      readonly hint?: string;
    };

/** The outcome with the operator's hint, or as it was when there is none to add. */
export const withHint = <O extends DeliveryOutcome>(outcome: O, hint: string | undefined): O =>
  hint === undefined || hint === '' ? outcome : { ...outcome, hint };

export const sent = (providerId: string, hint?: string): DeliveryOutcome =>
  withHint({ _tag: 'Sent', providerId }, hint);
export const transient = (reason: string, retryAfterMs?: number, hint?: string): DeliveryOutcome =>
  withHint(
    retryAfterMs === undefined
      ? { _tag: 'Transient', reason }
      : { _tag: 'Transient', reason, retryAfterMs },
    hint,
  );
export const permanent = (reason: string, hint?: string): DeliveryOutcome =>
  withHint({ _tag: 'Permanent', reason }, hint);
/** A failure that may be permanent; see `FIRST_PERMANENT_UNCERTAIN_ATTEMPT`. */
export const uncertain = (reason: string, retryAfterMs?: number, hint?: string): DeliveryOutcome =>
  withHint(
    {
      ...(retryAfterMs === undefined
        ? { _tag: 'Transient', reason }
        : { _tag: 'Transient', reason, retryAfterMs }),
      uncertain: true,
    },
    hint,
  );
/**
 * The provider asked us to slow down (`reason` its public words, `retryAfterMs` its Retry-After
 * in milliseconds when it gave one): a transient failure with the `throttled` flag.
 */
export const throttled = (reason: string, retryAfterMs?: number, hint?: string): DeliveryOutcome =>
  withHint(
    {
      ...(retryAfterMs === undefined
        ? { _tag: 'Transient', reason }
        : { _tag: 'Transient', reason, retryAfterMs }),
      throttled: true,
    },
    hint,
  );
/** What a send the worker's stop kept from starting answers (see `notStarted` above). */
export const notStarted = (reason: string): DeliveryOutcome => ({
  _tag: 'Transient',
  reason,
  notStarted: true,
});

/**
 * True for an outcome made by `notStarted`. A guard to the flagged transient alone: a plain
 * transient stays in the other branch.
 */
export const isNotStarted = (
  o: DeliveryOutcome,
): o is Extract<DeliveryOutcome, { readonly _tag: 'Transient' }> & { readonly notStarted: true } =>
  o._tag === 'Transient' && o.notStarted === true;

/** True for an outcome made by `throttled`. */
export const isThrottled = (o: DeliveryOutcome): boolean =>
  o._tag === 'Transient' && o.throttled === true;

/** What `publicText` puts where it took something out. */
export const HIDDEN = '[hidden]';

// Each kind of text a public reason may not show, in the order they are taken out: a URL before
// the host and path inside it, an IPv6 address before the colons in it could read as a port.
const NOT_PUBLIC: readonly RegExp[] = [
  // A URL of any scheme, and a protocol-relative one.
  /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]*/gi,
  /(?<![\w:])\/\/[^\s"'<>]+/g,
  // IPv6: in brackets (with a port), compressed (`::1`, `fe80::1%eth0`), or all eight groups.
  /\[[0-9a-f:.%]*:[0-9a-f:.%]*\](?::\d{1,5})?/gi,
  /(?<![\w:.])[0-9a-f:.]*::[0-9a-f:.]*(?:%[\w.-]+)?(?![\w:])/gi,
  /(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])/gi,
  // IPv4, with its port.
  /(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])/g,
  // A host and port; the host has a letter, so a time of day (10:00:00) stays.
  /(?<![\w.-])[a-z][\w-]*(?:\.[\w-]+)*:\d{1,5}(?!\w)/gi,
  // A host name: two labels or more, the last of letters. An email address or a Message-ID
  // stays (the recipient's, or ours), and so do `5.1.1` and `Apache/2.4`.
  /(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9](?![\w@-]|\.[a-z0-9])/gi,
  /(?<![\w.-])localhost(?![\w.-])/gi,
  // A file path: absolute, home- or dot-relative, or on a Windows drive. `text/plain` and
  // `Apache/2.4` stay: a path starts after a space or punctuation, not inside a word.
  /(?<![\w.<>-])(?:~|\.{1,2})?\/[^\s"'<>()[\]]+/g,
  /\b[a-z]:\\[^\s"'<>]*/gi,
];

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * `text` fit for a public reason: URLs, IP addresses, hosts (with or without a port) and file
 * paths become `[hidden]`, and so does each of `alsoHide` where it stands as a word of its own (a
 * value from our configuration the patterns cannot know, such as a one-label host name). What
 * stays is what a person can act on: a provider's status code and words, an email address. The
 * adapter keeps the original for its hint.
 */
export function publicText(text: string, alsoHide: readonly string[] = []): string {
  const literals = [...alsoHide]
    .filter((s) => s.trim() !== '')
    .sort((a, b) => b.length - a.length)
    .map((s) => new RegExp(`(?<![\\w.@-])${escapeRegExp(s)}(?![\\w@-]|\\.[\\w])`, 'gi'));
  return [...literals, ...NOT_PUBLIC]
    .reduce((shown, pattern) => shown.replace(pattern, HIDDEN), text)
    .replace(/(?:\[hidden\](?::\d{1,5}(?!\d))?)+/g, HIDDEN);
}

/**
 * An uncertain failure on this attempt or a later one is a refusal: two tries were given to a
 * provider that said "not found", and "a few times" is what Mailgun's documentation suggests for
 * its eventually consistent API (docs/architecture.md, "Delivery rules").
 */
export const FIRST_PERMANENT_UNCERTAIN_ATTEMPT = 3;

/**
 * Throttles on one attempt before that attempt counts after all: a throttle does not spend an
 * attempt, but a provider that never stops throttling must not hold an email for ever. With
 * pauses shared by every worker an email meets a throttle only when a pause ran out and the
 * provider still refused, so ten in a row means its limit is not one of seconds.
 */
export const MAX_THROTTLES_PER_ATTEMPT = 10;

/**
 * The shortest pause after a throttle, in milliseconds: a provider that says "too many" with a
 * Retry-After of 0 (or an SMTP server, which gives none) is not asked again at once.
 */
export const MIN_THROTTLE_PAUSE_MS = 1000;

/**
 * The longest pause after a throttle, in milliseconds: one hour. A pause holds the transport for
 * every worker and only ever grows, so a Retry-After of a day (or an HTTP date in 9999, or a
 * garbled header read as a huge number) would stop every send for that long on one answer. After
 * an hour the transport is tried again: a provider still at its limit throttles again and
 * pauses it again, and MAX_THROTTLES_PER_ATTEMPT bounds how often one email meets that.
 */
export const MAX_THROTTLE_PAUSE_MS = 3_600_000;

/**
 * How an email's history line says its attempt was throttled (`decide`'s reason for it): the
 * `throttled` flag of an `AttemptRecord` is carried by the task, the email log keeps this text.
 */
export const THROTTLED_PREFIX = 'throttled: ';

/** True for a history line (`detail`, as the email log keeps it) that recorded a throttle. */
export const isThrottledDetail = (detail: string): boolean => detail.startsWith(THROTTLED_PREFIX);

/** One line of an email's history, as kept in dead-letter headers and the status page. */
export const AttemptRecord = t.intersection([
  t.type({
    attempt: t.number,
    at: t.string,
    outcome: t.union([t.literal('sent'), t.literal('transient'), t.literal('permanent')]),
    detail: t.string,
  }),
  // `throttled`: the provider asked us to slow down, and this line did not spend its attempt.
  t.partial({ durationMs: t.number, throttled: t.literal(true) }),
]);
export type AttemptRecord = t.TypeOf<typeof AttemptRecord>;

export const outcomeName = (o: DeliveryOutcome): AttemptRecord['outcome'] =>
  o._tag === 'Sent' ? 'sent' : o._tag === 'Transient' ? 'transient' : 'permanent';

/** The attempt's detail as stored and shown: the public part of the outcome, never its hint. */
export const outcomeDetail = (o: DeliveryOutcome): string =>
  o._tag === 'Sent' ? o.providerId : o.reason;

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  readonly maxAttempts: number;
  /** The wait before the 2nd, 3rd, … attempt; the last step repeats. Never empty. */
  readonly delaysMs: readonly [number, ...number[]];
}

/**
 * The wait after attempt `failedAttempt` (1-based) failed transiently. A provider's Retry-After
 * moves the retry to the shortest step at least that long, so the broker's fixed TTL queues can
 * honour it; past the longest step, the longest step is the best a fixed schedule can do.
 */
export function retryDelay(
  policy: RetryPolicy,
  failedAttempt: number,
  retryAfterMs?: number,
): number {
  const steps = policy.delaysMs;
  const base = steps[Math.min(Math.max(failedAttempt, 1), steps.length) - 1] ?? steps[0];
  if (retryAfterMs === undefined || retryAfterMs <= base) return base;
  return retryStep(steps, retryAfterMs);
}

/**
 * The step a wait of `atLeastMs` rounds up to: the shortest step at least that long, else the
 * longest. A broker waits only as long as one of its fixed TTL queues, so this one rule serves
 * both the delay the core decides and the retry queue an adapter publishes to.
 */
export function retryStep(steps: readonly [number, ...number[]], atLeastMs: number): number {
  const longEnough = steps.filter((step) => step >= atLeastMs);
  return longEnough.length > 0 ? Math.min(...longEnough) : Math.max(...steps);
}

/**
 * Spreads retries of many emails that failed together (a provider outage) so they do not all
 * come back in the same instant. `random` is injected to keep the domain pure and testable.
 */
export function withJitter(delayMs: number, random: () => number, ratio = 0.2): number {
  return Math.round(delayMs * (1 + ratio * random()));
}

export type DeliveryDecision =
  | { readonly _tag: 'Delivered'; readonly providerId: string }
  | {
      readonly _tag: 'RetryLater';
      readonly nextAttempt: number;
      readonly delayMs: number;
      readonly reason: string;
    }
  | { readonly _tag: 'GiveUp'; readonly reason: string }
  /**
   * The provider throttled us: the transport pauses for `delayMs` (milliseconds) and the same
   * `attempt` is made again after it, so MAX_ATTEMPTS is not spent on the provider's limit.
   */
  | {
      readonly _tag: 'Throttled';
      readonly attempt: number;
      readonly delayMs: number;
      readonly reason: string;
    };

/**
 * How long a transport pauses after a throttle, in milliseconds: the provider's Retry-After, or
 * without one (SMTP never gives one) the first step of the retry schedule. Never less than
 * MIN_THROTTLE_PAUSE_MS nor more than MAX_THROTTLE_PAUSE_MS (a Retry-After that is no finite
 * number counts as the most). Not a step that grows with the email (its attempt, or the
 * throttles it met): the pause holds back every email of the transport, and one email's history
 * is no reason to stop the provider for everyone for the hour of a late step. A provider that
 * keeps throttling is bounded per email instead: past MAX_THROTTLES_PER_ATTEMPT an attempt counts.
 */
export function throttlePauseMs(policy: RetryPolicy, retryAfterMs?: number): number {
  const asked = retryAfterMs ?? retryDelay(policy, 1);
  const bounded = Number.isFinite(asked) ? asked : MAX_THROTTLE_PAUSE_MS;
  return Math.min(MAX_THROTTLE_PAUSE_MS, Math.max(MIN_THROTTLE_PAUSE_MS, bounded));
}

/**
 * The delivery policy in one place: what an outcome of attempt `attempt` leads to.
 * `throttledBefore` counts the throttles this attempt already met (its history's lines with
 * `throttled`): from MAX_THROTTLES_PER_ATTEMPT on, a throttle counts as the transient it is.
 */
export function decide(
  outcome: DeliveryOutcome,
  attempt: number,
  policy: RetryPolicy,
  throttledBefore = 0,
): DeliveryDecision {
  switch (outcome._tag) {
    case 'Sent':
      return { _tag: 'Delivered', providerId: outcome.providerId };
    case 'Permanent':
      return { _tag: 'GiveUp', reason: `permanent: ${outcome.reason}` };
    case 'Transient':
      if (outcome.throttled === true && throttledBefore < MAX_THROTTLES_PER_ATTEMPT) {
        return {
          _tag: 'Throttled',
          attempt,
          delayMs: throttlePauseMs(policy, outcome.retryAfterMs),
          reason: `${THROTTLED_PREFIX}${outcome.reason}`,
        };
      }
      if (outcome.uncertain === true && attempt >= FIRST_PERMANENT_UNCERTAIN_ATTEMPT) {
        return {
          _tag: 'GiveUp',
          reason: `permanent: ${outcome.reason}; still so on attempt ${attempt}, so taken at its word`,
        };
      }
      if (attempt >= policy.maxAttempts) {
        return {
          _tag: 'GiveUp',
          reason: `out of attempts (${attempt} of ${policy.maxAttempts}): ${outcome.reason}`,
        };
      }
      return {
        _tag: 'RetryLater',
        nextAttempt: attempt + 1,
        delayMs: retryDelay(policy, attempt, outcome.retryAfterMs),
        reason: outcome.reason,
      };
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `1s,5s,30s,2m` into milliseconds; undefined when any step is malformed. */
export function parseDelays(spec: string): [number, ...number[]] | undefined {
  const steps = spec.split(',').map((part) => {
    const m = /^\s*(\d+)(ms|s|m|h)\s*$/.exec(part);
    return m ? Number(m[1]) * (UNITS[m[2] ?? ''] ?? NaN) : NaN;
  });
  const [first, ...rest] = steps;
  if (first === undefined || !steps.every((n) => Number.isFinite(n) && n > 0)) return undefined;
  return [first, ...rest];
}

/** `30000` → `30s`: the suffix of a retry queue's name and what a person reads in a log. */
export function formatDelay(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
