-- Consumer-group membership and webhook subscriptions.

-- A group's members, assignment and positions as one document, replaced
-- only by a writer that read the current version (compare and swap), so
-- any agent may serve any member without holding locks between calls.
CREATE TABLE group_state (
    tenant     TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    version    BIGINT NOT NULL,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, group_id)
);

-- Push delivery of a topic to an HTTP endpoint; its progress is the
-- offsets of the group named 'subscription:<name>'.
CREATE TABLE subscriptions (
    tenant            TEXT NOT NULL,
    name              TEXT NOT NULL,
    topic             TEXT NOT NULL,
    url               TEXT NOT NULL,
    secret            TEXT NOT NULL,
    max_batch_records INT NOT NULL,
    max_batch_wait_ms BIGINT NOT NULL,
    max_attempts      INT NOT NULL,
    start_at          TEXT NOT NULL,
    paused            INT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    delivered         BIGINT NOT NULL DEFAULT 0,
    failures          BIGINT NOT NULL DEFAULT 0,
    dead_lettered     BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    last_error_at     BIGINT,
    PRIMARY KEY (tenant, name)
);
