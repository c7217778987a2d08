-- Objects the sweep wrote (small chunks of many partitions merged), oldest
-- first: the small ones are merged again with newer flushes.
CREATE INDEX objects_swept ON objects (created_at) WHERE state = 'swept';
