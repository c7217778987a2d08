//! A group's membership document and the rebalance that keeps it right.
//!
//! The document lists the live members (each with its lease) and, for
//! every partition of a subscribed topic, its owner and the owner's
//! position. [`GroupState::rebalance`] is deterministic over the sorted
//! members and partitions and sticky: a partition keeps its owner unless
//! balance requires moving it. A partition leaves a live owner in two
//! steps: it is marked `moving_to`, the owner stops receiving it and is
//! told, and it changes hands only once the owner acknowledges (a call
//! carrying that generation, or a commit at it), its lease ends, or a
//! whole session timeout has passed since the move began. So no
//! generation ever has two owners of one partition. Every change raises
//! the generation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a member starts in a partition the group has no offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reset {
    #[default]
    Earliest,
    Latest,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    /// Topic names, sorted.
    pub topics: Vec<String>,
    pub session_timeout_ms: i64,
    /// The lease: the member is gone once the store's clock passes this.
    pub expires_at_ms: i64,
    pub joined_at_ms: i64,
    #[serde(default)]
    pub reset: Reset,
    /// The highest generation the member has acknowledged.
    pub acked: i64,
    /// The generation of the last answer it was given.
    pub told: i64,
    /// Raised when a stream takes the member back (`Groups::resume`), so
    /// an older connection still fetching for it stops.
    #[serde(default)]
    pub epoch: i64,
}

/// One partition's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub member: String,
    /// The next offset to hand the owner; `None` until its first fetch
    /// resolves it (the committed offset, else the member's reset).
    pub position: Option<i64>,
    /// Leaving the owner for this member once the owner acknowledges
    /// generation `since` or its lease ends.
    pub moving_to: Option<String>,
    /// The generation the owner gained it, or the move began.
    pub since: i64,
    /// When the move began (store clock): an owner that neither
    /// acknowledges nor commits lets it go after its session timeout.
    #[serde(default)]
    pub moving_since_ms: Option<i64>,
}

/// A topic as the rebalance needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub partitions: i32,
}

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub generation: i64,
    /// Sorted by id.
    pub members: Vec<Member>,
    /// Sorted by topic and partition.
    pub owners: Vec<Owner>,
}

impl GroupState {
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// Adds a member (keeping the order).
    pub fn add(&mut self, member: Member) {
        let at = self.members.partition_point(|m| m.id < member.id);
        self.members.insert(at, member);
    }

    /// Removes a member; its partitions are free at once (leaving
    /// acknowledges every revocation). True if it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.id != id);
        before != self.members.len()
    }

    /// Members whose lease has not ended at `now_ms`.
    pub fn live_members(&self, now_ms: i64) -> usize {
        self.members
            .iter()
            .filter(|m| m.expires_at_ms >= now_ms)
            .count()
    }

    /// Removes members whose lease ended at `now_ms`; true if any.
    pub fn expire(&mut self, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.expires_at_ms >= now_ms);
        before != self.members.len()
    }

    /// Every topic some member subscribes to.
    pub fn topics(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The partitions `member` owns and may read (not moving away), and
    /// those it must give up.
    pub fn assignment_of(&self, member: &str) -> (Vec<&Owner>, Vec<&Owner>) {
        self.owners
            .iter()
            .filter(|o| o.member == member)
            .partition(|o| o.moving_to.is_none())
    }

    /// Brings the assignment in line with the live members and `topics`
    /// (every subscribed topic that exists) at `now_ms`. `changed` says the
    /// members changed; the generation rises if anything did.
    pub fn rebalance(
        &mut self,
        topics: &HashMap<String, TopicInfo>,
        mut changed: bool,
        now_ms: i64,
    ) {
        let next = self.generation + 1;
        let live: HashMap<&str, &Member> =
            self.members.iter().map(|m| (m.id.as_str(), m)).collect();
        // Owners of partitions that no longer exist, or whose owner is gone.
        let before = self.owners.len();
        self.owners.retain(|o| {
            topics
                .get(&o.topic)
                .is_some_and(|t| t.id == o.topic_id && o.partition < t.partitions)
                && live.contains_key(o.member.as_str())
        });
        changed |= before != self.owners.len();
        for o in &mut self.owners {
            if o.moving_to
                .as_deref()
                .is_some_and(|t| !live.contains_key(t))
            {
                o.moving_to = None;
                changed = true;
            }
        }
        let targets = targets(&self.members, topics, &self.owners);
        let mut owners: BTreeMap<(String, i32), Owner> = self
            .owners
            .drain(..)
            .map(|o| ((o.topic.clone(), o.partition), o))
            .collect();
        for ((topic, partition), target) in &targets {
            match owners.get_mut(&(topic.clone(), *partition)) {
                None => {
                    owners.insert(
                        (topic.clone(), *partition),
                        Owner {
                            topic: topic.clone(),
                            topic_id: topics[topic].id,
                            partition: *partition,
                            member: target.clone(),
                            position: None,
                            moving_to: None,
                            since: next,
                            moving_since_ms: None,
                        },
                    );
                    changed = true;
                }
                Some(o) if &o.member == target => {
                    if o.moving_to.take().is_some() {
                        o.moving_since_ms = None;
                        changed = true;
                    }
                }
                Some(o) => {
                    if o.moving_to.as_ref() != Some(target) {
                        o.moving_to = Some(target.clone());
                        o.since = next;
                        o.moving_since_ms = Some(now_ms);
                        changed = true;
                    }
                }
            }
        }
        // Partitions no live member subscribes to any more.
        let before = owners.len();
        owners.retain(|k, _| targets.contains_key(k));
        changed |= before != owners.len();
        // Moves the owner has acknowledged change hands now.
        for o in owners.values_mut() {
            let Some(to) = o.moving_to.clone() else {
                continue;
            };
            let owner = live[o.member.as_str()];
            let timed_out = o
                .moving_since_ms
                .is_some_and(|t| now_ms - t >= owner.session_timeout_ms);
            if owner.acked >= o.since || timed_out {
                o.member = to;
                o.moving_to = None;
                o.moving_since_ms = None;
                o.position = None;
                o.since = next;
                changed = true;
            }
        }
        self.owners = owners.into_values().collect();
        if changed {
            self.generation = next;
        }
    }
}

