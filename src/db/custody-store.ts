/**
 * The custody store: every write that a story's transition or a rejected attempt causes goes
 * through here — the projection (the `stories` row), the audit row, and the webhook outbox — each
 * in the caller's transaction. The worker's persistence activity writes accepted batches and
 * integrity violations; the gateway writes rejected attempts and an admin's resume.
 */
import type pg from 'pg';
import { eventsOfTransition } from '../custody/actions.js';
import { SYSTEM_ACTOR, actorColumns, actorJson, type Actor } from '../custody/actor.js';
import { CUSTODY_VIOLATIONS } from '../custody/errors.js';
import type { JudgedTransition, StoredClocks } from '../custody/integrity.js';
import type { CustodyRecord } from '../custody/policy.js';
import { summariseRejectedBody } from '../custody/rejected-body.js';
import type { Rejection, StoryState } from '../custody/rules.js';
import type { StoredCustody } from './custody-state.js';
import { inTransaction } from './pool.js';
import { enqueueEvent, enqueueEvents } from './webhook-repo.js';

type Queryable = pg.Pool | pg.PoolClient;
type StoredRow = StoredCustody['row'];

/** The sequence numbers of the accepted rows of these updates already written for the workflow. */
export async function writtenUpdateSeqs(
  db: Queryable,
  workflowId: string,
  updateIds: string[],
): Promise<Map<string, number>> {
  const { rows } = await db.query<{ update_id: string; seq: string }>(
    `SELECT update_id, seq FROM audit_events
     WHERE workflow_id = $1 AND outcome = 'accepted' AND update_id = ANY ($2::text[])`,
    [workflowId, updateIds],
  );
  return new Map(rows.map((r) => [r.update_id, Number(r.seq)]));
}

/**
 * A judged batch of accepted transitions: the projection, the edits' content, one audit row and
 * the webhook events of each transition, and `epic.completed` when the batch finished its epic.
 * Returns the source keys of the deliveries written (what the caller dispatches after the commit):
 * none when no webhook subscribes to what happened.
 */
export async function writeAcceptedTransitions(
  db: pg.PoolClient,
  row: StoredRow,
  runId: string,
  judged: { state: StoryState; stalled: boolean; clocks: StoredClocks; transitions: JudgedTransition[] },
): Promise<string[]> {
  const { state } = judged;
  const last = judged.transitions[judged.transitions.length - 1];
  await db.query(
    `UPDATE stories SET agent_status = $2, verified_status = $3, assigned_agent_id = $4,
       reported_by_agent_id = $5, reviewer_agent_id = $6, verified_by_agent_id = $7,
       implementer_agent_ids = $8, iteration = $9, review = $10, version = $11, updated_at = $12, stalled = $13,
       title = $14, artifact = $15, backfilled = $16,
       deleted_at = CASE WHEN $17::boolean THEN coalesce(deleted_at, $12::timestamptz) ELSE NULL END,
       review_policy = $18, review_progress = $19, verified_artifact = $20,
       kept_lease_expires_at = $21, kept_waiting_since = $22
     WHERE id = $1`,
    [
      row.id,
      state.agentStatus,
      state.verifiedStatus,
      state.assignedAgentId,
      state.reportedByAgentId,
      state.reviewerAgentId,
      state.verifiedByAgentId,
      state.implementerAgentIds,
      state.iteration,
      state.review ? JSON.stringify(state.review) : null,
      last.seq,
      last.occurredAt,
      judged.stalled,
      state.title,
      state.artifact === undefined || state.artifact === null ? null : JSON.stringify(state.artifact),
      state.backfilled === true,
      state.deleted === true,
      state.reviewPolicy ? JSON.stringify(state.reviewPolicy) : null,
      state.reviewPolicy && state.reviewProgress ? JSON.stringify(state.reviewProgress) : null,
      state.verifiedArtifact ?? null,
      timestampOf(judged.clocks.leaseExpiresAt),
      timestampOf(judged.clocks.waitingSince),
    ],
  );
  // An accepted edit also carries what only the read model keeps (description, criteria, …).
  await applyEdits(db, row.id, last.seq, judged.transitions);
  // Only causes with a subscriber have deliveries to dispatch (none: no query after the commit).
  const enqueued = new Set<string>();
  // Audit rows last: each takes the tenant's audit-chain lock until the commit.
  for (const t of judged.transitions) {
    const actor = actorColumns(t.actor);
    await db.query(
      `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, run_id, update_id, seq, outcome,
         action, actor_agent_id, actor_role, from_agent_status, from_verified_status, to_agent_status,
         to_verified_status, iteration, payload, occurred_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'accepted', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
       ON CONFLICT (workflow_id, update_id, outcome) DO NOTHING`,
      [
        row.tenant_id,
        row.project_id,
        row.id,
        row.workflow_id,
        runId,
        t.updateId,
        t.seq,
        t.action,
        actor.actor_agent_id,
        actor.actor_role,
        t.from.agent_status,
        t.from.verified_status,
        t.to.agent_status,
        t.to.verified_status,
        t.iteration,
        JSON.stringify(t.payload),
        t.occurredAt,
      ],
    );
    if (t.record) await writeCustodyRecord(db, row, t, t.record);
    const data = {
      // loopctl's flat fields, then custody's.
      story_id: row.id,
      project_id: row.project_id,
      epic_id: row.epic_id,
      old_status: t.from.agent_status,
      new_status: t.to.agent_status,
      verified_status: t.to.verified_status,
      agent_id: actor.actor_agent_id,
      story: { id: row.id, project_id: row.project_id, number: row.number, title: state.title },
      transition: {
        action: t.action,
        seq: t.seq,
        iteration: t.iteration,
        from: t.from,
        to: t.to,
        actor: actorJson(actor),
      },
      occurred_at: t.occurredAt,
      // The artifact chain: what was reported, reviewed, signed or verified, and its identity.
      ...(t.record ? { artifact: t.record.artifact, artifact_key: t.record.artifact_key } : {}),
      ...(t.record?.round ? { round: t.record.round } : {}),
      // A stall under a review policy names the round it waited on.
      ...(t.action === 'stalled' && typeof t.payload.round === 'string' ? { round: t.payload.round } : {}),
    };
    const sourceKey = `${row.workflow_id}:${t.updateId}`;
    const scope = { tenantId: row.tenant_id, projectId: row.project_id };
    if ((await enqueueEvents(db, scope, eventsOfTransition(t.action, t.from, t.to), sourceKey, data)) > 0)
      enqueued.add(sourceKey);
  }
  const verifiedNow = judged.transitions.some(
    (t) => t.to.verified_status === 'verified' && t.from.verified_status !== 'verified',
  );
  if (verifiedNow) {
    const sourceKey = `${row.workflow_id}:${last.updateId}`;
    if (await announceEpicCompleted(db, row.tenant_id, row.epic_id, sourceKey)) enqueued.add(sourceKey);
  }
  return [...enqueued];
}

