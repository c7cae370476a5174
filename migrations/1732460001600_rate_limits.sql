-- Up Migration

-- The gateway's rate-limit counters, shared by every gateway process: a fixed window per key (a
-- limiter's name and whom it counts: an agent, a tenant, a client address). Without this each
-- gateway counted on its own and N gateways let N times the limit through. UNLOGGED: a counter is
-- worth no WAL, and a database crash that empties the table only restarts every window.
CREATE UNLOGGED TABLE rate_limits (
  key text PRIMARY KEY,
  hits integer NOT NULL,
  reset_at timestamptz NOT NULL
);
CREATE INDEX rate_limits_reset_at ON rate_limits (reset_at);

-- Down Migration
DROP TABLE rate_limits;
