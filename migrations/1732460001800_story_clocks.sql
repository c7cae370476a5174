-- Up Migration

-- The clocks of a story's workflow that the worker judges a lease expiry or a stall against, so a
-- run started with a forged deadline cannot take a claim or stall a story early: the earliest the
-- current claim's lease runs out (a claim sets it, a heartbeat moves it later), and since when the
-- story waits on others. Written with the transitions (and by the gateway for a heartbeat or a
-- resume). Left empty for stories claimed or waiting before now: unknown, judged as before. Not
-- lease_expires_at (what GET /stories/:id shows, as the workflow last answered it): a run's word.
ALTER TABLE stories ADD COLUMN kept_lease_expires_at timestamptz, ADD COLUMN kept_waiting_since timestamptz;

-- Down Migration
ALTER TABLE stories DROP COLUMN kept_lease_expires_at, DROP COLUMN kept_waiting_since;
