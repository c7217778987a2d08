//! The lifecycle runner: every `--compaction-interval` an agent records the
//! jobs there are, leases a few at a time (a job's lease keeps other agents
//! off it; a dead agent's lease runs out and another takes the job), runs
//! them, and then collects the objects whose grace is over.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{compaction, gc, retention, sweep};
use crate::format::FormatError;
use crate::metadata::lifecycle::{Job, JobKind};
use crate::metadata::{Metadata, MetadataError};
use crate::metrics::Metrics;
use crate::store::{SharedStore, StoreError};
use crate::tail::Watermarks;

/// Jobs leased at once.
const CLAIM_BATCH: u32 = 8;
/// Jobs one tick runs at most (the rest wait for the next tick).
const JOBS_PER_TICK: usize = 256;
/// Rows a release deletes per transaction.
const RELEASE_BATCH: u32 = 10_000;

/// Settings of the lifecycle jobs.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// How often jobs are planned and run.
    pub interval: Duration,
    /// Flush objects younger than this are left alone.
    pub min_age: Duration,
    /// Size of the per-partition objects compaction writes.
    pub target_bytes: u64,
    /// Bytes per second compaction reads at most (0: no limit).
    pub max_rate: u64,
    /// How long a released object stays before it is deleted.
    pub gc_grace: Duration,
    /// A compacted object older than this (by the store's clock) is not
    /// committed: half the orphan grace, as for flushes.
    pub max_object_age: Duration,
    /// Names this agent as lease owner and object writer.
    pub owner: String,
    /// How often the per-topic storage figures are measured, by one agent
    /// for the fleet: each measurement scans the whole offset index. Every
    /// agent reads the last measurement on every tick.
    pub report_interval: Duration,
}

impl LifecycleConfig {
    /// How long a claimed job is this agent's: long enough to finish a
    /// compaction, short enough that a dead agent's jobs move soon.
    fn lease(&self) -> Duration {
        (self.interval * 10).max(Duration::from_secs(5))
    }
}

/// Why a job failed (it is retried later).
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored chunk is unreadable: {0}")]
    Format(#[from] FormatError),
}

/// What one tick did (tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub objects_deleted: u64,
}

/// Runs the lifecycle jobs of one agent.
#[derive(Debug)]
pub struct Maintainer {
    pub(super) metadata: Metadata,
    /// The object store without the read cache: compaction reads every
    /// chunk once and would only evict what readers use.
    pub(super) store: SharedStore,
    pub(super) watermarks: Arc<Watermarks>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) config: LifecycleConfig,
    /// Paces compaction's reads to `config.max_rate`.
    pub(super) pace: Pace,
}

