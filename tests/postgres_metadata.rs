//! The metadata conformance suite against a real PostgreSQL, at READ
//! COMMITTED (PostgreSQL's default) and at SERIALIZABLE (CockroachDB's
//! only level, which exercises the retry paths).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::postgres::Postgres;
use streamhouse_server::metadata::{MetadataStore, PostgresMetadata};
use streamhouse_server::metrics::Metrics;

#[tokio::test]
async fn conformance_at_read_committed_and_serializable() {
    let pg = Postgres::start();
    for serializable in [false, true] {
        let url = pg.database(serializable);
        let metrics = Arc::new(Metrics::default());
        let store = PostgresMetadata::connect(&url, true, metrics.clone())
            .await
            .unwrap();
        streamhouse_server::testing::conformance::run(&store).await;
        if serializable {
            assert!(
                metrics.metadata_retries.get() > 0,
                "concurrent commits at SERIALIZABLE must have been retried"
            );
        }
    }
}

#[tokio::test]
async fn migrations_are_safe_when_agents_start_together() {
    let pg = Postgres::start();
    let url = pg.database(false);
    let starts = (0..4).map(|_| {
        let url = url.clone();
        async move { PostgresMetadata::connect(&url, true, Arc::new(Metrics::default())).await }
    });
    for r in futures_util::future::join_all(starts).await {
        let store = r.expect("every agent starts");
        assert!(store.list_topics("t", None, 1).await.unwrap().is_empty());
    }
}
