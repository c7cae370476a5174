-- Up Migration

-- A delivery in flight whose workflow was closed from outside (terminated in the Temporal UI)
-- never ends by itself and would hold its tenant's place for good: the worker's sweep looks at
-- each delivery in flight now and then (this is when it last did) and ends the abandoned ones.
ALTER TABLE webhook_deliveries ADD COLUMN slot_checked_at timestamptz;

-- Down Migration
ALTER TABLE webhook_deliveries DROP COLUMN slot_checked_at;
