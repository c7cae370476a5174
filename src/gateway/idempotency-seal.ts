/**
 * Stored idempotent responses are sealed (AES-256-GCM, a key derived from the gateway's signing
 * key): some carry a raw API key, which the database may otherwise hold only as a hash.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export function idempotencySealKey(signingSecret: Uint8Array): Buffer {
  return createHash('sha256').update('custody idempotency responses v1\0').update(signingSecret).digest();
}

export function seal(key: Buffer, value: unknown): { sealed: string } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return { sealed: Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64') };
}

/**
 * The value sealed; a stored value that is not sealed (written before sealing) as it is. Throws
 * when it was sealed under another key or altered.
 */
export function unseal(key: Buffer, stored: unknown): unknown {
  const sealed = (stored as { sealed?: unknown } | null)?.sealed;
  if (typeof sealed !== 'string') return stored;
  const raw = Buffer.from(sealed, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8'));
}
