//! One subscription's worker on one agent: join the subscription's group,
//! fetch batches from the partitions this agent owns, POST each to the
//! receiver in partition order, and commit its offset (fenced) on a 2xx.
//!
//! A failure is retried with exponential backoff and jitter (or after a
//! 429/503's `Retry-After`), heartbeating meanwhile so the partition stays
//! here; once `max_attempts` fail, the batch goes to the dead-letter topic
//! `<name>.dlq` and delivery continues. Delivery is at least once: a batch
//! is delivered again only after a failure, a lost lease or a dead agent.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::Deps;
use super::sign::signature;
use crate::groups::assign::Reset;
use crate::groups::members::{FetchLimits, Fetcher, JoinSpec, MemberBatch, MemberView, any_topic};
use crate::groups::{Committer, GroupError, OffsetEntry};
use crate::ingest::{Append, NewRecord};
use crate::metadata::{DeliveryNote, SubscriptionRow, subscription_group};
use crate::model::{Header, Headers, NewTopic, Record, Tenant, TopicSettings};

/// Bytes of records one delivery carries at most.
const MAX_DELIVERY_BYTES: usize = 1 << 20;

/// How one batch ended.
enum Outcome {
    /// Delivered (or dead-lettered) and committed.
    Done,
    /// The partition left this agent, or the member is gone: the owner
    /// that follows delivers from the committed offset.
    Lost,
    Stopped,
}

struct Worker {
    deps: Arc<Deps>,
    sub: SubscriptionRow,
    group: String,
    stop: CancellationToken,
    member: MemberView,
    /// The generation of the fetch whose batches are in hand: heartbeats
    /// acknowledge no later one, so no partition of those batches moves
    /// before they are committed.
    acted: i64,
}

