/**
 * The trust boundary between the gateway and the story workflow. The gateway derives the caller's
 * identity from its API key and signs it, together with the workflow, update id, action, body and
 * time, with an Ed25519 key only the gateway holds. The workflow accepts an action only with a
 * signature from a key it was started with, so a Temporal client that can reach the namespace
 * still cannot act as an agent. Pure JavaScript (noble): runs inside the workflow sandbox.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, concatBytes } from '@noble/curves/utils.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { Action } from './actions.js';
import type { SignedActor } from './actor.js';

// The workflow bundle shares this module (and noble) among the workflows of a thread
// (`preloadModules`, ../temporal/workflow-bundle.ts): noble's table for the base point, 8-bit
// windows, about 1 MB, is built once per thread, not once per cached workflow.
ed25519.Point.BASE.precompute(8);

/** How far an envelope's time may be from the workflow's clock: a captured one expires. */
export const ENVELOPE_MAX_AGE_MS = 5 * 60_000;

export interface ActionEnvelope {
  /** Also the Temporal update id: one id, one application. */
  updateId: string;
  action: Action | 'heartbeat';
  actor: SignedActor;
  body: unknown;
  /** Milliseconds since the epoch, set by the gateway. */
  issuedAt: number;
  /** base64url Ed25519 signature over `envelopeMessage`. */
  signature: string;
}

/** JSON with sorted keys, so both sides hash the same bytes whatever the key order in transit. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function bodyDigest(body: unknown): string {
  return bytesToHex(sha256(new TextEncoder().encode(canonicalJson(body ?? {}))));
}

function envelopeMessage(workflowId: string, env: Omit<ActionEnvelope, 'signature'>): Uint8Array {
  const fields = [
    'custody-envelope-v1',
    workflowId,
    env.updateId,
    env.action,
    env.actor.tenantId,
    env.actor.agentId,
    env.actor.role,
    String(env.issuedAt),
    bodyDigest(env.body),
    // The agent's display name (what the Temporal UI shows), signed when given; absent, the
    // message is the one envelopes had before names (a shorter array, so never ambiguous).
    ...(typeof env.actor.name === 'string' ? [env.actor.name] : []),
    // The agent's labels (what review policies require), signed when given: an object, so never
    // taken for a name; absent, the message is the one envelopes had before labels.
    ...(Array.isArray(env.actor.labels) ? [{ labels: env.actor.labels }] : []),
  ];
  return new TextEncoder().encode(JSON.stringify(fields));
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    if (i + 1 < bytes.length) out += B64[(n >> 6) & 63];
    if (i + 2 < bytes.length) out += B64[n & 63];
  }
  return out;
}

export function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of text) {
    buffer = (buffer << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((buffer >> bits) & 0xff);
    }
  }
  return new Uint8Array(bytes);
}

export interface SigningKey {
  secretKey: Uint8Array;
  /** base64url public key: what the workflow is started with. */
  publicKey: string;
  /** The key's name in the key ring (CUSTODY_SIGNING_KEYS); `default` for a lone CUSTODY_SIGNING_KEY. */
  keyId: string;
  /**
   * Signs with this key natively (node:crypto, ./native-sign.ts), where the process has it: the
   * same signature as noble's (Ed25519 is deterministic) at a tenth of the cost. Absent, noble signs.
   */
  sign?: (message: Uint8Array) => Uint8Array;
}

export function signWith(key: SigningKey, message: Uint8Array): Uint8Array {
  return key.sign ? key.sign(message) : ed25519.sign(message, key.secretKey);
}

export function signingKeyFromSeed(seedBase64Url: string, keyId = 'default'): SigningKey {
  const secretKey = fromBase64Url(seedBase64Url);
  if (!secretKey || secretKey.length !== 32) throw new Error('a signing key is 32 bytes in base64url');
  return { secretKey, publicKey: toBase64Url(ed25519.getPublicKey(secretKey)), keyId };
}

/**
 * The trusted path's keys: the current one signs, and every one (the current and earlier ones
 * not yet retired) is accepted. Rotation: add a new key in front, and once every story has
 * heard of it, drop the old one.
 */
