/** One identity, two mappings (src/custody/actor.ts): to the audit columns and to JSON. */
import { describe, expect, it } from 'vitest';
import {
  SYSTEM_ACTOR,
  actorColumns,
  actorJson,
  agentActor,
  isSystemActor,
  signedActor,
} from '../../src/custody/actor.js';

const caller = { tenantId: 't1', agentId: 'a1', role: 'agent' as const, keyId: 'k1', agentName: 'Ada' };

describe('Actor', () => {
  it('keeps an agent and its role, nothing else of a caller', () => {
    expect(agentActor(caller)).toEqual({ agentId: 'a1', role: 'agent' });
    expect(signedActor(caller)).toEqual({ tenantId: 't1', agentId: 'a1', role: 'agent', name: 'Ada' });
  });

  it('stores an agent with its id and the system with none', () => {
    expect(actorColumns(agentActor(caller))).toEqual({ actor_agent_id: 'a1', actor_role: 'agent' });
    expect(actorColumns(SYSTEM_ACTOR)).toEqual({ actor_agent_id: null, actor_role: 'system' });
  });

  it('shows an actor as it is stored, whether from a transition or from a row', () => {
    expect(actorJson(agentActor(caller))).toEqual({ agent_id: 'a1', role: 'agent' });
    expect(actorJson(SYSTEM_ACTOR)).toEqual({ agent_id: null, role: 'system' });
    expect(actorJson({ actor_agent_id: null, actor_role: 'system' })).toEqual(actorJson(SYSTEM_ACTOR));
    expect(actorJson({ actor_agent_id: 'a2', actor_role: 'admin' })).toEqual({ agent_id: 'a2', role: 'admin' });
  });

  it('tells the system from an agent, and keeps the system as histories spell it', () => {
    expect(isSystemActor(SYSTEM_ACTOR)).toBe(true);
    expect(isSystemActor(agentActor(caller))).toBe(false);
    // Outboxes of running workflows carry this shape: it must not change.
    expect(JSON.parse(JSON.stringify(SYSTEM_ACTOR))).toEqual({ agentId: 'system', role: 'system' });
    expect(Object.isFrozen(SYSTEM_ACTOR)).toBe(true);
  });
});
