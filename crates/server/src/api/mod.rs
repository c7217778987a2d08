//! The HTTP API: routes, handlers, problem+json errors and the OpenAPI
//! description. The top layer: it calls every layer below and none of them
//! knows it exists. [`app`] builds the router apart from serving it, so
//! tests can call it directly.

mod auth;
mod bare;
mod batches;
mod body;
mod browser;
mod conn;
mod console;
mod docs;
mod error;
mod extract;
mod gate;
mod group_stream;
mod groups;
mod json;
mod linger;
mod members;
mod ops;
mod peer;
mod produce;
mod read;
mod records_in;
mod serve;
mod snapshot;
mod sse;
mod subscriptions;
mod tokens;
mod topics;
mod trim;
mod ws;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Quotas};
use crate::clock::SharedClock;
use crate::config::Limits;
use crate::groups::Groups;
use crate::ingest::Ingest;
use crate::metadata::Metadata;
use crate::metrics::Metrics;
use crate::read::Reader;
use crate::render as records_out;
use crate::tail::Watermarks;

pub use body::BodyBudget;
pub use browser::Access;
pub use console::ConsoleFiles;
pub use docs::openapi_json;
pub use error::{ApiError, ErrorCode, Problem};
pub use gate::App;
pub use peer::PeerServing;
pub use records_out::{OutHeader, OutRecord, ReadResponse, ValueEncoding};
pub use serve::{ConnectionLimits, serve};

/// Route paths, shared by the router and the `#[utoipa::path]` of each
/// handler, so the OpenAPI description names the routes that are served.
pub mod paths {
    pub const TOPICS: &str = "/v1/topics";
    pub const TOPIC: &str = "/v1/topics/{topic}";
    pub const RECORDS: &str = "/v1/topics/{topic}/records";
    pub const PUBLISH: &str = "/v1/topics/{topic}/publish";
    pub const PARTITION_RECORDS: &str = "/v1/topics/{topic}/partitions/{partition}/records";
    pub const PARTITION_OFFSETS: &str = "/v1/topics/{topic}/partitions/{partition}/offsets";
    pub const TRIM: &str = "/v1/topics/{topic}/partitions/{partition}/trim";
    pub const TOPIC_STREAM: &str = "/v1/topics/{topic}/stream";
    pub const SNAPSHOT: &str = "/v1/topics/{topic}/snapshot";
    pub const STREAM: &str = "/v1/stream";
    pub const WS: &str = "/v1/ws";
    pub const GROUPS: &str = "/v1/groups";
    pub const GROUP: &str = "/v1/groups/{group}";
    pub const GROUP_MEMBERS: &str = "/v1/groups/{group}/members";
    pub const GROUP_MEMBER: &str = "/v1/groups/{group}/members/{member}";
    pub const GROUP_MEMBER_HEARTBEAT: &str = "/v1/groups/{group}/members/{member}/heartbeat";
    pub const GROUP_MEMBER_RECORDS: &str = "/v1/groups/{group}/members/{member}/records";
    pub const GROUP_RESET: &str = "/v1/groups/{group}/reset";
    pub const GROUP_STREAM: &str = "/v1/groups/{group}/stream";
    pub const GROUP_OFFSETS: &str = "/v1/groups/{group}/offsets";
    pub const GROUP_LAG: &str = "/v1/groups/{group}/lag";
    pub const SUBSCRIPTIONS: &str = "/v1/subscriptions";
    pub const SUBSCRIPTION: &str = "/v1/subscriptions/{name}";
    pub const SUBSCRIPTION_PAUSE: &str = "/v1/subscriptions/{name}/pause";
    pub const SUBSCRIPTION_RESUME: &str = "/v1/subscriptions/{name}/resume";
    pub const REVOKE_TOKEN: &str = "/v1/admin/tokens/revoke";
    pub const WHOAMI: &str = "/v1/whoami";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
    pub const PEER_OBJECT: &str = "/internal/v1/objects/{object}";
}

