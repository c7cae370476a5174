-- Up Migration

-- When a delivery's workflow was started. A delivery committed but never started (the start
-- failed, or its process died in between) is found by the sweeper by this column being NULL.
ALTER TABLE webhook_deliveries ADD COLUMN dispatched_at timestamptz;
UPDATE webhook_deliveries SET dispatched_at = created_at WHERE status <> 'pending';
CREATE INDEX webhook_deliveries_undispatched ON webhook_deliveries (created_at) WHERE status = 'pending' AND dispatched_at IS NULL;

-- Down Migration
DROP INDEX webhook_deliveries_undispatched;
ALTER TABLE webhook_deliveries DROP COLUMN dispatched_at;