/// Who should own each subscribed partition: sticky and balanced. Current
/// owners (or the members partitions are already moving to) keep up to
/// the fair share; the rest go to the least loaded member that subscribes;
/// then single partitions move from the most to the least loaded until no
/// two eligible members differ by more than one.
fn targets(
    members: &[Member],
    topics: &HashMap<String, TopicInfo>,
    owners: &[Owner],
) -> BTreeMap<(String, i32), String> {
    let mut eligible: BTreeMap<(String, i32), Vec<&str>> = BTreeMap::new();
    for m in members {
        for t in &m.topics {
            let Some(info) = topics.get(t) else { continue };
            for p in 0..info.partitions {
                eligible.entry((t.clone(), p)).or_default().push(&m.id);
            }
        }
    }
    if eligible.is_empty() {
        return BTreeMap::new();
    }
    let holders = members
        .iter()
        .filter(|m| m.topics.iter().any(|t| topics.contains_key(t)));
    let cap = eligible.len().div_ceil(holders.count().max(1));
    let current: HashMap<(&str, i32), &str> = owners
        .iter()
        .map(|o| {
            let who = o.moving_to.as_deref().unwrap_or(&o.member);
            ((o.topic.as_str(), o.partition), who)
        })
        .collect();
    let mut load: HashMap<&str, usize> = members.iter().map(|m| (m.id.as_str(), 0)).collect();
    let mut target: BTreeMap<(String, i32), &str> = BTreeMap::new();
    for (key, who) in &eligible {
        if let Some(cur) = current.get(&(key.0.as_str(), key.1))
            && who.contains(cur)
            && load[cur] < cap
        {
            *load.get_mut(cur).unwrap_or(&mut 0) += 1;
            target.insert(key.clone(), cur);
        }
    }
    for (key, who) in &eligible {
        if target.contains_key(key) {
            continue;
        }
        let least = who.iter().copied().min_by_key(|m| (load[m], *m));
        if let Some(m) = least {
            *load.get_mut(m).unwrap_or(&mut 0) += 1;
            target.insert(key.clone(), m);
        }
    }
    // Even out: bounded, each move lowers the spread.
    for _ in 0..eligible.len() {
        let mut moved = false;
        for (key, who) in eligible.iter().rev() {
            let cur = target[key];
            let Some(least) = who.iter().copied().min_by_key(|m| (load[m], *m)) else {
                continue;
            };
            if load[cur] > load[least] + 1 {
                *load.get_mut(cur).unwrap_or(&mut 0) -= 1;
                *load.get_mut(least).unwrap_or(&mut 0) += 1;
                target.insert(key.clone(), least);
                moved = true;
                break;
            }
        }
        if !moved {
            break;
        }
    }
    target
        .into_iter()
        .map(|(k, m)| (k, m.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
