-- Counters pollers watch to learn of changes (a topic deletion).
CREATE TABLE epochs (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO epochs (name, value) VALUES ('topics', 0);
