-- Up Migration

-- Board sign-ins: a browser session for one API key, scoped to its tenant. Only a digest of the
-- session token is stored; the CSRF token guards the one state-changing form (sign out). A session
-- ends at its expiry, at sign out, or when its key is revoked (checked on every request).
CREATE TABLE board_sessions (
  token_hash bytea PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  agent_id uuid NOT NULL REFERENCES agents (id),
  key_id uuid NOT NULL REFERENCES api_keys (id),
  csrf_token text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX board_sessions_expiry ON board_sessions (expires_at);

-- When a story's violation count was last signalled to its workflow, by any gateway: the gate
-- that keeps it to one signal per story per interval across processes.
CREATE TABLE violation_signals (
  story_id uuid PRIMARY KEY REFERENCES stories (id),
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  sent_at timestamptz NOT NULL
);

-- Down Migration
DROP TABLE violation_signals;
DROP TABLE board_sessions;