const timestampOf = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** One link of the artifact chain (`story_reviews`), once per transition like its audit row. */
async function writeCustodyRecord(db: pg.PoolClient, row: StoredRow, t: JudgedTransition, record: CustodyRecord) {
  await db.query(
    `INSERT INTO story_reviews (tenant_id, project_id, story_id, workflow_id, update_id, seq, iteration, kind, round,
       position, agent_id, agent_labels, review_type, findings_count, fixes_count, disproved_count, summary, artifact,
       artifact_key, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
     ON CONFLICT (workflow_id, update_id) DO NOTHING`,
    [
      row.tenant_id,
      row.project_id,
      row.id,
      row.workflow_id,
      t.updateId,
      t.seq,
      t.iteration,
      record.kind,
      record.round,
      record.position,
      t.actor.agentId,
      record.agent_labels,
      record.review_type,
      record.findings_count,
      record.fixes_count,
      record.disproved_count,
      record.summary,
      record.artifact === null || record.artifact === undefined ? null : JSON.stringify(record.artifact),
      record.artifact_key,
      t.occurredAt,
    ],
  );
}

const EDITABLE_CONTENT: Record<string, (v: unknown) => unknown> = {
  description: (v) => (typeof v === 'string' ? v : null),
  acceptance_criteria: (v) => JSON.stringify(Array.isArray(v) ? v : []),
  estimated_hours: (v) => (typeof v === 'number' ? v : null),
  metadata: (v) => JSON.stringify(v ?? {}),
};

/**
 * Writes the content of accepted edits to the story's row and drops the dependencies an edit
 * removed. Guarded like the projection: a batch older than the row's version writes nothing.
 */
async function applyEdits(
  db: pg.PoolClient,
  storyId: string,
  version: number,
  transitions: readonly { action: string; payload: unknown }[],
) {
  // Most batches edit nothing: no read of the version for them.
  if (!transitions.some((t) => t.action === 'edit')) return;
  const current = await db.query<{ version: string }>('SELECT version FROM stories WHERE id = $1', [storyId]);
  if (Number(current.rows[0]?.version) !== version) return;
  for (const t of transitions) {
    if (t.action !== 'edit') continue;
    const body = (t.payload ?? {}) as { content?: Record<string, unknown>; remove_dependencies?: string[] };
    const sets: string[] = [];
    const values: unknown[] = [storyId];
    for (const [field, encode] of Object.entries(EDITABLE_CONTENT)) {
      if (body.content && Object.prototype.hasOwnProperty.call(body.content, field)) {
        values.push(encode(body.content[field]));
        sets.push(`${field} = $${values.length}`);
      }
    }
    if (sets.length > 0) await db.query(`UPDATE stories SET ${sets.join(', ')} WHERE id = $1`, values);
    if (body.remove_dependencies && body.remove_dependencies.length > 0) {
      await db.query('DELETE FROM story_dependencies WHERE story_id = $1 AND depends_on_story_id::text = ANY($2)', [
        storyId,
        body.remove_dependencies,
      ]);
    }
  }
}

