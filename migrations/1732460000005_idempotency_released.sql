-- Up Migration

-- A reservation whose request failed (5xx, 429) is released rather than deleted: a retry with the
-- same request may take it again, a different request under the same key is still refused (its
-- update id would differ, so the first request could yet be applied as well).
ALTER TABLE idempotency_keys ADD COLUMN released boolean NOT NULL DEFAULT false;
-- Which request holds the reservation: only that one may settle it, so a request that outlived
-- its reservation cannot release or answer for the request that took it over.
ALTER TABLE idempotency_keys ADD COLUMN reservation uuid;
-- Answers are stored sealed from now on; those stored before held raw API keys in the clear.
DELETE FROM idempotency_keys WHERE response #>> '{data,api_key,key}' IS NOT NULL;

-- Down Migration
DELETE FROM idempotency_keys WHERE released;
ALTER TABLE idempotency_keys DROP COLUMN reservation;
ALTER TABLE idempotency_keys DROP COLUMN released;
