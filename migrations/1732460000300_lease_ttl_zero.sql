-- Up Migration

-- lease_ttl_seconds = 0 means claims never expire (no lease): a project that wants no clock on its
-- implementers says so, rather than picking a huge number.
ALTER TABLE projects DROP CONSTRAINT projects_lease_ttl_seconds_check;
ALTER TABLE projects ADD CONSTRAINT projects_lease_ttl_seconds_check CHECK (lease_ttl_seconds >= 0);

-- Down Migration
UPDATE projects SET lease_ttl_seconds = 1800 WHERE lease_ttl_seconds = 0;
ALTER TABLE projects DROP CONSTRAINT projects_lease_ttl_seconds_check;
ALTER TABLE projects ADD CONSTRAINT projects_lease_ttl_seconds_check CHECK (lease_ttl_seconds > 0);
