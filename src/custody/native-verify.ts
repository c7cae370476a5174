/**
 * Ed25519 verification with node:crypto (OpenSSL): far cheaper than the pure JavaScript one the
 * workflow sandbox must use. For the worker's activities and other Node code only.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { toBase64Url, type SignatureVerifier } from './identity.js';

const keys = new Map<string, KeyObject>();

function keyObject(publicKey: Uint8Array): KeyObject {
  const x = toBase64Url(publicKey);
  let key = keys.get(x);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    // Only the ring's few keys are ever looked up here; a bound keeps a flood of others harmless.
    if (keys.size > 64) keys.clear();
    keys.set(x, key);
  }
  return key;
}

export const nativeVerify: SignatureVerifier = (signature, message, publicKey) =>
  verify(null, message, keyObject(publicKey), signature);
