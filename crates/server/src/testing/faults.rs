//! Fault injection for tests: a plan of faults, and layers that apply it to
//! any object store or metadata store.
//!
//! A rule picks calls by operation and either by count ("the 3rd put") or
//! by time ("every commit for the next 2 s"), and does one thing to them:
//! fail before doing anything, delay, hang for a while and then fail (a
//! timeout), do the work and then fail anyway, losing the response (for
//! commits that is the ambiguous case: applied, but the caller cannot
//! know), or, for object reads only, answer damaged bytes.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use crate::metadata::{
    BatchRow, ChunkOutcome, FlushCommit, GroupOffsetCommit, GroupOffsetRow, GroupOffsets,
    IdempotencyKeys, Log, Metadata, MetadataError, RecordedKey, Topics,
};
use crate::model::{NewTopic, PartitionKey, PartitionState, TopicMeta, TopicSettings};
use crate::store::{DeleteOutcome, ListPage, ObjectStore, SharedStore, StoreError};

/// Calls a rule can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    Get,
    Delete,
    List,
    Commit,
    /// Every metadata call other than a flush commit.
    MetadataRead,
}

/// What happens to a targeted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail at once; nothing is done.
    Fail,
    /// Wait, then do the call normally.
    Delay(Duration),
    /// Wait, then fail without doing anything (a timeout).
    Hang(Duration),
    /// Do the call, then fail: the work is done but the caller never hears.
    LoseResponse,
    /// Reads only: do the call and flip the last byte of the answer, as a
    /// damaged transfer would.
    Corrupt,
}

#[derive(Debug, Clone)]
enum When {
    Nth(u64),
    Until(Instant),
}

#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    when: When,
    fault: Fault,
}

/// The faults to inject; share it between the layers and the test.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Mutex<Vec<Rule>>,
    counts: [AtomicU64; 6],
    injected: AtomicU64,
}

fn slot(op: Op) -> usize {
    match op {
        Op::Put => 0,
        Op::Get => 1,
        Op::Delete => 2,
        Op::List => 3,
        Op::Commit => 4,
        Op::MetadataRead => 5,
    }
}

impl FaultPlan {
    /// The `n`th call of `op` from now (1 = the next one) gets `fault`.
    pub fn nth(&self, op: Op, n: u64, fault: Fault) {
        let base = self.counts[slot(op)].load(Ordering::SeqCst);
        self.push(Rule {
            op,
            when: When::Nth(base + n),
            fault,
        });
    }

