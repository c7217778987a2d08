-- Core schema: topics, partitions, objects, the offset index, group offsets.
-- Ids are UUIDs stored as text; times are milliseconds since the epoch.

CREATE TABLE topics (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    partition_count INTEGER NOT NULL,
    retention_ms    INTEGER,
    compression     TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
-- A deleted topic frees its name at once.
CREATE UNIQUE INDEX topics_live_name ON topics (tenant, name) WHERE deleted_at IS NULL;

CREATE TABLE partitions (
    topic_id         TEXT NOT NULL REFERENCES topics (id),
    partition        INTEGER NOT NULL,
    next_offset      INTEGER NOT NULL DEFAULT 0,
    log_start_offset INTEGER NOT NULL DEFAULT 0,
    -- Running maximum of record timestamps, for seek by time.
    max_timestamp    INTEGER NOT NULL DEFAULT -1,
    bytes            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;

CREATE TABLE objects (
    id           TEXT PRIMARY KEY,
    object_key   TEXT NOT NULL,
    size         INTEGER NOT NULL,
    state        TEXT NOT NULL,
    writer       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    delete_after INTEGER
);

-- The offset index: "first batch with last_offset >= N" is one range scan.
CREATE TABLE batches (
    topic_id      TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    last_offset   INTEGER NOT NULL,
    base_offset   INTEGER NOT NULL,
    object_id     TEXT NOT NULL,
    byte_offset   INTEGER NOT NULL,
    byte_len      INTEGER NOT NULL,
    record_count  INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    PRIMARY KEY (topic_id, partition, last_offset)
) WITHOUT ROWID;
CREATE INDEX batches_by_time ON batches (topic_id, partition, max_timestamp);
CREATE INDEX batches_by_object ON batches (object_id);

CREATE TABLE group_offsets (
    tenant           TEXT NOT NULL,
    group_id         TEXT NOT NULL,
    topic_id         TEXT NOT NULL,
    partition        INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    metadata         TEXT,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant, group_id, topic_id, partition)
) WITHOUT ROWID;