/**
 * `epic.completed` once every live story of the epic is verified (keyed on the verifying
 * transition). Whether a delivery of it was written.
 */
async function announceEpicCompleted(
  db: pg.PoolClient,
  tenantId: string,
  epicId: string,
  sourceKey: string,
): Promise<boolean> {
  const { rows } = await db.query<{ total: number; verified: number; project_id: string; number: number }>(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE s.verified_status = 'verified')::int AS verified,
       e.project_id, e.number
     FROM epics e JOIN stories s ON s.epic_id = e.id AND s.deleted_at IS NULL
     WHERE e.id = $1 GROUP BY e.project_id, e.number`,
    [epicId],
  );
  const epic = rows[0];
  if (!epic || epic.total === 0 || epic.total !== epic.verified) return false;
  const scope = { tenantId, projectId: epic.project_id };
  const written = await enqueueEvents(db, scope, ['epic.completed'], sourceKey, {
    epic_id: epicId,
    project_id: epic.project_id,
    number: epic.number,
    stories_count: epic.total,
  });
  return written > 0;
}

/**
 * A batch the worker refused: an audit row of its own kind, the story held, and a
 * `custody.violation` event. Recorded once per update id. Returns the event's source key.
 */
export async function recordIntegrityViolation(
  db: pg.PoolClient,
  row: StoredRow,
  violation: { runId: string; updateId: string; reason: string; payload: unknown },
): Promise<string> {
  // The worker refused the batch: no agent did this.
  const system = actorColumns(SYSTEM_ACTOR);
  await db.query(
    `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, run_id, update_id, outcome, code, action,
       actor_agent_id, actor_role, from_agent_status, from_verified_status, iteration, payload, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'integrity_violation', $7, 'persist', $8, $9, $10, $11, $12, $13, now())
     ON CONFLICT (workflow_id, update_id, outcome) DO NOTHING`,
    [
      row.tenant_id,
      row.project_id,
      row.id,
      row.workflow_id,
      violation.runId,
      violation.updateId,
      violation.reason,
      system.actor_agent_id,
      system.actor_role,
      row.agent_status,
      row.verified_status,
      row.iteration,
      JSON.stringify(violation.payload),
    ],
  );
  await db.query('UPDATE stories SET held = true, held_reason = $2 WHERE id = $1', [row.id, violation.reason]);
  const sourceKey = `${row.workflow_id}:${violation.updateId}`;
  await enqueueEvent(db, { tenantId: row.tenant_id, projectId: row.project_id }, 'custody.violation', sourceKey, {
    code: 'integrity_violation',
    message: 'The worker refused to write a batch of transitions; the story is held until an admin resumes it.',
    reason: violation.reason,
    story: { id: row.id, project_id: row.project_id, number: row.number, title: row.title },
    run_id: violation.runId,
  });
  return sourceKey;
}

export interface RejectedAttempt {
  tenantId: string;
  story: { id: string; project_id: string; workflow_id: string; number: string; title: string };
  updateId: string;
  action: string;
  actor: Actor;
  /** The story's state the attempt was judged in. */
  agentStatus: string;
  verifiedStatus: string;
  iteration: number;
  /** The sequence number of the latest accepted transition it was judged after, when the workflow said. */
  judgedSeq?: number | undefined;
  payload: unknown;
  rejection: Rejection;
}

/**
 * A rejected attempt, in a transaction of its own: its audit row (the body summarised, never whole:
 * a rejected attempt costs the append-only trail about 1 KiB) and, for a custody violation, a
 * `custody.violation` event.
 * Returns the event's source key, or null when the rejection is not a violation.
 */
export async function recordRejectedAttempt(pool: pg.Pool, attempt: RejectedAttempt): Promise<string | null> {
  return inTransaction(pool, (db) => writeRejectedAttempt(db, attempt));
}

async function writeRejectedAttempt(db: pg.PoolClient, attempt: RejectedAttempt): Promise<string | null> {
  const { story, rejection } = attempt;
  const actor = actorColumns(attempt.actor);
  await db.query(
    `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, update_id, outcome, code, action, actor_agent_id,
       actor_role, from_agent_status, from_verified_status, iteration, payload, judged_seq, occurred_at)
     VALUES ($1, $2, $3, $4, $5, 'rejected', $6, $7, $8, $9, $10, $11, $12, $13, $14, now())
     ON CONFLICT (workflow_id, update_id, outcome) DO NOTHING`,
    [
      attempt.tenantId,
      story.project_id,
      story.id,
      story.workflow_id,
      attempt.updateId,
      rejection.code,
      attempt.action,
      actor.actor_agent_id,
      actor.actor_role,
      attempt.agentStatus,
      attempt.verifiedStatus,
      attempt.iteration,
      JSON.stringify({ body: summariseRejectedBody(attempt.payload) }),
      attempt.judgedSeq ?? null,
    ],
  );
  if (!CUSTODY_VIOLATIONS.has(rejection.code)) return null;
  const sourceKey = `${story.workflow_id}:${attempt.updateId}:rejected`;
  await enqueueEvent(db, { tenantId: attempt.tenantId, projectId: story.project_id }, 'custody.violation', sourceKey, {
    code: rejection.code,
    message: rejection.message,
    action: attempt.action,
    actor: actorJson(actor),
    story: { id: story.id, project_id: story.project_id, number: story.number, title: story.title },
  });
  return sourceKey;
}

/** The story's custody violations so far (rejected attempts with a violation's code). */
export async function violationCount(db: Queryable, tenantId: string, storyId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM audit_events
     WHERE tenant_id = $1 AND story_id = $2 AND outcome = 'rejected' AND code = ANY($3)`,
    [tenantId, storyId, [...CUSTODY_VIOLATIONS]],
  );
  return Number(rows[0].n);
}

