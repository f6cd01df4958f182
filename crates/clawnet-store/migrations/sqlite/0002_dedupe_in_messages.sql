-- The dedupe window moves into the writer's memory and is rebuilt from the
-- messages themselves at open: a separate dedupe table cost one scattered
-- B-tree page per sender in every commit.
ALTER TABLE messages ADD COLUMN from_id TEXT;
ALTER TABLE messages ADD COLUMN dedupe_key TEXT;
DROP TABLE dedupe;
