//! Wiring and serving one agent: builds every layer from the configuration,
//! serves the API, and shuts down in order.
//!
//! Shutdown: readiness turns 503 and new requests are refused; the batcher
//! flushes what it holds at once and answers its producers; the server
//! waits for in-flight requests; whatever is left after the shutdown
//! timeout is abandoned.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, Services};
use crate::auth::{Auth, AuthMode, Quotas};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ObjectStoreLocation, ServeArgs};
use crate::groups::Groups;
use crate::ingest::{self, IngestConfig, IngestDeps};
use crate::maintenance::{LifecycleConfig, Maintainer};
use crate::metadata::{
    CacheConfig, Metadata, MetadataCache, StoreClock, connect_postgres, open_sqlite,
    open_sqlite_url,
};
use crate::metrics::Metrics;
use crate::peer::{PeerConfig, PeerHints};
use crate::read::Reader;
use crate::readiness::StoresReached;
use crate::store::{
    CachedStore, InstrumentedStore, LocalStore, PeerStore, S3Config, S3Store, SharedStore,
};

/// A read-ahead may fetch a chunk of at most this share of the chunk
/// cache: with a small cache, readers' fetched-ahead chunks would evict
/// each other before they are read.
const READ_AHEAD_SHARE: u64 = 8;
use crate::tail::Watermarks;

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot open the metadata store: {0}")]
    Metadata(String),
    #[error("cannot open the object store: {0}")]
    Store(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A built agent, not yet serving.
#[derive(Debug)]
pub struct Agent {
    pub state: AppState,
    /// Stops background tasks (the flusher drains first).
    pub background: CancellationToken,
    pub tracker: TaskTracker,
    pub shutdown_timeout: Duration,
    /// What a client connection may hold, and for how long.
    pub connections: api::ConnectionLimits,
}

/// Opens the metadata store the configuration names and applies migrations.
pub async fn open_metadata(args: &ServeArgs, metrics: Arc<Metrics>) -> Result<Metadata, BootError> {
    let opened = match &args.metadata_url {
        Some(url) if url.starts_with("postgres") => connect_postgres(url, true, metrics).await,
        Some(url) => open_sqlite_url(url, metrics).await,
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .map_err(|e| BootError::Metadata(format!("{}: {e}", args.data_dir.display())))?;
            open_sqlite(&args.data_dir.join("metadata.db"), metrics).await
        }
    };
    opened.map_err(|e| BootError::Metadata(e.to_string()))
}

async fn open_store(args: &ServeArgs) -> Result<SharedStore, BootError> {
    match args.object_store_location().map_err(BootError::Config)? {
        ObjectStoreLocation::Local(path) => {
            let store = LocalStore::open(&path)
                .map_err(|e| BootError::Store(format!("{}: {e}", path.display())))?;
            Ok(Arc::new(store))
        }
        ObjectStoreLocation::S3 { bucket, prefix } => {
            let store = S3Store::new(S3Config {
                bucket,
                prefix,
                endpoint: args.s3_endpoint.clone(),
                region: args.s3_region.clone(),
                path_style: args.s3_path_style,
                access_key_id: args.s3_access_key_id.clone(),
                secret_access_key: args.s3_secret_access_key.clone(),
            })
            .await
            .map_err(|e| BootError::Store(e.to_string()))?;
            Ok(Arc::new(store))
        }
    }
}

/// Optional wrappers around the raw stores, applied under the metrics and
/// cache layers (tests use them to inject faults).
#[derive(Default)]
pub struct Layers {
    pub store: Option<Box<dyn FnOnce(SharedStore) -> SharedStore + Send>>,
    pub metadata: Option<Box<dyn FnOnce(Metadata) -> Metadata + Send>>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers")
            .field("store", &self.store.is_some())
            .field("metadata", &self.metadata.is_some())
            .finish()
    }
}

/// Builds every layer of an agent from its configuration.
pub async fn build(args: &ServeArgs) -> Result<Agent, BootError> {
    build_with(args, Layers::default()).await
}

