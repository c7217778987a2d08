//! Test support, compiled only for tests (the `testing` feature): layers
//! that inject faults into any store, the conformance suites every store
//! implementation must pass, and throwaway stores to run them on.

pub mod conformance;
pub mod faults;

use std::ops::Deref;
use std::sync::Arc;

use crate::metadata::{Metadata, open_sqlite};
use crate::metrics::Metrics;

/// A metadata store in a fresh SQLite file, deleted when dropped.
#[derive(Debug)]
pub struct TempSqlite {
    metadata: Metadata,
    pub metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl TempSqlite {
    /// Opens an empty store; panics (failing the test) when it cannot.
    pub async fn open() -> TempSqlite {
        let dir = tempfile::tempdir().expect("temporary directory");
        let metrics = Arc::new(Metrics::default());
        let metadata = open_sqlite(&dir.path().join("metadata.db"), metrics.clone())
            .await
            .expect("open SQLite metadata");
        TempSqlite {
            metadata,
            metrics,
            _dir: dir,
        }
    }

    /// The same file with a layer around the store.
    pub fn layered(mut self, layer: impl FnOnce(Metadata) -> Metadata) -> TempSqlite {
        self.metadata = layer(self.metadata);
        self
    }
}

impl Deref for TempSqlite {
    type Target = Metadata;
    fn deref(&self) -> &Metadata {
        &self.metadata
    }
}
