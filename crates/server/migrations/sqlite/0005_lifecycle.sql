-- Data lifecycle: retention by bytes, cleanup policies, the jobs agents
-- lease, and indexes for the garbage collector and the compaction planner.

ALTER TABLE topics ADD COLUMN retention_bytes INTEGER;
ALTER TABLE topics ADD COLUMN cleanup_policy TEXT NOT NULL DEFAULT 'delete';
ALTER TABLE topics ADD COLUMN delete_retention_ms INTEGER NOT NULL DEFAULT 86400000;

CREATE INDEX objects_delete_after ON objects (delete_after) WHERE delete_after IS NOT NULL;
CREATE INDEX objects_uncompacted ON objects (created_at) WHERE state = 'live';

CREATE TABLE jobs (
    kind        TEXT NOT NULL,
    topic_id    TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    owner       TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, topic_id, partition)
) WITHOUT ROWID;
CREATE INDEX jobs_by_lease ON jobs (lease_until);

-- Objects no index row names (their topics were deleted before rows were
-- released in the background) go to the collector after a grace.
UPDATE objects SET delete_after = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + 900000
WHERE delete_after IS NULL
  AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.object_id = objects.id);
