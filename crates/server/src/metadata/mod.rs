//! Metadata: topics, offsets, the offset index, group offsets,
//! idempotency keys and revoked tokens, in SQL. The source of truth and the sequencer:
//! `commit_flush` assigns offsets to every chunk of one object in one
//! transaction.
//!
//! The store is small traits by concern — [`Topics`], the [`Log`]
//! (flush commit, index, watermarks, objects), [`GroupOffsets`], group
//! [`GroupMembership`] documents, webhook [`Subscriptions`],
//! [`IdempotencyKeys`], [`Revocations`] and the data [`Lifecycle`] — bundled as [`Metadata`], so a layer wraps only the
//! concerns it changes and a new capability adds its own trait. Calls are
//! batch-shaped so a flush costs a constant number of statements whatever
//! the number of partitions it touches.
//!
//! Both backends run one SQL skeleton (`sql`): SQLite for the embedded
//! mode, PostgreSQL (also CockroachDB) for clusters; each brings only its
//! dialect. `cache` wraps any store's topics and log in an in-process
//! cache that keeps itself current.

mod cache;
mod clock;
pub mod feed;
mod keys;
pub mod lifecycle;
pub mod membership;
mod postgres;
pub(crate) mod sql;
mod sqlite;
pub mod subscriptions;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{NewTopic, PartitionKey, PartitionState, TopicMeta, TopicSettings};

pub use cache::{CacheConfig, MetadataCache};
pub use clock::StoreClock;
pub use feed::{Advance, Announcement, WatermarkFeed};
pub use keys::{KeyCommit, RecordedKey, key_response, parse_response};
pub use lifecycle::Lifecycle;
pub use membership::{GroupDoc, GroupMembership, GroupWrite};
pub use postgres::connect as connect_postgres;
pub use sqlite::{open as open_sqlite, open_url as open_sqlite_url};
pub use subscriptions::{DeliveryNote, SubscriptionRow, Subscriptions, subscription_group};

/// Why a metadata call failed. Callers see few kinds, each with one action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The thing to create exists already: report a conflict.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request cannot be applied as stated: report it to the caller.
    #[error("{0}")]
    Invalid(String),
    /// The store failed and the call was certainly not applied: retry later.
    #[error("metadata store unavailable: {0}")]
    Unavailable(Arc<str>),
    /// The store failed after the call may have been applied (connection
    /// lost around COMMIT). Resolve by re-running the same keyed call.
    #[error("metadata outcome unknown: {0}")]
    Ambiguous(Arc<str>),
    /// A flush commit found idempotency keys already recorded and applied
    /// nothing: answer those requests from the record, commit the rest anew.
    #[error("{} idempotency keys are already recorded", .0.len())]
    KeysExist(Vec<RecordedKey>),
}

/// One chunk of an object, to be sequenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCommit {
    pub topic_id: Uuid,
    pub partition: i32,
    pub byte_offset: u64,
    pub byte_len: u32,
    pub record_count: u32,
    pub max_timestamp: i64,
}

/// Everything one flush commits: its object and every chunk in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushCommit {
    /// A UUIDv7 minted before upload; the commit is keyed on it.
    pub object_id: Uuid,
    pub object_size: u64,
    /// Which agent wrote the object.
    pub writer: String,
    pub created_at_ms: i64,
    /// At most one chunk per topic-partition.
    pub chunks: Vec<ChunkCommit>,
    /// Idempotency keys to record with the records.
    pub keys: Vec<KeyCommit>,
    /// Refuse the commit (as unavailable) when the object's UUIDv7 time is
    /// older than this by the store's clock, so the orphan collector can
    /// never delete an object that then commits.
    pub max_object_age_ms: Option<i64>,
}

/// What became of one chunk of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// The chunk's first record has this offset; `max_timestamp` is the
    /// partition's running maximum timestamp through this chunk, as its
    /// index row holds it.
    Committed {
        base_offset: i64,
        max_timestamp: i64,
    },
    /// The topic was deleted (or re-created) before the commit; nothing of
    /// this chunk is visible.
    TopicGone,
}

/// One row of the offset index: where the records of one chunk live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRow {
    pub base_offset: i64,
    pub last_offset: i64,
    pub object_id: Uuid,
    pub byte_offset: u64,
    pub byte_len: u32,
    pub record_count: u32,
    /// Running maximum of record timestamps up to and including this chunk.
    pub max_timestamp: i64,
}

/// A group's committed position in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsetCommit {
    pub topic_id: Uuid,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
}

/// A committed group offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsetRow {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
    pub updated_at_ms: i64,
}

/// Topics by tenant and name.
#[async_trait]
pub trait Topics: Send + Sync + Debug {
    /// Creates a topic and its partitions; `AlreadyExists` if a live topic
    /// of that tenant has the name.
    async fn create_topic(&self, topic: &NewTopic, now_ms: i64)
    -> Result<TopicMeta, MetadataError>;

    /// The live topic with this name, if any.
    async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError>;

    /// Live topics in name order, after `after`, at most `limit`.
    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError>;

    /// Replaces the changeable settings of the live topic with this name;
    /// returns it as changed, or `None` if there is none.
    async fn configure_topic(
        &self,
        tenant: &str,
        name: &str,
        settings: &TopicSettings,
    ) -> Result<Option<TopicMeta>, MetadataError>;

