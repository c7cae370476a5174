-- Up Migration

-- Per-project clocks: how long a claim lives without a heartbeat, how long a story may wait on
-- review or verification before it is stalled. Stories are started with the project's values.
ALTER TABLE projects
  ADD COLUMN lease_ttl_seconds integer NOT NULL DEFAULT 1800 CHECK (lease_ttl_seconds > 0),
  ADD COLUMN stall_after_seconds integer NOT NULL DEFAULT 86400 CHECK (stall_after_seconds > 0);
ALTER TABLE stories ADD COLUMN stalled boolean NOT NULL DEFAULT false;
CREATE INDEX stories_stalled ON stories (tenant_id, project_id) WHERE stalled;

-- Down Migration
DROP INDEX stories_stalled;
ALTER TABLE stories DROP COLUMN stalled;
ALTER TABLE projects DROP COLUMN lease_ttl_seconds, DROP COLUMN stall_after_seconds;
