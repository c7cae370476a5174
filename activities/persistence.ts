/**
 * Side effects of accepted transitions: the story projection and the audit trail, written in one
 * transaction and keyed on (workflow id, update id) so a retried activity writes nothing twice;
 * then news for the stories that depend on a newly verified (or un-verified) one.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { activityRetries } from '../src/observability/metrics.js';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type pg from 'pg';
import { inTransaction } from '../src/db/pool.js';
import { dependencyStatusSignal } from '../workflows/messages.js';
import { eventsOfTransition } from '../src/custody/actions.js';
import { signDependencyNews, type SigningKey } from '../src/custody/identity.js';
import { dispatchPending, enqueueEvent, type WebhookDispatch } from '../src/webhooks/outbox.js';
import type { DependentsNotice, PersistBatch, StoryActivities } from './types.js';
import type { TransitionRecord } from '../workflows/messages.js';

export function createStoryActivities(deps: {
  pool: pg.Pool;
  client: Client;
  webhooks: WebhookDispatch;
  signingKey: SigningKey;
}): StoryActivities {
  const { pool, client, signingKey } = deps;
  return {
    async persistTransitions(batch: PersistBatch): Promise<void> {
      if (Context.current().info.attempt > 1) activityRetries.inc({ activity: 'persistTransitions' });
      const { state } = batch;
      const sourceKeys = batch.transitions.map((t) => `${batch.workflowId}:${t.updateId}`);
      await inTransaction(pool, async (db) => {
        const story = await db.query<{ id: string; epic_id: string }>(
          'SELECT id, epic_id FROM stories WHERE workflow_id = $1 AND tenant_id = $2 AND id = $3',
          [batch.workflowId, state.tenantId, state.storyId],
        );
        if (story.rowCount === 0) {
          // Only a workflow started outside the gateway can lack its row: nothing to project onto.
          throw ApplicationFailure.nonRetryable(`no story row for workflow ${batch.workflowId}`, 'InvalidProjection');
        }
        await db.query(
          `UPDATE stories SET agent_status = $2, verified_status = $3, assigned_agent_id = $4,
             reported_by_agent_id = $5, reviewer_agent_id = $6, verified_by_agent_id = $7,
             implementer_agent_ids = $8, iteration = $9, review = $10, version = $11, updated_at = $12, stalled = $13,
             title = $14, artifact = $15, backfilled = $16,
             deleted_at = CASE WHEN $17::boolean THEN coalesce(deleted_at, $12::timestamptz) ELSE NULL END
           WHERE id = $1 AND version < $11`,
          [
            state.storyId,
            state.agentStatus,
            state.verifiedStatus,
            state.assignedAgentId,
            state.reportedByAgentId,
            state.reviewerAgentId,
            state.verifiedByAgentId,
            state.implementerAgentIds,
            state.iteration,
            state.review ? JSON.stringify(state.review) : null,
            batch.version,
            batch.transitions[batch.transitions.length - 1].occurredAt,
            batch.stalled ?? false,
            state.title,
            state.artifact === undefined || state.artifact === null ? null : JSON.stringify(state.artifact),
            state.backfilled === true,
            state.deleted === true,
          ],
        );
        // An accepted edit also carries what only the read model keeps (description, criteria, …).
        await applyEdits(db, state.storyId, batch.version, batch.transitions);
        // Audit rows last: each takes the tenant's audit-chain lock until the commit.
        for (const t of batch.transitions) {
          await db.query(
            `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, run_id, update_id, seq, outcome,
               action, actor_agent_id, actor_role, from_agent_status, from_verified_status, to_agent_status,
               to_verified_status, iteration, payload, occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'accepted', $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (workflow_id, update_id, outcome) DO NOTHING`,
            [
              state.tenantId,
              state.projectId,
              state.storyId,
              batch.workflowId,
              batch.runId,
              t.updateId,
              t.seq,
              t.action,
              // Time itself (an expired lease, a stall) has no agent.
              t.actor.role === 'system' ? null : t.actor.agentId,
              t.actor.role,
              t.from.agent_status,
              t.from.verified_status,
              t.to.agent_status,
              t.to.verified_status,
              t.iteration,
              JSON.stringify(t.payload ?? {}),
              t.occurredAt,
            ],
          );
          const data = {
            // loopctl's flat fields, then custody's.
            story_id: state.storyId,
            project_id: state.projectId,
            epic_id: story.rows[0].epic_id,
            old_status: t.from.agent_status,
            new_status: t.to.agent_status,
            verified_status: t.to.verified_status,
            agent_id: t.actor.role === 'system' ? null : t.actor.agentId,
            story: { id: state.storyId, project_id: state.projectId, number: state.number, title: state.title },
            transition: {
              action: t.action,
              seq: t.seq,
              iteration: t.iteration,
              from: t.from,
              to: t.to,
              actor: { agent_id: t.actor.agentId, role: t.actor.role },
            },
            occurred_at: t.occurredAt,
          };
          for (const event of eventsOfTransition(t.action, t.from, t.to))
            await enqueueEvent(db, state.tenantId, event, `${batch.workflowId}:${t.updateId}`, data);
        }
        const verifiedNow = batch.transitions.some(
          (t) => t.to.verified_status === 'verified' && t.from.verified_status !== 'verified',
        );
        if (verifiedNow) await announceEpicCompleted(db, state.tenantId, story.rows[0].epic_id, sourceKeys.at(-1)!);
      });
      // After the commit: deliveries are started only for events that exist.
      await dispatchPending(pool, deps.webhooks, sourceKeys);
    },

    async notifyDependents(notice: DependentsNotice): Promise<number> {
      if (Context.current().info.attempt > 1) activityRetries.inc({ activity: 'notifyDependents' });
      const { rows } = await pool.query<{ workflow_id: string }>(
        `SELECT s.workflow_id FROM story_dependencies d JOIN stories s ON s.id = d.story_id
         WHERE d.tenant_id = $1 AND d.depends_on_story_id = $2`,
        [notice.tenantId, notice.storyId],
      );
      for (const { workflow_id } of rows) {
        try {
          await client.workflow.getHandle(workflow_id).signal(
            dependencyStatusSignal,
            signDependencyNews(signingKey, workflow_id, {
              storyId: notice.storyId,
              verified: notice.verified,
              seq: notice.seq,
            }),
          );
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
      }
      return rows.length;
    },
  };
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
async function applyEdits(db: pg.PoolClient, storyId: string, version: number, transitions: TransitionRecord[]) {
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

/** `epic.completed` once every live story of the epic is verified (keyed on the verifying transition). */
async function announceEpicCompleted(db: pg.PoolClient, tenantId: string, epicId: string, sourceKey: string) {
  const { rows } = await db.query<{ total: number; verified: number; project_id: string; number: number }>(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE s.verified_status = 'verified')::int AS verified,
       e.project_id, e.number
     FROM epics e JOIN stories s ON s.epic_id = e.id AND s.deleted_at IS NULL
     WHERE e.id = $1 GROUP BY e.project_id, e.number`,
    [epicId],
  );
  const epic = rows[0];
  if (!epic || epic.total === 0 || epic.total !== epic.verified) return;
  await enqueueEvent(db, tenantId, 'epic.completed', sourceKey, {
    epic_id: epicId,
    project_id: epic.project_id,
    number: epic.number,
    stories_count: epic.total,
  });
}