/// A token bucket over bytes: `take` waits until the bytes fit the rate
/// (a burst of up to one second's worth goes at once).
#[derive(Debug)]
pub(super) struct Pace {
    rate: u64,
    /// Bytes available, and when that was computed.
    bucket: std::sync::Mutex<(f64, tokio::time::Instant)>,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Pace {
            rate,
            bucket: std::sync::Mutex::new((rate as f64, tokio::time::Instant::now())),
        }
    }

    /// Waits until `bytes` more may be read.
    pub(super) async fn take(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let rate = self.rate as f64;
        let wait = {
            let mut b = self
                .bucket
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            let available = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(rate);
            *b = (available - bytes as f64, now);
            // In debt: wait until the bucket is back at zero.
            (b.0 < 0.0).then(|| Duration::from_secs_f64(-b.0 / rate))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

impl Maintainer {
    pub fn new(
        metadata: Metadata,
        store: SharedStore,
        watermarks: Arc<Watermarks>,
        metrics: Arc<Metrics>,
        config: LifecycleConfig,
    ) -> Self {
        Maintainer {
            metadata,
            store,
            watermarks,
            metrics,
            pace: Pace::new(config.max_rate),
            config,
        }
    }

    /// Ticks every interval (jittered so agents spread out) until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let period = self.config.interval;
        crate::background::every(period, 0.25, cancel.clone(), || async {
            let r = self.tick(&cancel).await;
            if r != TickReport::default() {
                tracing::debug!(?r, "lifecycle tick");
            }
        })
        .await;
    }

    /// Plans, runs what it can lease, collects garbage, reports storage.
    pub async fn tick(&self, cancel: &CancellationToken) -> TickReport {
        let mut report = TickReport::default();
        let lifecycle = &self.metadata.lifecycle;
        match self.metadata.log.now_ms().await {
            Ok(now) => {
                let cutoff = now - self.config.min_age.as_millis() as i64;
                if let Err(e) = lifecycle.plan_jobs(cutoff).await {
                    tracing::warn!(error = %e, "planning lifecycle jobs failed; will retry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "metadata store unreachable; lifecycle waits"),
        }
        let lease = self.config.lease().as_millis() as i64;
        let mut ran = 0;
        while ran < JOBS_PER_TICK && !cancel.is_cancelled() {
            let jobs = match lifecycle
                .claim_jobs(&self.config.owner, lease, CLAIM_BATCH)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming lifecycle jobs failed; will retry");
                    break;
                }
            };
            if jobs.is_empty() {
                break;
            }
            for job in jobs {
                ran += 1;
                self.metrics.lifecycle.job_claimed(job.kind);
                let outcome = self.run_job(&job).await;
                let retry = match &outcome {
                    Ok(()) => {
                        report.jobs_done += 1;
                        None
                    }
                    Err(e) => {
                        report.jobs_failed += 1;
                        self.metrics.lifecycle.job_failed(job.kind);
                        tracing::warn!(kind = job.kind.as_str(), topic = %job.topic_id,
                            partition = job.partition, error = %e, "lifecycle job failed; will retry");
                        let backoff = self.config.interval * job.attempts.clamp(1, 20) as u32;
                        Some(backoff.min(Duration::from_secs(600)).as_millis() as i64)
                    }
                };
                if let Err(e) = lifecycle.finish_job(&job, &self.config.owner, retry).await {
                    tracing::warn!(error = %e, "could not end a lifecycle job; its lease will run out");
                }
            }
        }
        match gc::collect(&self.metadata, &self.store, &self.metrics).await {
            Ok(n) => report.objects_deleted = n,
            Err(e) => tracing::warn!(error = %e, "collecting released objects failed; will retry"),
        }
        match lifecycle
            .storage_report(Some(self.config.report_interval))
            .await
        {
            Ok(r) => self.metrics.lifecycle.report(&r),
            Err(e) => tracing::debug!(error = %e, "storage report failed"),
        }
        report
    }

    async fn run_job(&self, job: &Job) -> Result<(), JobError> {
        match job.kind {
            JobKind::Compact => compaction::compact(self, job).await,
            JobKind::Retain => retention::retain(self, job.topic_id, job.partition).await,
            JobKind::Sweep => sweep::sweep(self, job).await,
            JobKind::Release => {
                let grace = self.grace_ms();
                loop {
                    let r = self
                        .metadata
                        .lifecycle
                        .release_topic_rows(job.topic_id, RELEASE_BATCH, grace)
                        .await?;
                    if r.rows == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Extends the lease of a job this agent is still working on, so a
    /// long compaction is not taken over while it runs.
    pub(super) async fn renew(&self, job: &Job) {
        let lease = self.config.lease().as_millis() as i64;
        if let Err(e) = self
            .metadata
            .lifecycle
            .finish_job(job, &self.config.owner, Some(lease))
            .await
        {
            tracing::debug!(error = %e, "could not renew a job's lease");
        }
    }

    pub(super) fn grace_ms(&self) -> i64 {
        self.config.gc_grace.as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pace_lets_a_second_of_bytes_through_then_holds_to_the_rate() {
        let pace = Pace::new(1000);
        let start = tokio::time::Instant::now();
        pace.take(1000).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "a second's worth at once");
        pace.take(500).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        pace.take(2000).await;
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
        // No limit: never waits.
        let free = Pace::new(0);
        free.take(u64::MAX).await;
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
    }
}
