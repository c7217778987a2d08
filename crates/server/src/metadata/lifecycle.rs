//! The data lifecycle's view of the metadata store: leased jobs, moving a
//! partition's log start, swapping index rows for compacted chunks,
//! releasing a deleted topic's rows, and the objects waiting for the
//! garbage collector.
//!
//! Rows are never deleted without accounting for their objects: every call
//! that removes index rows marks each object no row names any more with
//! `delete_after = now + grace` (by the store's clock) in the same
//! transaction, and the collector deletes it from the object store only
//! after that, then forgets its row.

use std::fmt::Debug;

use async_trait::async_trait;
use uuid::Uuid;

use super::{BatchRow, MetadataError};
use crate::model::TopicMeta;

/// What a job does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Rewrite one partition's flush chunks into per-partition objects
    /// (and, for compacted topics, keep only the latest record per key).
    Compact,
    /// Apply one partition's retention by time and size.
    Retain,
    /// Release the rows and objects of a deleted topic (partition -1).
    Release,
    /// Merge the small chunks of many partitions (one job for the whole
    /// store: nil topic id, partition 0).
    Sweep,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Compact => "compact",
            JobKind::Retain => "retain",
            JobKind::Release => "release",
            JobKind::Sweep => "sweep",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "compact" => Some(JobKind::Compact),
            "retain" => Some(JobKind::Retain),
            "release" => Some(JobKind::Release),
            "sweep" => Some(JobKind::Sweep),
            _ => None,
        }
    }
}

/// A job this agent holds the lease of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub kind: JobKind,
    pub topic_id: Uuid,
    pub partition: i32,
    /// Claims so far, this one included.
    pub attempts: i32,
}

/// One index row with what compaction needs to know of its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedChunk {
    pub row: BatchRow,
    /// The object is a flush object (many partitions), not yet compacted.
    pub in_flush_object: bool,
    /// When the object was written (ms, by its writer's clock).
    pub object_created_at_ms: i64,
    /// The object's size in bytes.
    pub object_size: i64,
}

/// Replaces a run of a partition's index rows with rows of one new object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub topic_id: Uuid,
    pub partition: i32,
    /// A UUIDv7 minted before upload.
    pub object_id: Uuid,
    pub object_size: u64,
    pub writer: String,
    pub created_at_ms: i64,
    /// Refuse (as unavailable) when the object is older than this by the
    /// store's clock, as a flush commit does, so the orphan collector never
    /// deletes an object that then commits.
    pub max_object_age_ms: i64,
    /// The rows replaced, as `(last_offset, object_id)`: all must still
    /// exist or nothing is swapped.
    pub replaced: Vec<(i64, Uuid)>,
    /// The new rows; their `object_id` is the new object's.
    pub rows: Vec<BatchRow>,
    /// Grace before released objects may be deleted.
    pub grace_ms: i64,
}

/// Chunks smaller than this (bytes) in flush objects are merged across
/// partitions by the sweep, one GET per object; larger ones by their
/// partition's compaction job, one ranged GET per chunk.
pub const SMALL_CHUNK_BYTES: i64 = 4096;

/// An index row the sweep may merge, with its partition and object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepInput {
    pub topic_id: Uuid,
    pub partition: i32,
    pub row: BatchRow,
    /// The object is a flush object (the row is a small chunk of it), not
    /// an earlier sweep's output (all of whose rows are candidates).
    pub in_flush_object: bool,
    pub object_created_at_ms: i64,
}

/// One partition's part of a sweep: its replaced rows and their new rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptPartition {
    pub topic_id: Uuid,
    pub partition: i32,
    /// `(last_offset, object_id)` of the rows replaced: all must still
    /// exist, or this partition is left as it is.
    pub replaced: Vec<(i64, Uuid)>,
    /// The new rows, in the sweep's object.
    pub rows: Vec<BatchRow>,
}

/// Swaps the rows of some partitions for rows of one new object shared by
/// them, in one transaction; a sweep's partitions go in a few such groups.
/// The first group that swaps anything records the object's row (state
/// `swept`); every group fails if the object was released meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSwap {
    /// A UUIDv7 minted before upload.
    pub object_id: Uuid,
    pub object_size: u64,
    pub writer: String,
    pub created_at_ms: i64,
    /// As for [`Swap`]: the object's row is refused when older than this.
    pub max_object_age_ms: i64,
    /// In (topic, partition) order.
    pub partitions: Vec<SweptPartition>,
    pub grace_ms: i64,
}

/// What became of a group of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepOutcome {
    /// The partitions whose rows were swapped.
    pub swapped: Vec<(Uuid, i32)>,
    /// Partitions left alone because a replaced row was gone.
    pub changed: usize,
    pub objects_released: u64,
}

/// What became of a swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapOutcome {
    /// Swapped; this many objects now wait for the collector.
    Swapped { objects_released: u64 },
    /// Some replaced row is gone (retention or another compaction got
    /// there first): nothing changed, and the new object is an orphan.
    Changed,
}

/// What moving a log start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimOutcome {
    /// The log start is now `log_start_offset` (never lowered).
    Trimmed {
        log_start_offset: i64,
        high_watermark: i64,
        rows_released: u64,
        objects_released: u64,
    },
    /// The offset is beyond the high watermark: nothing changed.
    BeyondEnd { high_watermark: i64 },
    /// The partition does not exist (its topic was deleted).
    Gone,
}

