//! The ingest entry point every front end calls: from a parsed request to
//! buffered records.
//!
//! A front end parses and validates what its protocol carries (JSON,
//! NDJSON, a raw `publish` body, a WebSocket message) into an [`Append`],
//! and renders the answer. Everything between is here, once: the topic is
//! resolved for the tenant (a stale cached topic is forgotten by the cache
//! itself when a commit finds it gone), each record gets its partition
//! (the one it names, its key's as Kafka would pick, or the next in turn),
//! and the idempotency key is bound to the tenant.

use std::sync::Arc;

use super::batcher::Ingest;
use super::{IdempotencyKey, ProduceError, ProduceRequest, Produced};
use crate::model::{Record, Tenant, TopicMeta};

/// One produce request as a front end hands it over.
#[derive(Debug, Clone)]
pub struct Append {
    /// Whose topic it is.
    pub tenant: Tenant,
    /// The topic, by name or as the front end resolved it already.
    pub topic: TopicRef,
    /// At least one.
    pub records: Vec<NewRecord>,
    /// Makes a retry return the first answer instead of appending again.
    pub idempotency: Option<RequestKey>,
    /// Memory the records keep alive while they wait for a flush beyond
    /// their own bytes: the request body, when their values are slices of
    /// it. Counted against `--max-buffered-bytes`; 0 when they own their
    /// bytes.
    pub held_bytes: usize,
}

/// The topic of an [`Append`]: a front end that resolved it for the
/// caller's tenant (to check the caller's scope on it) hands it over, so a
/// request looks its topic up once.
#[derive(Debug, Clone)]
pub enum TopicRef {
    /// A name of the tenant's, resolved by the append.
    Name(String),
    /// The tenant's live topic, resolved by the front end.
    Resolved(Arc<TopicMeta>),
}

impl From<String> for TopicRef {
    fn from(name: String) -> Self {
        TopicRef::Name(name)
    }
}

impl From<Arc<TopicMeta>> for TopicRef {
    fn from(topic: Arc<TopicMeta>) -> Self {
        TopicRef::Resolved(topic)
    }
}

/// A record and the partition its producer named, if any.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub partition: Option<i64>,
    pub record: Record,
}

/// A client's idempotency key and what its request sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub key: String,
    /// SHA-256 (hex) over everything that shapes the records, so the same
    /// key with another request is told apart.
    pub fingerprint: String,
}

impl Ingest {
    /// Appends the records and waits until they are durable. With an
    /// idempotency key, a repeat of an earlier request gets the earlier
    /// answer (`replayed`) and appends nothing.
    pub async fn append(&self, req: Append) -> Result<Produced, ProduceError> {
        let topic = match req.topic {
            TopicRef::Resolved(topic) => topic,
            TopicRef::Name(name) => self
                .deps()
                .metadata
                .topics
                .get_topic(req.tenant.as_str(), &name)
                .await
                .map_err(|e| ProduceError::Unavailable(format!("topic lookup failed: {e}").into()))?
                .ok_or(ProduceError::TopicNotFound(name))?,
        };
        if req.records.is_empty() {
            return Err(ProduceError::NoRecords);
        }
        let mut records = Vec::with_capacity(req.records.len());
        for (index, NewRecord { partition, record }) in req.records.into_iter().enumerate() {
            let chosen = self
                .partitioner()
                .choose(topic.partition_count, partition, record.key.as_deref())
                .ok_or_else(|| ProduceError::PartitionNotFound {
                    topic: topic.name.clone(),
                    index,
                    partition: partition.unwrap_or_default(),
                    count: topic.partition_count,
                })?;
            records.push((chosen, record));
        }
        let idempotency = req.idempotency.map(|k| IdempotencyKey {
            tenant: req.tenant.as_str().to_string(),
            key: k.key,
            fingerprint: k.fingerprint,
        });
        self.produce(ProduceRequest {
            topic,
            records,
            idempotency,
            held_bytes: req.held_bytes,
        })
        .await
    }
}