export interface KeyRing {
  current: SigningKey;
  /** Current first. */
  keys: readonly SigningKey[];
}

export function keyRingOf(...keys: SigningKey[]): KeyRing {
  if (keys.length === 0) throw new Error('a key ring holds at least one key');
  return { current: keys[0], keys };
}

/** The base64url public keys a story or the worker accepts. */
export function acceptedKeys(ring: KeyRing): string[] {
  return ring.keys.map((k) => k.publicKey);
}

/** `id:seed,id:seed,...` (current first) as CUSTODY_SIGNING_KEYS holds it. */
export function parseKeyRing(text: string): KeyRing {
  const entries = text
    .split(/[\s,]+/)
    .map((e) => e.trim())
    .filter(Boolean);
  const keys = entries.map((entry) => {
    const match = /^([A-Za-z0-9._-]{1,64}):([A-Za-z0-9_-]{43})$/.exec(entry);
    if (!match) throw new Error('each key is id:seed, the seed 32 bytes in base64url');
    return signingKeyFromSeed(match[2], match[1]);
  });
  if (new Set(keys.map((k) => k.keyId)).size !== keys.length) throw new Error('key ids must be distinct');
  return keyRingOf(...keys);
}

export function newSigningSeed(): string {
  return toBase64Url(ed25519.utils.randomSecretKey());
}

export function signEnvelope(
  key: SigningKey,
  workflowId: string,
  unsigned: Omit<ActionEnvelope, 'signature'>,
): ActionEnvelope {
  const signature = toBase64Url(signWith(key, envelopeMessage(workflowId, unsigned)));
  return { ...unsigned, signature };
}

/**
 * Checks an Ed25519 signature: noble's (pure JavaScript, what the workflow sandbox can run) unless
 * the caller brings a faster one (the worker uses node:crypto's).
 */
export type SignatureVerifier = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;

type Point = InstanceType<typeof ed25519.Point>;

/**
 * A trusted key as a curve point with precomputed multiples (4-bit windows, 64 KB), and its
 * encoding as noble re-encodes it. Verifying multiplies the key's point by a hash each time:
 * without the table (noble's `verify` decodes the key afresh) that is a plain double-and-add,
 * most of a verification's cost. The workflow bundle loads this module once per workflow thread
 * (`preloadModules`, ../temporal/workflow-bundle.ts), so a key's table is built once, not per story.
 */
interface KeyPoint {
  point: Point;
  encoded: Uint8Array;
}
const keyPoints = new WeakMap<Uint8Array, KeyPoint | null>();

function keyPointOf(publicKey: Uint8Array): KeyPoint | null {
  let found = keyPoints.get(publicKey);
  if (found === undefined) {
    try {
      const point = ed25519.Point.fromBytes(publicKey, true);
      point.precompute(4, false);
      found = { point, encoded: point.toBytes() };
    } catch {
      found = null;
    }
    keyPoints.set(publicKey, found);
  }
  return found;
}

/**
 * noble's `ed25519.verify` (RFC 8032 with ZIP 215's decoding, its default) step for step, the
 * key's point taken from the table above: [8][S]B = [8]R + [8][k]A, k = SHA-512(R || A || M) mod L.
 * Same answer for every input (unit-tested against noble's own, forged and malformed ones included).
 */
function verifyWithKeyPoint(signature: Uint8Array, message: Uint8Array, key: KeyPoint): boolean {
  if (signature.length !== 64) return false;
  const { Point } = ed25519;
  let R: Point, SB: Point;
  try {
    R = Point.fromBytes(signature.subarray(0, 32), true);
    SB = Point.BASE.multiplyUnsafe(bytesToNumberLE(signature.subarray(32, 64)));
  } catch {
    return false;
  }
  const k = Point.Fn.create(bytesToNumberLE(sha512(concatBytes(R.toBytes(), key.encoded, message))));
  return R.add(key.point.multiplyUnsafe(k)).subtract(SB).clearCofactor().is0();
}