/// What releasing a deleted topic's rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Released {
    pub rows: u64,
    pub objects: u64,
}

/// An object the collector may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredObject {
    pub id: Uuid,
    pub key: String,
    pub size: i64,
}

/// Live data of one topic, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStorage {
    pub tenant: String,
    pub topic: String,
    pub bytes: i64,
    pub objects: i64,
}

/// Where one partition's chunks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionObjects {
    pub partition: i32,
    /// Distinct objects holding its chunks.
    pub objects: i64,
    /// Its offset-index rows (one per chunk).
    pub rows: i64,
}

/// What the store holds, for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageReport {
    /// Objects waiting for the collector, and their bytes.
    pub gc_objects: i64,
    pub gc_bytes: i64,
    /// Age (ms, by the store's clock) of the oldest flush object not yet
    /// compacted; 0 when there is none.
    pub compaction_lag_ms: i64,
    /// Bytes and live objects per topic, as last measured for the fleet;
    /// `None` when not asked for (measuring them takes a scan of the whole
    /// offset index).
    pub topics: Option<Vec<TopicStorage>>,
}

/// See the module header.
#[async_trait]
pub trait Lifecycle: Send + Sync + Debug {
    /// The live topic with this id, if any (jobs name topics by id).
    async fn live_topic(&self, id: Uuid) -> Result<Option<TopicMeta>, MetadataError>;

    /// Records the jobs there are (idempotent): compaction of partitions
    /// with flush chunks written before `uncompacted_before_ms` and of
    /// every partition of a compacted topic, retention of partitions of
    /// topics that have it, release of deleted topics that still have rows.
    async fn plan_jobs(&self, uncompacted_before_ms: i64) -> Result<(), MetadataError>;

    /// Leases up to `limit` jobs nobody holds to `owner` for `lease_ms`.
    async fn claim_jobs(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, MetadataError>;

    /// Ends a job `owner` holds: `None` deletes it (done), `Some(ms)`
    /// keeps it leased that long more (failed; retry later).
    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        retry_in_ms: Option<i64>,
    ) -> Result<(), MetadataError>;

    /// The log start retention asks for: just past the last row whose
    /// records are all older than `older_than_ms`, or past the oldest rows
    /// beyond the newest `keep_bytes`, whichever is later. `None` when
    /// neither asks for anything.
    async fn retention_point(
        &self,
        topic_id: Uuid,
        partition: i32,
        older_than_ms: Option<i64>,
        keep_bytes: Option<i64>,
    ) -> Result<Option<i64>, MetadataError>;

    /// Raises a partition's log start to `to` and releases the rows wholly
    /// below it.
    async fn advance_log_start(
        &self,
        topic_id: Uuid,
        partition: i32,
        to: i64,
        grace_ms: i64,
    ) -> Result<TrimOutcome, MetadataError>;

    /// Index rows of a partition from `offset` on, in offset order, with
    /// their objects' state, at most `limit`.
    async fn indexed_chunks(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<IndexedChunk>, MetadataError>;

    /// Swaps index rows in one transaction; see [`Swap`].
    async fn swap_chunks(&self, swap: &Swap) -> Result<SwapOutcome, MetadataError>;

    /// Rows the sweep may merge: the chunks under [`SMALL_CHUNK_BYTES`] in
    /// the oldest `limit` flush objects written before `flush_before_ms`
    /// that have any, and every row of the oldest `limit` swept objects
    /// smaller than `small_object`; ordered by object (swept objects
    /// first, then by age), then by topic, partition and offset. Rows of
    /// every topic: the caller keeps those it may merge.
    async fn sweep_candidates(
        &self,
        flush_before_ms: i64,
        small_object: i64,
        limit: u32,
    ) -> Result<Vec<SweepInput>, MetadataError>;

    /// Swaps one group of a sweep; see [`SweepSwap`].
    async fn swap_swept(&self, swap: &SweepSwap) -> Result<SweepOutcome, MetadataError>;

    /// Deletes up to `limit` index rows of a deleted topic and releases
    /// their objects.
    async fn release_topic_rows(
        &self,
        topic_id: Uuid,
        limit: u32,
        grace_ms: i64,
    ) -> Result<Released, MetadataError>;

    /// Objects whose grace has passed, at most `limit`.
    async fn expired_objects(&self, limit: u32) -> Result<Vec<ExpiredObject>, MetadataError>;

    /// Forgets the rows of objects the object store confirmed deleted.
    async fn forget_objects(&self, ids: &[Uuid]) -> Result<u64, MetadataError>;

    /// For each partition `from..to` of a topic: how many distinct
    /// objects hold it, and its index rows.
    async fn partition_objects(
        &self,
        topic_id: Uuid,
        from: i32,
        to: i32,
    ) -> Result<Vec<PartitionObjects>, MetadataError>;

    /// Figures for metrics; the per-topic ones only when `topics_every` is
    /// given, measured again first when the fleet's last measurement (by
    /// any agent) is at least that old.
    async fn storage_report(
        &self,
        topics_every: Option<std::time::Duration>,
    ) -> Result<StorageReport, MetadataError>;
}
