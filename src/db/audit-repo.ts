/** The audit trail read back: pages of it, and its hash chain checked (the rows are written by ./custody-store.ts and ./change-audit.ts). */
import type pg from 'pg';

export interface AuditRow {
  id: string;
  tenant_id: string;
  /** Null for events of no story (API keys). */
  project_id: string | null;
  story_id: string | null;
  workflow_id: string | null;
  run_id: string | null;
  update_id: string;
  seq: string | null;
  outcome: 'accepted' | 'rejected';
  code: string | null;
  action: string;
  actor_agent_id: string | null;
  actor_role: string | null;
  from_agent_status: string | null;
  from_verified_status: string | null;
  to_agent_status: string | null;
  to_verified_status: string | null;
  iteration: number | null;
  payload: unknown;
  /** A rejected attempt's: the sequence number of the transition it was judged after. */
  judged_seq: string | null;
  occurred_at: Date;
  /** The row's number in its tenant's audit trail (1, 2, 3…): what the API shows as its id. */
  chain_seq: string;
  /** The link of the artifact chain this transition added (a report, review, sign-off or verify). */
  chain_kind?: string | null;
  chain_round?: string | null;
  chain_artifact_key?: string | null;
}

/** Bytes of payload one page of history or audit may carry (one row more than this at most). */
export const AUDIT_PAGE_PAYLOAD_BYTES = 1024 * 1024;

export interface AuditPage {
  rows: AuditRow[];
  /** The tenant's audit sequence number of the last row returned, when more rows follow. */
  nextAfter: string | null;
}

/** What a page of the audit trail is narrowed by, and where it starts. */
interface AuditFilter {
  projectId?: string | undefined;
  storyId?: string | undefined;
  since?: string | undefined;
  afterSeq?: string | undefined;
  limit: number;
}

/**
 * One page of a tenant's audit rows in the order they were written (the tenant's own audit
 * sequence, `chain_seq`), at most `limit` rows and about `AUDIT_PAGE_PAYLOAD_BYTES` of payload:
 * rows are taken while the payload before them stays under the cap, so a page always holds one.
 */
export async function auditTrail(pool: pg.Pool, tenantId: string, f: AuditFilter): Promise<AuditPage> {
  const { rows } = await pool.query<AuditRow & { fetched: string }>(
    `WITH page AS (
       SELECT e.*, octet_length(e.payload::text) AS size,
         sum(octet_length(e.payload::text)) OVER (ORDER BY e.chain_seq) AS running
       FROM audit_events e
       WHERE e.tenant_id = $1 AND ($2::uuid IS NULL OR e.project_id = $2) AND ($3::uuid IS NULL OR e.story_id = $3)
         AND ($4::timestamptz IS NULL OR e.occurred_at >= $4) AND ($5::bigint IS NULL OR e.chain_seq > $5)
       ORDER BY e.chain_seq LIMIT $6
     )
     SELECT p.*, (SELECT count(*) FROM page) AS fetched, r.kind AS chain_kind, r.round AS chain_round,
       r.artifact_key AS chain_artifact_key
     FROM page p LEFT JOIN story_reviews r
       ON p.outcome = 'accepted' AND r.workflow_id = p.workflow_id AND r.update_id = p.update_id
     WHERE p.running - p.size < $7 ORDER BY p.chain_seq`,
    [
      tenantId,
      f.projectId ?? null,
      f.storyId ?? null,
      f.since ?? null,
      f.afterSeq ?? null,
      f.limit + 1,
      AUDIT_PAGE_PAYLOAD_BYTES,
    ],
  );
  return pageOf(rows, f.limit);
}

/**
 * A row's place in its story's history (`e` is the audit row), the order its workflow judged each
 * attempt in. A rejected attempt's row is written by the gateway as soon as it is refused,
 * often before the worker writes the transition it was judged against, so the write order
 * (`chain_seq`) is not the story's order. Each row has a place: a transition its `seq`; a rejected
 * attempt the `judged_seq` of the transition it was judged after; any other row (a creation, an
 * edit, a resume, attempts recorded before `judged_seq` existed) the latest `seq` written before
 * it. Rows go by place, the transition first, then in the order they were written.
 */
export const STORY_PLACE = `coalesce(e.seq, e.judged_seq,
  max(e.seq) OVER (ORDER BY e.chain_seq ROWS UNBOUNDED PRECEDING), 0) AS place, (e.seq IS NULL)::int AS after_transition`;

/**
 * A story's accepted transitions and rejected attempts, in their places (`STORY_PLACE`), a page at a
 * time. A rejected attempt waits until the transition it was judged after is written: listed
 * before it, a reader whose cursor passed the attempt would never be given that transition.
 */
