/**
 * How many custody violations (rejected attempts whose code is a violation) a story has seen, as
 * the gateway tells the story's workflow. Signed like dependency news with the gateway's key, so a
 * Temporal client cannot set a story's count. The count is the total so far, never a delta: a
 * lost or repeated signal changes nothing, and the workflow keeps the highest count it heard.
 * Pure JavaScript (noble): runs inside the workflow sandbox.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromBase64Url, signWith, toBase64Url, type SigningKey } from './identity.js';

export interface ViolationNews {
  count: number;
  signature: string;
}

function violationNewsMessage(workflowId: string, count: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(['custody-violation-news-v1', workflowId, String(count)]));
}

export function signViolationNews(key: SigningKey, workflowId: string, count: number): ViolationNews {
  return { count, signature: toBase64Url(signWith(key, violationNewsMessage(workflowId, count))) };
}

/** The count, when the news is well formed and signed by one of the trusted keys; null otherwise. Never throws. */
export function trustedViolationCount(
  workflowId: string,
  news: unknown,
  trustedPublicKeys: readonly string[],
): number | null {
  if (typeof news !== 'object' || news === null) return null;
  const { count, signature } = news as Partial<ViolationNews>;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || typeof signature !== 'string')
    return null;
  const sig = fromBase64Url(signature);
  if (!sig || sig.length !== 64) return null;
  const message = violationNewsMessage(workflowId, count);
  for (const key of trustedPublicKeys) {
    const publicKey = fromBase64Url(key);
    if (!publicKey || publicKey.length !== 32) continue;
    try {
      if (ed25519.verify(sig, message, publicKey)) return count;
    } catch {
      // A malformed signature is just not a valid one.
    }
  }
  return null;
}