    /// Deletes the live topic with this name, freeing the name at once;
    /// returns it, or `None` if there was none.
    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<TopicMeta>, MetadataError>;

    /// A counter that changes whenever a topic is deleted, so agents can
    /// poll one row to learn that their caches may hold a dead topic.
    async fn topic_epoch(&self) -> Result<i64, MetadataError>;

    /// Which of these topic ids are still live.
    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError>;
}

/// The log: the flush commit that sequences records, the offset index,
/// partition watermarks, and the objects commits name.
#[async_trait]
pub trait Log: Send + Sync + Debug {
    /// Sequences every chunk of one object in one transaction and returns
    /// one outcome per chunk, in order. Re-running a commit whose object is
    /// already committed returns the original offsets and writes nothing.
    async fn commit_flush(&self, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError>;

    /// Partitions `from..` of a topic, at most `limit`, in order.
    async fn partitions(
        &self,
        topic_id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError>;

    /// The state of each listed partition that exists, in one query.
    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError>;

    /// Index rows of a partition whose last offset is at or after `offset`,
    /// in offset order, at most `limit`.
    async fn find_batches(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<BatchRow>, MetadataError>;

    /// For each listed partition, the first index row whose running
    /// maximum timestamp is at or after `timestamp_ms`, in one query;
    /// partitions with no such row are left out.
    async fn find_batches_by_time(
        &self,
        keys: &[PartitionKey],
        timestamp_ms: i64,
    ) -> Result<Vec<(PartitionKey, BatchRow)>, MetadataError>;

    /// Which of these object ids have a row (committed objects).
    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError>;

    /// The store's own clock (ms since the epoch): the one clock every agent
    /// agrees on, used to judge object ages.
    async fn now_ms(&self) -> Result<i64, MetadataError>;
}

/// Consumer groups' committed offsets.
#[async_trait]
pub trait GroupOffsets: Send + Sync + Debug {
    /// Stores a group's offsets (upsert), all or nothing; at most one entry
    /// per partition.
    async fn commit_group_offsets(
        &self,
        tenant: &str,
        group: &str,
        offsets: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<(), MetadataError>;

    /// A group's committed offsets for live topics.
    async fn group_offsets(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<Vec<GroupOffsetRow>, MetadataError>;

    /// Names of a tenant's groups with committed offsets, in name order,
    /// after `after`, at most `limit`.
    async fn list_groups(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetadataError>;
}

/// Idempotency keys outside the flush commit, which records them.
#[async_trait]
pub trait IdempotencyKeys: Send + Sync + Debug {
    /// The live record of an idempotency key, if any.
    async fn lookup_key(
        &self,
        tenant: &str,
        topic_id: Uuid,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<RecordedKey>, MetadataError>;

    /// Deletes up to `limit` keys expired at `now_ms`; returns how many.
    async fn expire_keys(&self, now_ms: i64, limit: u32) -> Result<u64, MetadataError>;
}

/// A revoked token, refused by every agent until it would have expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub tenant: String,
    pub jti: String,
    /// When the token expires anyway (ms since the epoch); the row may go then.
    pub expires_at_ms: i64,
}

/// Revoked tokens, by tenant and `jti`.
#[async_trait]
pub trait Revocations: Send + Sync + Debug {
    /// Records a revocation (again: keeps the later expiry).
    async fn revoke_token(&self, token: &RevokedToken) -> Result<(), MetadataError>;

    /// Every revocation whose token has not yet expired at `now_ms`.
    async fn revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>, MetadataError>;

    /// Deletes revocations of tokens expired at `now_ms`; returns how many.
    async fn expire_revocations(&self, now_ms: i64) -> Result<u64, MetadataError>;
}

/// Every concern of one metadata store, as shared trait objects; cheap to
/// clone. Layers replace the concerns they change and keep the rest.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub topics: Arc<dyn Topics>,
    pub log: Arc<dyn Log>,
    pub groups: Arc<dyn GroupOffsets>,
    /// Group membership documents.
    pub members: Arc<dyn GroupMembership>,
    /// Webhook subscriptions.
    pub subscriptions: Arc<dyn Subscriptions>,
    pub keys: Arc<dyn IdempotencyKeys>,
    pub revocations: Arc<dyn Revocations>,
    pub lifecycle: Arc<dyn Lifecycle>,
    /// Push of advanced watermarks between agents, where the store has one.
    pub feed: Option<Arc<dyn WatermarkFeed>>,
}

impl Metadata {
    /// One store serving every concern.
    pub fn of<S>(store: Arc<S>) -> Metadata
    where
        S: Topics
            + Log
            + GroupOffsets
            + GroupMembership
            + Subscriptions
            + IdempotencyKeys
            + Revocations
            + Lifecycle
            + 'static,
    {
        Metadata {
            topics: store.clone(),
            log: store.clone(),
            groups: store.clone(),
            members: store.clone(),
            subscriptions: store.clone(),
            keys: store.clone(),
            revocations: store.clone(),
            lifecycle: store,
            feed: None,
        }
    }
}
