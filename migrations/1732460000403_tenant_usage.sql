-- Up Migration

-- Bytes each tenant has made the database keep: its story rows and audit rows as written (the
-- stored-bytes quota). Kept by triggers, so a quota check reads one row instead of summing a
-- tenant's whole trail. Audit rows are already written one at a time per tenant (the chain lock),
-- so the counter's row lock serialises nothing new.
CREATE TABLE tenant_usage (
  tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
  stored_bytes bigint NOT NULL DEFAULT 0
);

INSERT INTO tenant_usage (tenant_id, stored_bytes)
SELECT tenant_id, sum(bytes) FROM (
  SELECT tenant_id, pg_column_size(s.*)::bigint AS bytes FROM stories s
  UNION ALL SELECT tenant_id, pg_column_size(e.*)::bigint FROM audit_events e
) written GROUP BY tenant_id;

CREATE FUNCTION tenant_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tenant_usage (tenant_id, stored_bytes) VALUES (NEW.tenant_id, pg_column_size(NEW.*))
  ON CONFLICT (tenant_id) DO UPDATE SET stored_bytes = tenant_usage.stored_bytes + excluded.stored_bytes;
  RETURN NULL;
END
$$;

CREATE TRIGGER stories_usage AFTER INSERT ON stories FOR EACH ROW EXECUTE FUNCTION tenant_usage_count();
CREATE TRIGGER audit_events_usage AFTER INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION tenant_usage_count();

-- Down Migration
DROP TRIGGER audit_events_usage ON audit_events;
DROP TRIGGER stories_usage ON stories;
DROP FUNCTION tenant_usage_count();
DROP TABLE tenant_usage;
