//! Group members over the group's document (see `assign`): join,
//! heartbeat, leave, fetch, fenced commits, and the calls that need an
//! empty group (reset, delete). Every change is a compare-and-swap of the
//! document, retried when another agent changed it first, so any agent
//! serves any member. Leases are judged by the store's clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use uuid::Uuid;

use super::assign::{GroupState, Member, Owner, Reset, TopicInfo};
use super::{GroupError, Groups};
use crate::metadata::{GroupOffsetCommit, GroupWrite};
use crate::model::{PartitionKey, StoredRecord, TopicMeta};
use crate::read::{ReadError, ReadRequest};

/// Attempts at a swap before the group is reported busy.
const MAX_SWAPS: u32 = 50;
/// Members one group may have.
pub const MAX_MEMBERS: usize = 1000;

/// How a member joins.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub topics: Vec<String>,
    pub session_timeout_ms: i64,
    pub reset: Reset,
}

/// A partition in an answer, with the member's position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub topic: String,
    pub partition: i32,
    /// The next offset the member will be given (`None` until resolved).
    pub offset: Option<i64>,
}

/// What a member is told on every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member_id: String,
    pub generation: i64,
    pub session_timeout_ms: i64,
    /// The generation moved since the member's previous answer.
    pub assignment_changed: bool,
    /// Partitions it owns and is given records from.
    pub assignment: Vec<Assigned>,
    /// Partitions leaving it: commit what was processed; the next call
    /// acknowledges, and they move.
    pub revoking: Vec<Assigned>,
    /// Which connection holds the member (raised by `resume`).
    pub epoch: i64,
}

/// Who is fetching, and how: what the caller may read, which generation
/// it acknowledges, and which connection it is.
#[derive(Clone, Copy)]
pub struct Fetcher<'a> {
    /// Whether the caller may consume a topic; a member whose topics it
    /// may not read is refused (`Forbidden`).
    pub may_consume: &'a (dyn Fn(&str) -> bool + Send + Sync),
    /// The generation acknowledged: `None` acknowledges the last one the
    /// member was told (REST clients, which commit between calls);
    /// `Some(0)` acknowledges none (streams: their commits do).
    pub generation: Option<i64>,
    /// The connection's epoch; a member taken over by another connection
    /// answers `TakenOver`.
    pub epoch: Option<i64>,
    /// Start again from the group's committed offsets instead of the
    /// member's positions (a REST client that lost an answer).
    pub rewind: bool,
}

impl std::fmt::Debug for Fetcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("generation", &self.generation)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// Anyone may read anything (agent-internal fetchers).
pub fn any_topic(_: &str) -> bool {
    true
}

/// Records of one partition handed to a member.
#[derive(Debug, Clone)]
pub struct MemberBatch {
    pub topic: String,
    pub partition: i32,
    pub records: Vec<StoredRecord>,
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl MemberBatch {
    /// As a read response (JSON), with `fields` first.
    pub fn render(&self, fields: &[(&str, serde_json::Value)]) -> Vec<u8> {
        crate::render::render_tagged(
            fields,
            &self.topic,
            self.partition,
            &self.records,
            self.next_offset,
            self.high_watermark,
            self.log_start_offset,
        )
    }
}

/// A member's fetch: what it was told and what it was given.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub view: MemberView,
    pub batches: Vec<MemberBatch>,
}

/// One fetch's limits.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub wait: Duration,
}

/// A member as `describe` shows it.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    pub member_id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: i64,
    pub expires_in_ms: i64,
    pub assignment: Vec<Assigned>,
    pub revoking: Vec<Assigned>,
}

/// A group as `describe` shows it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub generation: i64,
    /// `empty`, `stable` or `rebalancing` (a partition is moving).
    pub state: &'static str,
    pub members: Vec<MemberInfo>,
    /// Every owned partition: topic, partition, owner.
    pub owners: Vec<(String, i32, String)>,
}