/// Like [`build`], with extra layers around the raw stores.
pub async fn build_with(args: &ServeArgs, layers: Layers) -> Result<Agent, BootError> {
    args.validate().map_err(BootError::Config)?;
    let metrics = Arc::new(Metrics::default());
    let clock: SharedClock = Arc::new(SystemClock);
    let mut raw_metadata = open_metadata(args, metrics.clone()).await?;
    if !args.watermark_push {
        raw_metadata.feed = None;
    }
    if let Some(wrap) = layers.metadata {
        raw_metadata = wrap(raw_metadata);
    }
    let (metadata, cache) = MetadataCache::wrap(
        raw_metadata,
        CacheConfig {
            topic_ttl: args.topic_cache_ttl.0,
            index_rows: args.index_cache_rows,
            index_ttl: args.index_cache_ttl.0,
        },
        metrics.clone(),
    );
    // Idempotency windows are judged by the store's clock on every agent.
    let store_clock = Arc::new(StoreClock::new(clock.clone()));
    let mut base_store = open_store(args).await?;
    if let Some(wrap) = layers.store {
        base_store = wrap(base_store);
    }
    let raw_store = base_store.clone();
    let counted: SharedStore = Arc::new(InstrumentedStore::new(base_store, metrics.clone()));
    // Objects other agents announce are asked of their writer first.
    let peer = args.peer().map_err(BootError::Config)?;
    let hints = Arc::new(PeerHints::default());
    let fetching: SharedStore = match &peer {
        Some(config) => Arc::new(
            PeerStore::new(
                counted.clone(),
                config.clone(),
                hints.clone(),
                store_clock.clone(),
                metrics.clone(),
            )
            .map_err(BootError::Config)?,
        ),
        None => counted.clone(),
    };
    let cached = Arc::new(CachedStore::new(
        fetching,
        args.chunk_cache_bytes.0,
        metrics.clone(),
    ));
    let store: SharedStore = cached.clone();
    let watermarks = Arc::new(Watermarks::default());
    let background = CancellationToken::new();
    let tracker = TaskTracker::new();
    let stores = Arc::new(StoresReached::default());
    // The probe below retries this sync until it succeeds; no need to ask
    // twice when the first one answered.
    if let Err(e) = store_clock.sync(metadata.log.as_ref()).await {
        tracing::warn!(error = %e, "could not read the metadata store's clock; using this agent's until it answers");
    } else {
        stores.reached_metadata();
    }
    tracker.spawn(stores.clone().probe(
        metadata.log.clone(),
        store_clock.clone(),
        raw_store,
        background.clone(),
    ));
    tracker.spawn(store_clock.clone().keep_synced(
        metadata.log.clone(),
        Duration::from_secs(60),
        background.clone(),
    ));
    let agent_id = format!(
        "{}-{}",
        args.listen,
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let ingest = ingest::start(
        IngestConfig {
            linger: args.linger(),
            max_flush_bytes: args.max_flush_bytes.as_usize(),
            max_inflight_flushes: args.max_inflight_flushes,
            max_buffered_bytes: args.max_buffered_bytes.as_usize(),
            writer_id: agent_id.clone(),
            peer_origin: peer.as_ref().map(PeerConfig::signed_origin),
            commit_resolve_timeout: Duration::from_secs(30),
            idempotency_window: args.idempotency_window.0,
            max_object_age: Some(args.orphan_grace.0 / 2),
        },
        IngestDeps {
            store: store.clone(),
            metadata: metadata.clone(),
            watermarks: watermarks.clone(),
            metrics: metrics.clone(),
            clock: store_clock.clone(),
        },
        background.clone(),
        &tracker,
    );
    tracker.spawn(
        cache
            .clone()
            .keep_current(args.watermark_poll_interval.0, background.clone()),
    );
    if let Some(feed) = metadata.feed.clone() {
        let seed = crate::tail::notify::IndexSeed {
            cache: cache.clone(),
            clock: store_clock.clone(),
            max_age: args.index_cache_ttl.0 / 2,
            metrics: metrics.clone(),
            peers: peer.as_ref().map(|p| (hints.clone(), p.clone())),
        };
        tracker.spawn(crate::tail::notify::run(
            feed,
            watermarks.clone(),
            seed,
            background.clone(),
        ));
    }
    tracker.spawn(crate::tail::poller::run(
        watermarks.clone(),
        metadata.log.clone(),
        metrics.clone(),
        args.watermark_poll_interval.0,
        background.clone(),
    ));
    tracker.spawn(crate::maintenance::run(
        metadata.clone(),
        store.clone(),
        metrics.clone(),
        args.orphan_grace.0,
        args.maintenance_interval.0,
        background.clone(),
    ));
    let maintainer = Arc::new(Maintainer::new(
        metadata.clone(),
        counted,
        watermarks.clone(),
        metrics.clone(),
        LifecycleConfig {
            interval: args.compaction_interval.0,
            min_age: args.compaction_min_age.0,
            target_bytes: args.compaction_target_bytes.0,
            max_rate: args.compaction_max_rate.0,
            gc_grace: args.gc_grace.0,
            max_object_age: args.orphan_grace.0 / 2,
            owner: agent_id,
            report_interval: args.storage_report_interval.0,
        },
    ));
    tracker.spawn(maintainer.clone().run(background.clone()));
    let reader = Reader::new(
        metadata.log.clone(),
        store,
        watermarks.clone(),
        metrics.clone(),
        args.decompressed_cache_bytes.0,
        args.chunk_cache_bytes.0 / READ_AHEAD_SHARE,
    );
    let auth = Arc::new(Auth::from_args(&args.access, clock.clone()).map_err(BootError::Config)?);
    auth.spawn_background(&tracker, background.clone());
    if auth.mode() == AuthMode::Jwt {
        tracker.spawn(auth.revoked.clone().poll(
            metadata.revocations.clone(),
            clock.clone(),
            args.watermark_poll_interval.0,
            background.clone(),
        ));
    }
    let groups = Groups::new(
        metadata.clone(),
        reader.clone(),
        watermarks.clone(),
        metrics.clone(),
    );
    let guard = Arc::new(
        crate::webhooks::guard::Guard::parse(&args.webhook_allow).map_err(BootError::Config)?,
    );
    let webhooks = crate::webhooks::Webhooks::new(
        groups.clone(),
        metadata.clone(),
        ingest.clone(),
        metrics.clone(),
        crate::webhooks::WebhookConfig {
            guard: guard.clone(),
            timeout: args.webhook_timeout.0,
            session_timeout: args.webhook_session_timeout.0,
            poll_interval: args.webhook_poll_interval.0,
            retry_base: args.webhook_retry_base.0,
            max_backoff: args.webhook_max_backoff.0,
        },
    )
    .map_err(BootError::Config)?;
    tracker.spawn(webhooks.run(background.clone()));
    let state = AppState::new(Services {
        limits: args.limits(),
        auth,
        access: api::Access::from_args(&args.access).answering(args.advertise_url.as_deref()),
        quotas: Arc::new(
            Quotas::load(args.access.tenant_quotas.as_deref(), metrics.clone())
                .map_err(BootError::Config)?,
        ),
        bodies: api::BodyBudget::new(
            args.max_inflight_body_bytes.as_usize(),
            args.body_read_timeout.0,
            metrics.clone(),
        ),
        groups,
        webhook_guard: guard,
        metadata,
        ingest,
        reader,
        watermarks,
        metrics,
        clock,
        gc_grace: args.gc_grace.0,
        console: api::ConsoleFiles {
            dir: args.console_dir.clone(),
        },
        draining: CancellationToken::new(),
        stores,
        peer: peer.map(|config| api::PeerServing {
            config,
            kept: cached,
            clock: store_clock.clone(),
        }),
    });
    Ok(Agent {
        state,
        background,
        tracker,
        shutdown_timeout: args.shutdown_timeout.0,
        connections: api::ConnectionLimits {
            max_connections: args.max_connections,
            header_read_timeout: args.header_read_timeout.0,
            idle_timeout: args.idle_timeout.0,
            stall_timeout: args.stall_timeout.0,
            min_write_rate: args.min_write_rate.0,
        },
    })
}

/// Serves `agent` on `listener` until `shutdown` resolves, then shuts down in order.
pub async fn serve(
    agent: Agent,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BootError> {
    let draining = agent.state.draining.clone();
    let app = api::app(agent.state.clone());
    let server = tokio::spawn(api::serve(
        listener,
        app,
        agent.connections,
        agent.state.metrics.clone(),
        draining.clone(),
    ));
    tokio::select! {
        _ = shutdown => {}
        _ = draining.cancelled() => {}
    }
    tracing::info!("shutting down: refusing new requests, flushing buffered records");
    draining.cancel();
    agent.background.cancel();
    agent.tracker.close();
    let finished = tokio::time::timeout(agent.shutdown_timeout, async {
        let served = server.await;
        agent.tracker.wait().await;
        served
    })
    .await;
    match finished {
        Ok(Ok(Ok(()))) => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(BootError::Serve(e)),
        Ok(Err(e)) => Err(BootError::Serve(std::io::Error::other(e))),
        Err(_) => {
            tracing::warn!(timeout = ?agent.shutdown_timeout, "shutdown timed out; exiting with work unfinished");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// `streamhouse serve`: build, bind, log the address, serve until a signal.
pub async fn run(args: ServeArgs) -> Result<(), BootError> {
    let agent = build(&args).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| BootError::Listen {
            addr: args.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(BootError::Serve)?;
    tracing::info!(
        object_store = ?args.object_store_location().ok(),
        linger = ?args.linger(),
        "listening on http://{addr}"
    );
    serve(agent, listener, shutdown_signal()).await
}

/// `streamhouse migrate`: apply metadata migrations and exit.
pub async fn migrate(args: ServeArgs) -> Result<(), BootError> {
    args.validate_stores().map_err(BootError::Config)?;
    let store = open_metadata(&args, Arc::new(Metrics::default())).await?;
    // Opening applied the migrations; a read proves the schema answers.
    store
        .topics
        .list_topics(crate::model::Tenant::default().as_str(), None, 1)
        .await
        .map_err(|e| BootError::Metadata(e.to_string()))?;
    tracing::info!("migrations applied");
    Ok(())
}
