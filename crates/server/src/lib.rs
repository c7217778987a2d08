//! StreamHouse's agent: an S3-native streaming service with an HTTP face.
//!
//! Producers POST records to topics; consumers read them by offset. Records
//! are batched across partitions into objects in object storage; topics,
//! offsets and the offset index live in a SQL metadata store. The modules
//! follow the layers of the design, each using only those below it:
//!
//! - [`api`]: HTTP routes, errors, OpenAPI (the top; nothing imports it)
//! - [`auth`]: who is calling (tokens, tenants, scopes, revocations)
//! - [`ingest`], [`read`], [`groups`]: produce, read, and consumer groups
//!   (offsets, members, assignment, fencing)
//! - [`render`]: records as JSON, for responses, streams and deliveries
//! - [`tail`]: high watermarks readers wait on
//! - [`webhooks`]: push delivery of subscriptions to HTTP receivers
//! - [`maintenance`]: expired keys and orphaned objects
//! - [`peer`]: fresh objects read from the agent that wrote them
//! - [`metadata`], [`store`], [`format`]: SQL, object storage, the bytes
//! - [`model`], [`config`], [`metrics`], [`clock`], [`background`]: plain
//!   shared parts
//!
//! [`server`] wires them into an agent. The tools that talk to an agent
//! from outside (`bench`) and the command line live in other crates of the
//! workspace; the HTTP clients here are webhook delivery's and the peer
//! reads' ([`store`]'s peer layer). With the `testing`
//! feature, [`testing`] adds fault-injecting store layers and the
//! conformance suites every store implementation passes.

pub mod api;
pub mod auth;
pub mod background;
pub mod clock;
pub mod config;
pub mod format;
pub mod groups;
pub mod ingest;
pub mod maintenance;
pub mod metadata;
pub mod metrics;
pub mod model;
pub mod peer;
pub mod read;
pub mod readiness;
pub mod render;
pub mod server;
pub mod store;
pub mod tail;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod webhooks;
