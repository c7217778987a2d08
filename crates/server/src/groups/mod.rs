//! Consumer groups: committed offsets (commit, fetch, lag, reset) and
//! members (`members`: join, heartbeat, fetch, fenced commits) whose
//! assignment `assign` computes; all state lives in the metadata store.
//!
//! Offsets are never cached: any agent must see the latest commit. Topic
//! names are resolved to ids at commit time, so a re-created topic starts
//! with no committed offsets.

pub mod assign;
pub mod members;

use std::collections::HashMap;
use std::sync::Arc;

use crate::metadata::{GroupOffsetCommit, GroupOffsetRow, Metadata, MetadataError};
use crate::metrics::Metrics;
use crate::read::follow::StartAt;
use crate::read::{ReadError, Reader};
use crate::tail::Watermarks;

/// One offset to commit, as the caller names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
}

/// A group's position and lag in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub high_watermark: i64,
    pub lag: i64,
}

/// Why a group call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("topic {0} not found")]
    TopicNotFound(String),
    #[error("topic {topic} has {count} partitions; partition {partition} does not exist")]
    PartitionNotFound {
        topic: String,
        partition: i32,
        count: i32,
    },
    #[error("member {0} is not in the group (it left, or its session expired): join again")]
    MemberNotFound(String),
    #[error("generation {given} is stale: the group is at generation {current}")]
    StaleGeneration { given: i64, current: i64 },
    #[error("this member does not own {topic} partition {partition}")]
    NotOwner { topic: String, partition: i32 },
    #[error("the group has {0} live members: only they commit, and it cannot be reset or deleted")]
    HasMembers(usize),
    #[error("the group has {0} members, the most it may have")]
    GroupFull(usize),
    #[error("the group changed too often to apply the call; retry")]
    Busy,
    #[error("member {0} was taken over by a newer connection")]
    TakenOver(String),
    #[error("the token may not consume topic {0}, which this member reads")]
    Forbidden(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Group offset operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct Groups {
    metadata: Metadata,
    reader: Reader,
    watermarks: Arc<Watermarks>,
    metrics: Arc<Metrics>,
}

/// Who commits: nobody in particular (a group without members), or a
/// member at a generation (fenced).
#[derive(Debug, Clone, Copy)]
pub enum Committer<'a> {
    Plain,
    Member { id: &'a str, generation: i64 },
}

impl Groups {
    pub fn new(
        metadata: Metadata,
        reader: Reader,
        watermarks: Arc<Watermarks>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Groups {
            metadata,
            reader,
            watermarks,
            metrics,
        }
    }

    /// Commits every entry or none.
    pub async fn commit(
        &self,
        tenant: &str,
        group: &str,
        entries: &[OffsetEntry],
        by: Committer<'_>,
    ) -> Result<(), GroupError> {
        let commits = self.resolve(tenant, entries).await?;
        match by {
            Committer::Plain => self.commit_unowned(tenant, group, &commits).await,
            Committer::Member { id, generation } => {
                self.commit_as_member(tenant, group, id, generation, &commits)
                    .await
            }
        }
    }

    /// Resets the group's offsets in `partitions` of `topic` (all when
    /// `None`) to a position; refused while the group has live members.
    /// Returns the offsets set.
    pub async fn reset(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        partitions: Option<&[i32]>,
        to: StartAt,
    ) -> Result<Vec<(i32, i64)>, GroupError> {
        let t = self
            .metadata
            .topics
            .get_topic(tenant, topic)
            .await?
            .ok_or_else(|| GroupError::TopicNotFound(topic.to_string()))?;
        let parts: Vec<i32> = match partitions {
            Some(p) => p.to_vec(),
            None => (0..t.partition_count).collect(),
        };
        for &p in &parts {
            if p < 0 || p >= t.partition_count {
                return Err(GroupError::PartitionNotFound {
                    topic: topic.to_string(),
                    partition: p,
                    count: t.partition_count,
                });
            }
        }
        let keys: Vec<_> = parts.iter().map(|p| (t.id, *p)).collect();
        let bounds = self.reader.bounds_of(&keys).await?;
        let at_time = match to {
            StartAt::Timestamp(ts) => Some(self.reader.offsets_for_time(&keys, ts).await?),
            _ => None,
        };
        let mut out = Vec::with_capacity(parts.len());
        for key in &keys {
            let (start, hw) = bounds.get(key).copied().ok_or(ReadError::TopicGone)?;
            let offset = match to {
                StartAt::Earliest => start,
                StartAt::Latest => hw,
                StartAt::Offset(o) => o.clamp(start, hw),
                StartAt::Timestamp(_) => at_time
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .map_or(hw, |(o, _)| *o)
                    .max(start),
            };
            out.push((key.1, offset));
        }
        let commits: Vec<_> = out
            .iter()
            .map(|&(partition, offset)| GroupOffsetCommit {
                topic_id: t.id,
                partition,
                offset,
                metadata: None,
            })
            .collect();
        self.commit_unowned(tenant, group, &commits).await?;
        Ok(out)
    }

    /// The commits the entries name: topics resolved, partitions checked,
    /// one per partition (the last named).
    async fn resolve(
        &self,
        tenant: &str,
        entries: &[OffsetEntry],
    ) -> Result<Vec<GroupOffsetCommit>, GroupError> {
        let mut topics = HashMap::new();
        let mut commits = Vec::with_capacity(entries.len());
        for e in entries {
            let topic = match topics.get(&e.topic) {
                Some(t) => Arc::clone(t),
                None => {
                    let t = self
                        .metadata
                        .topics
                        .get_topic(tenant, &e.topic)
                        .await?
                        .ok_or_else(|| GroupError::TopicNotFound(e.topic.clone()))?;
                    topics.insert(e.topic.clone(), t.clone());
                    t
                }
            };
            if e.partition < 0 || e.partition >= topic.partition_count {
                return Err(GroupError::PartitionNotFound {
                    topic: e.topic.clone(),
                    partition: e.partition,
                    count: topic.partition_count,
                });
            }
            commits.push(GroupOffsetCommit {
                topic_id: topic.id,
                partition: e.partition,
                offset: e.offset,
                metadata: e.metadata.clone(),
            });
        }
        // A partition named twice keeps its last offset: one row per
        // partition, as an upsert in one statement requires.
        let mut last = HashMap::with_capacity(commits.len());
        for (i, c) in commits.iter().enumerate() {
            last.insert((c.topic_id, c.partition), i);
        }
        let commits: Vec<_> = commits
            .into_iter()
            .enumerate()
            .filter(|(i, c)| last.get(&(c.topic_id, c.partition)) == Some(i))
            .map(|(_, c)| c)
            .collect();
        Ok(commits)
    }

    /// The group's committed offsets.
    pub async fn fetch(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<Vec<GroupOffsetRow>, GroupError> {
        Ok(self.metadata.groups.group_offsets(tenant, group).await?)
    }

    /// The group's lag in every partition it has committed.
    pub async fn lag(&self, tenant: &str, group: &str) -> Result<Vec<LagRow>, GroupError> {
        let rows = self.metadata.groups.group_offsets(tenant, group).await?;
        let keys: Vec<_> = rows.iter().map(|r| (r.topic_id, r.partition)).collect();
        let states = self.metadata.log.partition_states(&keys).await?;
        let hw: HashMap<_, _> = states
            .iter()
            .map(|s| ((s.topic_id, s.partition), s.next_offset))
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let high_watermark = *hw.get(&(r.topic_id, r.partition))?;
                Some(LagRow {
                    lag: (high_watermark - r.offset).max(0),
                    topic: r.topic,
                    partition: r.partition,
                    committed_offset: r.offset,
                    high_watermark,
                })
            })
            .collect())
    }
}
