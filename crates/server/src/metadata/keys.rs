//! Idempotency keys as the metadata store records them.
//!
//! A key is recorded in the same transaction that commits its request's
//! records, with the request's fingerprint and its answer (one
//! `[partition, offset]` per record). A commit that finds a live key
//! already recorded is abandoned whole with [`MetadataError::KeysExist`],
//! so the caller can answer the duplicate from the record and commit the
//! rest anew; offsets stay gapless and nothing is visible twice.

use std::collections::HashMap;

use uuid::Uuid;

use super::{ChunkCommit, ChunkOutcome};

/// A key to record with a flush commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCommit {
    pub tenant: String,
    pub topic_id: Uuid,
    pub key: String,
    /// SHA-256 (hex) of what the request sent.
    pub fingerprint: String,
    pub created_at_ms: i64,
    /// After this the key is forgotten and may be used again.
    pub expires_at_ms: i64,
    /// For each record of the request, in order: (chunk index in the
    /// commit, position within that chunk).
    pub records: Vec<(u32, u32)>,
}

/// A key found already recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    pub topic_id: Uuid,
    pub key: String,
    pub fingerprint: String,
    /// The first answer: (partition, offset) per record.
    pub offsets: Vec<(i32, i64)>,
}

impl RecordedKey {
    /// A key's row as stored: its fingerprint and recorded answer.
    pub fn from_row(
        topic_id: Uuid,
        key: &str,
        fingerprint: String,
        response: Option<&str>,
    ) -> Self {
        RecordedKey {
            topic_id,
            key: key.to_string(),
            fingerprint,
            offsets: parse_response(response.unwrap_or("[]")),
        }
    }
}

/// The answer to record for `key`, given each chunk's base offset;
/// `None` when a chunk of it did not commit (its topic is gone).
pub fn key_response(
    key: &KeyCommit,
    chunks: &[ChunkCommit],
    outcomes: &[ChunkOutcome],
) -> Option<String> {
    let mut pairs = Vec::with_capacity(key.records.len());
    for &(chunk, pos) in &key.records {
        let c = chunks.get(chunk as usize)?;
        match outcomes.get(chunk as usize)? {
            ChunkOutcome::Committed { base_offset, .. } => {
                pairs.push(serde_json::json!([
                    c.partition,
                    base_offset + i64::from(pos)
                ]));
            }
            ChunkOutcome::TopicGone => return None,
        }
    }
    Some(serde_json::Value::Array(pairs).to_string())
}

/// Parses a recorded answer.
pub fn parse_response(s: &str) -> Vec<(i32, i64)> {
    serde_json::from_str::<Vec<(i32, i64)>>(s).unwrap_or_default()
}

/// The (base offset, running maximum timestamp) of committed chunks, by
/// (topic, partition).
pub(crate) type Bases = HashMap<(Uuid, i32), (i64, i64)>;

/// Outcomes in chunk order from what the commit found; a chunk missing
/// from `bases` did not commit (its topic is gone).
pub(crate) fn outcomes_from(chunks: &[ChunkCommit], bases: &Bases) -> Vec<ChunkOutcome> {
    chunks
        .iter()
        .map(|c| match bases.get(&(c.topic_id, c.partition)) {
            Some(&(base_offset, max_timestamp)) => ChunkOutcome::Committed {
                base_offset,
                max_timestamp,
            },
            None => ChunkOutcome::TopicGone,
        })
        .collect()
}
