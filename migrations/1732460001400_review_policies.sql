-- Up Migration

-- Review policies, per project and versioned like branch protection: a change is a new version
-- (the old ones stay, every change is also an audit row), and an iteration of a story keeps the
-- version its contract pinned. A project without a row here has the default policy (one review).
CREATE TABLE review_policies (
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  project_id uuid NOT NULL REFERENCES projects (id),
  version integer NOT NULL CHECK (version >= 1),
  rounds jsonb NOT NULL,
  created_by uuid NOT NULL REFERENCES agents (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, version)
);
CREATE INDEX review_policies_tenant ON review_policies (tenant_id, project_id, version DESC);

-- Labels are identity: set by an admin (audited), signed by the gateway into the agent's actions.
ALTER TABLE agents ADD COLUMN labels text[] NOT NULL DEFAULT '{}';

-- The story's policy for its current iteration, the progress of its rounds, and the identity of
-- the artifact it was verified on: projected from the workflow like the rest of its custody state.
ALTER TABLE stories
  ADD COLUMN review_policy jsonb,
  ADD COLUMN review_progress jsonb,
  ADD COLUMN verified_artifact text;

-- The artifact chain, one row per report, review, sign-off and verify: who, in which iteration
-- and round, with which findings, of which artifact. Written with the transition's audit row, once
-- (keyed like it on workflow and update id).
CREATE TABLE story_reviews (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  project_id uuid NOT NULL,
  story_id uuid NOT NULL REFERENCES stories (id),
  workflow_id text NOT NULL,
  update_id text NOT NULL,
  seq bigint NOT NULL,
  iteration integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('report', 'review', 'aggregation', 'verify')),
  round text,
  -- The entry's place among the iteration's reviews (or sign-offs): what its progress refers to.
  position integer,
  agent_id uuid NOT NULL,
  agent_labels text[] NOT NULL DEFAULT '{}',
  review_type text,
  findings_count integer,
  fixes_count integer,
  disproved_count integer,
  summary text,
  artifact jsonb,
  artifact_key text,
  occurred_at timestamptz NOT NULL,
  UNIQUE (workflow_id, update_id)
);
CREATE INDEX story_reviews_story ON story_reviews (tenant_id, story_id, seq);

-- Down Migration
DROP TABLE story_reviews;
ALTER TABLE stories DROP COLUMN review_policy, DROP COLUMN review_progress, DROP COLUMN verified_artifact;
ALTER TABLE agents DROP COLUMN labels;
DROP TABLE review_policies;
