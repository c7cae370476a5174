-- Up Migration

CREATE TABLE tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  slug text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'orchestrator', 'agent')),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_tenant ON agents (tenant_id, created_at);

-- Keys are stored only as a SHA-256 digest of the raw key; `prefix` is a non-secret label.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  agent_id uuid NOT NULL REFERENCES agents (id),
  prefix text NOT NULL,
  key_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX api_keys_agent ON api_keys (tenant_id, agent_id);

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  name text NOT NULL,
  slug text NOT NULL,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, slug)
);

CREATE TABLE epics (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  project_id uuid NOT NULL REFERENCES projects (id),
  number integer NOT NULL,
  title text NOT NULL,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, number)
);

-- The read model of each story workflow. Static fields are written at creation; the lifecycle
-- fields only by the persistence activity, guarded by `version` (the workflow's transition
-- sequence) so a late write never overwrites a newer one.
CREATE TABLE stories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Creation order, exact and unique: what list cursors page by.
  position bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  project_id uuid NOT NULL REFERENCES projects (id),
  epic_id uuid NOT NULL REFERENCES epics (id),
  number text NOT NULL,
  title text NOT NULL,
  description text,
  acceptance_criteria jsonb NOT NULL DEFAULT '[]',
  workflow_id text NOT NULL UNIQUE,
  agent_status text NOT NULL DEFAULT 'pending',
  verified_status text NOT NULL DEFAULT 'unverified',
  assigned_agent_id uuid,
  reported_by_agent_id uuid,
  reviewer_agent_id uuid,
  verified_by_agent_id uuid,
  implementer_agent_ids uuid[] NOT NULL DEFAULT '{}',
  iteration integer NOT NULL DEFAULT 1,
  review jsonb,
  version bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, number)
);
CREATE INDEX stories_tenant_project_status ON stories (tenant_id, project_id, agent_status, verified_status);
CREATE INDEX stories_tenant_position ON stories (tenant_id, position);
CREATE INDEX stories_epic ON stories (epic_id);

CREATE TABLE story_dependencies (
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  story_id uuid NOT NULL REFERENCES stories (id),
  depends_on_story_id uuid NOT NULL REFERENCES stories (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (story_id, depends_on_story_id),
  CHECK (story_id <> depends_on_story_id)
);
CREATE INDEX story_dependencies_reverse ON story_dependencies (depends_on_story_id);

-- Append-only chain of custody: every accepted transition once, every rejected attempt once.
CREATE TABLE audit_events (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  project_id uuid NOT NULL,
  story_id uuid NOT NULL,
  workflow_id text NOT NULL,
  run_id text,
  update_id text NOT NULL,
  seq bigint,
  outcome text NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
  code text,
  action text NOT NULL,
  actor_agent_id uuid,
  actor_role text,
  from_agent_status text,
  from_verified_status text,
  to_agent_status text,
  to_verified_status text,
  iteration integer,
  payload jsonb NOT NULL DEFAULT '{}',
  occurred_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
-- A retried activity or a retried rejected call writes nothing twice.
CREATE UNIQUE INDEX audit_events_once ON audit_events (workflow_id, update_id, outcome);
CREATE INDEX audit_events_story ON audit_events (tenant_id, story_id, id);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

CREATE TABLE idempotency_keys (
  tenant_id uuid NOT NULL,
  agent_id uuid NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status integer NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, agent_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Down Migration
DROP TABLE idempotency_keys;
DROP TABLE audit_events;
DROP TABLE story_dependencies;
DROP TABLE stories;
DROP TABLE epics;
DROP TABLE projects;
DROP TABLE api_keys;
DROP TABLE agents;
DROP TABLE tenants;
