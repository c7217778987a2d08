//! Ingest: the one way records get in. Every front end (REST, `publish`,
//! WebSocket, and later push subscriptions or a Kafka listener) parses its
//! request into an [`Append`] and calls [`Ingest::append`], which resolves
//! the topic, chooses each record's partition and attaches the tenant to
//! the idempotency key (`append`).
//!
//! The records then enter one agent-wide buffer (`batcher`). A flush starts
//! when the oldest buffered request has waited `linger`, or the buffer
//! holds `max_flush_bytes`; up to `max_inflight_flushes` run at once. Each
//! flush (`flush`) encodes one object with a chunk per topic-partition
//! (`encode`), uploads it, commits it in one metadata transaction, and only
//! then answers every producer in it with its offsets (`answer`): an
//! acknowledgement means durable. A request's records always travel in one
//! flush, so a request succeeds or fails as a whole. A request with an
//! idempotency key is recorded in the same commit; a repeat gets the
//! recorded answer instead of appending (`idempotency`).

mod answer;
mod append;
mod batcher;
mod encode;
mod flush;
mod idempotency;
pub mod partitioner;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::metadata::Metadata;
use crate::metrics::Metrics;
use crate::model::{Record, TopicMeta};
use crate::store::SharedStore;
use crate::tail::Watermarks;

pub use append::{Append, NewRecord, RequestKey, TopicRef};
pub use batcher::Ingest;

#[cfg(test)]
mod tests;

/// How the batcher behaves.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// How long the oldest buffered request may wait before a flush.
    pub linger: Duration,
    /// A flush starts once this many bytes are buffered; also the largest request.
    pub max_flush_bytes: usize,
    /// Flushes uploading or committing at once.
    pub max_inflight_flushes: usize,
    /// Buffered plus in-flight bytes beyond which produce gets 429.
    pub max_buffered_bytes: usize,
    /// Names this agent in the objects it writes.
    pub writer_id: String,
    /// Where other agents can fetch the objects this one writes, signed
    /// (see [`crate::peer`]), announced with each commit.
    pub peer_origin: Option<std::sync::Arc<str>>,
    /// How long an idempotency key is remembered.
    pub idempotency_window: Duration,
    /// A flush whose object is older than this when it commits is refused
    /// (half the orphan grace), so the collector never deletes a committed object.
    pub max_object_age: Option<Duration>,
    /// How long an ambiguous commit is re-run before giving up on an answer.
    pub commit_resolve_timeout: Duration,
}

/// The parts a flush needs.
#[derive(Debug, Clone)]
pub struct IngestDeps {
    pub store: SharedStore,
    pub metadata: Metadata,
    pub watermarks: Arc<Watermarks>,
    pub metrics: Arc<Metrics>,
    /// The metadata store's time ([`crate::metadata::StoreClock`]), which
    /// idempotency windows and object ages are judged by on every agent.
    pub clock: SharedClock,
}

/// Records for one resolved topic, assigned to partitions: what the
/// buffer holds.
#[derive(Debug, Clone)]
struct ProduceRequest {
    topic: Arc<TopicMeta>,
    records: Vec<(i32, Record)>,
    idempotency: Option<IdempotencyKey>,
    /// See [`Append::held_bytes`].
    held_bytes: usize,
}

impl ProduceRequest {
    /// The records' size as a flush counts it.
    fn accounted_bytes(&self) -> usize {
        self.records
            .iter()
            .map(|(_, r)| r.approx_size())
            .sum::<usize>()
            + 64
    }
}

/// A request's idempotency key, with its tenant: what the commit records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdempotencyKey {
    tenant: String,
    key: String,
    /// SHA-256 (hex) of the request; the same key with another body is refused.
    fingerprint: String,
}

/// What an acknowledged request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// One per record, in order.
    pub offsets: Vec<RecordOffset>,
    /// True when this is the recorded answer to an earlier request with the
    /// same idempotency key: nothing was appended this time.
    pub replayed: bool,
}

/// Where one acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOffset {
    pub partition: i32,
    pub offset: i64,
}

/// Why a produce request was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// No live topic has this name (for this tenant).
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    /// A record names a partition the topic does not have.
    #[error("topic {topic:?} has partitions 0 to {}; partition {partition} does not exist", count - 1)]
    PartitionNotFound {
        topic: String,
        /// The record's position in the request.
        index: usize,
        partition: i64,
        count: i32,
    },
    /// The request holds no records.
    #[error("records must hold at least one record")]
    NoRecords,
    /// The request alone is bigger than one flush may be.
    #[error("request is {size} bytes; the limit is {limit} bytes (max-flush-bytes)")]
    TooLarge { size: usize, limit: usize },
    /// The buffer is full; retry after the given time.
    #[error("the agent is buffering {limit} bytes already (max-buffered-bytes); retry shortly")]
    Overloaded { limit: usize, retry_after: Duration },
    /// The agent is shutting down and takes no new records.
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// The topic was deleted before the records were committed.
    #[error("topic was deleted before the records were committed")]
    TopicGone,
    /// Upload or commit failed; nothing of the request is visible.
    #[error("records were not stored: {0}")]
    Unavailable(Arc<str>),
    /// The commit's outcome could not be learned; the records may be visible.
    #[error("the commit's outcome is unknown: {0}")]
    Unknown(Arc<str>),
    /// The idempotency key was used before for a different request.
    #[error("idempotency key {0:?} was already used with a different request")]
    KeyReused(String),
}

/// Starts the batcher and its flusher task under `tracker`; the flusher
/// drains and stops when `cancel` fires.
pub fn start(
    config: IngestConfig,
    deps: IngestDeps,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Ingest {
    Ingest::start(config, deps, cancel, tracker)
}
