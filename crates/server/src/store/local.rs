//! Local-directory object store: the embedded mode's "bucket".
//!
//! A put writes a temporary file, fsyncs it, and hard-links it into place
//! (which fails if the key exists, giving put-if-absent), then fsyncs the
//! directory, so an acknowledged object survives power loss. File work runs
//! on tokio's blocking pool, one hop per call.
//!
//! Listing pages through the keys in order. The first page of a listing
//! reads every file name once (no metadata) and keeps them sorted; the
//! following pages continue from that snapshot, reading only the sizes of
//! the keys they return, so a full listing costs one directory walk rather
//! than one per page.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{DeleteOutcome, ListPage, ObjectMeta, ObjectStore, StoreError};

const TMP_DIR: &str = ".tmp";

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<PathBuf>,
    /// The sorted keys of the listing in progress, by prefix.
    listing: Arc<Mutex<Option<Listing>>>,
}

/// Keys listed once and paged through.
#[derive(Debug)]
struct Listing {
    prefix: String,
    taken: Instant,
    keys: Arc<Vec<String>>,
}

/// How long a listing's snapshot serves its following pages.
const LISTING_TTL: Duration = Duration::from_secs(60);
/// Keys in one page.
const PAGE: usize = 1000;

fn io_err(e: io::Error) -> StoreError {
    StoreError::unavailable(e)
}

impl LocalStore {
    /// Opens (creating) a store rooted at `root` and removes temporary files
    /// left by a crash.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err)?;
        }
        fs::create_dir_all(&tmp).map_err(io_err)?;
        Ok(LocalStore {
            root: Arc::new(root),
            listing: Arc::new(Mutex::new(None)),
        })
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part != TMP_DIR
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if !ok {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(StoreError::unavailable)?
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn put_file(root: &Path, path: &Path, key: &str, body: &[u8]) -> Result<(), StoreError> {
    let parent = path.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(io_err)?;
    let tmp = root.join(TMP_DIR).join(uuid::Uuid::now_v7().to_string());
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_dir(parent).map_err(io_err),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(StoreError::AlreadyExists(key.to_string()))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Appends the keys of every file under `dir` (the temporary directory
/// aside) to `out`, reading names only.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if dir == root && entry.file_name() == TMP_DIR {
                continue;
            }
            walk(root, &path, out)?;
        } else if ty.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let key = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(key);
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        let key = key.to_string();
        Self::blocking(move || put_file(&root, &path, &key, &body)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        Self::blocking(move || {
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound(key));
                }
                Err(e) => return Err(io_err(e)),
            };
            let len = f.metadata().map_err(io_err)?.len();
            if range.start > range.end || (range.start >= len && len > 0) {
                return Err(StoreError::InvalidRange(format!(
                    "{}..{} of {key}",
                    range.start, range.end
                )));
            }
            let end = range.end.min(len);
            let mut buf = vec![0u8; (end - range.start) as usize];
            f.seek(SeekFrom::Start(range.start)).map_err(io_err)?;
            f.read_exact(&mut buf).map_err(io_err)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        let mut outcome = DeleteOutcome::default();
        let mut paths = Vec::new();
        for k in keys {
            match self.path_of(k) {
                Ok(p) => paths.push((k.clone(), p)),
                Err(e) => outcome.failed.push((k.clone(), e)),
            }
        }
        let result = Self::blocking(move || {
            for (key, path) in paths {
                match fs::remove_file(&path) {
                    Ok(()) => outcome.deleted.push(key),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => outcome.deleted.push(key),
                    Err(e) => outcome.failed.push((key, io_err(e))),
                }
            }
            Ok(outcome)
        })
        .await;
        result.unwrap_or_else(|e| DeleteOutcome {
            deleted: Vec::new(),
            failed: keys.iter().map(|k| (k.clone(), e.clone())).collect(),
        })
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let after = after.map(str::to_string);
        let listing = self.listing.clone();
        Self::blocking(move || {
            let keys = listed_keys(&root, &listing, &prefix, after.is_none())?;
            let start = match &after {
                Some(a) => keys.partition_point(|k| k.as_str() <= a.as_str()),
                None => 0,
            };
            let mut objects = Vec::with_capacity(PAGE);
            let mut next = start;
            while objects.len() < PAGE && next < keys.len() {
                let key = &keys[next];
                next += 1;
                // Deleted since the listing began: not there any more.
                if let Ok(meta) = fs::metadata(root.join(key)) {
                    objects.push(ObjectMeta {
                        key: key.clone(),
                        size: meta.len(),
                    });
                }
            }
            let next_after = (next < keys.len()).then(|| keys[next - 1].clone());
            Ok(ListPage {
                objects,
                next_after,
            })
        })
        .await
    }
}

/// The sorted keys under `prefix`: walked anew for a listing's first page
/// (or when the snapshot is stale or of another prefix), else the snapshot.
fn listed_keys(
    root: &Path,
    listing: &Mutex<Option<Listing>>,
    prefix: &str,
    first_page: bool,
) -> Result<Arc<Vec<String>>, StoreError> {
    let mut cached = listing.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = cached.as_ref()
        && !first_page
        && l.prefix == prefix
        && l.taken.elapsed() < LISTING_TTL
    {
        return Ok(l.keys.clone());
    }
    let mut keys = Vec::new();
    walk(root, root, &mut keys).map_err(io_err)?;
    keys.retain(|k| k.starts_with(prefix));
    keys.sort_unstable();
    let keys = Arc::new(keys);
    *cached = Some(Listing {
        prefix: prefix.to_string(),
        taken: Instant::now(),
        keys: keys.clone(),
    });
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        crate::testing::conformance::store::run(&store).await;
    }

    #[tokio::test]
    async fn rejects_keys_that_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for key in ["../x", "/etc/passwd", "a//b", "", ".tmp/x", "a/./b", "a b"] {
            assert!(
                matches!(
                    store.put(key, Bytes::new()).await,
                    Err(StoreError::InvalidKey(_))
                ),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn a_listing_pages_through_every_key_in_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for i in 0..2500 {
            store
                .put(&format!("objects/{i:05}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        store.put("other/a", Bytes::new()).await.unwrap();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            if seen.len() == 1000 {
                // Deleted between pages: skipped, not an error.
                store.delete_many(&["objects/01500".to_string()]).await;
            }
            let page = store.list("objects/", after.as_deref()).await.unwrap();
            seen.extend(page.objects.iter().map(|o| o.key.clone()));
            match page.next_after {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), 2499);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in key order");
        assert!(!seen.contains(&"objects/01500".to_string()));
        assert!(seen.iter().all(|k| k.starts_with("objects/")));
    }
}
