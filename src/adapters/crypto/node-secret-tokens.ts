import * as crypto from 'node:crypto';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretTokens } from '../../application/ports/credentials.js';

/**
 * `crypto.hash` (Node 20.12 and 21.7 on): a digest in one call, without the stream object
 * `createHash` builds, for the API key digested on every request. Absent on older Node 20s.
 */
const oneShot = (crypto as Partial<Pick<typeof crypto, 'hash'>>).hash;

/** Tokens and digests with `node:crypto`: its CSPRNG, its SHA-256, its constant-time compare. */
export class NodeSecretTokens implements SecretTokens {
  random(bytes: number): string {
    if (!Number.isSafeInteger(bytes) || bytes < 1) {
      throw new Error(`a token needs a whole number of bytes ≥ 1, not ${bytes}`);
    }
    return randomBytes(bytes).toString('base64url');
  }

  digest(text: string): string {
    // A string is hashed as its UTF-8 octets either way.
    if (oneShot !== undefined) return oneShot('sha256', text, 'hex');
    return createHash('sha256').update(text, 'utf8').digest('hex');
  }

  /**
   * `timingSafeEqual` takes buffers of one length only. Of two lengths the answer is false, but
   * a comparison still runs (the first string against itself), so that the time spent depends on
   * the lengths alone, never on where the contents first differ.
   */
  same(a: string, b: string): boolean {
    const left = Buffer.from(a, 'utf8');
    const right = Buffer.from(b, 'utf8');
    if (left.length !== right.length) {
      timingSafeEqual(left, left);
      return false;
    }
    return timingSafeEqual(left, right);
  }
}
