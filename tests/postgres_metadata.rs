//! The metadata conformance suite against a real PostgreSQL, every case its
//! own test, at READ COMMITTED (PostgreSQL's default) and at SERIALIZABLE
//! (CockroachDB's only level, which exercises the retry paths). One server
//! serves the whole file; each test gets a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ops::Deref;
use std::sync::Arc;

use common::postgres::Postgres;
use streamhouse_server::metadata::{Metadata, connect_postgres};
use streamhouse_server::metrics::Metrics;

/// A store on a fresh database of the shared server.
struct Store {
    metadata: Metadata,
    metrics: Arc<Metrics>,
}

impl Deref for Store {
    type Target = Metadata;
    fn deref(&self) -> &Metadata {
        &self.metadata
    }
}

async fn store(serializable: bool) -> Store {
    let url = Postgres::shared().database(serializable);
    let metrics = Arc::new(Metrics::default());
    let metadata = connect_postgres(&url, true, metrics.clone())
        .await
        .expect("connect");
    Store { metadata, metrics }
}

async fn read_committed() -> Store {
    store(false).await
}

async fn serializable() -> Store {
    store(true).await
}

mod at_read_committed {
    streamhouse_server::metadata_conformance!(super::read_committed);
}

mod at_serializable {
    streamhouse_server::metadata_conformance!(super::serializable);
}

#[tokio::test]
async fn concurrent_commits_at_serializable_are_retried() {
    let s = serializable().await;
    streamhouse_server::testing::conformance::metadata::concurrent_wide_commits_get_unique_gapless_offsets(&s).await;
    assert!(
        s.metrics.metadata_retries.get() > 0,
        "concurrent commits at SERIALIZABLE must have been retried"
    );
}

#[tokio::test]
async fn migrations_are_safe_when_agents_start_together() {
    let url = Postgres::shared().database(false);
    let starts = (0..4).map(|_| {
        let url = url.clone();
        async move { connect_postgres(&url, true, Arc::new(Metrics::default())).await }
    });
    for r in futures_util::future::join_all(starts).await {
        let store = r.expect("every agent starts");
        assert!(
            store
                .topics
                .list_topics("t", None, 1)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_commit_that_waits_past_its_age_limit_for_locks_is_refused() {
    use streamhouse_server::metadata::{ChunkCommit, FlushCommit, MetadataError};
    use streamhouse_server::model::{Compression, NewTopic, TopicSettings};
    let pg = Postgres::shared();
    let url = pg.database(false);
    let store = connect_postgres(&url, true, Arc::new(Metrics::default()))
        .await
        .unwrap();
    let t = store
        .topics
        .create_topic(
            &NewTopic {
                tenant: "t".into(),
                name: "locked".into(),
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
    // Another session holds the partition row for two seconds.
    let mut holder = pg.psql_spawn(
        &url,
        &format!(
            "BEGIN; SELECT * FROM partitions WHERE topic_id = '{}' FOR UPDATE; SELECT pg_sleep(2); COMMIT;",
            t.id
        ),
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // Minted 500 ms ago with 1.5 s to commit: young when its row goes in,
    // too old once the locks are free.
    let born = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        - std::time::Duration::from_millis(500);
    let object_id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        born.as_secs(),
        born.subsec_nanos(),
    ));
    let commit = FlushCommit {
        object_id,
        object_size: 10,
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
        max_object_age_ms: Some(1_500),
    };
    let result = store.log.commit_flush(&commit).await;
    assert!(
        matches!(result, Err(MetadataError::Unavailable(_))),
        "{result:?}"
    );
    let _ = holder.wait();
    let states = store.log.partitions(t.id, 0, 1).await.unwrap();
    assert_eq!(states[0].next_offset, 0, "nothing committed");
    assert!(
        store
            .log
            .known_objects(&[object_id])
            .await
            .unwrap()
            .is_empty()
    );
}
