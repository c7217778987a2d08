//! The agent-wide buffer and the task that decides when to flush it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::answer::replay;
use super::flush::run_flush;
use super::idempotency::{Claim, KeyGuard, KeysInFlight};
use super::partitioner::RoundRobin;
use super::{IngestConfig, IngestDeps, ProduceError, ProduceRequest, Produced};

pub(super) type Reply = oneshot::Sender<Result<Produced, ProduceError>>;

/// One buffered request and the producer waiting for it.
#[derive(Debug)]
pub(super) struct Pending {
    pub req: ProduceRequest,
    /// The records' size: what a flush is sized by.
    pub bytes: usize,
    /// The memory the request holds while buffered (at least `bytes`):
    /// what the buffer budget counts.
    pub held: usize,
    pub since: Instant,
    reply: Reply,
    /// The request's idempotency key, held until the request is answered
    /// (even when its producer gave up waiting), so a retry with the key
    /// joins this request instead of buffering a second copy.
    key: Option<KeyGuard>,
}

impl Pending {
    /// Answers the producer, and every retry waiting on its idempotency key.
    pub(super) fn answer(self, result: Result<Produced, ProduceError>) {
        if let Some(key) = self.key {
            key.settle(&result);
        }
        let _ = self.reply.send(result);
    }
}

#[derive(Debug, Default)]
struct Buffer {
    pending: VecDeque<Pending>,
    bytes: usize,
    /// Buffered plus in-flight bytes: what 429 protects.
    held: usize,
    closed: bool,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub config: IngestConfig,
    pub deps: IngestDeps,
    buffer: Mutex<Buffer>,
    wake: Notify,
    keys: Arc<KeysInFlight>,
    partitioner: RoundRobin,
}

impl Shared {
    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns bytes to the budget once their producers are answered.
    pub(super) fn release(&self, bytes: usize) {
        let mut b = self.buffer();
        b.held = b.held.saturating_sub(bytes);
        self.deps.metrics.buffered_bytes.set(b.held as i64);
    }
}

/// Handle to the batcher; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    shared: Arc<Shared>,
}

impl Ingest {
    pub(super) fn start(
        config: IngestConfig,
        deps: IngestDeps,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> Ingest {
        let shared = Arc::new(Shared {
            config,
            deps,
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            keys: Arc::new(KeysInFlight::default()),
            partitioner: RoundRobin::default(),
        });
        let task_tracker = tracker.clone();
        tracker.spawn(flusher(shared.clone(), cancel, task_tracker));
        Ingest { shared }
    }

    pub(super) fn deps(&self) -> &IngestDeps {
        &self.shared.deps
    }

    pub(super) fn partitioner(&self) -> &RoundRobin {
        &self.shared.partitioner
    }

    /// Buffers a request and waits until its records are committed. With
    /// an idempotency key, a repeat of an earlier request gets the earlier
    /// answer (`replayed`) and appends nothing.
    pub(super) async fn produce(&self, req: ProduceRequest) -> Result<Produced, ProduceError> {
        let Some(key) = req.idempotency.clone() else {
            return self.buffer(req, None).await;
        };
        let guard = match self.shared.keys.claim(req.topic.id, &key).await {
            Claim::Answered(r) => return r,
            Claim::Owned(g) => g,
        };
        let now = self.shared.deps.clock.now_ms();
        let recorded = self
            .shared
            .deps
            .metadata
            .keys
            .lookup_key(&key.tenant, req.topic.id, &key.key, now)
            .await;
        let result = match recorded {
            Ok(Some(rec)) => replay(&rec, &key),
            // The buffered request settles the key when it is answered.
            Ok(None) => return self.buffer(req, Some(guard)).await,
            Err(e) => Err(ProduceError::Unavailable(
                format!("idempotency key lookup failed: {e}").into(),
            )),
        };
        guard.settle(&result);
        if matches!(&result, Ok(p) if p.replayed) {
            self.shared.deps.metrics.idempotent_replays.inc();
        }
        result
    }

    /// Puts a request in the buffer and waits for its answer; `key` is its
    /// claimed idempotency key, settled with the answer.
    async fn buffer(
        &self,
        req: ProduceRequest,
        key: Option<KeyGuard>,
    ) -> Result<Produced, ProduceError> {
        let refuse = |key: Option<KeyGuard>, err: ProduceError| {
            if let Some(k) = key {
                k.settle(&Err(err.clone()));
            }
            Err(err)
        };
        let cfg = &self.shared.config;
        let bytes = req.accounted_bytes();
        let held = bytes.max(req.held_bytes + 64);
        if bytes > cfg.max_flush_bytes {
            let limit = cfg.max_flush_bytes;
            return refuse(key, ProduceError::TooLarge { size: bytes, limit });
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut b = self.shared.buffer();
            if b.closed {
                return refuse(key, ProduceError::ShuttingDown);
            }
            if b.held + held > cfg.max_buffered_bytes {
                self.shared.deps.metrics.produce_rejected_overload.inc();
                let err = ProduceError::Overloaded {
                    limit: cfg.max_buffered_bytes,
                    retry_after: Duration::from_secs(1),
                };
                return refuse(key, err);
            }
            b.held += held;
            b.bytes += bytes;
            self.shared.deps.metrics.buffered_bytes.set(b.held as i64);
            b.pending.push_back(Pending {
                req,
                bytes,
                held,
                since: Instant::now(),
                reply: tx,
                key,
            });
        }
        self.shared.deps.metrics.produce_requests.inc();
        self.shared.wake.notify_one();
        // The flusher always answers; a dropped sender means it died.
        rx.await
            .unwrap_or_else(|_| Err(ProduceError::Unavailable("the flusher stopped".into())))
    }

    /// True once shutdown has begun.
    pub fn is_closed(&self) -> bool {
        self.shared.buffer().closed
    }
}

enum Next {
    Idle,
    FlushNow,
    WaitUntil(Instant),
    Stop,
}

/// Takes requests from the front of the buffer up to one flush's worth.
fn take_flush(shared: &Shared) -> Vec<Pending> {
    let mut b = shared.buffer();
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(front) = b.pending.front() {
        if !out.is_empty() && bytes + front.bytes > shared.config.max_flush_bytes {
            break;
        }
        bytes += front.bytes;
        if let Some(p) = b.pending.pop_front() {
            out.push(p);
        }
    }
    b.bytes -= bytes;
    out
}

async fn flusher(shared: Arc<Shared>, cancel: CancellationToken, tracker: TaskTracker) {
    let permits = Arc::new(Semaphore::new(shared.config.max_inflight_flushes.max(1)));
    loop {
        let next = {
            let mut b = shared.buffer();
            if cancel.is_cancelled() {
                b.closed = true;
            }
            match b.pending.front() {
                None if b.closed => Next::Stop,
                None => Next::Idle,
                Some(_) if b.closed || b.bytes >= shared.config.max_flush_bytes => Next::FlushNow,
                Some(front) => Next::WaitUntil(front.since + shared.config.linger),
            }
        };
        match next {
            Next::Stop => break,
            Next::Idle => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Next::WaitUntil(at) if at > Instant::now() => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shared.wake.notified() => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Next::WaitUntil(_) | Next::FlushNow => {
                // Waiting for a slot lets the buffer grow into a bigger flush.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let batch = take_flush(&shared);
                if batch.is_empty() {
                    continue;
                }
                let s = shared.clone();
                tracker.spawn(async move {
                    run_flush(&s, batch).await;
                    drop(permit);
                });
            }
        }
    }
}
