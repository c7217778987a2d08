//! Plain types shared by every layer: topics, partitions, tenants, keys.

use uuid::Uuid;

pub use crate::format::Compression;

/// The tenant every topic and group belongs to until authentication
/// assigns callers to tenants.
pub const DEFAULT_TENANT: &str = "default";

/// A live topic as the metadata store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Minted at creation; a topic re-created under the same name gets a new id.
    pub id: Uuid,
    pub tenant: String,
    pub name: String,
    pub partition_count: i32,
    /// Records older than this may be deleted; `None` keeps them forever.
    pub retention_ms: Option<i64>,
    pub compression: Compression,
    pub created_at_ms: i64,
}

/// What `create_topic` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub tenant: String,
    pub name: String,
    pub partition_count: i32,
    pub retention_ms: Option<i64>,
    pub compression: Compression,
}

/// The offsets and size of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub topic_id: Uuid,
    pub partition: i32,
    /// First offset still readable.
    pub log_start_offset: i64,
    /// The high watermark: the offset the next record will get.
    pub next_offset: i64,
    /// Bytes of stored chunks.
    pub bytes: i64,
}

/// Identifies one partition of one topic (by topic id, not name).
pub type PartitionKey = (Uuid, i32);

/// The object-store key of an object, derived from its id.
pub fn object_key(object_id: Uuid) -> String {
    format!("objects/{}", object_id.simple())
}
