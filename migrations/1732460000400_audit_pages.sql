-- Up Migration

-- History pages walk a story's rows in its tenant's audit order (chain_seq), never the global id.
CREATE INDEX audit_events_story_chain ON audit_events (tenant_id, story_id, chain_seq);

-- Down Migration
DROP INDEX audit_events_story_chain;
