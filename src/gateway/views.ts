/** JSON shapes of the API's resources, built from database rows (and, after an action, workflow state). */
import type { Action } from '../custody/actions.js';
import { ROUTED_ACTIONS } from '../custody/action-specs.js';
import { actorJson, signedActor } from '../custody/actor.js';
import { availableActions, holdsLease, type StoryState } from '../custody/rules.js';
import type { AuditRow } from '../db/audit-repo.js';
import { custodyStateOfRow } from '../db/custody-state.js';
import type { AgentRow, ApiKeyRow, Caller, TenantRow } from '../db/identity-repo.js';
import type { EpicRow, ProjectRow, StoryRow, TokenTotals } from '../db/story-repo.js';

export const tenantJson = (t: TenantRow) => ({ id: t.id, name: t.name, slug: t.slug, created_at: t.created_at });
export const agentJson = (a: AgentRow) => ({ id: a.id, name: a.name, role: a.role, created_at: a.created_at });
export const keyJson = (k: ApiKeyRow) => ({
  id: k.id,
  agent_id: k.agent_id,
  prefix: k.prefix,
  created_at: k.created_at,
  revoked_at: k.revoked_at,
});
export const projectJson = (p: ProjectRow) => ({
  id: p.id,
  name: p.name,
  slug: p.slug,
  description: p.description,
  repo_url: p.repo_url,
  tech_stack: p.tech_stack,
  mission: p.mission,
  settings: p.settings,
  lease_ttl_seconds: p.lease_ttl_seconds,
  stall_after_seconds: p.stall_after_seconds,
  status: p.archived_at ? 'archived' : 'active',
  archived_at: p.archived_at,
  created_at: p.created_at,
});
export const epicJson = (e: EpicRow) => ({
  id: e.id,
  project_id: e.project_id,
  number: e.number,
  title: e.title,
  description: e.description,
  metadata: e.metadata,
  created_at: e.created_at,
});

/** The custody state of a projected story, as the rules see it (dependencies come separately). */
export function stateOfRow(row: StoryRow, verifiedDependencies: Record<string, boolean> = {}): StoryState {
  return custodyStateOfRow(
    row,
    Object.fromEntries(Object.entries(verifiedDependencies).map(([id, verified]) => [id, { verified, seq: 0 }])),
  );
}

/** A story row with the lifecycle fields replaced by fresher workflow state, when there is some. */
export function withState(row: StoryRow, state: StoryState, updatedAt: Date = row.updated_at): StoryRow {
  return {
    ...row,
    agent_status: state.agentStatus,
    verified_status: state.verifiedStatus,
    assigned_agent_id: state.assignedAgentId,
    reported_by_agent_id: state.reportedByAgentId,
    reviewer_agent_id: state.reviewerAgentId,
    verified_by_agent_id: state.verifiedByAgentId,
    implementer_agent_ids: state.implementerAgentIds,
    iteration: state.iteration,
    review: state.review,
    title: state.title,
    artifact: state.artifact ?? null,
    backfilled: state.backfilled === true,
    updated_at: updatedAt,
  };
}

export interface StoryExtras {
  caller?: Caller;
  dependsOn?: Record<string, boolean>;
  tokenUsage?: TokenTotals | null;
  blocking?: { id: string; number: string; verified_status: string }[];
}

const ZERO_TOKENS: TokenTotals = { input_tokens: 0, output_tokens: 0, cost_millicents: 0, reports: 0, models: [] };

export function storyJson(row: StoryRow, extra: StoryExtras = {}) {
  const json: Record<string, unknown> = {
    id: row.id,
    project_id: row.project_id,
    epic_id: row.epic_id,
    number: row.number,
    title: row.title,
    description: row.description,
    acceptance_criteria: row.acceptance_criteria,
    agent_status: row.agent_status,
    verified_status: row.verified_status,
    assigned_agent_id: row.assigned_agent_id,
    reported_by_agent_id: row.reported_by_agent_id,
    reviewer_agent_id: row.reviewer_agent_id,
    verified_by_agent_id: row.verified_by_agent_id,
    iteration: row.iteration,
    review: row.review,
    artifact: row.artifact ?? null,
    estimated_hours: row.estimated_hours === null ? null : Number(row.estimated_hours),
    metadata: row.metadata,
    backfilled: row.backfilled,
    // The claim's deadline while a claim is held (a heartbeat moves it), else null.
    lease_expires_at:
      row.lease_expires_at && holdsLease(stateOfRow(row)) ? new Date(row.lease_expires_at).toISOString() : null,
    stalled: row.stalled,
    // The worker refused to write a batch for this story (an integrity violation): it takes no
    // action until an admin resumes it.
    held: row.held ?? false,
    held_reason: row.held_reason ?? null,
    workflow_id: row.workflow_id,
    epic_number: row.epic_number,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
  if (extra.tokenUsage !== undefined) json.token_usage = extra.tokenUsage ?? ZERO_TOKENS;
  if (extra.dependsOn) json.depends_on = Object.keys(extra.dependsOn);
  if (extra.blocking) json.blocking_dependencies = extra.blocking;
  if (extra.caller && row.held) json.next_actions = [];
  else if (extra.caller) {
    const offered = availableActions(stateOfRow(row, extra.dependsOn), signedActor(extra.caller));
    json.next_actions = offered.filter((a) => (ROUTED_ACTIONS as readonly Action[]).includes(a));
  }
  return json;
}

export function historyJson(row: AuditRow) {
  return {
    // The tenant's own audit sequence number: a global row id would show other tenants' volume.
    id: Number(row.chain_seq),
    story_id: row.story_id,
    action: row.action,
    outcome: row.outcome,
    code: row.code,
    actor: actorJson(row),
    from: { agent_status: row.from_agent_status, verified_status: row.from_verified_status },
    to:
      row.outcome === 'accepted'
        ? { agent_status: row.to_agent_status, verified_status: row.to_verified_status }
        : null,
    iteration: row.iteration,
    payload: row.payload,
    seq: row.seq === null ? null : Number(row.seq),
    judged_after_seq: row.judged_seq === null ? null : Number(row.judged_seq),
    update_id: row.update_id,
    workflow_id: row.workflow_id,
    run_id: row.run_id,
    occurred_at: row.occurred_at,
    // The artifact chain: the identity of what a report, review, sign-off or verify concerned
    // (the artifact itself is in the report's payload).
    ...(row.chain_kind
      ? {
          artifact: {
            kind: row.chain_kind,
            round: row.chain_round ?? null,
            artifact_key: row.chain_artifact_key ?? null,
          },
        }
      : {}),
  };
}
