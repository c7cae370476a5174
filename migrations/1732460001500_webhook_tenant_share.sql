-- Up Migration

-- A tenant has at most its share of deliveries in flight (handed to a delivery workflow, not yet
-- finished); the rest wait here, oldest first, until one of its deliveries ends. These find, per
-- tenant, the waiting ones and count the ones in flight.
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (tenant_id, created_at) WHERE status = 'pending' AND dispatched_at IS NULL;
CREATE INDEX webhook_deliveries_in_flight ON webhook_deliveries (tenant_id) WHERE status = 'pending' AND dispatched_at IS NOT NULL;

-- Down Migration
DROP INDEX webhook_deliveries_in_flight;
DROP INDEX webhook_deliveries_waiting;
