/**
 * Side effects of accepted transitions: the story projection and the audit trail, written in one
 * transaction and keyed on (workflow id, update id) so a retried activity writes nothing twice;
 * then news for the stories that depend on a newly verified (or un-verified) one.
 *
 * The batch is judged before it is written (src/custody/integrity.ts): whoever started the
 * workflow chose its input, so the worker trusts only its own key ring and the stored projection.
 * A batch that fails is written nowhere; it is recorded as an integrity violation and the story
 * is held until an admin resumes it.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { activityRetries, integrityViolations } from '../src/observability/metrics.js';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type pg from 'pg';
import { inTransaction } from '../src/db/pool.js';
import { dependencyStatusSignal, keyRingSignal } from '../workflows/messages.js';
import { eventsOfTransition } from '../src/custody/actions.js';
import { acceptedKeys, signDependencyNews, signKeyRingNews, type KeyRing } from '../src/custody/identity.js';
import { judgeBatch, type BatchJudgement, type OutboxTransition } from '../src/custody/integrity.js';
import { nativeVerify } from '../src/custody/native-verify.js';
import { storedCustodyState } from '../src/db/custody-state.js';
import { dispatchPending, enqueueEvent, type WebhookDispatch } from '../src/webhooks/outbox.js';
import type { DependentsNotice, PersistBatch, StoryActivities } from './types.js';

type Refusal = Extract<BatchJudgement, { ok: false }>;

export function createStoryActivities(deps: {
  pool: pg.Pool;
  client: Client;
  webhooks: WebhookDispatch;
  keyRing: KeyRing;
}): StoryActivities {
  const { pool, client, keyRing } = deps;
  return {
    async persistTransitions(batch: PersistBatch): Promise<void> {
      if (Context.current().info.attempt > 1) activityRetries.inc({ activity: 'persistTransitions' });
      const transitions: OutboxTransition[] = Array.isArray(batch?.transitions) ? batch.transitions : [];
      const outcome = await inTransaction(pool, async (db) => {
        // Keyed on the workflow id alone: the tenant and story ids in the batch are the starter's word.
        const stored = await storedCustodyState(
          db,
          { workflowId: String(batch?.workflowId) },
          {
            lock: true,
            everVerified: true,
          },
        );
        if (!stored) {
          // Only a workflow started outside the gateway can lack its row: nothing to project onto.
          throw ApplicationFailure.nonRetryable(`no story row for workflow ${batch.workflowId}`, 'InvalidProjection');
        }
        const { row } = stored;
        // A retried activity (or a batch retried after a failure) whose leading transitions are
        // written already: those are skipped, the rest must continue the sequence.
        const written = await db.query<{ update_id: string; seq: string }>(
          `SELECT update_id, seq FROM audit_events
           WHERE workflow_id = $1 AND outcome = 'accepted' AND update_id = ANY ($2::text[])`,
          [row.workflow_id, transitions.map((t) => String(t?.updateId))],
        );
        const writtenSeq = new Map(written.rows.map((r) => [r.update_id, Number(r.seq)]));
        let skip = 0;
        while (
          skip < transitions.length &&
          writtenSeq.get(String(transitions[skip]?.updateId)) === transitions[skip].seq
        )
          skip++;
        const fresh = transitions.slice(skip);
        // An update written before, now at another place in the sequence: a replayed envelope.
        const replayed = fresh.find((t) => writtenSeq.has(String(t?.updateId)));
        if (fresh.length === 0 && transitions.length > 0) {
          return { kind: 'written' as const, sourceKeys: transitions.map((t) => `${row.workflow_id}:${t.updateId}`) };
        }
        // A held story takes nothing until an admin resumes it (a new run seeded from this row).
        const judgement: BatchJudgement = row.held
          ? { ok: false, reason: 'story_held', seq: fresh[0]?.seq ?? null, detail: 'the story is held' }
          : replayed
            ? { ok: false, reason: 'replayed_update', seq: replayed.seq, detail: 'an update already written' }
            : judgeBatch(stored, fresh, {
                workflowId: row.workflow_id,
                acceptedKeys: acceptedKeys(keyRing),
                nowMs: Date.now(),
                verify: nativeVerify,
              });
        if (!judgement.ok) {
          const sourceKey = await recordViolation(db, stored, batch, fresh, judgement);
          return { kind: 'violation' as const, judgement, sourceKey };
        }
        const { state } = judgement;
        const last = judgement.transitions[judgement.transitions.length - 1];
        await db.query(
          `UPDATE stories SET agent_status = $2, verified_status = $3, assigned_agent_id = $4,
             reported_by_agent_id = $5, reviewer_agent_id = $6, verified_by_agent_id = $7,
             implementer_agent_ids = $8, iteration = $9, review = $10, version = $11, updated_at = $12, stalled = $13,
             title = $14, artifact = $15, backfilled = $16,
             deleted_at = CASE WHEN $17::boolean THEN coalesce(deleted_at, $12::timestamptz) ELSE NULL END
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
            judgement.stalled,
            state.title,
            state.artifact === undefined || state.artifact === null ? null : JSON.stringify(state.artifact),
            state.backfilled === true,
            state.deleted === true,
          ],
        );
        // An accepted edit also carries what only the read model keeps (description, criteria, …).
        await applyEdits(db, row.id, last.seq, judgement.transitions);
        // Audit rows last: each takes the tenant's audit-chain lock until the commit.
        for (const t of judgement.transitions) {
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
              JSON.stringify(t.payload),
              t.occurredAt,
            ],
          );
          const data = {
            // loopctl's flat fields, then custody's.
            story_id: row.id,
            project_id: row.project_id,
            epic_id: row.epic_id,
            old_status: t.from.agent_status,
            new_status: t.to.agent_status,
            verified_status: t.to.verified_status,
            agent_id: t.actor.role === 'system' ? null : t.actor.agentId,
            story: { id: row.id, project_id: row.project_id, number: row.number, title: state.title },
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
            await enqueueEvent(db, row.tenant_id, event, `${row.workflow_id}:${t.updateId}`, data);
        }
        const verifiedNow = judgement.transitions.some(
          (t) => t.to.verified_status === 'verified' && t.from.verified_status !== 'verified',
        );
        if (verifiedNow) {
          await announceEpicCompleted(db, row.tenant_id, row.epic_id, `${row.workflow_id}:${last.updateId}`);
        }
        return {
          kind: 'written' as const,
          sourceKeys: judgement.transitions.map((t) => `${row.workflow_id}:${t.updateId}`),
        };
      });
      if (outcome.kind === 'violation') {
        integrityViolations.inc({ reason: outcome.judgement.reason });
        await dispatchPending(pool, deps.webhooks, [outcome.sourceKey]).catch(() => undefined);
        throw ApplicationFailure.nonRetryable(
          `integrity violation (${outcome.judgement.reason}): ${outcome.judgement.detail}; nothing was written`,
          'IntegrityViolation',
        );
      }
      // After the commit: deliveries are started only for events that exist.
      await dispatchPending(pool, deps.webhooks, outcome.sourceKeys);
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
          const handle = client.workflow.getHandle(workflow_id);
          // The ring first: a dependent that does not know the current key yet would drop the news.
          await handle.signal(keyRingSignal, signKeyRingNews(keyRing, workflow_id, Date.now()));
          await handle.signal(
            dependencyStatusSignal,
            signDependencyNews(keyRing.current, workflow_id, {
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

/**
 * The refused batch, recorded once per (run, first sequence): an audit row of its own kind, the
 * story held, and a `custody.violation` event, all in the caller's transaction.
 */