/// The document as read.
struct Loaded {
    version: Option<i64>,
    state: GroupState,
    now: i64,
    /// The generation as read.
    base_generation: i64,
}

fn assigned(o: &Owner) -> Assigned {
    Assigned {
        topic: o.topic.clone(),
        partition: o.partition,
        offset: o.position,
    }
}

fn view(state: &GroupState, m: &Member, prev_told: i64) -> MemberView {
    let (owned, revoking) = state.assignment_of(&m.id);
    MemberView {
        member_id: m.id.clone(),
        generation: state.generation,
        session_timeout_ms: m.session_timeout_ms,
        assignment_changed: prev_told != state.generation,
        assignment: owned.into_iter().map(assigned).collect(),
        revoking: revoking.into_iter().map(assigned).collect(),
        epoch: m.epoch,
    }
}

/// The member `id`, live at `now` and held by the connection `epoch`
/// (when given), readable by the caller.
fn check_member<'a>(
    state: &'a mut GroupState,
    id: &str,
    now: i64,
    epoch: Option<i64>,
    may_consume: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<&'a mut Member, GroupError> {
    let m = state
        .member_mut(id)
        .filter(|m| m.expires_at_ms >= now)
        .ok_or_else(|| GroupError::MemberNotFound(id.to_string()))?;
    if epoch.is_some_and(|e| e != m.epoch) {
        return Err(GroupError::TakenOver(id.to_string()));
    }
    if let Some(t) = m.topics.iter().find(|t| !may_consume(t)) {
        return Err(GroupError::Forbidden(t.clone()));
    }
    Ok(m)
}

