//! One flush, in the steps DESIGN.md names: encode one object (`encode`),
//! upload it, commit it, answer its producers (`answer`).
//!
//! Failure rules: an upload failure or a commit that certainly did not
//! happen answers every producer 503 and deletes the object; a commit
//! whose outcome is unknown is re-run (keyed on the object id) until it
//! answers, and that object is never deleted. A commit that finds
//! idempotency keys already recorded answers those requests from the
//! record and commits the rest as a new object.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use super::ProduceError;
use super::answer;
use super::batcher::{Pending, Shared};
use super::encode::{Encoded, encode};
use crate::metadata::{ChunkOutcome, FlushCommit, KeyCommit, MetadataError};
use crate::metrics::ObserveDuration;
use crate::model::object_key;
use crate::store::StoreError;

const UPLOAD_ATTEMPTS: u32 = 3;

/// Commits that find recorded keys before a flush gives up on them.
const KEY_COLLISION_ROUNDS: usize = 4;

/// Runs one flush of `batch` to completion; every request gets an answer.
pub(super) async fn run_flush(shared: &Shared, batch: Vec<Pending>) {
    let mut batch = batch;
    for _ in 0..KEY_COLLISION_ROUNDS {
        match flush_once(shared, batch).await {
            None => return,
            Some(rest) if rest.is_empty() => return,
            Some(rest) => batch = rest,
        }
    }
    answer::all(
        shared,
        batch,
        ProduceError::Unavailable("idempotency keys kept colliding; retry".into()),
    );
}

/// One attempt: `None` when every request was answered, or the requests
/// still to commit after a commit that found recorded keys was abandoned.
async fn flush_once(shared: &Shared, batch: Vec<Pending>) -> Option<Vec<Pending>> {
    let metrics = &shared.deps.metrics;
    let encoded = encode(&batch);
    let object_id = Uuid::now_v7();
    let key = object_key(object_id);

    let started = Instant::now();
    if let Err(e) = upload(shared, &key, encoded.object.clone()).await {
        tracing::error!(%key, error = %e, "object upload failed; answering 503");
        // A failed put may still have stored the object: remove it.
        fail(shared, batch, &key, format!("object upload failed: {e}")).await;
        return None;
    }
    metrics.upload_seconds.observe_duration(started.elapsed());

    let flush = flush_commit(shared, &batch, &encoded, object_id);
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
            return Some(answer::recorded(shared, batch, &recorded));
        }
        Err(MetadataError::Ambiguous(reason)) => {
            metrics.flush_failures.inc();
            tracing::error!(%key, %reason, "commit outcome unknown after re-runs; object kept");
            answer::all(shared, batch, ProduceError::Unknown(reason));
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
    metrics.records_per_flush.observe(encoded.records as f64);
    answer::committed(
        shared,
        batch,
        encoded.placement,
        object_id,
        &flush.chunks,
        &outcomes,
    );
    None
}

/// A flush that certainly did not commit: delete its object, answer 503.
async fn fail(shared: &Shared, batch: Vec<Pending>, key: &str, reason: String) {
    shared.deps.metrics.flush_failures.inc();
    shared.deps.store.delete_many(&[key.to_string()]).await;
    answer::all(shared, batch, ProduceError::Unavailable(reason.into()));
}

async fn upload(shared: &Shared, key: &str, body: Bytes) -> Result<(), StoreError> {
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

/// What the metadata store is asked to commit for `encoded`, with the
/// idempotency keys of the requests that carry one.
fn flush_commit(
    shared: &Shared,
    batch: &[Pending],
    encoded: &Encoded,
    object_id: Uuid,
) -> FlushCommit {
    let now = shared.deps.clock.now_ms();
    let window = shared.config.idempotency_window.as_millis() as i64;
    let keys = batch
        .iter()
        .zip(&encoded.placement)
        .filter_map(|(p, places)| {
            let k = p.req.idempotency.as_ref()?;
            Some(KeyCommit {
                tenant: k.tenant.clone(),
                topic_id: p.req.topic.id,
                key: k.key.clone(),
                fingerprint: k.fingerprint.clone(),
                created_at_ms: now,
                expires_at_ms: now + window,
                records: places.clone(),
            })
        })
        .collect();
    FlushCommit {
        object_id,
        object_size: encoded.object.len() as u64,
        writer: shared.config.writer_id.clone(),
        created_at_ms: now,
        chunks: encoded.chunks.clone(),
        keys,
        max_object_age_ms: shared.config.max_object_age.map(|d| d.as_millis() as i64),
    }
}

/// Commits, re-running an ambiguous commit until it gives a definite answer.
async fn commit(shared: &Shared, commit: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
    let log = &shared.deps.metadata.log;
    let first = log.commit_flush(commit).await;
    let Err(MetadataError::Ambiguous(reason)) = first else {
        return first;
    };
    tracing::warn!(object = %commit.object_id, %reason, "commit outcome unknown; re-running it");
    let deadline = Instant::now() + shared.config.commit_resolve_timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        tokio::time::sleep(backoff + Duration::from_millis(rand::random::<u64>() % 20)).await;
        match log.commit_flush(commit).await {
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
