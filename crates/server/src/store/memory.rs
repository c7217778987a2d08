//! In-memory object store, for unit tests only: nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{DeleteOutcome, ListPage, ObjectMeta, ObjectStore, StoreError};

/// Objects in a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

pub(super) fn slice_range(key: &str, body: &Bytes, range: Range<u64>) -> Result<Bytes, StoreError> {
    let len = body.len() as u64;
    if range.start > range.end || (range.start >= len && len > 0) {
        return Err(StoreError::InvalidRange(format!(
            "{}..{} of {key}",
            range.start, range.end
        )));
    }
    Ok(body.slice(range.start as usize..range.end.min(len) as usize))
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let mut map = self.map();
        if map.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        map.insert(key.to_string(), body);
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let body = self
            .map()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        slice_range(key, &body, range)
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        let mut map = self.map();
        for k in keys {
            map.remove(k);
        }
        DeleteOutcome {
            deleted: keys.to_vec(),
            failed: Vec::new(),
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        let map = self.map();
        let objects: Vec<ObjectMeta> = map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(1000)
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect();
        let next_after = (objects.len() == 1000).then(|| objects[999].key.clone());
        Ok(ListPage {
            objects,
            next_after,
        })
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        crate::testing::conformance::store::run(&super::MemoryStore::default()).await;
    }
}
