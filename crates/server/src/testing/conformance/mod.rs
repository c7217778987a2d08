//! The behaviour every store implementation must show: one suite per
//! trait, one test per case, run against every implementation.

pub mod groups;
pub mod lifecycle;
pub mod metadata;
pub mod store;
