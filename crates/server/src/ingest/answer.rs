//! A flush's last step: answering every producer waiting in it, and
//! returning their bytes to the buffer's budget.

use uuid::Uuid;

use super::batcher::{Pending, Shared};
use super::encode::Placement;
use super::{IdempotencyKey, ProduceError, Produced, RecordOffset};
use crate::metadata::{Advance, Announcement, BatchRow, ChunkCommit, ChunkOutcome, RecordedKey};
use crate::metrics::ObserveDuration;

/// The answer a recorded idempotency key gives a request carrying it: the
/// first request's offsets, or a refusal when this request is another.
pub(super) fn replay(
    recorded: &RecordedKey,
    key: &IdempotencyKey,
) -> Result<Produced, ProduceError> {
    if recorded.fingerprint != key.fingerprint {
        return Err(ProduceError::KeyReused(key.key.clone()));
    }
    Ok(Produced {
        offsets: recorded
            .offsets
            .iter()
            .map(|&(partition, offset)| RecordOffset { partition, offset })
            .collect(),
        replayed: true,
    })
}

/// Answers every request of `batch` with `err`.
pub(super) fn all(shared: &Shared, batch: Vec<Pending>, err: ProduceError) {
    let bytes: usize = batch.iter().map(|p| p.held).sum();
    for p in batch {
        p.answer(Err(err.clone()));
    }
    shared.release(bytes);
}

/// Answers the requests whose keys were found recorded; returns the rest.
pub(super) fn recorded(
    shared: &Shared,
    batch: Vec<Pending>,
    recorded: &[RecordedKey],
) -> Vec<Pending> {
    let mut rest = Vec::with_capacity(batch.len());
    let mut released = 0;
    for p in batch {
        let found = p.req.idempotency.as_ref().and_then(|k| {
            let r = recorded
                .iter()
                .find(|r| r.topic_id == p.req.topic.id && r.key == k.key)?;
            Some(replay(r, k))
        });
        match found {
            None => rest.push(p),
            Some(answer) => {
                released += p.held;
                p.answer(answer);
            }
        }
    }
    shared.release(released);
    rest
}

/// Answers every request of a committed flush with its offsets, or with
/// `TopicGone` when its topic was deleted before the commit.
pub(super) fn committed(
    shared: &Shared,
    batch: Vec<Pending>,
    placement: Placement,
    object_id: Uuid,
    chunks: &[ChunkCommit],
    outcomes: &[ChunkOutcome],
) {
    let metrics = &shared.deps.metrics;
    let feed = &shared.deps.metadata.feed;
    let mut advances = Vec::with_capacity(if feed.is_some() { chunks.len() } else { 0 });
    for (chunk, outcome) in chunks.iter().zip(outcomes) {
        if let ChunkOutcome::Committed {
            base_offset,
            max_timestamp,
        } = outcome
        {
            let key = (chunk.topic_id, chunk.partition);
            let hw = base_offset + i64::from(chunk.record_count);
            shared.deps.watermarks.advance(key, hw);
            if feed.is_some() {
                advances.push(Advance {
                    key,
                    high_watermark: hw,
                    row: Some(BatchRow {
                        base_offset: *base_offset,
                        last_offset: hw - 1,
                        object_id,
                        byte_offset: chunk.byte_offset,
                        byte_len: chunk.byte_len,
                        record_count: chunk.record_count,
                        max_timestamp: *max_timestamp,
                    }),
                });
            }
        }
    }
    // Other agents hear of it now rather than at their next poll, with the
    // index rows, so their readers need not look them up; the producers
    // are not kept waiting for it.
    if let Some(feed) = feed.clone()
        && !advances.is_empty()
    {
        let announcement = Announcement {
            at_ms: Some(shared.deps.clock.now_ms()),
            advances,
            rewritten: Vec::new(),
            origin: shared.config.peer_origin.clone(),
        };
        tokio::spawn(async move { feed.announce(&announcement).await });
    }
    let released: usize = batch.iter().map(|p| p.held).sum();
    for (p, places) in batch.into_iter().zip(placement) {
        let mut offsets = Vec::with_capacity(places.len());
        let mut gone = false;
        for (&(g, k), (partition, _)) in places.iter().zip(&p.req.records) {
            match outcomes[g as usize] {
                ChunkOutcome::Committed { base_offset, .. } => offsets.push(RecordOffset {
                    partition: *partition,
                    offset: base_offset + i64::from(k),
                }),
                ChunkOutcome::TopicGone => gone = true,
            }
        }
        metrics
            .produce_ack_seconds
            .observe_duration(p.since.elapsed());
        let answer = if gone {
            Err(ProduceError::TopicGone)
        } else {
            metrics.produce_records.inc_by(offsets.len() as u64);
            metrics.produce_bytes.inc_by(
                p.req
                    .records
                    .iter()
                    .map(|(_, r)| r.value.as_ref().map_or(0, |v| v.len()) as u64)
                    .sum(),
            );
            Ok(Produced {
                offsets,
                replayed: false,
            })
        };
        p.answer(answer);
    }
    shared.release(released);
}
