import { z } from 'zod';

export const Uuid = z.uuid();

/** `limit` and `cursor` for lists: limit 1..500, default 50. */
export const Page = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
};

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
