/**
 * Who acted, in one type from the gateway's caller to the audit row: an agent of the tenant in
 * its role, or the system (time itself: an expired lease, a stall; the worker refusing a batch).
 * One mapping to the database columns and one to JSON, so every row and every payload says the
 * same thing the same way. Pure data: imported by the workflow bundle too.
 */
import type { Role } from './actions.js';

/** An agent acting in its role. */
export interface AgentActor {
  agentId: string;
  role: Role;
}

/** What no agent did. Spelled as it has always travelled in workflow histories. */
export interface SystemActor {
  agentId: 'system';
  role: 'system';
}

export type Actor = AgentActor | SystemActor;

export const SYSTEM_ACTOR: SystemActor = Object.freeze({ agentId: 'system', role: 'system' });

/** The identity the gateway signs into an envelope, and what the custody rules judge. */
export interface SignedActor extends AgentActor {
  tenantId: string;
  /** The agent's name, for display only (signed with the rest); the rules never read it. */
  name?: string;
  /** The labels an admin gave the agent (`security-adversary`, …): review policies require some. */
  labels?: string[];
}

export function isSystemActor(actor: { role: string }): actor is SystemActor {
  return actor.role === SYSTEM_ACTOR.role;
}

/** The agent and role alone: what a transition and a row keep of a caller or a signed envelope. */
export function agentActor(who: AgentActor): AgentActor {
  return { agentId: who.agentId, role: who.role };
}

/** The caller's identity as the gateway signs it into an envelope. */
export function signedActor(
  caller: AgentActor & { tenantId: string; agentName?: string; labels?: string[] },
): SignedActor {
  return {
    tenantId: caller.tenantId,
    agentId: caller.agentId,
    role: caller.role,
    name: caller.agentName,
    // Labels are identity, signed with it (an admin set them); unlabelled agents sign as before.
    ...(caller.labels && caller.labels.length > 0 ? { labels: caller.labels } : {}),
  };
}

/** How an actor is stored (audit_events.actor_agent_id, actor_role): the system has no agent id. */
export interface ActorColumns {
  actor_agent_id: string | null;
  actor_role: string | null;
}

export function actorColumns(actor: Actor): ActorColumns {
  return { actor_agent_id: isSystemActor(actor) ? null : actor.agentId, actor_role: actor.role };
}

/** How an actor is shown (history, audit, webhooks): `{ agent_id, role }`, as it is stored. */
export interface ActorJson {
  agent_id: string | null;
  role: string | null;
}

export function actorJson(actor: Actor | ActorColumns): ActorJson {
  const columns = 'actor_role' in actor ? actor : actorColumns(actor);
  return { agent_id: columns.actor_agent_id, role: columns.actor_role };
}
