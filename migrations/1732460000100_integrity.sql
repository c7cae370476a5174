-- Up Migration

-- A story the worker refused to write a batch for (an integrity violation) is held: it takes no
-- action until an admin resumes it. Both the refusal and the resumption are audit rows.
ALTER TABLE stories ADD COLUMN held boolean NOT NULL DEFAULT false, ADD COLUMN held_reason text;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check
  CHECK (outcome IN ('accepted', 'rejected', 'integrity_violation', 'resumed'));

-- Down Migration
ALTER TABLE audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('accepted', 'rejected'));
ALTER TABLE stories DROP COLUMN held, DROP COLUMN held_reason;
