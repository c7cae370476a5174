-- Up Migration

-- loopctl's fields: projects carry its descriptive fields and can be archived (read-only).
ALTER TABLE projects
  ADD COLUMN repo_url text,
  ADD COLUMN tech_stack text,
  ADD COLUMN mission text,
  ADD COLUMN settings jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN archived_at timestamptz;

ALTER TABLE epics ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';

-- Stories: loopctl's planning fields; the latest reported artifact and whether the story was
-- backfilled, projected from the workflow; deleted_at for a story withdrawn while pending (its
-- row and history stay).
ALTER TABLE stories
  ADD COLUMN estimated_hours numeric,
  ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN artifact jsonb,
  ADD COLUMN backfilled boolean NOT NULL DEFAULT false,
  ADD COLUMN deleted_at timestamptz;

-- Dependencies get an id of their own, for DELETE /story_dependencies/:id.
ALTER TABLE story_dependencies ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX story_dependencies_id ON story_dependencies (id);

-- Audit rows for what happens outside a story's workflow (creations, edits, imports, keys) have
-- no story, workflow or update of their own.
ALTER TABLE audit_events
  ALTER COLUMN project_id DROP NOT NULL,
  ALTER COLUMN story_id DROP NOT NULL,
  ALTER COLUMN workflow_id DROP NOT NULL;
CREATE INDEX audit_events_project ON audit_events (tenant_id, project_id, id);

-- Natural order of story numbers: 1.2 before 1.10 (ICU numeric collation).
CREATE COLLATION IF NOT EXISTS natural_numbers (provider = icu, locale = 'und-u-kn-true');

-- Down Migration
DROP COLLATION IF EXISTS natural_numbers;
DROP INDEX IF EXISTS audit_events_project;
ALTER TABLE story_dependencies DROP COLUMN id;
ALTER TABLE stories DROP COLUMN estimated_hours, DROP COLUMN metadata, DROP COLUMN artifact,
  DROP COLUMN backfilled, DROP COLUMN deleted_at;
ALTER TABLE epics DROP COLUMN metadata;
ALTER TABLE projects DROP COLUMN repo_url, DROP COLUMN tech_stack, DROP COLUMN mission, DROP COLUMN settings,
  DROP COLUMN archived_at;