async fn sleep_or_stop(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs until `stop` fires; see the module header.
pub(super) async fn work(deps: Arc<Deps>, sub: SubscriptionRow, stop: CancellationToken) {
    let group = subscription_group(&sub.name, sub.created_at_ms);
    let spec = JoinSpec {
        topics: vec![sub.topic.clone()],
        session_timeout_ms: deps.config.session_timeout.as_millis() as i64,
        reset: if sub.start_at == "latest" {
            Reset::Latest
        } else {
            Reset::Earliest
        },
    };
    let mut failures = 0u32;
    let mut first = true;
    while !stop.is_cancelled() {
        // Before joining again, make sure this is still the subscription
        // (not deleted, paused, or made again under its name).
        if !std::mem::take(&mut first) {
            match deps
                .metadata
                .subscriptions
                .get_subscription(&sub.tenant, &sub.name)
                .await
            {
                Ok(Some(now)) if now.created_at_ms == sub.created_at_ms && !now.paused => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(subscription = %sub.name, error = %e, "checking the subscription failed");
                    if !sleep_or_stop(&stop, deps.config.retry_base).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let member = match deps.groups.join(&sub.tenant, &group, &spec).await {
            Ok(v) => v,
            Err(e) => {
                failures += 1;
                tracing::warn!(subscription = %sub.name, error = %e, "joining the delivery group failed");
                let wait = deps.config.retry_base * 2u32.pow(failures.min(6));
                if !sleep_or_stop(&stop, wait.min(deps.config.max_backoff)).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        let mut w = Worker {
            deps: deps.clone(),
            sub: sub.clone(),
            group: group.clone(),
            stop: stop.clone(),
            acted: member.generation,
            member,
        };
        w.deliver_loop().await;
        if stop.is_cancelled() {
            let _ = deps
                .groups
                .leave(&sub.tenant, &group, &w.member.member_id)
                .await;
        }
    }
}

impl Worker {
    fn session(&self) -> Duration {
        self.deps.config.session_timeout
    }

    /// Fetches and delivers until stopped or the membership is lost.
    async fn deliver_loop(&mut self) {
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let limits = FetchLimits {
                max_records: self.sub.max_batch_records.max(1) as usize,
                max_bytes: MAX_DELIVERY_BYTES,
                wait: self.session() / 3,
            };
            let fetched = tokio::select! {
                _ = self.stop.cancelled() => return,
                f = self.deps.groups.fetch_records(
                    &self.sub.tenant, &self.group, &self.member.member_id, Fetcher {
                        may_consume: &any_topic,
                        generation: None,
                        epoch: None,
                        rewind: false,
                    }, limits) => f,
            };
            let fetched = match fetched {
                Ok(f) => f,
                Err(GroupError::MemberNotFound(_)) => return,
                Err(e) => {
                    // The fetch may have moved the positions without
                    // handing the records over (an ambiguous commit).
                    tracing::warn!(subscription = %self.sub.name, error = %e, "fetch for delivery failed");
                    if !sleep_or_stop(&self.stop, self.deps.config.retry_base).await
                        || !self.rewind().await
                    {
                        return;
                    }
                    continue;
                }
            };
            self.member = fetched.view;
            self.acted = self.member.generation;
            let mut delivered = 0usize;
            let mut lost = false;
            for batch in &fetched.batches {
                match self.deliver(batch).await {
                    Outcome::Done => delivered += batch.records.len(),
                    Outcome::Lost => {
                        lost = true;
                        break;
                    }
                    Outcome::Stopped => return,
                }
            }
            // Batches fetched but not delivered are behind the positions:
            // start again from the committed offsets.
            if lost && !self.rewind().await {
                return;
            }
            // A small batch: let records gather before the next fetch.
            let wait = Duration::from_millis(self.sub.max_batch_wait_ms.max(0) as u64);
            if delivered < limits.max_records
                && delivered > 0
                && !wait.is_zero()
                && !sleep_or_stop(&self.stop, wait.min(self.session() / 3)).await
            {
                return;
            }
        }
    }

    /// Awaits `fut` (a delivery), heartbeating every third of the session
    /// meanwhile, so a slow receiver does not cost the partition its lease.
    async fn while_alive<F: std::future::Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return out,
                _ = tokio::time::sleep(self.session() / 3) => {
                    let acted = self.acted;
                    if let Ok(v) = self
                        .deps
                        .groups
                        .heartbeat(&self.sub.tenant, &self.group, &self.member.member_id, Some(acted))
                        .await
                    {
                        self.member = v;
                    }
                }
            }
        }
    }

    /// Sets the member's positions back to the committed offsets; false when
    /// the member is gone (join again).
    async fn rewind(&mut self) -> bool {
        let who = Fetcher {
            may_consume: &any_topic,
            generation: Some(self.acted),
            epoch: None,
            rewind: false,
        };
        match self
            .deps
            .groups
            .resume(&self.sub.tenant, &self.group, &self.member.member_id, who)
            .await
        {
            Ok(v) => {
                self.member = v;
                true
            }
            Err(e) => {
                tracing::warn!(subscription = %self.sub.name, error = %e, "rewinding to the committed offsets failed");
                false
            }
        }
    }

    /// Delivers one partition's batch until it is committed, dead-lettered
    /// or no longer this agent's.
    async fn deliver(&mut self, batch: &MemberBatch) -> Outcome {
        let body = self.render(batch);
        let (first, last) = match (batch.records.first(), batch.records.last()) {
            (Some(f), Some(l)) => (f.offset, l.offset),
            _ => return Outcome::Done,
        };
        let delivery_id = format!("{}/{}/{}-{}", self.sub.name, batch.partition, first, last);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let unix = unix_now();
            let sent = self
                .deps
                .client
                .post(&self.sub.url)
                .header("content-type", "application/json")
                .header(
                    "streamhouse-signature",
                    signature(&self.sub.secret, unix, &body),
                )
                .header("streamhouse-delivery-id", &delivery_id)
                .header("streamhouse-delivery-attempt", attempt.to_string())
                .body(body.clone())
                .send();
            let checked = match self.deps.config.guard.check_url(&self.sub.url) {
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            let started = std::time::Instant::now();
            let result = match checked {
                Err(e) => Err((e, None)),
                Ok(()) => match self.while_alive(sent).await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let retry_after = (status == 429 || status == 503)
                            .then(|| {
                                r.headers()
                                    .get("retry-after")?
                                    .to_str()
                                    .ok()?
                                    .trim()
                                    .parse::<u64>()
                                    .ok()
                            })
                            .flatten()
                            .map(|s| Duration::from_secs(s.min(600)));
                        Err((format!("receiver answered {status}"), retry_after))
                    }
                    Err(e) if e.is_timeout() => Err((
                        format!("no answer within {:?}", self.deps.config.timeout),
                        None,
                    )),
                    Err(e) => Err((format!("delivery failed: {e}"), None)),
                },
            };
            self.deps
                .metrics
                .groups
                .delivery_seconds
                .observe(started.elapsed().as_secs_f64());
            let records = batch.records.len() as u64;
            match result {
                Ok(()) => {
                    self.deps.metrics.groups.delivery("delivered", records);
                    let outcome = self.commit(batch).await;
                    self.note(DeliveryNote {
                        delivered: batch.records.len() as i64,
                        ..Default::default()
                    })
                    .await;
                    return outcome;
                }
                Err((error, retry_after)) => {
                    self.deps.metrics.groups.delivery("failed", records);
                    let exhausted = attempt >= self.sub.max_attempts.max(1) as u32;
                    self.note(DeliveryNote {
                        failures: 1,
                        error: Some((error.clone(), unix * 1000)),
                        ..Default::default()
                    })
                    .await;
                    if exhausted {
                        return self.dead_letter(batch, &error).await;
                    }
                    let backoff = self.backoff(attempt);
                    let wait = retry_after.unwrap_or(backoff);
                    match self.wait_owning(batch.partition, wait).await {
                        Outcome::Done => {}
                        other => return other,
                    }
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.deps.config.retry_base * 2u32.saturating_pow(attempt.min(20) - 1);
        let base = base.min(self.deps.config.max_backoff);
        // Full jitter over the upper half.
        base / 2 + base.mul_f64(rand::random::<f64>() / 2.0)
    }

    /// Waits `d`, heartbeating so the partition stays here; `Done` if it
    /// is still ours afterwards.
    async fn wait_owning(&mut self, partition: i32, d: Duration) -> Outcome {
        let end = tokio::time::Instant::now() + d;
        loop {
            let now = tokio::time::Instant::now();
            if now >= end {
                return Outcome::Done;
            }
            let step = (end - now).min(self.session() / 3);
            if !sleep_or_stop(&self.stop, step).await {
                return Outcome::Stopped;
            }
            let acted = self.acted;
            match self
                .deps
                .groups
                .heartbeat(
                    &self.sub.tenant,
                    &self.group,
                    &self.member.member_id,
                    Some(acted),
                )
                .await
            {
                Ok(v) => {
                    let ours = v
                        .assignment
                        .iter()
                        .chain(v.revoking.iter())
                        .any(|a| a.topic == self.sub.topic && a.partition == partition);
                    self.member = v;
                    if !ours {
                        return Outcome::Lost;
                    }
                }
                Err(GroupError::MemberNotFound(_)) => return Outcome::Lost,
                Err(e) => {
                    tracing::warn!(subscription = %self.sub.name, error = %e, "heartbeat failed");
                }
            }
        }
    }

    /// Commits past the batch as this member, refreshing the generation
    /// (without acknowledging revocations) when it moved.
    async fn commit(&mut self, batch: &MemberBatch) -> Outcome {
        let entry = [OffsetEntry {
            topic: self.sub.topic.clone(),
            partition: batch.partition,
            offset: batch.next_offset,
            metadata: None,
        }];
        for _ in 0..5 {
            let by = Committer::Member {
                id: &self.member.member_id,
                generation: self.member.generation,
            };
            let acted = self.acted;
            match self
                .deps
                .groups
                .commit(&self.sub.tenant, &self.group, &entry, by)
                .await
            {
                Ok(()) => return Outcome::Done,
                Err(GroupError::StaleGeneration { .. }) => {
                    match self
                        .deps
                        .groups
                        .heartbeat(
                            &self.sub.tenant,
                            &self.group,
                            &self.member.member_id,
                            Some(acted),
                        )
                        .await
                    {
                        Ok(v) => self.member = v,
                        Err(_) => return Outcome::Lost,
                    }
                }
                Err(GroupError::NotOwner { .. } | GroupError::MemberNotFound(_)) => {
                    return Outcome::Lost;
                }
                Err(e) => {
                    tracing::warn!(subscription = %self.sub.name, error = %e, "commit after delivery failed");
                    if !sleep_or_stop(&self.stop, self.deps.config.retry_base).await {
                        return Outcome::Stopped;
                    }
                }
            }
        }
        Outcome::Lost
    }

    /// Appends the batch to `<name>.dlq` (created with one partition when
    /// missing), each record with headers naming where it came from and
    /// why; then commits past it.
    async fn dead_letter(&mut self, batch: &MemberBatch, error: &str) -> Outcome {
        let dlq = format!("{}.dlq", self.sub.name);
        let tenant = Tenant::new(self.sub.tenant.as_str());
        let records: Vec<NewRecord> = batch
            .records
            .iter()
            .map(|r| {
                let mut headers: Headers = r.headers.iter().cloned().collect();
                for (k, v) in [
                    ("streamhouse-dlq-topic", self.sub.topic.clone()),
                    ("streamhouse-dlq-partition", batch.partition.to_string()),
                    ("streamhouse-dlq-offset", r.offset.to_string()),
                    ("streamhouse-dlq-error", error.to_string()),
                ] {
                    headers.push(Header {
                        key: k.into(),
                        value: Some(Bytes::from(v)),
                    });
                }
                NewRecord {
                    partition: Some(0),
                    record: Record {
                        timestamp: r.timestamp,
                        key: r.key.clone(),
                        value: r.value.clone(),
                        headers,
                    },
                }
            })
            .collect();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let exists = self
                .deps
                .metadata
                .topics
                .get_topic(&self.sub.tenant, &dlq)
                .await;
            if let Ok(None) = exists {
                let created = self
                    .deps
                    .metadata
                    .topics
                    .create_topic(
                        &NewTopic {
                            tenant: self.sub.tenant.clone(),
                            name: dlq.clone(),
                            partition_count: 1,
                            settings: TopicSettings::default(),
                        },
                        unix_now() * 1000,
                    )
                    .await;
                if let Err(e) = created
                    && !matches!(e, crate::metadata::MetadataError::AlreadyExists(_))
                {
                    tracing::warn!(subscription = %self.sub.name, error = %e, "creating the dead-letter topic failed");
                }
            }
            let appended = self
                .deps
                .ingest
                .append(Append {
                    tenant: tenant.clone(),
                    topic: dlq.clone().into(),
                    records: records.clone(),
                    idempotency: None,
                    held_bytes: 0,
                })
                .await;
            match appended {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(subscription = %self.sub.name, error = %e, "dead-lettering failed");
                    match self
                        .wait_owning(batch.partition, self.backoff(attempt))
                        .await
                    {
                        Outcome::Done => {}
                        other => return other,
                    }
                }
            }
        }
        self.deps
            .metrics
            .groups
            .delivery("dead_lettered", batch.records.len() as u64);
        let outcome = self.commit(batch).await;
        self.note(DeliveryNote {
            dead_lettered: batch.records.len() as i64,
            ..Default::default()
        })
        .await;
        outcome
    }

    async fn note(&self, note: DeliveryNote) {
        if let Err(e) = self
            .deps
            .metadata
            .subscriptions
            .note_delivery(&self.sub.tenant, &self.sub.name, &note)
            .await
        {
            tracing::debug!(subscription = %self.sub.name, error = %e, "delivery counters not updated");
        }
    }

    /// The delivery body: a read response with the subscription's name.
    fn render(&self, b: &MemberBatch) -> Bytes {
        Bytes::from(b.render(&[("subscription", self.sub.name.as_str().into())]))
    }
}
