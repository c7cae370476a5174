-- Up Migration

-- An Idempotency-Key is reserved before its request runs (status and response still NULL), so two
-- concurrent requests with one key cannot both run: the second is told the first is in progress.
ALTER TABLE idempotency_keys ALTER COLUMN status DROP NOT NULL, ALTER COLUMN response DROP NOT NULL;

-- Down Migration
DELETE FROM idempotency_keys WHERE status IS NULL;
ALTER TABLE idempotency_keys ALTER COLUMN status SET NOT NULL, ALTER COLUMN response SET NOT NULL;