async function recordViolation(
  db: pg.PoolClient,
  stored: NonNullable<Awaited<ReturnType<typeof storedCustodyState>>>,
  batch: PersistBatch,
  fresh: OutboxTransition[],
  refusal: Refusal,
): Promise<string> {
  const { row } = stored;
  const runId = typeof batch?.runId === 'string' ? batch.runId.slice(0, 200) : 'unknown';
  const updateId = `integrity-violation:${runId}:${String(fresh[0]?.seq ?? 'none')}`;
  const summary = fresh.slice(0, 50).map((t) => ({
    seq: typeof t?.seq === 'number' ? t.seq : null,
    action: typeof t?.action === 'string' ? t.action.slice(0, 64) : null,
    update_id: typeof t?.updateId === 'string' ? t.updateId.slice(0, 200) : null,
    actor_agent_id: typeof t?.actor?.agentId === 'string' ? t.actor.agentId.slice(0, 200) : null,
  }));
  const payload = {
    reason: refusal.reason,
    detail: refusal.detail.slice(0, 500),
    at_seq: refusal.seq,
    stored_version: stored.version,
    run_id: runId,
    transitions: summary,
  };
  await db.query(
    `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, run_id, update_id, outcome, code, action,
       actor_role, from_agent_status, from_verified_status, iteration, payload, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'integrity_violation', $7, 'persist', 'system', $8, $9, $10, $11, now())
     ON CONFLICT (workflow_id, update_id, outcome) DO NOTHING`,
    [
      row.tenant_id,
      row.project_id,
      row.id,
      row.workflow_id,
      runId,
      updateId,
      refusal.reason,
      row.agent_status,
      row.verified_status,
      row.iteration,
      JSON.stringify(payload),
    ],
  );
  await db.query('UPDATE stories SET held = true, held_reason = $2 WHERE id = $1', [row.id, refusal.reason]);
  const sourceKey = `${row.workflow_id}:${updateId}`;
  await enqueueEvent(db, row.tenant_id, 'custody.violation', sourceKey, {
    code: 'integrity_violation',
    message: 'The worker refused to write a batch of transitions; the story is held until an admin resumes it.',
    reason: refusal.reason,
    story: { id: row.id, project_id: row.project_id, number: row.number, title: row.title },
    run_id: runId,
  });
  return sourceKey;
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
