//! The SQL PostgreSQL spells its own way: a set of rows is `unnest` over
//! one array parameter per column, the clock is `clock_timestamp()`, the
//! commit locks its partition rows in a fixed order (the planner chooses an
//! UPDATE's lock order, so the explicit sorted lock prevents deadlocks),
//! and one data-modifying CTE advances the partitions and inserts the index
//! rows in a single round trip. A flush commit without idempotency keys is
//! one statement in all (`commit_in_one`).

use crate::metadata::sql::ColType;

/// Milliseconds since the epoch by the database server's clock.
pub(super) const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn array_type(t: ColType) -> &'static str {
    match t {
        ColType::Uuid => "uuid[]",
        ColType::Int => "int[]",
        ColType::BigInt => "bigint[]",
        ColType::Text => "text[]",
    }
}

/// `unnest($first::uuid[], $first+1::int[], …) AS alias(a, b, …)`.
pub(super) fn rows_from(first: usize, alias: &str, cols: &[(&str, ColType)]) -> String {
    let arrays: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{}", first + i, array_type(*t)))
        .collect();
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    format!(
        "unnest({}) AS {alias}({})",
        arrays.join(", "),
        names.join(", ")
    )
}

/// Locks partition rows one by one in key order: each is looked up by its
/// primary key from `sorted` (a query of `t, n` in key order), in a
/// lateral subquery with its own `FOR UPDATE`, which the planner never
/// merges into a join it could reorder or turn into a scan of the table.
/// So the work grows with the rows locked, not with the table, and two
/// commits cannot deadlock.
fn locked(sorted: &str) -> String {
    format!(
        "SELECT x.topic_id, x.partition FROM ({sorted}) k CROSS JOIN LATERAL \
         (SELECT p.topic_id, p.partition FROM partitions p \
         WHERE p.topic_id = k.t AND p.partition = k.n FOR UPDATE) x"
    )
}

pub(super) fn lock_partitions(keys: &str) -> String {
    locked(&format!("SELECT * FROM {keys} ORDER BY k.t, k.n"))
}

pub(super) fn advance(chunks: &str) -> String {
    format!(
        "WITH c AS (SELECT * FROM {chunks}), \
         u AS (UPDATE partitions AS p SET next_offset = p.next_offset + c.cnt, \
         max_timestamp = GREATEST(p.max_timestamp, c.mts), bytes = p.bytes + c.len \
         FROM c WHERE p.topic_id = c.t AND p.partition = c.n \
         RETURNING p.topic_id, p.partition, p.next_offset, p.max_timestamp, c.cnt, c.off, c.len) \
         INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
         byte_offset, byte_len, record_count, max_timestamp) \
         SELECT topic_id, partition, next_offset - 1, next_offset - cnt, $1, off, len, cnt, \
         max_timestamp FROM u RETURNING topic_id, partition, base_offset, max_timestamp"
    )
}

/// The whole flush commit as one statement, run on its own (so in one
/// round trip, and partition rows stay locked only while it runs and
/// commits, not while the agent sends the next statement). `insert_object`
/// takes `$1..$7` and returns `id`; `chunks` is the chunk row set from `$8`.
///
/// The object row goes in first; only if it did are the partitions locked
/// in key order (`locked`: every row the UPDATE touches comes through it,
/// so rows are locked in that order and two commits cannot deadlock),
/// advanced, and indexed. If the object aged past its limit (`$6`, from
/// its birth `$7`) while the statement waited for the locks, the offset it
/// sets is NULL, which `NOT NULL` refuses: the statement fails whole and
/// nothing is applied.
///
/// Returns one row per index row (`kind` = `chunk`) and one with `kind` =
/// `object` when the object row went in.
pub(super) fn commit_in_one(insert_object: &str, chunks: &str, now: &str) -> String {
    let lock = locked("SELECT c.t, c.n FROM c WHERE EXISTS (SELECT 1 FROM o) ORDER BY c.t, c.n");
    format!(
        "WITH o AS ({insert_object}), \
         c AS (SELECT * FROM {chunks}), \
         l AS MATERIALIZED ({lock}), \
         u AS (UPDATE partitions AS p SET next_offset = p.next_offset + c.cnt \
         + CASE WHEN CAST($6 AS BIGINT) IS NOT NULL AND CAST($7 AS BIGINT) < {now} - CAST($6 AS BIGINT) \
         THEN NULL ELSE 0 END, \
         max_timestamp = GREATEST(p.max_timestamp, c.mts), bytes = p.bytes + c.len \
         FROM c, l WHERE p.topic_id = c.t AND p.partition = c.n \
         AND l.topic_id = c.t AND l.partition = c.n \
         RETURNING p.topic_id, p.partition, p.next_offset, p.max_timestamp, c.cnt, c.off, c.len), \
         i AS (INSERT INTO batches (topic_id, partition, last_offset, base_offset, object_id, \
         byte_offset, byte_len, record_count, max_timestamp) \
         SELECT topic_id, partition, next_offset - 1, next_offset - cnt, $1, off, len, cnt, \
         max_timestamp FROM u RETURNING topic_id, partition, base_offset, max_timestamp) \
         SELECT 'chunk' AS kind, topic_id, partition, base_offset, max_timestamp FROM i \
         UNION ALL SELECT 'object', CAST(NULL AS UUID), CAST(NULL AS INT), CAST(NULL AS BIGINT), \
         CAST(NULL AS BIGINT) FROM o"
    )
}