/// What every handler can reach.
#[derive(Debug)]
pub struct Services {
    pub limits: Limits,
    /// Who is calling: tokens, tenants, scopes, revocations.
    pub auth: Arc<Auth>,
    /// Browser safety: allowed hosts and origins.
    pub access: Access,
    /// Per-tenant quotas and usage.
    pub quotas: Arc<Quotas>,
    /// What request bodies in flight may hold together.
    pub bodies: BodyBudget,
    pub metadata: Metadata,
    pub ingest: Ingest,
    pub reader: Reader,
    pub groups: Groups,
    /// Which webhook targets subscriptions may name.
    pub webhook_guard: Arc<crate::webhooks::guard::Guard>,
    pub watermarks: Arc<Watermarks>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    /// How long released objects stay before deletion (trim releases rows).
    pub gc_grace: std::time::Duration,
    /// The web console's files.
    pub console: ConsoleFiles,
    /// Cancelled when shutdown begins: readiness fails, requests are refused.
    pub draining: CancellationToken,
    /// Which stores the agent has reached since it started: readiness
    /// waits for both.
    pub stores: Arc<crate::readiness::StoresReached>,
    /// Serving the objects this agent wrote to the other agents, when on.
    pub peer: Option<PeerServing>,
}

/// Shared application state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The whole API, as the service each connection runs: the routes behind
/// the rules every request passes (`gate`).
pub fn app(state: AppState) -> App {
    let api = Router::new()
        .route(paths::TOPICS, post(topics::create).get(topics::list))
        .route(
            paths::TOPIC,
            get(topics::describe)
                .patch(topics::configure)
                .delete(topics::delete),
        )
        .route(paths::RECORDS, post(produce::produce))
        .route(paths::PUBLISH, post(produce::publish))
        .route(paths::PARTITION_RECORDS, get(read::read))
        .route(paths::PARTITION_OFFSETS, get(read::offsets))
        .route(paths::TRIM, post(trim::trim))
        .route(paths::SNAPSHOT, get(snapshot::snapshot))
        .route(paths::TOPIC_STREAM, get(read::topic_stream))
        .route(paths::STREAM, get(read::multi_stream))
        .route(paths::WS, get(ws::upgrade))
        .route(paths::GROUPS, get(groups::list))
        .route(
            paths::GROUP_OFFSETS,
            post(groups::commit).get(groups::fetch),
        )
        .route(paths::GROUP_LAG, get(groups::lag))
        .route(paths::GROUP, get(members::describe).delete(members::delete))
        .route(paths::GROUP_MEMBERS, post(members::join))
        .route(paths::GROUP_MEMBER, delete(members::leave))
        .route(paths::GROUP_MEMBER_HEARTBEAT, post(members::heartbeat))
        .route(paths::GROUP_MEMBER_RECORDS, get(members::fetch))
        .route(paths::GROUP_RESET, post(members::reset))
        .route(paths::GROUP_STREAM, get(group_stream::stream))
        .route(
            paths::SUBSCRIPTIONS,
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            paths::SUBSCRIPTION,
            get(subscriptions::describe).delete(subscriptions::delete),
        )
        .route(paths::SUBSCRIPTION_PAUSE, post(subscriptions::pause))
        .route(paths::SUBSCRIPTION_RESUME, post(subscriptions::resume))
        .route(paths::REVOKE_TOKEN, post(tokens::revoke))
        .route(paths::WHOAMI, get(tokens::whoami))
        .route(paths::HEALTHZ, get(ops::healthz))
        .route(paths::READYZ, get(ops::readyz))
        .route(paths::METRICS, get(ops::metrics))
        .route(paths::PEER_OBJECT, get(peer::object))
        .method_not_allowed_fallback(ops::method_not_allowed)
        .fallback(ops::not_found)
        .with_state(state.clone());
    let pages = docs::router()
        .merge(console::router(state.console.clone()))
        .layer(middleware::from_fn(browser::page_headers));
    App::new(api.merge(pages), state)
}
