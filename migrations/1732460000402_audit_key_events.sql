-- Up Migration

-- The audit trail holds events that belong to no story (an API key rotated or revoked): their rows
-- have no project, story or workflow. Story rows keep all three, as the code writes them.
ALTER TABLE audit_events ALTER COLUMN project_id DROP NOT NULL, ALTER COLUMN story_id DROP NOT NULL,
  ALTER COLUMN workflow_id DROP NOT NULL;

-- Down Migration
-- Rows without a story cannot be kept under the old shape; the trail is append-only, so the
-- columns stay nullable rather than lose them.
SELECT 1;
