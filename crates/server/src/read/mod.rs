//! Reading records by offset: index lookup, chunk fetch, decode, long-poll.
//!
//! A read resolves the partition's high watermark (this agent's watch, else
//! the metadata store), optionally waits for it to pass the requested
//! offset, finds the index rows covering the offset, fetches their chunks
//! through the shared byte cache, and decodes records from the offset on
//! until the record or byte limit is reached. Compressed chunks are kept
//! decompressed (`--decompressed-cache-bytes`), so paging through one
//! decompresses it once. A read that fills its page fetches the next chunk
//! (up to an eighth of the chunk cache) into the shared cache in the
//! background, for the reader's next page. A fetched chunk that fails its
//! CRC check is discarded from every layer that keeps it and fetched once
//! more before the read gives up. A read of record batches (`batches`)
//! finds and checks chunks the same way and hands them on undecoded.

mod batches;
pub mod follow;
pub mod snapshot;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::format::{
    FormatError, OpenBatch, RecordWindow, decode_open, open_batch, open_written_batch,
};
use crate::metadata::{BatchRow, Log, MetadataError};
use crate::metrics::Metrics;
use crate::model::StoredRecord;
use crate::model::{PartitionKey, TopicMeta, object_key};
use crate::store::{Origin, SharedStore, StoreError};
use crate::tail::Watermarks;

pub use batches::BatchesResult;

/// Chunks fetched concurrently by one read.
const FETCH_CONCURRENCY: usize = 8;
/// Partitions asked about in one metadata query.
const KEYS_PER_QUERY: usize = 10_000;
/// How long a log start seen in the store is trusted (retention and trim
/// move it, possibly on another agent).
const START_FRESH: Duration = Duration::from_secs(1);

/// One read's parameters.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub topic: Arc<TopicMeta>,
    pub partition: i32,
    /// First offset wanted; `None` means the log start.
    pub offset: Option<i64>,
    pub max_records: usize,
    pub max_bytes: usize,
    /// How long to wait for records when reading at the high watermark.
    pub wait: Duration,
}

/// What a read returns.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub records: Vec<StoredRecord>,
    /// Offset to read from next.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is outside the valid range [{log_start_offset}, {high_watermark}]")]
    OutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The topic was deleted while the read ran.
    #[error("topic was deleted")]
    TopicGone,
    #[error("{0}")]
    Unavailable(Arc<str>),
    /// Stored bytes did not decode: a bug or storage corruption.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl From<MetadataError> for ReadError {
    fn from(e: MetadataError) -> Self {
        ReadError::Unavailable(e.to_string().into())
    }
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(k) => ReadError::Corrupt(format!("indexed object {k} is missing")),
            other => ReadError::Unavailable(other.to_string().into()),
        }
    }
}

impl From<FormatError> for ReadError {
    fn from(e: FormatError) -> Self {
        ReadError::Corrupt(e.to_string())
    }
}

/// Where a chunk is: its object and its byte offset in it.
type ChunkId = (uuid::Uuid, u64);

/// Serves reads; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reader {
    log: Arc<dyn Log>,
    store: SharedStore,
    watermarks: Arc<Watermarks>,
    metrics: Arc<Metrics>,
    /// Compressed chunks, decompressed, so that paging through one does not
    /// decompress it again for every page. Weighed in decompressed bytes.
    opened: moka::sync::Cache<ChunkId, OpenBatch>,
    /// Largest chunk a read fetches ahead (a share of the chunk cache).
    read_ahead_max_bytes: u64,
}

impl Reader {
    pub fn new(
        log: Arc<dyn Log>,
        store: SharedStore,
        watermarks: Arc<Watermarks>,
        metrics: Arc<Metrics>,
        decompressed_cache_bytes: u64,
        read_ahead_max_bytes: u64,
    ) -> Self {
        let opened = moka::sync::Cache::builder()
            .max_capacity(decompressed_cache_bytes)
            .weigher(|_: &ChunkId, b: &OpenBatch| (b.len() + 64).try_into().unwrap_or(u32::MAX))
            .time_to_idle(Duration::from_secs(600))
            .build();
        Reader {
            log,
            store,
            watermarks,
            metrics,
            opened,
            read_ahead_max_bytes,
        }
    }

