-- Up Migration

-- A webhook may be for one project of its tenant (loopctl's `project_id`): it hears only that
-- project's events. NULL: every event of the tenant, as before.
ALTER TABLE webhooks ADD COLUMN project_id uuid REFERENCES projects (id);

-- Down Migration
ALTER TABLE webhooks DROP COLUMN project_id;
