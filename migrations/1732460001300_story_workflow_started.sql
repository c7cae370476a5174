-- Up Migration

-- Whether the story's workflow was started and told of every dependency it has: an import skips
-- such a story when its content is unchanged, without asking Temporal. Cleared when an import adds
-- a dependency to it (it must hear of it), set once the start and the news went through. Rows
-- that predate it are started again by their next import (a no-op for a running workflow).
ALTER TABLE stories ADD COLUMN workflow_started boolean NOT NULL DEFAULT false;

-- Down Migration
ALTER TABLE stories DROP COLUMN workflow_started;
