//! Upkeep every agent runs every `--maintenance-interval`: expired
//! idempotency keys (and revocations of expired tokens) and orphaned
//! objects.
//!
//! An object is an orphan when its upload succeeded but its commit never
//! happened (an agent died between the two, or the commit failed). Agents
//! delete their own orphans when they know; this pass catches the rest by
//! listing the bucket: an object older than `--orphan-grace` (judged by its
//! UUIDv7 time against the metadata store's clock, the one clock all agents
//! share) that no committed row names is deleted. Commits refuse objects
//! older than half the grace, so an object the collector deletes can never
//! commit afterwards. Running on several agents at once is harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metadata::{Metadata, MetadataError};
use crate::metrics::Metrics;
use crate::model::uuid_v7_ms;
use crate::store::{SharedStore, StoreError};

/// Keys deleted per statement.
const EXPIRE_BATCH: u32 = 10_000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub keys_expired: u64,
    pub objects_listed: u64,
    pub orphans_deleted: u64,
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The object id in an object key (`objects/<uuid>`), if it is one of ours.
fn object_id(key: &str) -> Option<Uuid> {
    Uuid::parse_str(key.strip_prefix("objects/")?).ok()
}

/// Deletes expired idempotency keys (and revocations of expired tokens).
pub async fn expire_keys(metadata: &Metadata) -> Result<u64, PassError> {
    let now = metadata.log.now_ms().await?;
    let mut total = 0;
    loop {
        let n = metadata.keys.expire_keys(now, EXPIRE_BATCH).await?;
        total += n;
        if n < u64::from(EXPIRE_BATCH) {
            break;
        }
    }
    // Revocations of tokens that have expired anyway go with them.
    metadata.revocations.expire_revocations(now).await?;
    Ok(total)
}

/// Lists every object and deletes the orphans older than `grace`.
pub async fn collect_orphans(
    metadata: &Metadata,
    store: &SharedStore,
    grace: Duration,
) -> Result<(u64, u64), PassError> {
    let now = metadata.log.now_ms().await?;
    let grace_ms = grace.as_millis() as i64;
    let (mut listed, mut deleted) = (0u64, 0u64);
    let mut after: Option<String> = None;
    loop {
        let page = store.list("objects/", after.as_deref()).await?;
        listed += page.objects.len() as u64;
        let old: Vec<(String, Uuid)> = page
            .objects
            .iter()
            .filter_map(|o| Some((o.key.clone(), object_id(&o.key)?)))
            .filter(|(_, id)| uuid_v7_ms(*id).is_some_and(|born| now - born > grace_ms))
            .collect();
        if !old.is_empty() {
            let ids: Vec<Uuid> = old.iter().map(|(_, id)| *id).collect();
            let known: std::collections::HashSet<Uuid> = metadata
                .log
                .known_objects(&ids)
                .await?
                .into_iter()
                .collect();
            let orphans: Vec<String> = old
                .into_iter()
                .filter(|(_, id)| !known.contains(id))
                .map(|(k, _)| k)
                .collect();
            if !orphans.is_empty() {
                let outcome = store.delete_many(&orphans).await;
                deleted += outcome.deleted.len() as u64;
                for (key, e) in &outcome.failed {
                    tracing::warn!(%key, error = %e, "orphan delete failed; will retry next pass");
                }
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok((listed, deleted)),
        }
    }
}

/// One full pass.
pub async fn pass(
    metadata: &Metadata,
    store: &SharedStore,
    grace: Duration,
) -> Result<PassReport, PassError> {
    let keys_expired = expire_keys(metadata).await?;
    let (objects_listed, orphans_deleted) = collect_orphans(metadata, store, grace).await?;
    Ok(PassReport {
        keys_expired,
        objects_listed,
        orphans_deleted,
    })
}

/// Runs passes every `interval` (jittered so agents spread out) until cancelled.
pub async fn run(
    metadata: Metadata,
    store: SharedStore,
    metrics: Arc<Metrics>,
    grace: Duration,
    interval: Duration,
    cancel: CancellationToken,
) {
    crate::background::every(interval, 0.25, cancel, || async {
        match pass(&metadata, &store, grace).await {
            Ok(r) => {
                metrics.keys_expired.inc_by(r.keys_expired);
                metrics.orphans_deleted.inc_by(r.orphans_deleted);
                if r.orphans_deleted > 0 || r.keys_expired > 0 {
                    tracing::info!(?r, "maintenance pass");
                }
            }
            Err(e) => tracing::warn!(error = %e, "maintenance pass failed; will retry"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ChunkCommit, FlushCommit, open_sqlite};
    use crate::model::{Compression, NewTopic, TopicSettings, object_key};
    use crate::store::MemoryStore;
    use bytes::Bytes;

    #[tokio::test]
    async fn deletes_old_orphans_only() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = open_sqlite(&dir.path().join("m.db"), Arc::new(Metrics::default()))
            .await
            .unwrap();
        let store: SharedStore = Arc::new(MemoryStore::default());
        let t = metadata
            .topics
            .create_topic(
                &NewTopic {
                    tenant: "t".into(),
                    name: "x".into(),
                    partition_count: 1,
                    settings: TopicSettings {
                        compression: Compression::None,
                        ..TopicSettings::default()
                    },
                },
                0,
            )
            .await
            .unwrap();
        let an_hour_ago = |n: u32| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                - 3600;
            Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, n))
        };
        let (committed, old_orphan, young_orphan) =
            (an_hour_ago(1), an_hour_ago(2), Uuid::now_v7());
        for id in [committed, old_orphan, young_orphan] {
            store
                .put(&object_key(id), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        store
            .put("elsewhere/not-ours", Bytes::from_static(b"x"))
            .await
            .unwrap();
        metadata
            .log
            .commit_flush(&FlushCommit {
                object_id: committed,
                object_size: 1,
                writer: "w".into(),
                created_at_ms: 0,
                chunks: vec![ChunkCommit {
                    topic_id: t.id,
                    partition: 0,
                    byte_offset: 8,
                    byte_len: 1,
                    record_count: 1,
                    max_timestamp: 0,
                }],
                keys: vec![],
                max_object_age_ms: None,
            })
            .await
            .unwrap();
        let r = pass(&metadata, &store, Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!((r.objects_listed, r.orphans_deleted), (3, 1));
        let left: Vec<String> = store
            .list("", None)
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert!(left.contains(&object_key(committed)));
        assert!(left.contains(&object_key(young_orphan)));
        assert!(!left.contains(&object_key(old_orphan)));
        assert!(left.contains(&"elsewhere/not-ours".to_string()));
    }
}
