//! One flush: encode one object, upload it, commit it, answer producers.
//!
//! Failure rules (DESIGN.md): an upload failure or a commit that certainly
//! did not happen answers every producer 503 and deletes the object; a
//! commit whose outcome is unknown is re-run (keyed on the object id) until
//! it answers, and that object is never deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::batcher::{Pending, Shared};
use super::{ProduceError, Produced, RecordOffset};
use crate::format::ObjectBuilder;
use crate::metadata::{
    ChunkCommit, ChunkOutcome, FlushCommit, KeyCommit, MetadataError, RecordedKey,
};
use crate::metrics::ObserveDuration;
use crate::model::object_key;
use crate::store::StoreError;

const UPLOAD_ATTEMPTS: u32 = 3;

/// Where each record of each request sits: (chunk index, position in chunk).
type Placement = Vec<Vec<(usize, u32)>>;

fn answer_all(shared: &Shared, batch: Vec<Pending>, err: ProduceError) {
    let bytes: usize = batch.iter().map(|p| p.bytes).sum();
    for p in batch {
        let _ = p.reply.send(Err(err.clone()));
    }
    shared.release(bytes);
}

/// A flush that certainly did not commit: delete its object, answer 503.
async fn fail(shared: &Shared, batch: Vec<Pending>, key: &str, reason: String) {
    shared.deps.metrics.flush_failures.inc();
    shared.deps.store.delete_many(&[key.to_string()]).await;
    answer_all(shared, batch, ProduceError::Unavailable(reason.into()));
}

