/**
 * A story's custody state as the database holds it: what the worker judges a batch against, and
 * what an admin's resume seeds a new run with. Never what a workflow says about itself.
 */
import type pg from 'pg';
import type { StoredClocks } from '../custody/integrity.js';
import type { DependencyStatus, StoryState } from '../custody/rules.js';
import type { StoryRow } from './story-repo.js';

type Queryable = pg.Pool | pg.PoolClient;

export interface StoredCustody {
  row: StoryRow & {
    held: boolean;
    held_reason: string | null;
    kept_lease_expires_at: Date | null;
    kept_waiting_since: Date | null;
  };
  state: StoryState;
  stalled: boolean;
  version: number;
  /** What the worker checks a lease expiry or a stall against. */
  clocks: StoredClocks;
}

/**
 * The story row (locked for update when asked) and its custody state, dependencies as they stand.
 * With `everVerified` (the worker's judgement), a dependency counts as verified if it ever was: a
 * claim accepted while it was verified stays valid when the dependency is rejected before the
 * claim is written.
 */
export async function storedCustodyState(
  db: Queryable,
  key: { workflowId: string } | { tenantId: string; storyId: string },
  options: { lock?: boolean; everVerified?: boolean } = {},
): Promise<StoredCustody | null> {
  const where = 'workflowId' in key ? 's.workflow_id = $1' : 's.tenant_id = $1 AND s.id = $2';
  const params = 'workflowId' in key ? [key.workflowId] : [key.tenantId, key.storyId];
  const { rows } = await db.query<StoredCustody['row']>(
    `SELECT s.* FROM stories s WHERE ${where}${options.lock ? ' FOR UPDATE OF s' : ''}`,
    params,
  );
  const row = rows[0];
  if (!row) return null;
  const deps = await db.query<{ id: string; verified: boolean; version: string }>(
    `SELECT d.depends_on_story_id AS id, dep.version,
       (dep.verified_status = 'verified' OR ($2 AND EXISTS (
          SELECT 1 FROM audit_events a WHERE a.tenant_id = dep.tenant_id AND a.story_id = dep.id
            AND a.outcome = 'accepted' AND a.to_verified_status = 'verified'))) AS verified
     FROM story_dependencies d JOIN stories dep ON dep.id = d.depends_on_story_id WHERE d.story_id = $1`,
    [row.id, options.everVerified ?? false],
  );
  const version = Number(row.version);
  const state = custodyStateOfRow(
    row,
    Object.fromEntries(deps.rows.map((d) => [d.id, { verified: d.verified, seq: Number(d.version) }])),
  );
  const ms = (d: Date | null) => (d === null || d === undefined ? null : d.getTime());
  const clocks = { leaseExpiresAt: ms(row.kept_lease_expires_at), waitingSince: ms(row.kept_waiting_since) };
  return { row, state, stalled: row.stalled, version, clocks };
}

/** The custody state a story row holds, as the rules see it, with its dependencies as given. */
export function custodyStateOfRow(row: StoryRow, dependencies: Record<string, DependencyStatus>): StoryState {
  return {
    tenantId: row.tenant_id,
    projectId: row.project_id,
    storyId: row.id,
    number: row.number,
    title: row.title,
    acCount: Array.isArray(row.acceptance_criteria) ? row.acceptance_criteria.length : 0,
    agentStatus: row.agent_status,
    verifiedStatus: row.verified_status,
    assignedAgentId: row.assigned_agent_id,
    implementerAgentIds: [...(row.implementer_agent_ids ?? [])],
    reportedByAgentId: row.reported_by_agent_id,
    reviewerAgentId: row.reviewer_agent_id,
    verifiedByAgentId: row.verified_by_agent_id,
    iteration: row.iteration,
    review: row.review,
    artifact: row.artifact ?? null,
    backfilled: row.backfilled === true,
    deleted: row.deleted_at !== null && row.deleted_at !== undefined,
    dependencies,
    // Only a story under a policy of its own carries one (the rules read absent as the default).
    ...(row.review_policy ? { reviewPolicy: row.review_policy, reviewProgress: row.review_progress } : {}),
    ...(row.verified_artifact ? { verifiedArtifact: row.verified_artifact } : {}),
  };
}
