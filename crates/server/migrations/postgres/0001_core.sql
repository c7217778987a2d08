-- Core schema: topics, partitions, objects, the offset index, group offsets.
-- Kept to what PostgreSQL and CockroachDB share: UUID keys minted by the
-- agents (no sequences, no hot spots), no triggers, no PL/pgSQL.
-- Times are milliseconds since the epoch.

CREATE TABLE topics (
    id              UUID PRIMARY KEY,
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    partition_count INT NOT NULL,
    retention_ms    BIGINT,
    compression     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
-- A deleted topic frees its name at once.
CREATE UNIQUE INDEX topics_live_name ON topics (tenant, name) WHERE deleted_at IS NULL;

CREATE TABLE partitions (
    topic_id         UUID NOT NULL,
    partition        INT NOT NULL,
    next_offset      BIGINT NOT NULL DEFAULT 0,
    log_start_offset BIGINT NOT NULL DEFAULT 0,
    -- Running maximum of record timestamps, for seek by time.
    max_timestamp    BIGINT NOT NULL DEFAULT -1,
    bytes            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
);

CREATE TABLE objects (
    id           UUID PRIMARY KEY,
    object_key   TEXT NOT NULL,
    size         BIGINT NOT NULL,
    state        TEXT NOT NULL,
    writer       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    delete_after BIGINT
);

-- The offset index: "first batch with last_offset >= N" is one range scan.
CREATE TABLE batches (
    topic_id      UUID NOT NULL,
    partition     INT NOT NULL,
    last_offset   BIGINT NOT NULL,
    base_offset   BIGINT NOT NULL,
    object_id     UUID NOT NULL,
    byte_offset   BIGINT NOT NULL,
    byte_len      BIGINT NOT NULL,
    record_count  BIGINT NOT NULL,
    max_timestamp BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, last_offset)
);
CREATE INDEX batches_by_time ON batches (topic_id, partition, max_timestamp);
CREATE INDEX batches_by_object ON batches (object_id);

CREATE TABLE group_offsets (
    tenant           TEXT NOT NULL,
    group_id         TEXT NOT NULL,
    topic_id         UUID NOT NULL,
    partition        INT NOT NULL,
    committed_offset BIGINT NOT NULL,
    metadata         TEXT,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant, group_id, topic_id, partition)
);

-- Counters other agents poll to learn of changes they must not miss
-- (a topic deletion invalidates their caches).
CREATE TABLE epochs (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO epochs (name, value) VALUES ('topics', 0);
