//! Group membership as the store keeps it: one versioned document per
//! group (members, assignment, positions), replaced by compare and swap.
//! The store does not interpret the document; `groups::members` does. A
//! swap can carry offset commits, stored only if the swap wins, so a
//! fenced commit and the check that admits it are one transaction.

use async_trait::async_trait;

use super::{GroupOffsetCommit, MetadataError};

/// A group's document as read, with the store's clock at the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDoc {
    /// `None` when the group has no document yet.
    pub version: Option<i64>,
    pub state: Option<String>,
    /// The store's clock (ms since the epoch): every agent judges leases by it.
    pub now_ms: i64,
}

/// What a swap writes.
#[derive(Debug, Clone, Copy)]
pub enum GroupWrite<'a> {
    /// Replace (or create) the document.
    Put(&'a str),
    /// Delete the document and every committed offset of the group.
    Delete,
}

/// Group documents by tenant and name.
#[async_trait]
pub trait GroupMembership: Send + Sync + std::fmt::Debug {
    /// The group's document.
    async fn load_group(&self, tenant: &str, group: &str) -> Result<GroupDoc, MetadataError>;

    /// Writes the document if its version is still `expected` (`None`: no
    /// document exists), storing `commits` in the same transaction;
    /// returns false, having written nothing, when another writer won.
    async fn swap_group(
        &self,
        tenant: &str,
        group: &str,
        expected: Option<i64>,
        write: GroupWrite<'_>,
        commits: &[GroupOffsetCommit],
        now_ms: i64,
    ) -> Result<bool, MetadataError>;
}
