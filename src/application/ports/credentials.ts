/**
 * Password hashing, behind a port so that the use cases do not pick the algorithm: the adapter
 * uses argon2id (RFC 9106) with its library's recommended parameters.
 */
export interface PasswordHasher {
  /** A PHC string (`$argon2id$v=19$m=…`) with its own random salt. */
  hash(password: string): Promise<string>;
  /** True when `password` matches `hash`; false for a wrong password or an unreadable hash. */
  verify(hash: string, password: string): Promise<boolean>;
}

/** Random tokens and digests for keys and sessions. */
export interface SecretTokens {
  /** `bytes` random bytes from a CSPRNG, as base64url without padding. */
  random(bytes: number): string;
  /** SHA-256 of `text` (UTF-8) as lowercase hex. */
  digest(text: string): string;
  /** Equality of two strings in time that depends only on their lengths. */
  same(a: string, b: string): boolean;
}