/**
 * The workflow's verifier (pure JavaScript). Tables are kept per key array: the keys come from
 * `decodedKey` below, decoded once per ring key, so each key gets one table.
 */
export const keyTableVerify: SignatureVerifier = (signature, message, publicKey) => {
  const key = keyPointOf(publicKey);
  return key ? verifyWithKeyPoint(signature, message, key) : ed25519.verify(signature, message, publicKey);
};

/** Why an envelope is not to be trusted, or null when it is. Never throws. */
export function envelopeProblem(
  workflowId: string,
  env: unknown,
  trustedPublicKeys: readonly string[],
  nowMs: number,
  verify: SignatureVerifier = keyTableVerify,
): string | null {
  if (typeof env !== 'object' || env === null) return 'no envelope';
  const e = env as Partial<ActionEnvelope>;
  if (typeof e.updateId !== 'string' || e.updateId.length === 0 || e.updateId.length > 200) return 'bad update id';
  if (typeof e.action !== 'string') return 'no action';
  if (typeof e.actor !== 'object' || e.actor === null) return 'no actor';
  const actor = e.actor as Partial<SignedActor>;
  if (typeof actor.agentId !== 'string' || typeof actor.tenantId !== 'string' || typeof actor.role !== 'string') {
    return 'bad actor';
  }
  if (actor.name !== undefined && typeof actor.name !== 'string') return 'bad actor';
  if (typeof e.issuedAt !== 'number' || !Number.isFinite(e.issuedAt)) return 'no time';
  if (Math.abs(nowMs - e.issuedAt) > ENVELOPE_MAX_AGE_MS) return 'expired';
  if (typeof e.signature !== 'string') return 'unsigned';
  const signature = fromBase64Url(e.signature);
  if (!signature || signature.length !== 64) return 'bad signature';
  let message: Uint8Array;
  try {
    message = envelopeMessage(workflowId, e as ActionEnvelope);
  } catch {
    return 'unreadable envelope';
  }
  return signedByOneOf(signature, message, trustedPublicKeys, verify) ? null : 'signature not from a trusted gateway';
}

/**
 * The key that verified the latest signature, tried first next time: nearly every envelope is
 * signed with the ring's current key, so a ring of several keys still costs one verification,
 * not one per key. Only the order of the attempts depends on it, never the answer.
 */
let lastSigner: string | undefined;
/** Decoded public keys (a ring has a few; the bound keeps a flood of others harmless). */
const decodedKeys = new Map<string, Uint8Array | null>();

function decodedKey(key: string): Uint8Array | null {
  let publicKey = decodedKeys.get(key);
  if (publicKey === undefined) {
    const bytes = fromBase64Url(key);
    publicKey = bytes && bytes.length === 32 ? bytes : null;
    if (decodedKeys.size > 64) decodedKeys.clear();
    decodedKeys.set(key, publicKey);
  }
  return publicKey;
}

function signedByOneOf(
  signature: Uint8Array,
  message: Uint8Array,
  trustedPublicKeys: readonly string[],
  verify: SignatureVerifier = keyTableVerify,
): boolean {
  const ordered =
    lastSigner !== undefined && trustedPublicKeys.includes(lastSigner)
      ? [lastSigner, ...trustedPublicKeys.filter((k) => k !== lastSigner)]
      : trustedPublicKeys;
  for (const key of ordered) {
    const publicKey = decodedKey(key);
    if (!publicKey) continue;
    try {
      if (verify(signature, message, publicKey)) {
        lastSigner = key;
        return true;
      }
    } catch {
      // A malformed signature is just not a valid one.
    }
  }
  return false;
}

/**
 * News that a dependency's status changed, for one dependent story. Sent by the trusted path (the
 * worker after a verify or a reject, the gateway when a dependency is added), signed with the same
 * key as action envelopes, so a Temporal client cannot unblock a story by signalling it. No clock:
 * `seq` only grows, so replayed old news is ignored by the dependent anyway.
 */
export interface DependencyNewsFields {
  storyId: string;
  verified: boolean;
  seq: number;
}

