import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Clock, IdGenerator } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};

const ID_BYTES = 16;
/** Ids drawn from one fill of the CSPRNG: one system call per 256 ids, each byte used once. */
const POOL_BYTES = ID_BYTES * 256;
let pool = Buffer.alloc(0);
let taken = 0;

/**
 * 128 random bits as 22 url-safe characters: unguessable, because the id is the only key to an
 * email's status page, and valid as a path segment, a Message-ID local part and an AMQP messageId.
 */
export const randomIds: IdGenerator = {
  next: () => {
    if (taken + ID_BYTES > pool.length) {
      pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
      taken = 0;
    }
    const id = pool.toString('base64url', taken, (taken += ID_BYTES));
    if (!EmailId.is(id)) throw new Error(`generated an invalid id: ${id}`);
    return id;
  },
};