    /// Log start and high watermark straight from the metadata store.
    pub async fn refresh(&self, key: PartitionKey) -> Result<(i64, i64), ReadError> {
        let states = self.log.partition_states(&[key]).await?;
        let s = states.first().ok_or(ReadError::TopicGone)?;
        self.watermarks
            .observe(key, s.log_start_offset, s.next_offset);
        Ok((s.log_start_offset, s.next_offset))
    }

    /// Log start and high watermark, from this agent's watches when it
    /// has them (the log start only while fresh), and whether they came
    /// from the store just now.
    async fn bounds(&self, key: PartitionKey) -> Result<(i64, i64, bool), ReadError> {
        if let Some((start, hw)) = self.watermarks.bounds(key, START_FRESH) {
            self.metrics.watermark_cache.hits.inc();
            return Ok((start, hw, false));
        }
        self.metrics.watermark_cache.misses.inc();
        let (start, hw) = self.refresh(key).await?;
        Ok((start, hw, true))
    }

    /// Where a read starts: its offset, checked against the partition's
    /// bounds (after waiting for records when it asks to and is at the
    /// high watermark), with the log start and high watermark.
    async fn position(&self, req: &ReadRequest) -> Result<(i64, i64, i64), ReadError> {
        let key = (req.topic.id, req.partition);
        let (mut log_start, mut hw, mut fresh) = self.bounds(key).await?;
        let offset = match req.offset {
            Some(o) => o,
            None => {
                (log_start, hw) = self.refresh(key).await?;
                fresh = true;
                log_start
            }
        };
        // A cached watermark may be behind a commit made elsewhere: look
        // again before answering "nothing there" or "out of range".
        if !fresh && (offset >= hw || offset < log_start) {
            (log_start, hw) = self.refresh(key).await?;
        }
        if offset > hw || offset < log_start {
            return Err(ReadError::OutOfRange {
                offset,
                log_start_offset: log_start,
                high_watermark: hw,
            });
        }
        if offset == hw && !req.wait.is_zero() {
            hw = self.watermarks.wait_beyond(key, offset, hw, req.wait).await;
            if self.watermarks.get(key).is_none() {
                // The poller forgot the partition: its topic is gone.
                return Err(ReadError::TopicGone);
            }
        }
        Ok((offset, log_start, hw))
    }

