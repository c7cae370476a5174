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
  pool: pg.Pool,
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
  await pool.query(
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
  return (await pool.query<AuditRow>('SELECT * FROM audit_events WHERE tenant_id = $1 AND story_id = $2 ORDER BY occurred_at, id', [tenantId, storyId])).rows;
}

export async function auditTrail(
  pool: pg.Pool,
  tenantId: string,
  f: { projectId?: string | undefined; storyId?: string | undefined; since?: string | undefined; afterId?: string | undefined; limit: number },
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
