import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { Accepted, RequestEmailError } from '../request-email.js';

/**
 * The driving port for accepting email: what the HTTP adapter (the form and the JSON API) asks
 * of the core. `RequestEmail` implements it; `idempotencyKey` is already namespaced by the caller
 * (`api:…` for the header, `form:…` for the form's nonce).
 */
export interface EmailRequester {
  execute(input: unknown, idempotencyKey?: string): TaskEither<RequestEmailError, Accepted>;
}
