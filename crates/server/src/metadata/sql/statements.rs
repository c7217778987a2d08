//! Every SQL statement of the metadata store, written once for both
//! backends. Parameters are `$1`, `$2`, … everywhere (sqlx numbers them the
//! same way on SQLite). A set of rows (a flush's chunks, a list of ids) is
//! a FROM item the dialect spells — `unnest` of arrays on PostgreSQL,
//! `json_each` of one JSON array on SQLite — and binds after the plain
//! parameters. What the dialects spell differently besides (the clock, the
//! flush commit's lock and update) comes from [`Dialect`].

use super::Dialect;

/// The type of one column of a bound row set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColType {
    Uuid,
    Int,
    BigInt,
    Text,
}

use ColType::{BigInt, Int, Text, Uuid};

pub(super) const TOPIC_COLS: &str = "id, tenant, name, partition_count, retention_ms, \
     retention_bytes, cleanup_policy, delete_retention_ms, compression, created_at";
const PARTITION_COLS: &str = "topic_id, partition, log_start_offset, next_offset, bytes";
const BATCH_COLS: &str =
    "base_offset, last_offset, object_id, byte_offset, byte_len, record_count, max_timestamp";

/// The chunks of a flush commit, one row each (see `commit::CommitRows`).
pub(super) const CHUNK_COLS: &[(&str, ColType)] = &[
    ("t", Uuid),
    ("n", Int),
    ("cnt", BigInt),
    ("mts", BigInt),
    ("off", BigInt),
    ("len", BigInt),
];
/// Partitions by topic id and number.
pub(super) const PARTITION_KEY_COLS: &[(&str, ColType)] = &[("t", Uuid), ("n", Int)];

/// In the seek's binary search (`find_batches_by_time`): whether the row
/// holding the middle offset of `lo..hi` has a running maximum at or after
/// the time `$1`. An offset past the last row counts as after: the search
/// then ends at `next_offset`, where no row is.
const YOUNG_AT_MIDDLE: &str = "COALESCE((SELECT x.max_timestamp >= $1 FROM batches x \
     WHERE x.topic_id = s.t AND x.partition = s.n AND x.last_offset >= (s.lo + s.hi) / 2 \
     ORDER BY x.last_offset LIMIT 1), true)";

/// Idempotency keys to record with a commit.
pub(super) const KEY_COLS: &[(&str, ColType)] = &[
    ("tn", Text),
    ("t", Uuid),
    ("k", Text),
    ("fp", Text),
    ("c", BigInt),
    ("e", BigInt),
];
/// Idempotency keys by name.
pub(super) const KEY_NAME_COLS: &[(&str, ColType)] = &[("tn", Text), ("t", Uuid), ("k", Text)];
/// Recorded answers of idempotency keys.
pub(super) const KEY_ANSWER_COLS: &[(&str, ColType)] =
    &[("tn", Text), ("t", Uuid), ("k", Text), ("r", Text)];
/// Group offsets to store.
pub(super) const GROUP_OFFSET_COLS: &[(&str, ColType)] =
    &[("t", Uuid), ("n", Int), ("o", BigInt), ("m", Text)];
const ID_COLS: &[(&str, ColType)] = &[("id", Uuid)];
const NUMBER_COLS: &[(&str, ColType)] = &[("n", Int)];

/// The statements, with the dialect's pieces filled in.
#[derive(Debug)]
pub(super) struct Statements {
    // Topics.
    pub(super) insert_topic: String,
    pub(super) insert_partitions: String,
    pub(super) get_topic: String,
    pub(super) list_topics: String,
    pub(super) configure_topic: String,
    pub(super) delete_topic: String,
    pub(super) delete_topic_rows: [String; 3],
    pub(super) bump_topic_epoch: String,
    pub(super) topic_epoch: String,
    pub(super) live_topics: String,
    // The log.
    pub(super) partitions: String,
    pub(super) partition_states: String,
    pub(super) find_batches: String,
    pub(super) find_batches_by_time: String,
    pub(super) known_objects: String,
    pub(super) now_ms: String,
    // The flush commit.
    pub(super) insert_object: String,
    pub(super) committed_chunks: String,
    pub(super) object_exists: String,
    pub(super) abandon_object: String,
    pub(super) insert_keys: String,
    pub(super) recorded_keys: String,
    pub(super) lock_partitions: Option<String>,
    pub(super) advance: Vec<String>,
    pub(super) commit_in_one: Option<String>,
    pub(super) answer_keys: String,
    // Group offsets.
    pub(super) upsert_group_offsets: String,
    pub(super) group_offsets: String,
    pub(super) list_groups: String,
    // Idempotency keys.
    pub(super) lookup_key: String,
    pub(super) expire_keys: String,
    // Revoked tokens.
    pub(super) revoke_token: String,
    pub(super) revoked_tokens: String,
    pub(super) expire_revocations: String,
}

