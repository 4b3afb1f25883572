import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import { SESSION_RETENTION_MS } from './purge-expired.js';
import type { PasswordHasher, SecretTokens } from './ports/credentials.js';
import type { StoreUnavailable } from './ports/email-log.js';
import type { Operator, OperatorExists, OperatorStore } from './ports/operator-store.js';
import type { RateLimiter } from './ports/rate-limiter.js';
import type { SessionStore } from './ports/session-store.js';
import type { Clock, Logger } from './ports/system.js';

/** A session unused for this long is over (12 h), whatever its age; retention deletes it. */
export const SESSION_IDLE_MS = SESSION_RETENTION_MS;
/** `lastSeenAt` is written at most this often per session: idle expiry needs no finer grain. */
const SESSION_TOUCH_EVERY_MS = 60_000;
/** Random bytes in a session token: 256 bits. */
const SESSION_TOKEN_BYTES = 32;

/**
 * At least 12 characters: the length NIST SP 800-63B §5.1.1.2 and OWASP's Authentication Cheat
 * Sheet put above any composition rule. At most 1024, so hashing stays bounded.
 */
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 1024;
export const OPERATOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export interface InvalidOperator {
  readonly _tag: 'InvalidOperator';
  readonly message: string;
}

export type SignInRefusal =
  /** Unknown name or wrong password: one answer for both, so names cannot be probed. */
  | { readonly _tag: 'BadCredentials' }
  /** Five failures this minute for the name or the address: wait `retryAfterMs`. */
  | { readonly _tag: 'TooManyAttempts'; readonly retryAfterMs: number };

export interface SignedIn {
  /** Goes in the cookie, and nowhere else: the store keeps its digest. */
  readonly token: string;
  readonly operator: string;
}

export interface OperatorsDeps {
  readonly operators: OperatorStore;
  readonly sessions: SessionStore;
  readonly hasher: PasswordHasher;
  readonly tokens: SecretTokens;
  readonly clock: Clock;
  readonly log: Logger;
  /**
   * Counts failed sign-ins per `user:NAME` and per `address:ADDRESS`: five a minute, shared by
   * every server.
   */
  readonly failures: RateLimiter;
}

/**
 * What a client typed, as an audit line may quote it: a name is at most 64 characters, so more
 * is not a name (perhaps a password typed in the wrong box), and an address from a proxy header
 * is whatever the client wrote.
 */
const clip = (typed: string): string => (typed.length > 64 ? `${typed.slice(0, 64)}…` : typed);

/** What is wrong with a new operator's name or password, if anything. */
export function operatorProblem(name: string, password: string): string | undefined {
  if (!OPERATOR_NAME.test(name)) {
    return 'a user name is 1 to 64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit';
  }
  // Characters (code points) for both bounds, as the messages say: an emoji is one, not two.
  const characters = [...password].length;
  if (characters < PASSWORD_MIN) {
    return `the password must be at least ${PASSWORD_MIN} characters`;
  }
  if (characters > PASSWORD_MAX) {
    return `the password must be at most ${PASSWORD_MAX} characters`;
  }
  return undefined;
}

/**
 * The people who sign in to the web pages, and their sessions: `add`, `list` and `remove` for
 * the CLI; `signIn`, `session` and `signOut` for the server.
 */
export class Operators {
  private dummyHash: Promise<string> | undefined;
  /** The last sign-in in progress per counted key (`user:…`, `address:…`), see `oneAtATime`. */
  private readonly attempts = new Map<string, Promise<void>>();

  constructor(private readonly deps: OperatorsDeps) {}

  add(
    name: string,
    password: string,
  ): TE.TaskEither<StoreUnavailable | OperatorExists | InvalidOperator, Operator> {
    const problem = operatorProblem(name, password);
    if (problem !== undefined) return TE.left({ _tag: 'InvalidOperator', message: problem });
    const { hasher, operators, clock, log } = this.deps;
    return pipe(
      TE.fromTask(() => hasher.hash(password)),
      TE.map((passwordHash): Operator => ({ name, passwordHash, createdAt: clock.now() })),
      TE.chainFirstW((operator) => operators.add(operator)),
      TE.map((operator) => {
        log.info({ audit: 'operator-added', user: name }, 'Operator added');
        return operator;
      }),
    );
  }

  list(): TE.TaskEither<StoreUnavailable, readonly Operator[]> {
    return this.deps.operators.list();
  }

  /** Removes the operator and ends their sessions; false when there was none. */
  remove(name: string): TE.TaskEither<StoreUnavailable, boolean> {
    const { operators, log } = this.deps;
    return pipe(
      operators.remove(name),
      TE.map((removed) => {
        if (removed) log.info({ audit: 'operator-removed', user: name }, 'Operator removed');
        return removed;
      }),
    );
  }