    /// Reads records; see [`ReadRequest`].
    pub async fn read(&self, req: &ReadRequest) -> Result<ReadResult, ReadError> {
        let key = (req.topic.id, req.partition);
        let (offset, log_start, hw) = self.position(req).await?;
        let mut result = ReadResult {
            records: Vec::new(),
            next_offset: offset,
            high_watermark: hw,
            log_start_offset: log_start,
        };
        let mut bytes = 0usize;
        // The first chunk after those this read used, when the index named
        // it: what a reader paging on will need next.
        let mut ahead: Option<BatchRow> = None;
        let mut full = false;
        // The index may answer in pieces (the cache holds a contiguous run),
        // so keep asking from where the last piece ended.
        'index: while result.next_offset < hw {
            let want = (req.max_records - result.records.len()).clamp(1, 1000);
            let rows = self
                .log
                .find_batches(req.topic.id, req.partition, result.next_offset, want as u32)
                .await?;
            if rows.is_empty() {
                // Every committed offset has a row unless key compaction
                // removed its records: the rest up to the watermark is gone.
                result.next_offset = hw;
                break;
            }
            // Fetch only the chunks this read can use: as many as hold the
            // records and bytes it may still return (at least one), so a
            // page of a big compacted partition does not pull in (and
            // drop) chunks beyond it.
            let (room_records, room_bytes) = (
                req.max_records - result.records.len(),
                req.max_bytes.saturating_sub(bytes),
            );
            let (mut held_records, mut held_bytes) = (0usize, 0usize);
            let mut rows = rows;
            let wanted = rows
                .iter()
                .take_while(|r| {
                    let take = held_records < room_records && held_bytes < room_bytes.max(1);
                    held_records += r.record_count as usize;
                    held_bytes += r.byte_len as usize;
                    take
                })
                .count();
            // A pass that wants no chunk (the page is full: it only looked
            // for where the data goes on) does not move `ahead` back onto
            // the chunk just read.
            if wanted > 0 {
                ahead = rows.get(wanted).copied();
            }
            // The wanted rows and the one after: where a page ending inside
            // the n-th wanted chunk goes on to (`rows[n]`).
            rows.truncate(wanted + 1);
            let fetching = rows[..wanted].to_vec();
            let mut taken = 0usize;
            let before = result.next_offset;
            // Each chunk decodes only what this read can still return.
            let window = RecordWindow {
                from: result.next_offset,
                max_records: req.max_records - result.records.len(),
            };
            let mut chunks =
                futures_util::stream::iter(fetching.into_iter().map(|row| self.fetch(row, window)))
                    .buffered(FETCH_CONCURRENCY);
            while let Some(chunk) = chunks.next().await {
                let (row, records) = chunk?;
                taken += 1;
                if result.records.is_empty() && row.base_offset > result.next_offset {
                    self.still_stored(key, offset).await?;
                    result.next_offset = row.base_offset;
                }
                // Fewer records than the window allows: the chunk was
                // decoded to its end.
                let complete = records.len() < window.max_records;
                for r in records {
                    if r.offset < result.next_offset {
                        continue;
                    }
                    let size = r.value.as_ref().map_or(0, |v| v.len())
                        + r.key.as_ref().map_or(0, |k| k.len());
                    if !result.records.is_empty()
                        && (result.records.len() >= req.max_records || bytes + size > req.max_bytes)
                    {
                        // The page ends inside this chunk: the reader's
                        // next page goes on from it, into the chunk after.
                        full = true;
                        ahead = rows.get(taken).copied();
                        break 'index;
                    }
                    bytes += size;
                    result.next_offset = r.offset + 1;
                    result.records.push(r);
                }
                // The whole chunk was taken: offsets it covers past its last
                // kept record (key compaction removed them) are passed over.
                if complete {
                    result.next_offset = result.next_offset.max(row.last_offset + 1);
                }
            }
            if result.next_offset == before {
                break;
            }
        }
        result.high_watermark = result.high_watermark.max(result.next_offset);
        if let Some(row) = ahead
            && u64::from(row.byte_len) <= self.read_ahead_max_bytes
            && (full || result.records.len() >= req.max_records)
            && result.next_offset < result.high_watermark
        {
            self.read_ahead(row);
        }
        self.metrics.read_requests.inc();
        self.metrics
            .read_records
            .inc_by(result.records.len() as u64);
        self.metrics.read_bytes.inc_by(bytes as u64);
        Ok(result)
    }

    /// For a read whose first chunk starts past its offset: an error if
    /// retention removed the offset since it was checked; otherwise key
    /// compaction removed the records there, and the read goes on.
    async fn still_stored(&self, key: PartitionKey, offset: i64) -> Result<(), ReadError> {
        let (s, h) = self.refresh(key).await?;
        if offset < s {
            return Err(ReadError::OutOfRange {
                offset,
                log_start_offset: s,
                high_watermark: h,
            });
        }
        Ok(())
    }

    /// Fetches `row`'s chunk into the shared cache in the background: a
    /// reader that filled a page asks for the next one at once, and finds
    /// the chunk in memory (or its GET under way) instead of waiting for
    /// it. A failure is left to that read to meet and report.
    fn read_ahead(&self, row: BatchRow) {
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let start = row.byte_offset;
            let range = start..start + u64::from(row.byte_len);
            if store
                .get_range(&object_key(row.object_id), range)
                .await
                .is_ok()
            {
                metrics.chunks_read_ahead.inc();
            }
        });
    }

    /// Fetches one chunk and decodes the records of it `window` wants.
    async fn fetch(
        &self,
        row: BatchRow,
        window: RecordWindow,
    ) -> Result<(BatchRow, Vec<StoredRecord>), ReadError> {
        let id = (row.object_id, row.byte_offset);
        let batch = match self.opened.get(&id) {
            Some(batch) => batch,
            None => {
                let batch = self
                    .get_checked(&row, |bytes, check_crc| {
                        if check_crc {
                            open_batch(bytes)
                        } else {
                            open_written_batch(bytes)
                        }
                    })
                    .await?;
                if batch.was_compressed() {
                    self.metrics.chunks_decompressed.inc();
                    self.opened.insert(id, batch.clone());
                }
                batch
            }
        };
        let (records, count) = decode_open(&batch, row.base_offset, window)?;
        if count != row.record_count {
            return Err(ReadError::Corrupt(format!(
                "chunk at offset {} holds {count} records, index says {}",
                row.base_offset, row.record_count
            )));
        }
        Ok((row, records))
    }

    /// Fetches `row`'s chunk and hands it to `open`, which checks it (its
    /// CRC when told to: bytes that came from storage, not from this
    /// process's own writes or an earlier check). A chunk that fails the
    /// check was damaged on the way (or by whoever served it): it is
    /// dropped from every cache and fetched once more from storage.
    async fn get_checked<T>(
        &self,
        row: &BatchRow,
        open: impl Fn(&Bytes, bool) -> Result<T, FormatError>,
    ) -> Result<T, ReadError> {
        let (key, start) = (object_key(row.object_id), row.byte_offset);
        let range = start..start + u64::from(row.byte_len);
        let mut again = true;
        loop {
            let (bytes, origin) = self
                .store
                .get_range_with_origin(&key, range.clone())
                .await?;
            match origin {
                Origin::Written | Origin::Checked => return Ok(open(&bytes, false)?),
                Origin::Stored => match open(&bytes, true) {
                    Ok(opened) => {
                        self.store.mark_checked(&key, range, &bytes).await;
                        return Ok(opened);
                    }
                    Err(e @ (FormatError::Corrupt(_) | FormatError::Truncated(_)))
                        if std::mem::take(&mut again) =>
                    {
                        tracing::warn!(%key, error = %e, "a fetched chunk failed its check; fetching it again");
                        self.metrics.chunks_refetched.inc();
                        self.store.discard(&key, range.clone(), &bytes).await;
                    }
                    Err(e) => return Err(e.into()),
                },
            }
        }
    }

    /// Log start and high watermark of each partition, from the metadata
    /// store in one query per 10,000; a partition that does not exist
    /// (its topic was deleted) is `TopicGone`.
    pub async fn bounds_of(
        &self,
        keys: &[PartitionKey],
    ) -> Result<HashMap<PartitionKey, (i64, i64)>, ReadError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            for s in self.log.partition_states(chunk).await? {
                let key = (s.topic_id, s.partition);
                self.watermarks
                    .observe(key, s.log_start_offset, s.next_offset);
                out.insert(key, (s.log_start_offset, s.next_offset));
            }
        }
        if keys.iter().any(|k| !out.contains_key(k)) {
            return Err(ReadError::TopicGone);
        }
        Ok(out)
    }

    /// For each partition, the first offset whose timestamp is at or after
    /// `timestamp_ms`, with that record's timestamp; the high watermark and
    /// `None` where no record is that recent. One index query per 10,000
    /// partitions; the chunks holding the answers are fetched concurrently.
    pub async fn offsets_for_time(
        &self,
        keys: &[PartitionKey],
        timestamp_ms: i64,
    ) -> Result<HashMap<PartitionKey, (i64, Option<i64>)>, ReadError> {
        let mut rows = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            rows.extend(self.log.find_batches_by_time(chunk, timestamp_ms).await?);
        }
        let found: HashSet<PartitionKey> = rows.iter().map(|(k, _)| *k).collect();
        let missing: Vec<PartitionKey> = keys
            .iter()
            .filter(|k| !found.contains(k))
            .copied()
            .collect();
        let mut out = HashMap::with_capacity(keys.len());
        if !missing.is_empty() {
            for (key, (_, hw)) in self.bounds_of(&missing).await? {
                out.insert(key, (hw, None));
            }
        }
        let mut fetched =
            futures_util::stream::iter(rows.into_iter().map(|(key, row)| async move {
                self.fetch(row, RecordWindow::ALL)
                    .await
                    .map(|(row, records)| (key, row, records))
            }))
            .buffer_unordered(FETCH_CONCURRENCY);
        while let Some(done) = fetched.next().await {
            let (key, row, records) = done?;
            let hit = records.iter().find(|r| r.timestamp >= timestamp_ms);
            out.insert(
                key,
                match hit {
                    Some(r) => (r.offset, Some(r.timestamp)),
                    None => (row.last_offset + 1, None),
                },
            );
        }
        Ok(out)
    }
}