impl Statements {
    pub(super) fn new<D: Dialect>() -> Statements {
        let rows = D::rows_from;
        let now = D::NOW_MS;
        // The object row goes in only while the object is young enough by
        // the store's clock (the orphan collector judges age by the same
        // clock); a conflict means the commit happened before, and on
        // PostgreSQL the insert waits for a still-running one.
        let insert_object = format!(
            "INSERT INTO objects (id, object_key, size, state, writer, created_at) \
             SELECT $1, $2, $3, 'live', $4, $5 \
             WHERE CAST($6 AS BIGINT) IS NULL OR CAST($7 AS BIGINT) >= {now} - CAST($6 AS BIGINT) \
             ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        Statements {
            insert_topic: "INSERT INTO topics (id, tenant, name, partition_count, retention_ms, \
                 compression, created_at, retention_bytes, cleanup_policy, delete_retention_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                .into(),
            insert_partitions: format!(
                "INSERT INTO partitions (topic_id, partition) SELECT $1, k.n FROM {} WHERE true",
                rows(2, "k", NUMBER_COLS)
            ),
            get_topic: format!(
                "SELECT {TOPIC_COLS} FROM topics \
                 WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL"
            ),
            list_topics: format!(
                "SELECT {TOPIC_COLS} FROM topics \
                 WHERE tenant = $1 AND deleted_at IS NULL AND name > $2 ORDER BY name LIMIT $3"
            ),
            configure_topic: format!(
                "UPDATE topics SET retention_ms = $3, compression = $4, retention_bytes = $5, \
                 cleanup_policy = $6, delete_retention_ms = $7 \
                 WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL RETURNING {TOPIC_COLS}"
            ),
            delete_topic: format!(
                "UPDATE topics SET deleted_at = $3 \
                 WHERE tenant = $1 AND name = $2 AND deleted_at IS NULL RETURNING {TOPIC_COLS}"
            ),
            // With its partitions gone, no in-flight flush can commit into
            // it; its index rows are released in the background (a job).
            delete_topic_rows: ["partitions", "group_offsets", "jobs"]
                .map(|table| format!("DELETE FROM {table} WHERE topic_id = $1")),
            bump_topic_epoch: "UPDATE epochs SET value = value + 1 WHERE name = 'topics'".into(),
            topic_epoch: "SELECT value FROM epochs WHERE name = 'topics'".into(),
            live_topics: format!(
                "SELECT t.id FROM topics t JOIN {} ON t.id = k.id WHERE t.deleted_at IS NULL",
                rows(1, "k", ID_COLS)
            ),

            partitions: format!(
                "SELECT {PARTITION_COLS} FROM partitions \
                 WHERE topic_id = $1 AND partition >= $2 ORDER BY partition LIMIT $3"
            ),
            partition_states: format!(
                "SELECT p.topic_id, p.partition, p.log_start_offset, p.next_offset, p.bytes \
                 FROM partitions p JOIN {} ON p.topic_id = k.t AND p.partition = k.n",
                rows(1, "k", PARTITION_KEY_COLS)
            ),
            find_batches: format!(
                "SELECT {BATCH_COLS} FROM batches WHERE topic_id = $1 AND partition = $2 \
                 AND last_offset >= $3 ORDER BY last_offset LIMIT $4"
            ),
            // The running maximum grows with the offset, so the offsets
            // whose row is at or after the time are a suffix: a binary search
            // over the partition's offsets finds the first, along the primary
            // key (the index has no timestamp column to keep up). Each step
            // probes the middle twice, once per CASE: without LATERAL (which
            // SQLite lacks) the recursive term cannot name the probe once.
            find_batches_by_time: format!(
                "WITH RECURSIVE s(t, n, lo, hi) AS (\
                 SELECT p.topic_id, p.partition, p.log_start_offset, p.next_offset \
                 FROM partitions p JOIN {} ON p.topic_id = k.t AND p.partition = k.n \
                 UNION ALL SELECT t, n, \
                 CASE WHEN {young} THEN lo ELSE (lo + hi) / 2 + 1 END, \
                 CASE WHEN {young} THEN (lo + hi) / 2 ELSE hi END FROM s WHERE lo < hi) \
                 SELECT b.topic_id, b.partition, {BATCH_COLS} FROM s JOIN batches b \
                 ON b.topic_id = s.t AND b.partition = s.n AND b.last_offset = \
                 (SELECT x.last_offset FROM batches x WHERE x.topic_id = s.t \
                 AND x.partition = s.n AND x.last_offset >= s.lo ORDER BY x.last_offset LIMIT 1) \
                 WHERE s.lo >= s.hi",
                rows(2, "k", PARTITION_KEY_COLS),
                young = YOUNG_AT_MIDDLE,
            ),
            known_objects: format!(
                "SELECT o.id FROM objects o JOIN {} ON o.id = k.id",
                rows(1, "k", ID_COLS)
            ),
            now_ms: format!("SELECT {now} AS now_ms"),

            commit_in_one: D::commit_in_one(&insert_object, &rows(8, "c", CHUNK_COLS)),
            insert_object,
            committed_chunks:
                "SELECT topic_id, partition, base_offset, max_timestamp FROM batches \
                 WHERE object_id = $1"
                    .into(),
            object_exists: "SELECT id FROM objects WHERE id = $1".into(),
            // An object none of whose chunks landed (their topics were
            // deleted) is garbage at once: no row ever named it.
            abandon_object: format!("UPDATE objects SET delete_after = {now} WHERE id = $1"),
            // A key is fresh, or expired and taken over; a live one is
            // left alone and missing from what comes back.
            insert_keys: format!(
                "INSERT INTO idempotency_keys \
                 (tenant, topic_id, idem_key, fingerprint, created_at, expires_at) \
                 SELECT x.tn, x.t, x.k, x.fp, x.c, x.e FROM {} WHERE true \
                 ON CONFLICT (tenant, topic_id, idem_key) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, response = NULL, \
                 created_at = excluded.created_at, expires_at = excluded.expires_at \
                 WHERE idempotency_keys.expires_at <= excluded.created_at \
                 RETURNING tenant, topic_id, idem_key",
                rows(1, "x", KEY_COLS)
            ),
            recorded_keys: format!(
                "SELECT i.topic_id, i.idem_key, i.fingerprint, i.response \
                 FROM idempotency_keys i JOIN {} \
                 ON i.tenant = x.tn AND i.topic_id = x.t AND i.idem_key = x.k",
                rows(1, "x", KEY_NAME_COLS)
            ),
            lock_partitions: D::lock_partitions(&rows(1, "k", PARTITION_KEY_COLS)),
            advance: D::advance(&rows(2, "c", CHUNK_COLS)),
            answer_keys: format!(
                "UPDATE idempotency_keys SET response = x.r FROM {} \
                 WHERE idempotency_keys.tenant = x.tn AND idempotency_keys.topic_id = x.t \
                 AND idempotency_keys.idem_key = x.k",
                rows(1, "x", KEY_ANSWER_COLS)
            ),

            upsert_group_offsets: format!(
                "INSERT INTO group_offsets \
                 (tenant, group_id, topic_id, partition, committed_offset, metadata, updated_at) \
                 SELECT $1, $2, x.t, x.n, x.o, x.m, $3 FROM {} WHERE true \
                 ON CONFLICT (tenant, group_id, topic_id, partition) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
                 updated_at = excluded.updated_at",
                rows(4, "x", GROUP_OFFSET_COLS)
            ),
            group_offsets: "SELECT t.name, g.topic_id, g.partition, g.committed_offset, \
                 g.metadata, g.updated_at FROM group_offsets g \
                 JOIN topics t ON t.id = g.topic_id AND t.deleted_at IS NULL \
                 WHERE g.tenant = $1 AND g.group_id = $2 ORDER BY t.name, g.partition"
                .into(),
            // Groups with offsets or members (a document).
            list_groups: "SELECT group_id FROM (SELECT group_id FROM group_offsets \
                 WHERE tenant = $1 UNION SELECT group_id FROM group_state WHERE tenant = $1) g \
                 WHERE group_id > $2 ORDER BY group_id LIMIT $3"
                .into(),

            lookup_key: "SELECT fingerprint, response FROM idempotency_keys \
                 WHERE tenant = $1 AND topic_id = $2 AND idem_key = $3 AND expires_at > $4"
                .into(),
            expire_keys: "DELETE FROM idempotency_keys WHERE (tenant, topic_id, idem_key) IN \
                 (SELECT tenant, topic_id, idem_key FROM idempotency_keys \
                 WHERE expires_at <= $1 LIMIT $2)"
                .into(),

            revoke_token:
                "INSERT INTO revoked_tokens (tenant, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, jti) DO UPDATE SET expires_at = \
                 CASE WHEN excluded.expires_at > revoked_tokens.expires_at \
                 THEN excluded.expires_at ELSE revoked_tokens.expires_at END"
                    .into(),
            revoked_tokens: "SELECT tenant, jti, expires_at FROM revoked_tokens \
                 WHERE expires_at > $1"
                .into(),
            expire_revocations: "DELETE FROM revoked_tokens WHERE expires_at <= $1".into(),
        }
    }
}
