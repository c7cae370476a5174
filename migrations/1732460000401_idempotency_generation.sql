-- Up Migration

-- Each use of an Idempotency-Key (a new key, or one reused after it expired) gets a new
-- generation, and a story action's update id is derived from it: a request retried while the key
-- lives is applied once, and the same key and body after expiry is a new request with a new
-- update id (never mistaken for the first by the workflow, and never sharing its audit row key).
ALTER TABLE idempotency_keys ADD COLUMN generation uuid NOT NULL DEFAULT gen_random_uuid();

-- Down Migration
ALTER TABLE idempotency_keys DROP COLUMN generation;
