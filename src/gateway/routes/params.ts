import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';

export const Uuid = z.uuid();

/** Text that must not be blank: at most `max` characters, at least one letter or digit ("\u200b" is blank). */
export const notBlank = (max: number, trim = false) =>
  (trim ? z.string().trim() : z.string()).max(max).regex(/[\p{L}\p{N}]/u, 'must hold at least one letter or digit');

/** `limit` and `cursor` for lists: limit 1..500, default 50. */
export const Page = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
};

/** Lists in natural order also take loopctl's `offset` (a cursor is an offset too, opaque). */
export const OffsetPage = {
  ...Page,
  offset: z.coerce.number().int().min(0).max(10_000_000).optional(),
};

const OffsetCursor = z.strictObject({ o: z.string().regex(/^\d{1,9}$/) });

/** Where a page starts: the cursor's offset, else `offset`, else 0; null when the cursor is not valid. */
export function startOf(q: { cursor?: string | undefined; offset?: number | undefined }): number | null {
  const after = decodeCursor(OffsetCursor, q.cursor);
  if (after === null) return null;
  return after ? Number(after.o) : (q.offset ?? 0);
}

/** `meta` of a page that starts at `start`: the next cursor when more remain, and the total. */
export function pageMeta(limit: number, start: number, returned: number, total: number) {
  const next = start + returned < total && returned > 0 ? encodeCursor({ o: String(start + returned) }) : null;
  return { limit, offset: start, next_cursor: next, total_count: total };
}

/**
 * Cursors are opaque: sealed (AES-256-GCM) under a key derived from the gateway's signing key, so
 * the positions inside them (sequences shared by every tenant) tell a tenant nothing about the
 * others' volume, and a forged or edited cursor is simply not valid. Until the gateway sets it,
 * a random key (cursors then last as long as the process).
 */
let cursorKey = randomBytes(32);

export function setCursorSecret(secret: Uint8Array): void {
  cursorKey = createHash('sha256').update('custody list cursors v1\0').update(secret).digest();
}

export function encodeCursor(parts: Record<string, string>): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', cursorKey, iv);
  const data = Buffer.concat([cipher.update(JSON.stringify(parts), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64url');
}

function openCursor(cursor: string): unknown {
  const raw = Buffer.from(cursor, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', cursorKey, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8'));
}

export function decodeCursor<T extends z.ZodType>(
  schema: T,
  cursor: string | undefined,
): z.infer<T> | undefined | null {
  if (cursor === undefined) return undefined;
  try {
    if (cursor.length < 40) return null;
    const result = schema.safeParse(openCursor(cursor));
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

/** Runs `find` with the id when it is a UUID; anything else is simply not found. */
export async function withUuid<T>(id: unknown, find: (id: string) => Promise<T | null>): Promise<T | null> {
  return typeof id === 'string' && Uuid.safeParse(id).success ? find(id) : null;
}
