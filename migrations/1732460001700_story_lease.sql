-- Up Migration

-- When the current claim's lease runs out, as the story's workflow last answered it (a claim, a
-- heartbeat, a resume). Shown by GET /stories/:id only while the story is held under a claim: the
-- lifecycle columns, not this one, say whether a claim is held.
ALTER TABLE stories ADD COLUMN lease_expires_at timestamptz;

-- Down Migration
ALTER TABLE stories DROP COLUMN lease_expires_at;
