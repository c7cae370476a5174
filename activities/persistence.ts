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
import { acceptedKeys, signDependencyNews, signKeyRingNews, type KeyRing } from '../src/custody/identity.js';
import { judgeBatch, type BatchJudgement, type OutboxTransition } from '../src/custody/integrity.js';
import { nativeVerify } from '../src/custody/native-verify.js';
import { storedCustodyState } from '../src/db/custody-state.js';
import { recordIntegrityViolation, writeAcceptedTransitions, writtenUpdateSeqs } from '../src/db/custody-store.js';
import { dependentWorkflowIds, projectTimings } from '../src/db/story-repo.js';
import { dispatchPending, type WebhookDispatch } from '../src/webhooks/outbox.js';
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
        const writtenSeq = await writtenUpdateSeqs(
          db,
          row.workflow_id,
          transitions.map((t) => String(t?.updateId)),
        );
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
                timings: await projectClocks(db, row.project_id),
              });
        if (!judgement.ok) {
          const sourceKey = await recordViolation(db, stored, batch, fresh, judgement);
          return { kind: 'violation' as const, judgement, sourceKey };
        }
        const sourceKeys = await writeAcceptedTransitions(db, row, batch.runId, judgement);
        return { kind: 'written' as const, sourceKeys };
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
      const workflowIds = await dependentWorkflowIds(pool, notice.tenantId, notice.storyId);
      for (const workflow_id of workflowIds) {
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
      return workflowIds.length;
    },
  };
}

/** The project's clocks, as its stories' workflows are started with them. */
async function projectClocks(db: pg.PoolClient, projectId: string) {
  const timings = await projectTimings(db, projectId);
  return { leaseTtlMs: timings.lease_ttl_seconds * 1000, stallAfterMs: timings.stall_after_seconds * 1000 };
}

/**
 * The refused batch, recorded once per (run, first sequence): an audit row of its own kind, the
 * story held, and a `custody.violation` event, all in the caller's transaction (src/db/custody-store.ts).
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
  return recordIntegrityViolation(db, row, { runId, updateId, reason: refusal.reason, payload });
}