/** The latest accepted updates a caller sent (not time's), oldest first: a resumed run answers them as repeats. */
export async function appliedUpdates(
  db: Queryable,
  workflowId: string,
  limit = 1000,
): Promise<{ update_id: string; seq: string; action: string; payload: unknown }[]> {
  const { rows } = await db.query<{ update_id: string; seq: string; action: string; payload: unknown }>(
    `SELECT update_id, seq, action, payload FROM audit_events
     WHERE workflow_id = $1 AND outcome = 'accepted' AND actor_role <> $3 ORDER BY seq DESC LIMIT $2`,
    [workflowId, limit, SYSTEM_ACTOR.role],
  );
  return rows.reverse();
}

/** An admin's resume: its audit row, and the story no longer held. */
export async function recordResume(
  db: pg.PoolClient,
  row: StoredRow,
  resume: {
    previousRunId: string | null;
    updateId: string;
    actor: Actor;
    payload: unknown;
    /** The clocks the new run is started with. */
    clocks: StoredClocks;
  },
): Promise<void> {
  const actor = actorColumns(resume.actor);
  await db.query(
    `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, run_id, update_id, outcome, action,
       actor_agent_id, actor_role, from_agent_status, from_verified_status, to_agent_status, to_verified_status,
       iteration, payload, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'resumed', 'resume', $7, $8, $9, $10, $9, $10, $11, $12, now())`,
    [
      row.tenant_id,
      row.project_id,
      row.id,
      row.workflow_id,
      resume.previousRunId,
      resume.updateId,
      actor.actor_agent_id,
      actor.actor_role,
      row.agent_status,
      row.verified_status,
      row.iteration,
      JSON.stringify(resume.payload),
    ],
  );
  await db.query(
    'UPDATE stories SET held = false, held_reason = NULL, kept_lease_expires_at = $2, kept_waiting_since = $3 WHERE id = $1',
    [row.id, timestampOf(resume.clocks.leaseExpiresAt), timestampOf(resume.clocks.waitingSince)],
  );
}

/**
 * A heartbeat the story's workflow accepted moves the kept lease deadline later: to the one the
 * workflow answered, but no later than a lease from when the gateway sent it (so a run answering
 * with a later one gains nothing), and never earlier than the kept one (nor a claim no longer the
 * caller's). Sent at `sentAt`: the workflow's own deadline is no earlier.
 */
export async function keepHeartbeatDeadline(
  db: Queryable,
  story: { id: string },
  agentId: string,
  beat: { answeredDeadline: number; sentAt: number },
): Promise<void> {
  await db.query(
    `UPDATE stories s SET kept_lease_expires_at = greatest(s.kept_lease_expires_at,
       least($3::timestamptz, $4::timestamptz + make_interval(secs => p.lease_ttl_seconds)))
     FROM projects p
     WHERE s.id = $1 AND p.id = s.project_id AND s.assigned_agent_id = $2 AND p.lease_ttl_seconds > 0`,
    [story.id, agentId, timestampOf(beat.answeredDeadline), timestampOf(beat.sentAt)],
  );
}
