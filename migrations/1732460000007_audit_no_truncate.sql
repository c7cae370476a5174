-- Up Migration

-- TRUNCATE fires no row trigger: without this, the application's connection could empty the
-- trail and a later verify would find nothing wrong with nothing.
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Down Migration
DROP TRIGGER audit_events_no_truncate ON audit_events;
