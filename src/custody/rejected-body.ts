/**
 * What the audit trail keeps of a rejected attempt's body: its SHA-256 digest, its length and its
 * first 1 KiB. Enough to recognise the attempt and to prove which body it was, while a stream of
 * rejected 256 KB bodies grows the append-only trail by about a kilobyte each.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './identity.js';

export const REJECTED_BODY_HEAD_BYTES = 1024;

export interface RejectedBodySummary {
  /** `sha256:<hex>` of the body's canonical JSON (keys sorted), as the workflow judged it. */
  digest: string;
  /** Bytes of that canonical JSON (UTF-8). */
  length: number;
  /** Its first 1 KiB, cut on a character boundary. */
  head: string;
  truncated: boolean;
}

export function summariseRejectedBody(body: unknown): RejectedBodySummary {
  const text = canonicalJson(body ?? {});
  const bytes = Buffer.from(text, 'utf8');
  let head = text;
  if (bytes.length > REJECTED_BODY_HEAD_BYTES) {
    // Back off to the start of a UTF-8 sequence so no character is split.
    let end = REJECTED_BODY_HEAD_BYTES;
    while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
    head = bytes.subarray(0, end).toString('utf8');
  }
  return {
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    length: bytes.length,
    head,
    truncated: bytes.length > REJECTED_BODY_HEAD_BYTES,
  };
}
