//! Background work on stored data, run by every agent.
//!
//! - `orphans`: expired idempotency keys, and objects no commit names
//!   (uploads whose commit never happened), found by listing the bucket.
//! - The data lifecycle, run as jobs leased in the metadata store so any
//!   agent runs them and none twice at once (`jobs`): object compaction and
//!   key compaction (`compaction`), merging small chunks across
//!   partitions (`sweep`), retention and explicit trim
//!   (`retention`), releasing deleted topics, and the collector that
//!   deletes released objects once their grace is over (`gc`).
//!
//! Nothing here deletes an object a reader may still follow: rows are
//! released first, objects get `delete_after = now + --gc-grace` (more than
//! twice the index cache's TTL, so every cached pointer to them has
//! expired), and the collector forgets an object's row only after the
//! object store confirmed the delete.

mod compaction;
mod gc;
mod jobs;
mod orphans;
mod retention;
mod sweep;

pub use jobs::{LifecycleConfig, Maintainer};
pub use orphans::{PassReport, collect_orphans, expire_keys, pass, run};
pub use retention::{TrimError, trim};
