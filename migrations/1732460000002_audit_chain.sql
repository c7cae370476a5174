-- Up Migration

-- A tamper-evident audit trail: each row's hash covers its canonical form and the previous row's
-- hash in the same tenant's chain, so changing or removing any row breaks every later link.
ALTER TABLE audit_events ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;

CREATE FUNCTION audit_canonical(e audit_events) RETURNS text LANGUAGE sql IMMUTABLE AS $$
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

-- Links are made one at a time per tenant (a transaction-scoped advisory lock), in the order the
-- rows are written; `chain_seq` records that order.
CREATE FUNCTION audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_seq bigint;
  last_hash bytea;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('custody-audit:' || NEW.tenant_id::text, 0));
  SELECT chain_seq, hash INTO last_seq, last_hash FROM audit_events
    WHERE tenant_id = NEW.tenant_id AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1;
  NEW.chain_seq := coalesce(last_seq, 0) + 1;
  NEW.prev_hash := coalesce(last_hash, '\x'::bytea);
  NEW.hash := sha256(NEW.prev_hash || convert_to(audit_canonical(NEW), 'UTF8'));
  RETURN NEW;
END
$$;

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Rows written before the chain existed are linked now, in the order they were written.
DO $$
DECLARE
  r record;
  prev bytea;
  n bigint;
  current_tenant uuid;
BEGIN
  FOR r IN SELECT * FROM audit_events ORDER BY tenant_id, id LOOP
    IF current_tenant IS DISTINCT FROM r.tenant_id THEN
      current_tenant := r.tenant_id; prev := '\x'::bytea; n := 0;
    END IF;
    n := n + 1;
    r.chain_seq := n;
    r.prev_hash := prev;
    r.hash := sha256(prev || convert_to(audit_canonical(r::audit_events), 'UTF8'));
    UPDATE audit_events SET chain_seq = r.chain_seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
    prev := r.hash;
  END LOOP;
END
$$;

ALTER TABLE audit_events ALTER COLUMN chain_seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (tenant_id, chain_seq);
CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_chain();
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_append_only();

-- Down Migration
DROP TRIGGER audit_events_append_only ON audit_events;
DROP TRIGGER audit_events_chain ON audit_events;
DROP FUNCTION audit_append_only();
DROP FUNCTION audit_chain();
DROP FUNCTION audit_canonical(audit_events);
ALTER TABLE audit_events DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN hash;
