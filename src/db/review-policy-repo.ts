/**
 * Review policies (versioned per project), agent labels, and the review records of stories. Every
 * change is a new version and an audit row in the same transaction; nothing is edited in place.
 * Every function takes the tenant id.
 */
import type pg from 'pg';
import type { AgentActor } from '../custody/actor.js';
import {
  DEFAULT_POLICY,
  normalisePolicy,
  type CustodyRecord,
  type PinnedPolicy,
  type ReviewPolicy,
} from '../custody/policy.js';
import { recordChange } from './change-audit.js';
import { inTransaction } from './pool.js';

type Queryable = pg.Pool | pg.PoolClient;

export interface PolicyVersionRow {
  project_id: string;
  version: number;
  rounds: PinnedPolicy['rounds'];
  created_by: string | null;
  created_at: Date | null;
}

/** The project's policy now: its latest version, or the default (version 0) when it never set one. */
export async function currentPolicy(db: Queryable, tenantId: string, projectId: string): Promise<PolicyVersionRow> {
  const { rows } = await db.query<PolicyVersionRow>(
    `SELECT project_id, version, rounds, created_by, created_at FROM review_policies
     WHERE tenant_id = $1 AND project_id = $2 ORDER BY version DESC LIMIT 1`,
    [tenantId, projectId],
  );
  return (
    rows[0] ?? { project_id: projectId, version: 0, rounds: DEFAULT_POLICY.rounds, created_by: null, created_at: null }
  );
}

/**
 * What a contract pins: the project's current policy, or nothing when it has none of its own.
 * @public the contract route's, as review policies are pinned on contract
 */
export async function policyToPin(db: Queryable, tenantId: string, projectId: string): Promise<PinnedPolicy | null> {
  const current = await currentPolicy(db, tenantId, projectId);
  return current.version === 0 ? null : { version: current.version, rounds: current.rounds };
}

/** Every version, newest first. */
export async function policyVersions(db: Queryable, tenantId: string, projectId: string): Promise<PolicyVersionRow[]> {
  const { rows } = await db.query<PolicyVersionRow>(
    `SELECT project_id, version, rounds, created_by, created_at FROM review_policies
     WHERE tenant_id = $1 AND project_id = $2 ORDER BY version DESC`,
    [tenantId, projectId],
  );
  return rows;
}

/**
 * A new version of the project's policy. The project row is locked so two concurrent changes get
 * consecutive versions; the audit row names the version it replaced.
 */
export async function setPolicy(
  pool: pg.Pool,
  tenantId: string,
  projectId: string,
  policy: ReviewPolicy,
  actor: AgentActor,
): Promise<PolicyVersionRow> {
  return inTransaction(pool, async (db) => {
    await db.query('SELECT id FROM projects WHERE tenant_id = $1 AND id = $2 FOR UPDATE', [tenantId, projectId]);
    const previous = await currentPolicy(db, tenantId, projectId);
    const pinned = normalisePolicy(policy, previous.version + 1);
    const { rows } = await db.query<PolicyVersionRow>(
      `INSERT INTO review_policies (tenant_id, project_id, version, rounds, created_by) VALUES ($1, $2, $3, $4, $5)
       RETURNING project_id, version, rounds, created_by, created_at`,
      [tenantId, projectId, pinned.version, JSON.stringify(pinned.rounds), actor.agentId],
    );
    await recordChange(db, {
      tenantId,
      projectId,
      action: 'review_policy.changed',
      actor,
      payload: { version: pinned.version, previous_version: previous.version, rounds: pinned.rounds },
    });
    return rows[0];
  });
}

/** Sets an agent's labels (an admin's act, audited with the labels before and after); null if no such agent. */
export async function setLabels(
  pool: pg.Pool,
  tenantId: string,
  agentId: string,
  labels: string[],
  actor: AgentActor,
): Promise<{ labels: string[] } | null> {
  const sorted = [...new Set(labels)].sort();
  return inTransaction(pool, async (db) => {
    const before = await db.query<{ labels: string[] }>(
      'SELECT labels FROM agents WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
      [tenantId, agentId],
    );
    if (before.rows.length === 0) return null;
    await db.query('UPDATE agents SET labels = $3 WHERE tenant_id = $1 AND id = $2', [tenantId, agentId, sorted]);
    await recordChange(db, {
      tenantId,
      action: 'agent.labels_set',
      actor,
      payload: { agent_id: agentId, labels: sorted, previous_labels: before.rows[0].labels },
    });
    return { labels: sorted };
  });
}

/** A link of the artifact chain as stored: the record, who made it, when, in which iteration. */
export interface ReviewRecordRow extends CustodyRecord {
  seq: string;
  iteration: number;
  agent_id: string;
  occurred_at: Date;
}

/** A story's artifact chain: every report, review, sign-off and verify, oldest first. */
export async function reviewRecords(db: Queryable, tenantId: string, storyId: string): Promise<ReviewRecordRow[]> {
  const { rows } = await db.query<ReviewRecordRow>(
    `SELECT seq, iteration, kind, round, position, agent_id, agent_labels, review_type, findings_count, fixes_count,
       disproved_count, summary, artifact, artifact_key, occurred_at
     FROM story_reviews WHERE tenant_id = $1 AND story_id = $2 ORDER BY seq LIMIT 2000`,
    [tenantId, storyId],
  );
  return rows;
}
