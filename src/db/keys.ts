/** API keys: high-entropy, recognisable by their prefix, stored only as a SHA-256 digest. */
import { createHash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'cust_';

export function newRawKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * The digest is the lookup key. A 256-bit random key cannot be guessed, so an unsalted fast hash
 * is enough, and the lookup is an index match on the digest: no secret-dependent comparison.
 */
export function keyDigest(rawKey: string): Buffer {
  return createHash('sha256').update(rawKey, 'utf8').digest();
}

/** A non-secret label to recognise a key by in lists. */
export function keyLabel(rawKey: string): string {
  return rawKey.slice(0, KEY_PREFIX.length + 6);
}

export function looksLikeKey(raw: string): boolean {
  return (
    raw.startsWith(KEY_PREFIX) &&
    raw.length === KEY_PREFIX.length + 43 &&
    /^[A-Za-z0-9_-]+$/.test(raw.slice(KEY_PREFIX.length))
  );
}