function dependencyNewsMessage(dependentWorkflowId: string, news: DependencyNewsFields): Uint8Array {
  const fields = [
    'custody-dependency-news-v1',
    dependentWorkflowId,
    news.storyId,
    String(news.verified),
    String(news.seq),
  ];
  return new TextEncoder().encode(JSON.stringify(fields));
}

export function signDependencyNews(
  key: SigningKey,
  dependentWorkflowId: string,
  news: DependencyNewsFields,
): DependencyNewsFields & { signature: string } {
  const fields = { storyId: news.storyId, verified: news.verified, seq: news.seq };
  return {
    ...fields,
    signature: toBase64Url(signWith(key, dependencyNewsMessage(dependentWorkflowId, fields))),
  };
}

/** Why dependency news is not to be trusted, or null when it is. Never throws. */
export function dependencyNewsProblem(
  dependentWorkflowId: string,
  news: unknown,
  trustedPublicKeys: readonly string[],
): string | null {
  if (typeof news !== 'object' || news === null) return 'no news';
  const n = news as Partial<DependencyNewsFields & { signature: string }>;
  if (
    typeof n.storyId !== 'string' ||
    typeof n.verified !== 'boolean' ||
    typeof n.seq !== 'number' ||
    !Number.isSafeInteger(n.seq)
  )
    return 'malformed';
  if (typeof n.signature !== 'string') return 'unsigned';
  const signature = fromBase64Url(n.signature);
  if (!signature || signature.length !== 64) return 'bad signature';
  const message = dependencyNewsMessage(dependentWorkflowId, { storyId: n.storyId, verified: n.verified, seq: n.seq });
  return signedByOneOf(signature, message, trustedPublicKeys) ? null : 'signature not from a trusted gateway';
}

/**
 * News of the key ring, for one story: the public keys it is to accept from now on. Signed with
 * every key of the new ring, and taken only if one of those is a key the story already trusts
 * and it is newer than the last news taken: a Temporal client cannot make a story trust its key.
 */
export interface KeyRingNews {
  keys: string[];
  /** Milliseconds since the epoch; older news than the story's latest is ignored. */
  issuedAt: number;
  signatures: string[];
}

const MAX_RING_KEYS = 16;

function keyRingMessage(workflowId: string, keys: readonly string[], issuedAt: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(['custody-key-ring-v1', workflowId, String(issuedAt), ...keys]));
}

export function signKeyRingNews(ring: KeyRing, workflowId: string, issuedAt: number): KeyRingNews {
  const keys = acceptedKeys(ring);
  const message = keyRingMessage(workflowId, keys, issuedAt);
  return { keys, issuedAt, signatures: ring.keys.map((k) => toBase64Url(signWith(k, message))) };
}

/** Why key ring news is not to be taken, or null when it is. Never throws. */
export function keyRingNewsProblem(
  workflowId: string,
  news: unknown,
  trustedPublicKeys: readonly string[],
  lastIssuedAt: number,
): string | null {
  if (typeof news !== 'object' || news === null) return 'no news';
  const n = news as Partial<KeyRingNews>;
  if (!Array.isArray(n.keys) || n.keys.length === 0 || n.keys.length > MAX_RING_KEYS) return 'bad keys';
  if (!n.keys.every((k) => typeof k === 'string' && fromBase64Url(k)?.length === 32)) return 'bad keys';
  if (typeof n.issuedAt !== 'number' || !Number.isSafeInteger(n.issuedAt)) return 'no time';
  if (n.issuedAt <= lastIssuedAt) return 'stale';
  if (!Array.isArray(n.signatures) || n.signatures.length > MAX_RING_KEYS) return 'unsigned';
  const message = keyRingMessage(workflowId, n.keys, n.issuedAt);
  for (const text of n.signatures) {
    const signature = typeof text === 'string' ? fromBase64Url(text) : null;
    if (signature?.length === 64 && signedByOneOf(signature, message, trustedPublicKeys)) return null;
  }
  return 'signature not from a trusted key';
}
