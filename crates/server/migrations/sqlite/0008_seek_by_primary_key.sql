-- Seek by time and retention by time follow the primary key (a row's
-- max_timestamp is the partition's running maximum, so it grows with the
-- offset); the index on it was one more random insert per index row of
-- every flush commit.
DROP INDEX IF EXISTS batches_by_time;