async fn upload(shared: &Shared, key: &str, body: bytes::Bytes) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match shared.deps.store.put(key, body.clone()).await {
            Ok(()) => return Ok(()),
            // Only this flush writes this key: an earlier attempt landed.
            Err(StoreError::AlreadyExists(_)) if attempt > 1 => return Ok(()),
            Err(e @ StoreError::Unavailable(_)) if attempt < UPLOAD_ATTEMPTS => {
                tracing::warn!(key, error = %e, attempt, "object upload failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Commits, re-running an ambiguous commit until it gives a definite answer.
async fn commit(shared: &Shared, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
    let first = shared.deps.metadata.log.commit_flush(commit).await;
    let Err(MetadataError::Ambiguous(reason)) = first else {
        return first;
    };
    tracing::warn!(object = %commit.object_id, %reason, "commit outcome unknown; re-running it");
    let deadline = Instant::now() + shared.config.commit_resolve_timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        tokio::time::sleep(backoff + Duration::from_millis(rand::random::<u64>() % 20)).await;
        match shared.deps.metadata.log.commit_flush(commit).await {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() >= deadline => {
                // Whatever this error says, the first attempt may have
                // committed: the answer stays "unknown".
                return Err(MetadataError::Ambiguous(e.to_string().into()));
            }
            Err(_) => backoff = (backoff * 2).min(Duration::from_secs(1)),
        }
    }
}

/// Runs one flush of `batch` to completion; every request gets an answer.
/// A commit that finds idempotency keys already recorded answers those
/// requests from the record and commits the rest as a new object.
pub(super) async fn run_flush(shared: &Shared, batch: Vec<Pending>) {
    let mut batch = batch;
    for _ in 0..4 {
        match flush_once(shared, batch).await {
            None => return,
            Some(rest) if rest.is_empty() => return,
            Some(rest) => batch = rest,
        }
    }
    answer_all(
        shared,
        batch,
        ProduceError::Unavailable("idempotency keys kept colliding; retry".into()),
    );
}

/// Answers the requests whose keys were found recorded; returns the rest.
fn answer_recorded(shared: &Shared, batch: Vec<Pending>, recorded: &[RecordedKey]) -> Vec<Pending> {
    let mut rest = Vec::with_capacity(batch.len());
    let mut released = 0;
    for p in batch {
        let found = p.req.idempotency.as_ref().and_then(|k| {
            recorded
                .iter()
                .find(|r| r.topic_id == p.req.topic.id && r.key == k.key)
                .map(|r| (k, r))
        });
        match found {
            None => rest.push(p),
            Some((k, r)) => {
                let answer = if r.fingerprint == k.fingerprint {
                    Ok(Produced {
                        offsets: r
                            .offsets
                            .iter()
                            .map(|&(partition, offset)| RecordOffset { partition, offset })
                            .collect(),
                        replayed: true,
                    })
                } else {
                    Err(ProduceError::KeyReused(k.key.clone()))
                };
                released += p.bytes;
                let _ = p.reply.send(answer);
            }
        }
    }
    shared.release(released);
    rest
}

/// One attempt: `None` when every request was answered, or the requests
/// still to commit after a duplicate-key commit was abandoned.
async fn flush_once(shared: &Shared, batch: Vec<Pending>) -> Option<Vec<Pending>> {
    let metrics = &shared.deps.metrics;
    // Group records by topic-partition, keeping each request's order.
    let mut groups: BTreeMap<(Uuid, i32), Vec<(usize, usize)>> = BTreeMap::new();
    let mut total_bytes = 0;
    for (i, p) in batch.iter().enumerate() {
        total_bytes += p.bytes;
        for (j, (partition, _)) in p.req.records.iter().enumerate() {
            groups
                .entry((p.req.topic.id, *partition))
                .or_default()
                .push((i, j));
        }
    }
    let mut placement: Placement = batch
        .iter()
        .map(|p| vec![(0, 0); p.req.records.len()])
        .collect();
    let mut builder = ObjectBuilder::with_capacity(total_bytes);
    let mut chunks = Vec::with_capacity(groups.len());
    let mut record_count = 0u64;
    for (g, ((topic_id, partition), members)) in groups.iter().enumerate() {
        let compression = batch[members[0].0].req.topic.compression;
        let records = members.iter().map(|&(i, j)| &batch[i].req.records[j].1);
        let entry = builder.add_chunk(*topic_id, *partition, records, compression);
        for (k, &(i, j)) in members.iter().enumerate() {
            placement[i][j] = (g, k as u32);
        }
        record_count += u64::from(entry.record_count);
        chunks.push(ChunkCommit {
            topic_id: *topic_id,
            partition: *partition,
            byte_offset: entry.byte_offset,
            byte_len: entry.byte_len,
            record_count: entry.record_count,
            max_timestamp: entry.max_timestamp,
        });
    }
    let (object, _) = builder.finish();
    let object_id = Uuid::now_v7();
    let key = object_key(object_id);
    let size = object.len() as u64;

    let started = Instant::now();
    if let Err(e) = upload(shared, &key, object).await {
        tracing::error!(%key, error = %e, "object upload failed; answering 503");
        // A failed put may still have stored the object: remove it.
        fail(shared, batch, &key, format!("object upload failed: {e}")).await;
        return None;
    }
    metrics.upload_seconds.observe_duration(started.elapsed());

    let now = shared.deps.clock.now_ms();
    let window = shared.config.idempotency_window.as_millis() as i64;
    let keys = batch
        .iter()
        .zip(&placement)
        .filter_map(|(p, places)| {
            let k = p.req.idempotency.as_ref()?;
            Some(KeyCommit {
                tenant: k.tenant.clone(),
                topic_id: p.req.topic.id,
                key: k.key.clone(),
                fingerprint: k.fingerprint.clone(),
                created_at_ms: now,
                expires_at_ms: now + window,
                records: places.iter().map(|&(g, k)| (g as u32, k)).collect(),
            })
        })
        .collect();
    let flush = FlushCommit {
        object_id,
        object_size: size,
        writer: shared.config.writer_id.clone(),
        created_at_ms: now,
        chunks,
        keys,
        max_object_age_ms: shared.config.max_object_age.map(|d| d.as_millis() as i64),
    };
    let started = Instant::now();
    let outcomes = match commit(shared, &flush).await {
        Ok(o) => o,
        Err(MetadataError::KeysExist(recorded)) => {
            metrics.idempotency_conflicts.inc();
            // Nothing of this object committed: it is an orphan now.
            shared
                .deps
                .store
                .delete_many(std::slice::from_ref(&key))
                .await;
            return Some(answer_recorded(shared, batch, &recorded));
        }
        Err(MetadataError::Ambiguous(reason)) => {
            metrics.flush_failures.inc();
            tracing::error!(%key, %reason, "commit outcome unknown after re-runs; object kept");
            answer_all(shared, batch, ProduceError::Unknown(reason));
            return None;
        }
        Err(e) => {
            tracing::error!(%key, error = %e, "commit failed; deleting object");
            fail(shared, batch, &key, format!("commit failed: {e}")).await;
            return None;
        }
    };
    metrics.commit_seconds.observe_duration(started.elapsed());
    metrics.flushes.inc();
    metrics
        .partitions_per_flush
        .observe(flush.chunks.len() as f64);
    metrics.records_per_flush.observe(record_count as f64);

    for (chunk, outcome) in flush.chunks.iter().zip(&outcomes) {
        if let ChunkOutcome::Committed { base_offset, .. } = outcome {
            shared.deps.watermarks.advance(
                (chunk.topic_id, chunk.partition),
                base_offset + i64::from(chunk.record_count),
            );
        }
    }
    let released: usize = batch.iter().map(|p| p.bytes).sum();
    for (p, places) in batch.into_iter().zip(placement) {
        let mut offsets = Vec::with_capacity(places.len());
        let mut gone = false;
        for (&(g, k), (partition, _)) in places.iter().zip(&p.req.records) {
            match outcomes[g] {
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
        let _ = p.reply.send(answer);
    }
    shared.release(released);
    None
}