async fn backoff(attempt: u32) {
    let base = 1u64 << attempt.min(7);
    let jitter = rand::random::<u64>() % (base + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

impl Groups {
    async fn load(&self, tenant: &str, group: &str) -> Result<Loaded, GroupError> {
        let doc = self.metadata.members.load_group(tenant, group).await?;
        let state = match &doc.state {
            Some(s) => serde_json::from_str(s).map_err(|e| {
                GroupError::Metadata(crate::metadata::MetadataError::Unavailable(
                    format!("group document of {group} does not parse: {e}").into(),
                ))
            })?,
            None => GroupState::default(),
        };
        Ok(Loaded {
            version: doc.version,
            base_generation: state.generation,
            state,
            now: doc.now_ms,
        })
    }

    async fn save(
        &self,
        tenant: &str,
        group: &str,
        loaded: &Loaded,
        commits: &[GroupOffsetCommit],
    ) -> Result<bool, GroupError> {
        let doc = serde_json::to_string(&loaded.state).map_err(|e| {
            GroupError::Metadata(crate::metadata::MetadataError::Invalid(e.to_string()))
        })?;
        let won = self
            .metadata
            .members
            .swap_group(
                tenant,
                group,
                loaded.version,
                GroupWrite::Put(&doc),
                commits,
                loaded.now,
            )
            .await?;
        self.metrics.groups.swap(won);
        if won && loaded.base_generation != loaded.state.generation {
            self.metrics.groups.rebalances.inc();
        }
        Ok(won)
    }

    /// The topics the rebalance needs, from the (cached) topic lookups;
    /// a topic that does not exist is left out.
    async fn topic_map(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<(HashMap<String, TopicInfo>, HashMap<String, Arc<TopicMeta>>), GroupError> {
        let mut infos = HashMap::new();
        let mut metas = HashMap::new();
        for name in names {
            if let Some(t) = self.metadata.topics.get_topic(tenant, name).await? {
                infos.insert(
                    name.clone(),
                    TopicInfo {
                        id: t.id,
                        partitions: t.partition_count,
                    },
                );
                metas.insert(name.clone(), t);
            }
        }
        Ok((infos, metas))
    }

    /// Gives the member's partitions that have no position one: the
    /// group's committed offset (within the log), else its reset.
    async fn resolve_positions(
        &self,
        tenant: &str,
        group: &str,
        state: &mut GroupState,
        member: &str,
    ) -> Result<(), GroupError> {
        let reset = state.member(member).map(|m| m.reset).unwrap_or_default();
        let keys: Vec<PartitionKey> = state
            .owners
            .iter()
            .filter(|o| o.member == member && o.position.is_none())
            .map(|o| (o.topic_id, o.partition))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let committed: HashMap<PartitionKey, i64> = self
            .metadata
            .groups
            .group_offsets(tenant, group)
            .await?
            .into_iter()
            .map(|r| ((r.topic_id, r.partition), r.offset))
            .collect();
        let bounds = match self.reader.bounds_of(&keys).await {
            Ok(b) => b,
            // A topic deleted under the group: the next rebalance drops it.
            Err(ReadError::TopicGone) => return Ok(()),
            Err(e) => return Err(GroupError::Read(e)),
        };
        for o in &mut state.owners {
            let key = (o.topic_id, o.partition);
            if o.member != member || o.position.is_some() {
                continue;
            }
            let Some(&(start, hw)) = bounds.get(&key) else {
                continue;
            };
            o.position = Some(match committed.get(&key) {
                Some(&c) => c.clamp(start, hw),
                None if reset == Reset::Latest => hw,
                None => start,
            });
        }
        Ok(())
    }

    /// One member call's bookkeeping, swapped in: expire lapsed members,
    /// join or renew the caller, record its acknowledgement, rebalance,
    /// and resolve its positions. Returns the view and the topics.
    async fn sync(
        &self,
        tenant: &str,
        group: &str,
        member: &str,
        join: Option<&JoinSpec>,
        who: Fetcher<'_>,
        rewind: bool,
    ) -> Result<(MemberView, HashMap<String, Arc<TopicMeta>>), GroupError> {
        for attempt in 0..MAX_SWAPS {
            let mut l = self.load(tenant, group).await?;
            let before = l.state.clone();
            let mut changed = l.state.expire(l.now);
            let prev_told = match join {
                Some(spec) => {
                    if l.state.members.len() >= MAX_MEMBERS {
                        return Err(GroupError::GroupFull(MAX_MEMBERS));
                    }
                    l.state.add(Member {
                        id: member.to_string(),
                        topics: spec.topics.clone(),
                        session_timeout_ms: spec.session_timeout_ms,
                        expires_at_ms: l.now + spec.session_timeout_ms,
                        joined_at_ms: l.now,
                        reset: spec.reset,
                        acked: l.state.generation,
                        told: -1,
                        epoch: 0,
                    });
                    changed = true;
                    -1
                }
                None => {
                    let current = l.state.generation;
                    let now = l.now;
                    let m = check_member(&mut l.state, member, now, who.epoch, who.may_consume)?;
                    let generation = who.generation;
                    // Renewed once a third of the session has passed, so a
                    // call that changes nothing else writes nothing.
                    if m.expires_at_ms - now < m.session_timeout_ms * 2 / 3 {
                        m.expires_at_ms = now + m.session_timeout_ms;
                    }
                    m.acked = m.acked.max(generation.unwrap_or(m.told).min(current));
                    let told = m.told;
                    if rewind {
                        m.epoch += 1;
                        for o in l.state.owners.iter_mut().filter(|o| o.member == member) {
                            o.position = None;
                        }
                    }
                    told
                }
            };
            let (infos, metas) = self.topic_map(tenant, &l.state.topics()).await?;
            l.state.rebalance(&infos, changed, l.now);
            self.resolve_positions(tenant, group, &mut l.state, member)
                .await?;
            let generation = l.state.generation;
            let Some(m) = l.state.member_mut(member) else {
                return Err(GroupError::MemberNotFound(member.to_string()));
            };
            m.told = generation;
            let m = m.clone();
            if l.state == before || self.save(tenant, group, &l, &[]).await? {
                return Ok((view(&l.state, &m, prev_told), metas));
            }
            backoff(attempt).await;
        }
        Err(GroupError::Busy)
    }

    /// Joins a new member; its id is in the view.
    pub async fn join(
        &self,
        tenant: &str,
        group: &str,
        spec: &JoinSpec,
    ) -> Result<MemberView, GroupError> {
        for t in &spec.topics {
            if self.metadata.topics.get_topic(tenant, t).await?.is_none() {
                return Err(GroupError::TopicNotFound(t.clone()));
            }
        }
        let id = Uuid::now_v7().to_string();
        let who = Fetcher {
            may_consume: &any_topic,
            generation: None,
            epoch: None,
            rewind: false,
        };
        Ok(self
            .sync(tenant, group, &id, Some(spec), who, false)
            .await?
            .0)
    }

    /// Renews the member's lease and tells it its assignment; `generation`
    /// (default: the last one it was told) acknowledges revocations.
    pub async fn heartbeat(
        &self,
        tenant: &str,
        group: &str,
        member: &str,
        generation: Option<i64>,
    ) -> Result<MemberView, GroupError> {
        let who = Fetcher {
            may_consume: &any_topic,
            generation,
            epoch: None,
            rewind: false,
        };
        Ok(self.sync(tenant, group, member, None, who, false).await?.0)
    }

    /// Takes a member back after its connection dropped (a stream resumed
    /// by `Last-Event-ID`): its partitions stay, and it starts again from
    /// the group's committed offsets, so nothing it never acknowledged is
    /// skipped. It takes the member from any older connection (its epoch
    /// rises); `who` must be allowed the member's topics.
    pub async fn resume(
        &self,
        tenant: &str,
        group: &str,
        member: &str,
        who: Fetcher<'_>,
    ) -> Result<MemberView, GroupError> {
        let who = Fetcher { epoch: None, ..who };
        Ok(self.sync(tenant, group, member, None, who, true).await?.0)
    }

    /// Removes the member; its partitions move at once.
    pub async fn leave(&self, tenant: &str, group: &str, member: &str) -> Result<(), GroupError> {
        for attempt in 0..MAX_SWAPS {
            let mut l = self.load(tenant, group).await?;
            let expired = l.state.expire(l.now);
            if !l.state.remove(member) {
                return Err(GroupError::MemberNotFound(member.to_string()));
            }
            let (infos, _) = self.topic_map(tenant, &l.state.topics()).await?;
            l.state.rebalance(&infos, true, l.now);
            let _ = expired;
            if self.save(tenant, group, &l, &[]).await? {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(GroupError::Busy)
    }

    /// Records from the member's partitions from its positions, waiting up
    /// to `limits.wait` when there are none. Records are handed over only
    /// if the member still owns their partition when its position moves
    /// past them (one swap), so no two members get a partition's records
    /// in one generation.
    pub async fn fetch_records(
        &self,
        tenant: &str,
        group: &str,
        member: &str,
        who: Fetcher<'_>,
        limits: FetchLimits,
    ) -> Result<Fetched, GroupError> {
        let (first, metas) = self
            .sync(tenant, group, member, None, who, who.rewind)
            .await?;
        let wait = limits
            .wait
            .min(Duration::from_millis((first.session_timeout_ms / 2) as u64));
        let mut batches = self.read_owned(&first, &metas, limits).await?;
        if batches.is_empty() && !wait.is_zero() {
            self.wait_for_records(&first, &metas, wait).await;
            batches = self.read_owned(&first, &metas, limits).await?;
        }
        if batches.is_empty() {
            return Ok(Fetched {
                view: first,
                batches: Vec::new(),
            });
        }
        for attempt in 0..MAX_SWAPS {
            let mut l = self.load(tenant, group).await?;
            let now = l.now;
            let generation = l.state.generation;
            let m = check_member(&mut l.state, member, now, who.epoch, who.may_consume)?;
            m.expires_at_ms = now + m.session_timeout_ms;
            m.told = generation;
            let m = m.clone();
            let mut kept = Vec::new();
            for (from, b) in &batches {
                let owner = l.state.owners.iter_mut().find(|o| {
                    o.topic == b.topic
                        && o.partition == b.partition
                        && o.member == member
                        && o.moving_to.is_none()
                        && o.position == Some(*from)
                });
                if let Some(o) = owner {
                    o.position = Some(b.next_offset);
                    if !b.records.is_empty() {
                        kept.push(b.clone());
                    }
                }
            }
            if self.save(tenant, group, &l, &[]).await? {
                let mut v = view(&l.state, &m, first.generation);
                v.assignment_changed |= first.assignment_changed;
                return Ok(Fetched {
                    view: v,
                    batches: kept,
                });
            }
            backoff(attempt).await;
        }
        Err(GroupError::Busy)
    }

    /// Reads the member's partitions in turn until the limits are met;
    /// each batch comes with the position it was read from.
    async fn read_owned(
        &self,
        v: &MemberView,
        metas: &HashMap<String, Arc<TopicMeta>>,
        limits: FetchLimits,
    ) -> Result<Vec<(i64, MemberBatch)>, GroupError> {
        let mut out = Vec::new();
        let mut records = 0usize;
        let mut bytes = 0usize;
        let n = v.assignment.len();
        let first = if n == 0 {
            0
        } else {
            rand::random::<u32>() as usize % n
        };
        for i in 0..n {
            let a = &v.assignment[(first + i) % n];
            let (Some(from), Some(topic)) = (a.offset, metas.get(&a.topic)) else {
                continue;
            };
            if records >= limits.max_records || bytes >= limits.max_bytes {
                break;
            }
            let mut req = ReadRequest {
                topic: topic.clone(),
                partition: a.partition,
                offset: Some(from),
                max_records: limits.max_records - records,
                max_bytes: limits.max_bytes - bytes,
                wait: Duration::ZERO,
            };
            let r = match self.reader.read(&req).await {
                Ok(r) => r,
                // Retention passed the position: go on from the log start.
                Err(ReadError::OutOfRange {
                    log_start_offset, ..
                }) if from < log_start_offset => {
                    req.offset = Some(log_start_offset);
                    self.reader.read(&req).await.map_err(GroupError::Read)?
                }
                Err(ReadError::OutOfRange { .. } | ReadError::TopicGone) => continue,
                Err(e) => return Err(GroupError::Read(e)),
            };
            if r.records.is_empty() && r.next_offset == from {
                continue;
            }
            records += r.records.len();
            bytes += r
                .records
                .iter()
                .map(|x| x.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
            out.push((
                from,
                MemberBatch {
                    topic: a.topic.clone(),
                    partition: a.partition,
                    records: r.records,
                    next_offset: r.next_offset,
                    high_watermark: r.high_watermark,
                    log_start_offset: r.log_start_offset,
                },
            ));
        }
        Ok(out)
    }

    /// Waits until a watermark of the member's partitions passes its
    /// position, or `wait` elapses.
    async fn wait_for_records(
        &self,
        v: &MemberView,
        metas: &HashMap<String, Arc<TopicMeta>>,
        wait: Duration,
    ) {
        let mut changes: FuturesUnordered<_> = v
            .assignment
            .iter()
            .filter_map(|a| {
                let key = (metas.get(&a.topic)?.id, a.partition);
                let from = a.offset?;
                let mut rx = self.watermarks.subscribe(key, from);
                Some(async move { rx.wait_for(|hw| *hw > from).await.map(|_| ()) })
            })
            .collect();
        let _ = tokio::time::timeout(wait, async {
            if changes.is_empty() {
                std::future::pending::<()>().await;
            }
            changes.next().await;
        })
        .await;
    }

    /// Commits a member's offsets, fenced: the member must be live, name
    /// the current generation, and own every partition it commits.
    pub async fn commit_as_member(
        &self,
        tenant: &str,
        group: &str,
        member: &str,
        generation: i64,
        commits: &[GroupOffsetCommit],
    ) -> Result<(), GroupError> {
        for attempt in 0..MAX_SWAPS {
            let mut l = self.load(tenant, group).await?;
            let now = l.now;
            let current = l.state.generation;
            let Some(m) = l
                .state
                .member_mut(member)
                .filter(|m| m.expires_at_ms >= now)
            else {
                return Err(GroupError::MemberNotFound(member.to_string()));
            };
            if generation != current {
                return Err(GroupError::StaleGeneration {
                    given: generation,
                    current,
                });
            }
            m.expires_at_ms = now + m.session_timeout_ms;
            // Committing at a generation shows the member heard it.
            m.acked = m.acked.max(generation);
            for c in commits {
                let owns = l.state.owners.iter().any(|o| {
                    o.topic_id == c.topic_id && o.partition == c.partition && o.member == member
                });
                if !owns {
                    let topic = l
                        .state
                        .owners
                        .iter()
                        .find(|o| o.topic_id == c.topic_id)
                        .map_or_else(|| c.topic_id.to_string(), |o| o.topic.clone());
                    return Err(GroupError::NotOwner {
                        topic,
                        partition: c.partition,
                    });
                }
            }
            if self.save(tenant, group, &l, commits).await? {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(GroupError::Busy)
    }

    /// Commits offsets of a group with no live members (the plain commit,
    /// the reset); refused while members are live.
    pub(super) async fn commit_unowned(
        &self,
        tenant: &str,
        group: &str,
        commits: &[GroupOffsetCommit],
    ) -> Result<(), GroupError> {
        for attempt in 0..MAX_SWAPS {
            let l = self.load(tenant, group).await?;
            let live = l.state.live_members(l.now);
            if live > 0 {
                return Err(GroupError::HasMembers(live));
            }
            // Swapped even when the group has no document yet (one is
            // created), so a join that lands first makes this lose.
            if self.save(tenant, group, &l, commits).await? {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(GroupError::Busy)
    }

    /// Deletes the group (its offsets too); refused while members are live.
    pub async fn delete_group(&self, tenant: &str, group: &str) -> Result<(), GroupError> {
        for attempt in 0..MAX_SWAPS {
            let l = self.load(tenant, group).await?;
            let live = l.state.live_members(l.now);
            if live > 0 {
                return Err(GroupError::HasMembers(live));
            }
            let won = self
                .metadata
                .members
                .swap_group(tenant, group, l.version, GroupWrite::Delete, &[], l.now)
                .await?;
            if won {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(GroupError::Busy)
    }

    /// The group's members and assignment as of now (lapsed members left
    /// out; nothing is written).
    pub async fn describe_members(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<GroupInfo, GroupError> {
        let mut l = self.load(tenant, group).await?;
        l.state.expire(l.now);
        let members = l
            .state
            .members
            .iter()
            .map(|m| {
                let (owned, revoking) = l.state.assignment_of(&m.id);
                MemberInfo {
                    member_id: m.id.clone(),
                    topics: m.topics.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    expires_in_ms: (m.expires_at_ms - l.now).max(0),
                    assignment: owned.into_iter().map(assigned).collect(),
                    revoking: revoking.into_iter().map(assigned).collect(),
                }
            })
            .collect::<Vec<_>>();
        let live: std::collections::HashSet<&str> =
            l.state.members.iter().map(|m| m.id.as_str()).collect();
        let owners: Vec<_> = l
            .state
            .owners
            .iter()
            .filter(|o| live.contains(o.member.as_str()))
            .map(|o| (o.topic.clone(), o.partition, o.member.clone()))
            .collect();
        let state = if members.is_empty() {
            "empty"
        } else if l.state.owners.iter().any(|o| o.moving_to.is_some())
            || owners.len() != l.state.owners.len()
        {
            "rebalancing"
        } else {
            "stable"
        };
        Ok(GroupInfo {
            generation: l.state.generation,
            state,
            members,
            owners,
        })
    }
}
