/**
 * Ed25519 signing with node:crypto (OpenSSL) for the processes that sign (the gateway, the
 * worker's activities): noble's pure JavaScript takes several milliseconds a signature, OpenSSL a
 * fraction of one, and both give the same bytes (Ed25519 signatures are deterministic). Not for
 * the workflow sandbox, which only verifies.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { keyRingOf, type KeyRing, type SigningKey } from './identity.js';

/** PKCS#8 for an Ed25519 seed: this fixed prefix, then the 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function withNativeSigning(key: SigningKey): SigningKey {
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, key.secretKey]),
    format: 'der',
    type: 'pkcs8',
  });
  return { ...key, sign: (message) => new Uint8Array(sign(null, message, privateKey)) };
}

/** The same ring, each key signing natively. */
export function nativeSigningRing(ring: KeyRing): KeyRing {
  return keyRingOf(...ring.keys.map(withNativeSigning));
}
