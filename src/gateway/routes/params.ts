import { z } from 'zod';

export const Uuid = z.uuid();

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

export function encodeCursor(parts: Record<string, string>): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

export function decodeCursor<T extends z.ZodType>(
  schema: T,
  cursor: string | undefined,
): z.infer<T> | undefined | null {
  if (cursor === undefined) return undefined;
  try {
    const result = schema.safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

/** Runs `find` with the id when it is a UUID; anything else is simply not found. */
export async function withUuid<T>(id: unknown, find: (id: string) => Promise<T | null>): Promise<T | null> {
  return typeof id === 'string' && Uuid.safeParse(id).success ? find(id) : null;
}
