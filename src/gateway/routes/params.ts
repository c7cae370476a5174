import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ApiError, parseOr400 } from '../errors.js';

export const Uuid = z.uuid();

/** Text that must not be blank: at most `max` characters, at least one letter or digit ("\u200b" is blank). */
export const notBlank = (max: number, trim = false) =>
  (trim ? z.string().trim() : z.string()).max(max).regex(/[\p{L}\p{N}]/u, 'must hold at least one letter or digit');

/** `limit` and `cursor` for lists: limit 1..500, default 50. */
export const Page = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
};

/**
 * Lists in natural order also take loopctl's `offset`, and its `page`/`page_size` (page_size is
 * the limit, page counts from 1). A cursor is a keyset position (the last row's sort key), so a
 * page walk neither repeats nor skips a row when stories are added or withdrawn meanwhile;
 * `offset` and `page` count rows as they stand at each request, as loopctl's do.
 */
export const OffsetPage = {
  ...Page,
  offset: z.coerce.number().int().min(0).max(10_000_000).optional(),
  page: z.coerce.number().int().min(1).max(1_000_000).optional(),
  page_size: z.coerce.number().int().min(1).max(500).optional(),
};

/** Where a story list resumes: after the row with this sort key (epic number, story number, id). */
export interface StoryKeyset {
  epicNumber: number;
  number: string;
  id: string;
}

const OffsetCursor = z.strictObject({ o: z.string().regex(/^\d{1,9}$/) });
const KeysetCursor = z.strictObject({
  e: z.number().int().min(0).max(1_000_000),
  n: z.string().min(1).max(64),
  i: z.uuid(),
});

export interface PageStart {
  limit: number;
  /** Rows to skip (offset, page or an offset cursor); 0 when resuming after a keyset. */
  offset: number;
  after?: StoryKeyset;
  /** loopctl's page numbering, echoed in `meta` when the caller paged by `page`/`page_size`. */
  page?: number;
}

/** Where a page starts and how long it is; 400 invalid_query when the cursor is not valid. */
export function startOf(q: {
  limit: number;
  cursor?: string | undefined;
  offset?: number | undefined;
  page?: number | undefined;
  page_size?: number | undefined;
}): PageStart {
  const limit = q.page_size ?? q.limit;
  if (q.cursor !== undefined) {
    const keyset = decodeCursor(KeysetCursor, q.cursor);
    if (keyset) return { limit, offset: 0, after: { epicNumber: keyset.e, number: keyset.n, id: keyset.i } };
    const legacy = decodeCursor(OffsetCursor, q.cursor);
    if (!legacy) throw invalidCursor();
    return { limit, offset: Number(legacy.o) };
  }
  if (q.page !== undefined) return { limit, offset: (q.page - 1) * limit, page: q.page };
  return { limit, offset: q.offset ?? 0 };
}

/**
 * `meta` of a page of stories: the next cursor (the last row's sort key) when more remain, the
 * total, and loopctl's offset or page numbering as the caller asked.
 */
export function pageMeta(
  start: PageStart,
  rows: { id: string; number: string; epic_number: number }[],
  more: boolean,
  total: number,
) {
  const last = rows[rows.length - 1];
  const next = more && last ? encodeCursor({ e: last.epic_number, n: last.number, i: last.id }) : null;
  return {
    limit: start.limit,
    next_cursor: next,
    total_count: total,
    ...(start.after ? {} : { offset: start.offset }),
    ...(start.page !== undefined
      ? { page: start.page, page_size: start.limit, total_pages: Math.ceil(total / start.limit) }
      : {}),
  };
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

export function encodeCursor(parts: Record<string, string | number | (string | number)[]>): string {
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

/**
 * Short lists held whole in memory (a tenant's projects, agents, a project's epics: each bounded by
 * a quota): every row unless the caller pages, with `limit`/`offset`, loopctl's `page`/`page_size`,
 * or a cursor holding the last row's sort key (so rows added meanwhile neither repeat nor skip).
 */
export const WholeListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).optional(),
  cursor: z.string().max(200).optional(),
  offset: z.coerce.number().int().min(0).max(10_000_000).optional(),
  page: z.coerce.number().int().min(1).max(1_000_000).optional(),
  page_size: z.coerce.number().int().min(1).max(500).optional(),
});

const SortKeyCursor = z.strictObject({ k: z.array(z.union([z.string().max(100), z.number()])).max(4) });

function compareKeys(a: readonly (string | number)[], b: readonly (string | number)[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return a.length - b.length;
}

/** A cursor that was not sealed by this gateway, was edited, or belongs to another list. */
export const invalidCursor = () => new ApiError('invalid_query', 'The cursor is not valid.');

/**
 * The reply to a short list: the page `query` asks for (a WholeListQuery, checked before `load`
 * runs) of the rows `load` gives in `keyOf` order, each shown by `json`.
 */
export async function wholeListReply<T>(
  query: unknown,
  load: () => Promise<T[]>,
  keyOf: (row: T) => (string | number)[],
  json: (row: T) => unknown,
): Promise<{ data: unknown[]; meta: Record<string, unknown> }> {
  const q = parseOr400(WholeListQuery, query, 'invalid_query');
  const page = pageOfRows(await load(), q, keyOf);
  if (!page) throw invalidCursor();
  return { data: page.data.map(json), meta: page.meta };
}

/** A page of `rows` (already in `keyOf` order) and its `meta`; null when the cursor is not valid. */
function pageOfRows<T>(
  rows: T[],
  q: z.infer<typeof WholeListQuery>,
  keyOf: (row: T) => (string | number)[],
): { data: T[]; meta: Record<string, unknown> } | null {
  const asked = Object.values(q).some((v) => v !== undefined);
  if (!asked) return { data: rows, meta: { limit: rows.length, next_cursor: null, total_count: rows.length } };
  const limit = q.page_size ?? q.limit ?? 50;
  let start = q.page !== undefined ? (q.page - 1) * limit : (q.offset ?? 0);
  if (q.cursor !== undefined) {
    const after = decodeCursor(SortKeyCursor, q.cursor);
    if (!after) return null;
    start = rows.findIndex((r) => compareKeys(keyOf(r), after.k) > 0);
    if (start < 0) start = rows.length;
  }
  const data = rows.slice(start, start + limit);
  const last = data[data.length - 1];
  const more = start + data.length < rows.length;
  return {
    data,
    meta: {
      limit,
      next_cursor: more && last !== undefined ? encodeCursor({ k: keyOf(last) }) : null,
      total_count: rows.length,
      ...(q.cursor === undefined ? { offset: start } : {}),
      ...(q.page !== undefined ? { page: q.page, page_size: limit, total_pages: Math.ceil(rows.length / limit) } : {}),
    },
  };
}
