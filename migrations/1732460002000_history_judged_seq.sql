-- Up Migration

-- A rejected attempt is written by the gateway when the workflow refuses it, which can be before
-- the worker has written the accepted transition it was judged against. `judged_seq` is that
-- transition's sequence number, so a story's history lists each attempt in the order the workflow
-- judged it, not the order the rows happened to be written.
ALTER TABLE audit_events ADD COLUMN judged_seq bigint;

-- Part of the hashed row when set; rows without it keep the canonical form (and hash) they were linked with.
CREATE OR REPLACE FUNCTION audit_canonical(e audit_events) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT (jsonb_build_object(
    'id', e.id, 'tenant_id', e.tenant_id, 'project_id', e.project_id, 'story_id', e.story_id,
    'workflow_id', e.workflow_id, 'run_id', e.run_id, 'update_id', e.update_id, 'seq', e.seq,
    'outcome', e.outcome, 'code', e.code, 'action', e.action, 'actor_agent_id', e.actor_agent_id,
    'actor_role', e.actor_role, 'from_agent_status', e.from_agent_status,
    'from_verified_status', e.from_verified_status, 'to_agent_status', e.to_agent_status,
    'to_verified_status', e.to_verified_status, 'iteration', e.iteration, 'payload', e.payload,
    'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'recorded_at', to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'chain_seq', e.chain_seq
  ) || CASE WHEN e.judged_seq IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('judged_seq', e.judged_seq) END)::text
$$;

-- Down Migration
CREATE OR REPLACE FUNCTION audit_canonical(e audit_events) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'id', e.id, 'tenant_id', e.tenant_id, 'project_id', e.project_id, 'story_id', e.story_id,
    'workflow_id', e.workflow_id, 'run_id', e.run_id, 'update_id', e.update_id, 'seq', e.seq,
    'outcome', e.outcome, 'code', e.code, 'action', e.action, 'actor_agent_id', e.actor_agent_id,
    'actor_role', e.actor_role, 'from_agent_status', e.from_agent_status,
    'from_verified_status', e.from_verified_status, 'to_agent_status', e.to_agent_status,
    'to_verified_status', e.to_verified_status, 'iteration', e.iteration, 'payload', e.payload,
    'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'recorded_at', to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'chain_seq', e.chain_seq
  )::text
$$;
ALTER TABLE audit_events DROP COLUMN judged_seq;
