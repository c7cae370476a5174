/** The gateway-to-workflow trust boundary: what a signed envelope proves, and what breaks it. */
import { describe, expect, it } from 'vitest';
import {
  ENVELOPE_MAX_AGE_MS,
  bodyDigest,
  canonicalJson,
  dependencyNewsProblem,
  envelopeProblem,
  fromBase64Url,
  keyTableVerify,
  newSigningSeed,
  signDependencyNews,
  signEnvelope,
  signingKeyFromSeed,
  toBase64Url,
} from '../../src/custody/identity.js';
import { withNativeSigning } from '../../src/custody/native-sign.js';
import { ed25519 } from '@noble/curves/ed25519.js';

const key = signingKeyFromSeed(newSigningSeed());
const other = signingKeyFromSeed(newSigningSeed());
const WORKFLOW = 'story/t1/p1/1.1';
const NOW = 1_760_000_000_000;
const unsigned = {
  updateId: 'u-1',
  action: 'claim' as const,
  actor: { agentId: 'a-1', role: 'agent' as const, tenantId: 't1' },
  body: { b: 1, a: [1, 2] },
  issuedAt: NOW,
};

describe('action envelopes', () => {
  const envelope = signEnvelope(key, WORKFLOW, unsigned);

  it('are accepted when signed by a trusted key, for this workflow, in time', () => {
    expect(envelopeProblem(WORKFLOW, envelope, [key.publicKey], NOW)).toBeNull();
    expect(envelopeProblem(WORKFLOW, envelope, [other.publicKey, key.publicKey], NOW + 1000)).toBeNull();
  });

  it('are refused when signed by a key the story does not trust', () => {
    expect(envelopeProblem(WORKFLOW, envelope, [other.publicKey], NOW)).toBe('signature not from a trusted gateway');
    expect(envelopeProblem(WORKFLOW, envelope, [], NOW)).toBe('signature not from a trusted gateway');
  });

  it('are bound to their workflow, update, action, actor, time and body', () => {
    const tampered: Array<[string, unknown]> = [
      ['another workflow', { ...envelope }],
      ['another update', { ...envelope, updateId: 'u-2' }],
      ['another action', { ...envelope, action: 'verify' }],
      ['another agent', { ...envelope, actor: { ...envelope.actor, agentId: 'a-2' } }],
      ['another role', { ...envelope, actor: { ...envelope.actor, role: 'orchestrator' } }],
      ['another tenant', { ...envelope, actor: { ...envelope.actor, tenantId: 't2' } }],
      ['another time', { ...envelope, issuedAt: NOW + 1 }],
      ['another body', { ...envelope, body: { b: 2, a: [1, 2] } }],
    ];
    for (const [what, env] of tampered) {
      const workflowId = what === 'another workflow' ? 'story/t1/p1/1.2' : WORKFLOW;
      expect(envelopeProblem(workflowId, env, [key.publicKey], NOW), what).toBe('signature not from a trusted gateway');
    }
  });

  it('do not depend on the order of keys in the body', () => {
    const reordered = { ...envelope, body: { a: [1, 2], b: 1 } };
    expect(envelopeProblem(WORKFLOW, reordered, [key.publicKey], NOW)).toBeNull();
  });

  it('expire: a captured envelope cannot be replayed later, nor one dated ahead', () => {
    expect(envelopeProblem(WORKFLOW, envelope, [key.publicKey], NOW + ENVELOPE_MAX_AGE_MS + 1)).toBe('expired');
    expect(envelopeProblem(WORKFLOW, envelope, [key.publicKey], NOW - ENVELOPE_MAX_AGE_MS - 1)).toBe('expired');
  });

  it('name what is missing or malformed, and never throw', () => {
    const cases: Array<[unknown, string]> = [
      [null, 'no envelope'],
      ['text', 'no envelope'],
      [{ ...envelope, updateId: '' }, 'bad update id'],
      [{ ...envelope, updateId: 'x'.repeat(201) }, 'bad update id'],
      [{ ...envelope, action: 7 }, 'no action'],
      [{ ...envelope, actor: null }, 'no actor'],
      [{ ...envelope, actor: { agentId: 'a-1' } }, 'bad actor'],
      [{ ...envelope, issuedAt: Number.NaN }, 'no time'],
      [{ ...envelope, signature: undefined }, 'unsigned'],
      [{ ...envelope, signature: 'not base64!' }, 'bad signature'],
      [{ ...envelope, signature: toBase64Url(new Uint8Array(63)) }, 'bad signature'],
      [{ ...envelope, signature: toBase64Url(new Uint8Array(64)) }, 'signature not from a trusted gateway'],
    ];
    for (const [env, problem] of cases) expect(envelopeProblem(WORKFLOW, env, [key.publicKey], NOW)).toBe(problem);
  });
});

describe('native signing (node:crypto)', () => {
  it('gives the bytes noble gives, which the workflow verifies, for any key and message', () => {
    for (let i = 0; i < 20; i++) {
      const noble = signingKeyFromSeed(newSigningSeed());
      const native = withNativeSigning(noble);
      const env = { ...unsigned, updateId: `u-${i}`, body: { n: i, text: 'x'.repeat(i * 37) } };
      const signed = signEnvelope(native, WORKFLOW, env);
      expect(signed.signature).toBe(signEnvelope(noble, WORKFLOW, env).signature);
      expect(envelopeProblem(WORKFLOW, signed, [noble.publicKey], NOW)).toBeNull();
      expect(signDependencyNews(native, WORKFLOW, { storyId: 's', verified: true, seq: i })).toEqual(
        signDependencyNews(noble, WORKFLOW, { storyId: 's', verified: true, seq: i }),
      );
    }
  });
});

