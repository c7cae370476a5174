/** The audit trail: accepted transitions (written by the persistence activity) and rejected attempts. */
import type pg from 'pg';
import type { Rejection } from '../custody/rules.js';

export interface AuditRow {
  id: string;
  tenant_id: string;
  project_id: string;
  story_id: string;
  workflow_id: string;
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
  occurred_at: Date;
}

export async function recordRejection(
  db: pg.Pool | pg.PoolClient,
  entry: {
    tenantId: string;
    projectId: string;
    storyId: string;
    workflowId: string;
    updateId: string;
    action: string;
    actorAgentId: string;
    actorRole: string;
    agentStatus: string;
    verifiedStatus: string;
    iteration: number;
    payload: unknown;
    rejection: Rejection;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, update_id, outcome, code, action, actor_agent_id,
       actor_role, from_agent_status, from_verified_status, iteration, payload, occurred_at)
     VALUES ($1, $2, $3, $4, $5, 'rejected', $6, $7, $8, $9, $10, $11, $12, $13, now())
     ON CONFLICT (workflow_id, update_id, outcome) DO NOTHING`,
    [
      entry.tenantId,
      entry.projectId,
      entry.storyId,
      entry.workflowId,
      entry.updateId,
      entry.rejection.code,
      entry.action,
      entry.actorAgentId,
      entry.actorRole,
      entry.agentStatus,
      entry.verifiedStatus,
      entry.iteration,
      JSON.stringify(entry.payload ?? {}),
    ],
  );
}

export async function storyHistory(pool: pg.Pool, tenantId: string, storyId: string): Promise<AuditRow[]> {
  return (
    await pool.query<AuditRow>(
      'SELECT * FROM audit_events WHERE tenant_id = $1 AND story_id = $2 ORDER BY occurred_at, id',
      [tenantId, storyId],
    )
  ).rows;
}

export async function auditTrail(
  pool: pg.Pool,
  tenantId: string,
  f: {
    projectId?: string | undefined;
    storyId?: string | undefined;
    since?: string | undefined;
    afterId?: string | undefined;
    limit: number;
  },
): Promise<AuditRow[]> {
  return (
    await pool.query<AuditRow>(
      `SELECT * FROM audit_events WHERE tenant_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::uuid IS NULL OR story_id = $3)
         AND ($4::timestamptz IS NULL OR occurred_at >= $4) AND ($5::bigint IS NULL OR id > $5)
       ORDER BY id LIMIT $6`,
      [tenantId, f.projectId ?? null, f.storyId ?? null, f.since ?? null, f.afterId ?? null, f.limit],
    )
  ).rows;
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
