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
