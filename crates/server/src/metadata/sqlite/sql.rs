//! The SQL SQLite spells its own way: a set of rows is one JSON array of
//! rows read with `json_each`, the clock comes from `julianday`, and
//! without data-modifying CTEs the commit's update and index insert are two
//! statements (no row lock is needed: the transaction holds the database's
//! one write lock).

use crate::metadata::sql::ColType;

/// Milliseconds since the epoch by this process's clock.
pub(super) const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// `(SELECT value->>0 AS a, value->>1 AS b FROM json_each($first)) AS alias`.
pub(super) fn rows_from(first: usize, alias: &str, cols: &[(&str, ColType)]) -> String {
    let picks: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("value->>{i} AS {name}"))
        .collect();
    format!(
        "(SELECT {} FROM json_each(${first})) AS {alias}",
        picks.join(", ")
    )
}

pub(super) fn advance(chunks: &str) -> Vec<String> {
    vec![
        format!(
            "UPDATE partitions SET next_offset = next_offset + c.cnt, \
             max_timestamp = max(max_timestamp, c.mts), bytes = bytes + c.len FROM {chunks} \
             WHERE partitions.topic_id = c.t AND partitions.partition = c.n"
        ),
        format!(
            "INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
             byte_offset, byte_len, record_count, max_timestamp) \
             SELECT c.t, c.n, p.next_offset - 1, p.next_offset - c.cnt, $1, c.off, c.len, c.cnt, \
             p.max_timestamp FROM {chunks} JOIN partitions p ON p.topic_id = c.t AND p.partition = c.n \
             WHERE true RETURNING topic_id, partition, base_offset, max_timestamp"
        ),
    ]
}