  /**
   * Checks `name` and `password` from `address`. Refused at once while either has had five
   * failures this minute (the password is not even checked); a failure counts against both. A
   * success starts a new session; `previousToken` (the browser's session before, if any) ends,
   * so a session id planted before sign-in is never the one signed in (OWASP Session
   * Management Cheat Sheet, "Renew the Session ID After Any Privilege Level Change").
   */
  signIn(
    name: string,
    password: string,
    address: string,
    previousToken?: string,
  ): TE.TaskEither<StoreUnavailable | SignInRefusal, SignedIn> {
    const { failures, operators, hasher, log } = this.deps;
    const keys = [`user:${name}`, `address:${address}`];
    const refused = (): TE.TaskEither<StoreUnavailable | SignInRefusal, SignedIn> =>
      pipe(
        TE.sequenceArray(keys.map((k) => failures.consume(k))),
        TE.chainW(() => {
          log.warn(
            { audit: 'sign-in-failed', user: clip(name), address: clip(address) },
            'Sign-in failed',
          );
          return TE.left<SignInRefusal>({ _tag: 'BadCredentials' });
        }),
      );
    const attempt = pipe(
      TE.sequenceArray(keys.map((k) => failures.peek(k))),
      TE.chainW((states): TE.TaskEither<StoreUnavailable | SignInRefusal, O.Option<Operator>> => {
        const blocked = states.filter((s) => !s.allowed);
        if (blocked.length > 0) {
          const retryAfterMs = Math.max(...blocked.map((s) => s.resetMs));
          log.warn(
            { audit: 'sign-in-throttled', user: clip(name), address: clip(address) },
            'Sign-in refused: too many failures',
          );
          return TE.left({ _tag: 'TooManyAttempts', retryAfterMs });
        }
        return operators.find(name);
      }),
      TE.chainW((operator) =>
        TE.fromTask(async () => {
          // An unknown name costs a hash check too, so the time taken does not tell names apart.
          const hash = O.isSome(operator) ? operator.value.passwordHash : await this.dummy();
          const ok = await hasher.verify(hash, password);
          return ok && O.isSome(operator) ? O.some(operator.value) : O.none;
        }),
      ),
      TE.chainW((operator) =>
        O.isNone(operator) ? refused() : this.start(operator.value.name, address, previousToken),
      ),
    );
    return () => this.oneAtATime(keys, attempt);
  }

  /** The operator a session token belongs to, if it is live; moves its idle clock forward. */
  session(token: string | undefined): TE.TaskEither<StoreUnavailable, O.Option<string>> {
    if (token === undefined || token === '') return TE.right(O.none);
    const { sessions, tokens, clock } = this.deps;
    const digest = tokens.digest(token);
    const now = clock.now();
    return pipe(
      sessions.find(digest),
      TE.chain((found) => {
        if (O.isNone(found)) return TE.right(O.none);
        const idleMs = now.getTime() - found.value.lastSeenAt.getTime();
        if (idleMs >= SESSION_IDLE_MS) {
          return pipe(
            sessions.remove(digest),
            TE.map(() => O.none),
          );
        }
        if (idleMs < SESSION_TOUCH_EVERY_MS) return TE.right(O.some(found.value.operator));
        return pipe(
          sessions.touch(digest, now),
          TE.map(() => O.some(found.value.operator)),
        );
      }),
    );
  }

  /** Ends the session of `token` (absent or unknown: nothing to do). */
  signOut(token: string | undefined): TE.TaskEither<StoreUnavailable, void> {
    if (token === undefined || token === '') return TE.right(undefined);
    return this.deps.sessions.remove(this.deps.tokens.digest(token));
  }

  /** Forgets sessions idle past `SESSION_IDLE_MS` (the retention job); answers how many. */
  purgeIdle(): TE.TaskEither<StoreUnavailable, number> {
    // `session` ends a session idle for SESSION_IDLE_MS or more; the store forgets those last
    // seen strictly before the cutoff, hence the millisecond, so both agree on the boundary.
    const cutoff = new Date(this.deps.clock.now().getTime() - SESSION_IDLE_MS + 1);
    return this.deps.sessions.purgeIdleSince(cutoff);
  }

  private start(
    operator: string,
    address: string,
    previousToken: string | undefined,
  ): TE.TaskEither<StoreUnavailable, SignedIn> {
    const { sessions, tokens, clock, log } = this.deps;
    const token = tokens.random(SESSION_TOKEN_BYTES);
    const now = clock.now();
    return pipe(
      this.signOut(previousToken),
      TE.chain(() =>
        sessions.create({
          digest: tokens.digest(token),
          operator,
          createdAt: now,
          lastSeenAt: now,
        }),
      ),
      TE.map(() => {
        log.info({ audit: 'sign-in-succeeded', user: operator, address }, 'Sign-in succeeded');
        return { token, operator };
      }),
    );
  }

  /**
   * Runs `attempt` once every earlier sign-in of this process on any of `keys` has finished. The
   * failures are read before the password is checked and counted after it: attempts that overlap
   * would all read the count from before any of them failed, and a burst of a thousand guesses
   * would have a thousand passwords checked. One at a time per name and per address, the sixth
   * of a burst sees five failures. (Across servers, a burst can still have one more password
   * checked per server.)
   */
  private oneAtATime<A>(keys: readonly string[], attempt: () => Promise<A>): Promise<A> {
    const earlier = keys.map((k) => this.attempts.get(k));
    const result = Promise.all(earlier).then(attempt);
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    for (const k of keys) this.attempts.set(k, done);
    void done.then(() => {
      for (const k of keys) if (this.attempts.get(k) === done) this.attempts.delete(k);
    });
    return result;
  }

  private dummy(): Promise<string> {
    this.dummyHash ??= this.deps.hasher.hash(this.deps.tokens.random(16));
    return this.dummyHash;
  }
}

/** For callers that only need to know whether a TaskEither's Left is a store failure. */
export const isStoreUnavailable = (e: { readonly _tag: string }): e is StoreUnavailable =>
  e._tag === 'StoreUnavailable';
