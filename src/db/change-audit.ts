/**
 * Audit rows for changes made outside a story's workflow: creations, edits, imports, dependencies
 * and key events. They join the tenant's hash chain like every other row; they have no workflow
 * or update of their own, so each gets a fresh update id.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { actorColumns, agentActor, type Actor, type AgentActor } from '../custody/actor.js';

type Queryable = pg.Pool | pg.PoolClient;

export interface ChangeEntry {
  tenantId: string;
  projectId?: string | null;
  storyId?: string | null;
  /** What happened, e.g. `project.created`, `story.edited`, `dependency.added`, `api_key.revoked`. */
  action: string;
  actor: Actor;
  payload?: unknown;
}

/** Writes one row; returns its update id (also the source key of any webhook event it causes). */
export async function recordChange(db: Queryable, entry: ChangeEntry): Promise<string> {
  const updateId = randomUUID();
  const actor = actorColumns(entry.actor);
  await db.query(
    `INSERT INTO audit_events (tenant_id, project_id, story_id, workflow_id, update_id, outcome, action,
       actor_agent_id, actor_role, payload, occurred_at)
     VALUES ($1, $2, $3, NULL, $4, 'accepted', $5, $6, $7, $8, now())`,
    [
      entry.tenantId,
      entry.projectId ?? null,
      entry.storyId ?? null,
      updateId,
      entry.action,
      actor.actor_agent_id,
      actor.actor_role,
      JSON.stringify(entry.payload ?? {}),
    ],
  );
  return updateId;
}

/** A change an API caller made: in its tenant, by its identity (an agent and its role, nothing more). */
export function recordCallerChange(
  db: Queryable,
  caller: AgentActor & { tenantId: string },
  entry: Omit<ChangeEntry, 'tenantId' | 'actor'>,
): Promise<string> {
  return recordChange(db, { ...entry, tenantId: caller.tenantId, actor: agentActor(caller) });
}