describe("the workflow's verifier (a key's point and table kept)", () => {
  const L = ed25519.Point.Fn.ORDER;
  const le32 = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  it("answers as noble's ed25519.verify does, for good, forged and malformed signatures", () => {
    const keys = Array.from({ length: 3 }, () => signingKeyFromSeed(newSigningSeed()));
    const publicKeys = keys.map((k) => fromBase64Url(k.publicKey)!);
    // A small-order key (the identity point) and one that does not decode: both never verify.
    publicKeys.push(ed25519.Point.ZERO.toBytes(), new Uint8Array(32).fill(0xff));
    let cases = 0;
    for (let i = 0; i < 6; i++) {
      const message = new TextEncoder().encode(`message ${i} ${'y'.repeat(i * 11)}`);
      const signature = ed25519.sign(message, keys[i % 3].secretKey);
      const s = signature.slice(32);
      const variants = [
        signature,
        Uint8Array.from(signature, (b, j) => (j === i % 64 ? b ^ 1 : b)),
        new Uint8Array([...signature.slice(0, 32), ...le32(BigInt('0x' + toHex(s.slice().reverse())) + L)]),
        new Uint8Array([...new Uint8Array(32).fill(0xff), ...s]),
        signature.slice(0, 63),
        new Uint8Array(64),
      ];
      for (const publicKey of publicKeys) {
        for (const sig of variants) {
          for (const msg of [message, message.slice(1)]) {
            let expected: boolean;
            try {
              expected = ed25519.verify(sig, msg, publicKey);
            } catch {
              expected = false;
            }
            let got: boolean;
            try {
              got = keyTableVerify(sig, msg, publicKey);
            } catch {
              got = false;
            }
            expect(got).toBe(expected);
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(6 * 5 * 6 * 2);
  });
});

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

describe('dependency news', () => {
  const DEPENDENT = 'story/t1/p1/2.1';
  const news = signDependencyNews(key, DEPENDENT, { storyId: 's-1', verified: true, seq: 3 });

  it('counts only when signed by a trusted key for this dependent', () => {
    expect(dependencyNewsProblem(DEPENDENT, news, [key.publicKey])).toBeNull();
    expect(dependencyNewsProblem(DEPENDENT, news, [other.publicKey])).not.toBeNull();
    expect(dependencyNewsProblem('story/t1/p1/2.2', news, [key.publicKey])).not.toBeNull();
  });

  it('cannot be flipped from rejected to verified or moved to another sequence', () => {
    expect(dependencyNewsProblem(DEPENDENT, { ...news, verified: false }, [key.publicKey])).not.toBeNull();
    expect(dependencyNewsProblem(DEPENDENT, { ...news, seq: 4 }, [key.publicKey])).not.toBeNull();
    expect(dependencyNewsProblem(DEPENDENT, { ...news, storyId: 's-2' }, [key.publicKey])).not.toBeNull();
  });
});

describe('encodings', () => {
  it('base64url round-trips every length and refuses foreign alphabets', () => {
    for (let n = 0; n < 70; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      const text = toBase64Url(bytes);
      expect(text).toBe(Buffer.from(bytes).toString('base64url'));
      expect(fromBase64Url(text)).toEqual(bytes);
    }
    expect(fromBase64Url('ab+/')).toBeNull();
    expect(fromBase64Url('abcde')).toBeNull();
  });

  it('canonical JSON sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: { d: 1, c: [{ z: 1, y: 2 }] }, a: undefined, e: null })).toBe(
      '{"b":{"c":[{"y":2,"z":1}],"d":1},"e":null}',
    );
    expect(bodyDigest({ x: 1, y: 2 })).toBe(bodyDigest({ y: 2, x: 1 }));
    expect(bodyDigest(undefined)).toBe(bodyDigest({}));
  });

  it('a signing key is 32 bytes of base64url', () => {
    expect(() => signingKeyFromSeed('short')).toThrow(/32 bytes/);
    expect(signingKeyFromSeed(toBase64Url(new Uint8Array(32))).publicKey).toHaveLength(43);
  });
});

describe('a ring of several keys', () => {
  it('accepts an envelope signed by any of its keys, in any order, and no other', () => {
    const ring = [other, key, signingKeyFromSeed(newSigningSeed())];
    const trusted = ring.map((k) => k.publicKey);
    const signed = (k: typeof key, updateId: string) =>
      signEnvelope(k, WORKFLOW, {
        updateId,
        action: 'claim',
        actor: { tenantId: 't1', agentId: 'a1', role: 'agent' },
        body: {},
        issuedAt: NOW,
      });
    // The last signer is tried first next time: the answer must not depend on that order.
    for (const [i, k] of [ring[2], ring[0], ring[2], ring[1], ring[1], ring[0]].entries()) {
      expect(envelopeProblem(WORKFLOW, signed(k, `u${i}`), trusted, NOW)).toBeNull();
    }
    const stranger = signingKeyFromSeed(newSigningSeed());
    expect(envelopeProblem(WORKFLOW, signed(stranger, 'u9'), trusted, NOW)).toBe(
      'signature not from a trusted gateway',
    );
    // A key the last envelope was signed by, once retired from the ring, is refused.
    expect(envelopeProblem(WORKFLOW, signed(ring[0], 'u10'), trusted.slice(1), NOW)).toBe(
      'signature not from a trusted gateway',
    );
  });
});
