import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Clock, IdGenerator } from '../../application/ports/system.js';
import { EmailId } from '../../domain/email-request.js';

export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};

/**
 * 128 random bits as 22 url-safe characters: unguessable, because the id is the only key to an
 * email's status page, and valid as a path segment, a Message-ID local part and an AMQP messageId.
 */
export const randomIds: IdGenerator = {
  next: () => {
    const id = randomBytes(16).toString('base64url');
    if (!EmailId.is(id)) throw new Error(`generated an invalid id: ${id}`);
    return id;
  },
};
