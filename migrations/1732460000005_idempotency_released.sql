-- Up Migration

-- A reservation whose request failed (5xx, 429) is released rather than deleted: a retry with the
-- same request may take it again, a different request under the same key is still refused (its
-- update id would differ, so the first request could yet be applied as well).
ALTER TABLE idempotency_keys ADD COLUMN released boolean NOT NULL DEFAULT false;

-- Down Migration
DELETE FROM idempotency_keys WHERE released;
ALTER TABLE idempotency_keys DROP COLUMN released;
