/** Stored idempotent responses: sealed so the database never holds a raw key, readable only with the gateway's key. */
import { describe, expect, it } from 'vitest';
import { idempotencySealKey, seal, unseal } from '../../src/gateway/idempotency-seal.js';

const key = idempotencySealKey(new Uint8Array(32).fill(7));
const otherKey = idempotencySealKey(new Uint8Array(32).fill(8));
const response = { data: { id: 'k-1', raw_key: 'cust_secret-value', scopes: ['a', 'b'] } };

describe('idempotency sealing', () => {
  it('derives one 32-byte key per signing secret', () => {
    expect(key).toHaveLength(32);
    expect(idempotencySealKey(new Uint8Array(32).fill(7)).equals(key)).toBe(true);
    expect(otherKey.equals(key)).toBe(false);
  });

  it('round-trips a response, and never stores it in the clear', () => {
    const sealed = seal(key, response);
    expect(JSON.stringify(sealed)).not.toContain('cust_secret-value');
    expect(unseal(key, sealed)).toEqual(response);
  });

  it('seals the same response differently each time (a fresh IV)', () => {
    expect(seal(key, response).sealed).not.toBe(seal(key, response).sealed);
  });

  it('refuses a response sealed under another key', () => {
    expect(() => unseal(otherKey, seal(key, response))).toThrow();
  });

  it('refuses a sealed response that was altered', () => {
    const raw = Buffer.from(seal(key, response).sealed, 'base64');
    raw[raw.length - 1] ^= 1;
    expect(() => unseal(key, { sealed: raw.toString('base64') })).toThrow();
  });

  it('reads a response stored before sealing as it is', () => {
    expect(unseal(key, { data: { ok: true } })).toEqual({ data: { ok: true } });
    expect(unseal(key, null)).toBeNull();
  });
});
