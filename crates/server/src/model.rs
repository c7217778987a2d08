//! Plain types shared by every layer: topics, partitions, tenants, keys.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whose names a request sees: every topic, group and idempotency key
/// belongs to one tenant, and a tenant never sees another's. Cheap to
/// clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(Arc<str>);

impl Tenant {
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Tenant(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tenant every caller belongs to until authentication assigns
/// callers to tenants.
impl Default for Tenant {
    fn default() -> Self {
        Tenant::new("default")
    }
}

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
    /// Bytes each partition keeps at most; `None` keeps any amount.
    pub retention_bytes: Option<i64>,
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone (a null value) survives key compaction.
    pub delete_retention_ms: i64,
    pub compression: Compression,
    pub created_at_ms: i64,
}

/// What `create_topic` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub tenant: String,
    pub name: String,
    pub partition_count: i32,
    pub settings: TopicSettings,
}

/// The settings of a topic that can change after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    pub cleanup_policy: CleanupPolicy,
    pub delete_retention_ms: i64,
    pub compression: Compression,
}

/// Tombstones survive key compaction a day unless a topic says otherwise.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            retention_ms: None,
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            compression: Compression::None,
        }
    }
}

impl TopicMeta {
    /// The topic's changeable settings.
    pub fn settings(&self) -> TopicSettings {
        TopicSettings {
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            cleanup_policy: self.cleanup_policy,
            delete_retention_ms: self.delete_retention_ms,
            compression: self.compression,
        }
    }
}

/// What happens to a topic's old records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum CleanupPolicy {
    /// Records older than `retention_ms` (or beyond `retention_bytes`) go.
    #[default]
    #[serde(rename = "delete")]
    Delete,
    /// Only the latest record of each key stays (tombstones until `delete_retention_ms`).
    #[serde(rename = "compact")]
    Compact,
    /// Both.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// Name as used in the API and the metadata store.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    pub fn parse(name: &str) -> Option<CleanupPolicy> {
        match name {
            "delete" => Some(CleanupPolicy::Delete),
            "compact" => Some(CleanupPolicy::Compact),
            "compact,delete" | "delete,compact" => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }

    /// Whether key compaction runs.
    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }

    /// Whether retention by time and size applies.
    pub fn deletes(self) -> bool {
        self != CleanupPolicy::Compact
    }
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

/// Milliseconds since the epoch encoded in a UUIDv7.
pub fn uuid_v7_ms(id: Uuid) -> Option<i64> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
}

/// The object-store key of an object, derived from its id.
pub fn object_key(object_id: Uuid) -> String {
    format!("objects/{}", object_id.simple())
}

/// One record header: a UTF-8 key and an optional byte value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Borrowed for the names the agent writes itself (`content-type` on
    /// every JSON value), so the common record allocates no name.
    pub key: Cow<'static, str>,
    pub value: Option<Bytes>,
}

/// One record as produced: the offset is implied by its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Milliseconds since the Unix epoch (create time).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Headers,
}

/// A produced record's headers: most carry none or one (the `content-type`
/// of a JSON value), which is kept inline rather than in an allocation of
/// its own. (Decoded records keep a `Vec`: a larger record costs a read
/// more in moves than the allocation it would save.)
pub type Headers = smallvec::SmallVec<[Header; 1]>;

impl Record {
    /// Bytes this record occupies in an uncompressed batch, roughly; used
    /// for buffer accounting, not for encoding.
    pub fn approx_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 4)
            .sum();
        24 + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }
}

/// A record read back from a chunk, with its absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// How a topic's chunks are compressed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Records are stored as written.
    #[default]
    None,
    /// LZ4 frame format, 64 KiB independent blocks (what Kafka writes).
    Lz4,
    /// Zstandard, level 3.
    Zstd,
}

impl Compression {
    /// Name as used in the API and the metadata store.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses the name used in the API and the metadata store.
    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "none" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}
