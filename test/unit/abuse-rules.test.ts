/** Pure pieces of the abuse limits: rejected-body summaries, "not blank", sealed cursors. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { canonicalJson } from '../../src/custody/identity.js';
import { summariseRejectedBody } from '../../src/custody/rejected-body.js';
import { checkMeaningfulText, lacksLetterOrDigit } from '../../src/custody/rules.js';
import { decodeCursor, encodeCursor, notBlank, setCursorSecret } from '../../src/gateway/routes/params.js';

describe('rejected body summary', () => {
  it('keeps the digest and length of the whole canonical body and its first 1 KiB', () => {
    const body = { b: 'x'.repeat(5000), a: 1 };
    const text = canonicalJson(body);
    const s = summariseRejectedBody(body);
    expect(s.digest).toBe(`sha256:${createHash('sha256').update(text).digest('hex')}`);
    expect(s.length).toBe(Buffer.byteLength(text));
    expect(s.head).toBe(text.slice(0, 1024));
    expect(s.truncated).toBe(true);
  });

  it('keeps a small body whole and never splits a character', () => {
    expect(summariseRejectedBody({ reason: 'no' })).toMatchObject({ head: '{"reason":"no"}', truncated: false });
    expect(summariseRejectedBody(undefined).head).toBe('{}');
    for (const ch of ['é', '€', '😀']) {
      const s = summariseRejectedBody({ t: ch.repeat(1000) });
      expect(Buffer.byteLength(s.head)).toBeLessThanOrEqual(1024);
      expect(Buffer.byteLength(s.head)).toBeGreaterThan(1024 - 4);
      expect(s.head).not.toContain('\ufffd');
    }
  });
});

describe('not blank', () => {
  it('means at least one letter or digit, in any script', () => {
    for (const blank of [
      undefined,
      '',
      ' ',
      '\u200b',
      '\u200b\u200c\u2060',
      '--',
      '...',
      '_',
      '\u00a0',
      '\u3000',
      '\t\n',
    ])
      expect(lacksLetterOrDigit(blank), JSON.stringify(blank)).toBe(true);
    for (const text of ['a', ' é ', '٣', '漢', '\u200bx', '1']) expect(lacksLetterOrDigit(text), text).toBe(false);
  });

  it('refuses blank reasons, review types and summaries that are given; leaves absence to the rules', () => {
    expect(checkMeaningfulText('reject', { reason: '\u200b' })?.code).toBe('reason_required');
    expect(checkMeaningfulText('force-unclaim', { reason: '--' })?.code).toBe('reason_required');
    expect(checkMeaningfulText('backfill', { reason: '\u200b' })?.code).toBe('reason_required');
    expect(checkMeaningfulText('backfill', { reason: 'shipped before custody' })).toBeNull();
    expect(checkMeaningfulText('review-complete', { review_type: '\u200b', summary: 'ok' })?.code).toBe(
      'review_required',
    );
    expect(checkMeaningfulText('review-complete', { review_type: 'std', summary: ' ' })?.code).toBe('review_required');
    expect(checkMeaningfulText('reject', { reason: 'late' })).toBeNull();
    expect(checkMeaningfulText('reject', {})).toBeNull();
    expect(checkMeaningfulText('claim', { reason: '\u200b' })).toBeNull();
    expect(checkMeaningfulText('reject', null)).toBeNull();
  });

  it('is what the body schemas check for names and titles', () => {
    expect(notBlank(10).safeParse('\u200b').success).toBe(false);
    expect(notBlank(10, true).parse('  x  ')).toBe('x');
    expect(notBlank(3).safeParse('abcd').success).toBe(false);
  });
});

describe('cursors', () => {
  const schema = z.strictObject({ a: z.string() });
  it('round-trip sealed, and hide what they hold', () => {
    setCursorSecret(new Uint8Array(32).fill(7));
    const cursor = encodeCursor({ a: '12345' });
    expect(cursor).not.toContain('12345');
    expect(() => JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))).toThrow();
    expect(decodeCursor(schema, cursor)).toEqual({ a: '12345' });
    expect(encodeCursor({ a: '12345' })).not.toBe(cursor);
  });

  it('refuse edited, truncated, foreign-key and plaintext cursors', () => {
    setCursorSecret(new Uint8Array(32).fill(7));
    const cursor = encodeCursor({ a: '1' });
    const flipped = Buffer.from(cursor, 'base64url');
    flipped[flipped.length - 1] ^= 1;
    for (const bad of [
      flipped.toString('base64url'),
      cursor.slice(0, -4),
      '',
      Buffer.from('{"a":"1"}').toString('base64url'),
    ])
      expect(decodeCursor(schema, bad)).toBeNull();
    setCursorSecret(new Uint8Array(32).fill(8));
    expect(decodeCursor(schema, cursor)).toBeNull();
    expect(decodeCursor(schema, undefined)).toBeUndefined();
  });
});
