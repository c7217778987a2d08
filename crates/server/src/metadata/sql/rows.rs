//! Result rows to types, once for both backends.

use super::SqlRow;
use crate::metadata::{BatchRow, GroupOffsetRow};
use crate::model::{CleanupPolicy, Compression, PartitionState, TopicMeta};

pub(super) fn topic(r: &impl SqlRow) -> Result<TopicMeta, sqlx::Error> {
    Ok(TopicMeta {
        id: r.uuid("id")?,
        tenant: r.text("tenant")?,
        name: r.text("name")?,
        partition_count: r.int("partition_count")?,
        retention_ms: r.opt_big("retention_ms")?,
        retention_bytes: r.opt_big("retention_bytes")?,
        cleanup_policy: CleanupPolicy::parse(&r.text("cleanup_policy")?).unwrap_or_default(),
        delete_retention_ms: r.big("delete_retention_ms")?,
        compression: Compression::parse(&r.text("compression")?).unwrap_or_default(),
        created_at_ms: r.big("created_at")?,
    })
}

pub(super) fn partition(r: &impl SqlRow) -> Result<PartitionState, sqlx::Error> {
    Ok(PartitionState {
        topic_id: r.uuid("topic_id")?,
        partition: r.int("partition")?,
        log_start_offset: r.big("log_start_offset")?,
        next_offset: r.big("next_offset")?,
        bytes: r.big("bytes")?,
    })
}

pub(super) fn batch(r: &impl SqlRow) -> Result<BatchRow, sqlx::Error> {
    Ok(BatchRow {
        base_offset: r.big("base_offset")?,
        last_offset: r.big("last_offset")?,
        object_id: r.uuid("object_id")?,
        byte_offset: r.big("byte_offset")? as u64,
        byte_len: r.big("byte_len")? as u32,
        record_count: r.big("record_count")? as u32,
        max_timestamp: r.big("max_timestamp")?,
    })
}

pub(super) fn group_offset(r: &impl SqlRow) -> Result<GroupOffsetRow, sqlx::Error> {
    Ok(GroupOffsetRow {
        topic: r.text("name")?,
        topic_id: r.uuid("topic_id")?,
        partition: r.int("partition")?,
        offset: r.big("committed_offset")?,
        metadata: r.opt_text("metadata")?,
        updated_at_ms: r.big("updated_at")?,
    })
}

/// Maps every row, failing on the first that does not fit.
pub(super) fn all<R, T>(
    rows: &[R],
    f: impl Fn(&R) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    rows.iter().map(f).collect()
}