export async function storyHistory(
  pool: pg.Pool,
  tenantId: string,
  storyId: string,
  page: { afterSeq?: string | undefined; limit: number },
): Promise<AuditPage> {
  const { rows } = await pool.query<AuditRow & { fetched: string }>(
    `WITH written AS (
       SELECT coalesce(max(seq), 0) AS top FROM audit_events WHERE tenant_id = $1 AND story_id = $2
     ), placed AS (
       SELECT e.id, e.chain_seq, ${STORY_PLACE}
       FROM audit_events e, written w WHERE e.tenant_id = $1 AND e.story_id = $2
         AND (e.seq IS NOT NULL OR e.judged_seq IS NULL OR e.judged_seq <= w.top)
     ), page AS (
       SELECT e.*, p.place, p.after_transition, octet_length(e.payload::text) AS size,
         sum(octet_length(e.payload::text)) OVER (ORDER BY p.place, p.after_transition, p.chain_seq) AS running
       FROM placed p JOIN audit_events e ON e.id = p.id
       WHERE $3::bigint IS NULL
         OR (p.place, p.after_transition, p.chain_seq) >
            (SELECT c.place, c.after_transition, c.chain_seq FROM placed c WHERE c.chain_seq = $3)
       ORDER BY p.place, p.after_transition, p.chain_seq LIMIT $4
     )
     SELECT p.*, (SELECT count(*) FROM page) AS fetched, r.kind AS chain_kind, r.round AS chain_round,
       r.artifact_key AS chain_artifact_key
     FROM page p LEFT JOIN story_reviews r
       ON p.outcome = 'accepted' AND r.workflow_id = p.workflow_id AND r.update_id = p.update_id
     WHERE p.running - p.size < $5 ORDER BY p.place, p.after_transition, p.chain_seq`,
    [tenantId, storyId, page.afterSeq ?? null, page.limit + 1, AUDIT_PAGE_PAYLOAD_BYTES],
  );
  return pageOf(rows, page.limit);
}

/** The first `limit` rows, and where the next page starts when more were fetched. */
function pageOf(rows: (AuditRow & { fetched: string })[], limit: number): AuditPage {
  const fetched = rows.length > 0 ? Number(rows[0].fetched) : 0;
  const page = rows.slice(0, limit);
  const more = fetched > page.length;
  const last = page[page.length - 1];
  return { rows: page, nextAfter: more && last ? String(last.chain_seq) : null };
}

export interface ChainReport {
  ok: boolean;
  rows_checked: number;
  /** The first row whose link does not hold, if any. */
  first_broken: {
    id: string;
    chain_seq: number;
    reason: 'hash_mismatch' | 'prev_hash_mismatch' | 'missing_row';
  } | null;
  /**
   * The newest link (hex hash). The chain cannot tell that its newest rows were removed: an
   * auditor who records the head and finds a later head that does not extend it can.
   */
  head: { chain_seq: number; hash: string } | null;
}

/** Recomputes the tenant's hash chain in the database and reports the first broken link. */
export async function verifyAuditChain(pool: pg.Pool, tenantId: string): Promise<ChainReport> {
  type Reason = NonNullable<ChainReport['first_broken']>['reason'];
  const { rows } = await pool.query<{
    id: string | null;
    chain_seq: string | null;
    reason: Reason | null;
    total: string;
    head_seq: string | null;
    head_hash: string | null;
  }>(
    `WITH chain AS (
       SELECT e.id, e.chain_seq, e.prev_hash, e.hash,
         sha256(e.prev_hash || convert_to(audit_canonical(e), 'UTF8')) AS recomputed,
         coalesce(lag(e.hash) OVER w, '\\x'::bytea) AS previous,
         coalesce(lag(e.chain_seq) OVER w, 0) AS previous_seq
       FROM audit_events e WHERE e.tenant_id = $1 WINDOW w AS (ORDER BY e.chain_seq)
     ), checked AS (
       SELECT id, chain_seq,
         CASE WHEN chain_seq <> previous_seq + 1 THEN 'missing_row'
              WHEN prev_hash <> previous THEN 'prev_hash_mismatch'
              WHEN hash <> recomputed THEN 'hash_mismatch' END AS reason
       FROM chain
     )
     SELECT c.id, c.chain_seq, c.reason, (SELECT count(*) FROM chain) AS total,
       (SELECT chain_seq FROM chain ORDER BY chain_seq DESC LIMIT 1) AS head_seq,
       (SELECT encode(hash, 'hex') FROM chain ORDER BY chain_seq DESC LIMIT 1) AS head_hash
     FROM (SELECT 1) one LEFT JOIN LATERAL (
       SELECT * FROM checked WHERE reason IS NOT NULL ORDER BY chain_seq LIMIT 1
     ) c ON true`,
    [tenantId],
  );
  const row = rows[0];
  return {
    ok: row.id === null,
    rows_checked: Number(row.total),
    first_broken:
      row.id === null ? null : { id: String(row.id), chain_seq: Number(row.chain_seq), reason: row.reason! },
    head: row.head_seq === null ? null : { chain_seq: Number(row.head_seq), hash: row.head_hash! },
  };
}
