import type { Algorithm, Options } from '@node-rs/argon2';
import { hash, verify } from '@node-rs/argon2';
import type { PasswordHasher } from '../../application/ports/credentials.js';

/**
 * Argon2id, the variant RFC 9106 (§4) recommends for passwords: resistant to GPU cracking and
 * to side channels. `@node-rs/argon2` declares its algorithms as a `const enum` whose runtime
 * object is empty, so the value is written here (2 is `Algorithm.Argon2id` in its index.d.ts).
 */
const ARGON2ID: Algorithm = 2;

export interface Argon2Cost {
  /** Memory per hash, in KiB. */
  readonly memoryCost: number;
  /** Passes over that memory. */
  readonly timeCost: number;
  /** Lanes (threads). */
  readonly parallelism: number;
}

/**
 * The OWASP Password Storage Cheat Sheet's first argon2id configuration: 19 MiB, two passes, one
 * lane (equal in strength to its other, memory-for-time trades). RFC 9106's own recommendations
 * (§4: 2 GiB, or 64 MiB for memory-constrained use) suit a dedicated machine, not a web server
 * hashing on every sign-in; these take tens of milliseconds. A hash carries its parameters, so
 * raising them later leaves older hashes verifiable.
 */
export const OWASP_ARGON2ID: Argon2Cost = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

/** Passwords as argon2id PHC strings, each with its own random 16-byte salt. */
export class Argon2PasswordHasher implements PasswordHasher {
  private readonly options: Options;

  constructor(cost: Argon2Cost = OWASP_ARGON2ID) {
    this.options = { algorithm: ARGON2ID, ...cost };
  }

  hash(password: string): Promise<string> {
    return hash(password, this.options);
  }

  /**
   * The library throws on a hash it cannot decode (`InvalidArg: Decoding failed`); a stored hash
   * that is unreadable signs no one in, so that is a plain `false`. Whatever the hash's own
   * parameters are, they are the ones used: an older, cheaper hash still verifies.
   */
  async verify(hashed: string, password: string): Promise<boolean> {
    try {
      return await verify(hashed, password);
    } catch {
      return false;
    }
  }
}
