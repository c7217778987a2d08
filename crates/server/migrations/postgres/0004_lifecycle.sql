-- Data lifecycle: retention by bytes, cleanup policies, the jobs agents
-- lease (compaction, retention, releasing deleted topics), and indexes for
-- the garbage collector and the compaction planner.

ALTER TABLE topics ADD COLUMN retention_bytes BIGINT;
ALTER TABLE topics ADD COLUMN cleanup_policy TEXT NOT NULL DEFAULT 'delete';
ALTER TABLE topics ADD COLUMN delete_retention_ms BIGINT NOT NULL DEFAULT 86400000;

-- Objects whose rows are all gone wait here for the collector.
CREATE INDEX objects_delete_after ON objects (delete_after) WHERE delete_after IS NOT NULL;
-- Flush objects (state 'live') not yet compacted, oldest first.
CREATE INDEX objects_uncompacted ON objects (created_at) WHERE state = 'live';

-- Work any agent may do, leased so none is done twice at once; a job whose
-- lease ran out (its agent died) is claimed again.
CREATE TABLE jobs (
    kind        TEXT NOT NULL,
    topic_id    UUID NOT NULL,
    partition   INT NOT NULL,
    owner       TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    attempts    INT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, topic_id, partition)
);
CREATE INDEX jobs_by_lease ON jobs (lease_until);

-- Objects no index row names (their topics were deleted before rows were
-- released in the background) go to the collector after a grace.
UPDATE objects SET delete_after = (extract(epoch from clock_timestamp()) * 1000)::bigint + 900000
WHERE delete_after IS NULL
  AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.object_id = objects.id);
