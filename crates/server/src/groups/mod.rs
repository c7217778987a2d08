//! Consumer-group offsets: commit, fetch and lag, all in the metadata store.
//!
//! Offsets are never cached: any agent must see the latest commit. Topic
//! names are resolved to ids at commit time, so a re-created topic starts
//! with no committed offsets.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::metadata::{GroupOffsetCommit, GroupOffsetRow, Metadata, MetadataError};

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
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Group offset operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct Groups {
    metadata: Metadata,
    clock: SharedClock,
}

impl Groups {
    pub fn new(metadata: Metadata, clock: SharedClock) -> Self {
        Groups { metadata, clock }
    }

    /// Commits every entry or none.
    pub async fn commit(
        &self,
        tenant: &str,
        group: &str,
        entries: &[OffsetEntry],
    ) -> Result<(), GroupError> {
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
        self.metadata
            .groups
            .commit_group_offsets(tenant, group, &commits, self.clock.now_ms())
            .await?;
        Ok(())
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
