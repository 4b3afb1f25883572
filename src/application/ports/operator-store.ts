import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/** A person who signs in to the web pages. `passwordHash` is an argon2id PHC string. */
export interface Operator {
  readonly name: string;
  readonly passwordHash: string;
  readonly createdAt: Date;
}

/** `add` with a name already taken. */
export interface OperatorExists {
  readonly _tag: 'OperatorExists';
  readonly name: string;
}

/** The people who may sign in, shared by every server; names compare exactly. */
export interface OperatorStore {
  add(operator: Operator): TaskEither<StoreUnavailable | OperatorExists, void>;
  find(name: string): TaskEither<StoreUnavailable, Option<Operator>>;
  /** Everyone, by name. */
  list(): TaskEither<StoreUnavailable, readonly Operator[]>;
  /** Removes the operator and every session of theirs; answers whether there was one. */
  remove(name: string): TaskEither<StoreUnavailable, boolean>;
}