    /// Every call of `op` during the next `period` gets `fault`.
    pub fn during(&self, op: Op, period: Duration, fault: Fault) {
        self.push(Rule {
            op,
            when: When::Until(Instant::now() + period),
            fault,
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many faults have been injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn push(&self, rule: Rule) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    /// Counts a call of `op` and returns the fault it gets, if any.
    fn check(&self, op: Op) -> Option<Fault> {
        let n = self.counts[slot(op)].fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.retain(|r| !matches!(r.when, When::Until(t) if t <= now));
        let hit = rules.iter().position(|r| {
            r.op == op
                && match r.when {
                    When::Nth(k) => k == n,
                    When::Until(t) => now < t,
                }
        })?;
        let fault = rules[hit].fault;
        if matches!(rules[hit].when, When::Nth(_)) {
            rules.remove(hit);
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }
}

/// Applies a plan to an object store.
#[derive(Debug)]
pub struct FaultyStore {
    inner: SharedStore,
    plan: Arc<FaultPlan>,
}

impl FaultyStore {
    pub fn new(inner: SharedStore, plan: Arc<FaultPlan>) -> Self {
        FaultyStore { inner, plan }
    }
}

fn store_err(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {what}").into())
}

/// Runs `call` under the fault `op` draws; `lost` builds the error for a
/// lost response.
async fn apply<T, F, E>(plan: &FaultPlan, op: Op, call: F, err: impl Fn(&str) -> E) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    run(plan.check(op), call, err).await
}

/// Runs `call` under `fault`.
async fn run<T, F, E>(fault: Option<Fault>, call: F, err: impl Fn(&str) -> E) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    match fault {
        None => call.await,
        Some(Fault::Fail) => Err(err("failed")),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            call.await
        }
        Some(Fault::Hang(d)) => {
            tokio::time::sleep(d).await;
            Err(err("timed out"))
        }
        Some(Fault::LoseResponse) => {
            let _ = call.await;
            Err(err("response lost"))
        }
        // Only reads can be damaged (see `get_range`); elsewhere it is a
        // plain call.
        Some(Fault::Corrupt) => call.await,
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        apply(&self.plan, Op::Put, self.inner.put(key, body), store_err).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        match self.plan.check(Op::Get) {
            Some(Fault::Corrupt) => {
                let mut bytes = self.inner.get_range(key, range).await?.to_vec();
                if let Some(last) = bytes.last_mut() {
                    *last ^= 0xff;
                }
                Ok(bytes.into())
            }
            fault => run(fault, self.inner.get_range(key, range), store_err).await,
        }
    }
    async fn mark_checked(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        self.inner.mark_checked(key, range, bytes).await;
    }

    async fn discard(&self, key: &str, range: Range<u64>, bytes: &Bytes) {
        self.inner.discard(key, range, bytes).await;
    }

    async fn delete_many(&self, keys: &[String]) -> DeleteOutcome {
        let r = apply(
            &self.plan,
            Op::Delete,
            async { Ok::<_, StoreError>(self.inner.delete_many(keys).await) },
            store_err,
        )
        .await;
        r.unwrap_or_else(|e| DeleteOutcome {
            deleted: Vec::new(),
            failed: keys.iter().map(|k| (k.clone(), e.clone())).collect(),
        })
    }
    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, StoreError> {
        apply(
            &self.plan,
            Op::List,
            self.inner.list(prefix, after),
            store_err,
        )
        .await
    }
}

/// Applies a plan to every concern of a metadata store. A lost commit
/// response is reported as ambiguous, exactly as a connection lost after
/// COMMIT would be.
#[derive(Debug)]
pub struct FaultyMetadata {
    inner: Metadata,
    plan: Arc<FaultPlan>,
}

impl FaultyMetadata {
    /// `inner` with every call subject to `plan`.
    /// Revocations, lifecycle, membership and subscription calls pass
    /// through: no test injects faults into them.
    pub fn wrap(inner: Metadata, plan: Arc<FaultPlan>) -> Metadata {
        let revocations = inner.revocations.clone();
        let members = inner.members.clone();
        let subscriptions = inner.subscriptions.clone();
        let lifecycle = inner.lifecycle.clone();
        let feed = inner.feed.clone();
        let faulty = Arc::new(FaultyMetadata { inner, plan });
        Metadata {
            topics: faulty.clone(),
            log: faulty.clone(),
            groups: faulty.clone(),
            members,
            subscriptions,
            keys: faulty,
            revocations,
            lifecycle,
            feed,
        }
    }
}

fn meta_err(what: &str) -> MetadataError {
    MetadataError::Unavailable(format!("injected fault: {what}").into())
}

fn commit_err(what: &str) -> MetadataError {
    if what == "response lost" {
        MetadataError::Ambiguous("injected fault: connection lost after COMMIT".into())
    } else {
        meta_err(what)
    }
}

/// A metadata call other than a flush commit, under the plan.
macro_rules! read {
    ($self:ident . $concern:ident . $call:ident ( $($arg:expr),* )) => {
        apply(&$self.plan, Op::MetadataRead, $self.inner.$concern.$call($($arg),*), meta_err).await
    };
}

#[async_trait]
impl Topics for FaultyMetadata {
    async fn create_topic(&self, t: &NewTopic, now: i64) -> Result<TopicMeta, MetadataError> {
        read!(self.topics.create_topic(t, now))
    }
    async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Arc<TopicMeta>>, MetadataError> {
        read!(self.topics.get_topic(tenant, name))
    }
    async fn list_topics(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TopicMeta>, MetadataError> {
        read!(self.topics.list_topics(tenant, after, limit))
    }
    async fn configure_topic(
        &self,
        t: &str,
        n: &str,
        settings: &TopicSettings,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        read!(self.topics.configure_topic(t, n, settings))
    }
    async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
        now: i64,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        read!(self.topics.delete_topic(tenant, name, now))
    }
    async fn topic_epoch(&self) -> Result<i64, MetadataError> {
        read!(self.topics.topic_epoch())
    }
    async fn live_topics(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        read!(self.topics.live_topics(ids))
    }
}

#[async_trait]
impl Log for FaultyMetadata {
    async fn commit_flush(&self, c: &FlushCommit) -> Result<Vec<ChunkOutcome>, MetadataError> {
        apply(
            &self.plan,
            Op::Commit,
            self.inner.log.commit_flush(c),
            commit_err,
        )
        .await
    }
    async fn partitions(
        &self,
        id: Uuid,
        from: i32,
        limit: u32,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        read!(self.log.partitions(id, from, limit))
    }
    async fn partition_states(
        &self,
        keys: &[PartitionKey],
    ) -> Result<Vec<PartitionState>, MetadataError> {
        read!(self.log.partition_states(keys))
    }
    async fn find_batches(
        &self,
        id: Uuid,
        p: i32,
        o: i64,
        limit: u32,
    ) -> Result<Vec<BatchRow>, MetadataError> {
        read!(self.log.find_batches(id, p, o, limit))
    }
    async fn find_batches_by_time(
        &self,
        keys: &[PartitionKey],
        ts: i64,
    ) -> Result<Vec<(PartitionKey, BatchRow)>, MetadataError> {
        read!(self.log.find_batches_by_time(keys, ts))
    }
    async fn known_objects(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, MetadataError> {
        read!(self.log.known_objects(ids))
    }
    async fn now_ms(&self) -> Result<i64, MetadataError> {
        read!(self.log.now_ms())
    }
}

#[async_trait]
impl GroupOffsets for FaultyMetadata {
    async fn commit_group_offsets(
        &self,
        t: &str,
        g: &str,
        o: &[GroupOffsetCommit],
        now: i64,
    ) -> Result<(), MetadataError> {
        read!(self.groups.commit_group_offsets(t, g, o, now))
    }
    async fn group_offsets(&self, t: &str, g: &str) -> Result<Vec<GroupOffsetRow>, MetadataError> {
        read!(self.groups.group_offsets(t, g))
    }
    async fn list_groups(
        &self,
        t: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetadataError> {
        read!(self.groups.list_groups(t, after, limit))
    }
}

#[async_trait]
impl IdempotencyKeys for FaultyMetadata {
    async fn lookup_key(
        &self,
        t: &str,
        id: Uuid,
        k: &str,
        now: i64,
    ) -> Result<Option<RecordedKey>, MetadataError> {
        read!(self.keys.lookup_key(t, id, k, now))
    }
    async fn expire_keys(&self, now: i64, limit: u32) -> Result<u64, MetadataError> {
        read!(self.keys.expire_keys(now, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault layer over SQLite with an empty plan: a faithful store.
    async fn faultless() -> crate::testing::TempSqlite {
        crate::testing::TempSqlite::open()
            .await
            .layered(|m| FaultyMetadata::wrap(m, Arc::new(FaultPlan::default())))
    }

    crate::metadata_conformance!(faultless);

    #[tokio::test]
    async fn rules_pick_calls_by_count_and_by_time() {
        let plan = FaultPlan::default();
        plan.nth(Op::Put, 2, Fault::Fail);
        assert_eq!(plan.check(Op::Put), None);
        assert_eq!(plan.check(Op::Get), None);
        assert_eq!(plan.check(Op::Put), Some(Fault::Fail));
        assert_eq!(plan.check(Op::Put), None, "a counted rule fires once");
        plan.during(Op::Commit, Duration::from_secs(60), Fault::LoseResponse);
        assert_eq!(plan.check(Op::Commit), Some(Fault::LoseResponse));
        assert_eq!(plan.check(Op::Commit), Some(Fault::LoseResponse));
        plan.clear();
        assert_eq!(plan.check(Op::Commit), None);
        assert_eq!(plan.injected(), 3);
    }
}
