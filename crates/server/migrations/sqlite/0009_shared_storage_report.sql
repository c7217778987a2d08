-- The per-topic storage figures, measured by one agent for the fleet
-- (each measurement scans the whole offset index) and read by every agent.
-- The `storage_report` epoch is when they were last measured (ms, by the
-- store's clock); an agent claims the next measurement by moving it.
CREATE TABLE topic_storage (
    topic_id TEXT PRIMARY KEY,
    bytes    INTEGER NOT NULL,
    objects  INTEGER NOT NULL
);
INSERT INTO epochs (name, value) VALUES ('storage_report', 0);
