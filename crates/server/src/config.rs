//! Command-line and file configuration.
//!
//! Every `serve` flag can also come from an environment variable
//! `STREAMHOUSE_<FLAG>` or from a TOML file named by `--config`, in that
//! order of precedence: command line, environment, file, default. Sizes
//! and durations take human units (`8MiB`, `250ms`). [`ServeArgs::validate`]
//! checks the combination at boot, before anything starts.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use crate::model::Compression;

/// A byte count written with an optional unit: `512`, `64KiB`, `8MiB`, `1GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size (try 512, 64KiB, 8MiB)"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", n >> 10)
        } else {
            write!(f, "{n}B")
        }
    }
}

impl ByteSize {
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// A duration written with a unit: `5ms`, `2s`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("{s:?} is not a duration (try 5ms, 2s, 1h): {e}"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Everything an agent is configured with.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys are the flag names).
    #[arg(long, env = "STREAMHOUSE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory for embedded metadata and objects.
    #[arg(
        long,
        env = "STREAMHOUSE_DATA_DIR",
        default_value = "./streamhouse-data"
    )]
    pub data_dir: PathBuf,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "STREAMHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Metadata store URL: `postgres://…` (PostgreSQL or CockroachDB) or `sqlite:…`
    /// (default: a SQLite file in the data dir).
    #[arg(long, env = "STREAMHOUSE_METADATA_URL")]
    pub metadata_url: Option<String>,

    /// Object store: `s3://bucket/prefix` or a local directory (default: <data-dir>/objects).
    #[arg(long, env = "STREAMHOUSE_OBJECT_STORE")]
    pub object_store: Option<String>,

    /// S3 endpoint URL for non-AWS stores.
    #[arg(long, env = "STREAMHOUSE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region.
    #[arg(long, env = "STREAMHOUSE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Address buckets by path (`endpoint/bucket`), as most S3-compatible stores want.
    #[arg(long, env = "STREAMHOUSE_S3_PATH_STYLE")]
    pub s3_path_style: bool,

    /// S3 access key id (default: the standard AWS credential chain).
    #[arg(long, env = "STREAMHOUSE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key (default: the standard AWS credential chain).
    #[arg(long, env = "STREAMHOUSE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Longest a buffered record waits for a flush (default 5ms local, 100ms S3).
    #[arg(long, env = "STREAMHOUSE_LINGER")]
    pub linger: Option<HumanDuration>,

    /// Buffered bytes that start a flush at once; also the largest request.
    #[arg(long, env = "STREAMHOUSE_MAX_FLUSH_BYTES", default_value = "8MiB")]
    pub max_flush_bytes: ByteSize,

    /// Flushes uploading or committing at the same time.
    #[arg(long, env = "STREAMHOUSE_MAX_INFLIGHT_FLUSHES", default_value_t = 4)]
    pub max_inflight_flushes: usize,

    /// Buffered and in-flight bytes beyond which produce answers 429.
    #[arg(long, env = "STREAMHOUSE_MAX_BUFFERED_BYTES", default_value = "64MiB")]
    pub max_buffered_bytes: ByteSize,

    /// Largest request body.
    #[arg(long, env = "STREAMHOUSE_MAX_BODY_BYTES", default_value = "16MiB")]
    pub max_body_bytes: ByteSize,

    /// Bytes all request bodies in flight may hold together; beyond it requests get 429.
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_INFLIGHT_BODY_BYTES",
        default_value = "64MiB"
    )]
    pub max_inflight_body_bytes: ByteSize,

    /// Most records in one produce request.
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_RECORDS_PER_REQUEST",
        default_value_t = 10_000
    )]
    pub max_records_per_request: usize,

    /// Largest record key.
    #[arg(long, env = "STREAMHOUSE_MAX_KEY_BYTES", default_value = "16KiB")]
    pub max_key_bytes: ByteSize,

    /// Largest record value.
    #[arg(long, env = "STREAMHOUSE_MAX_VALUE_BYTES", default_value = "1MiB")]
    pub max_value_bytes: ByteSize,

    /// Largest total size of one record's headers (keys and values).
    #[arg(long, env = "STREAMHOUSE_MAX_HEADER_BYTES", default_value = "64KiB")]
    pub max_header_bytes: ByteSize,

    /// Most headers on one record.
    #[arg(long, env = "STREAMHOUSE_MAX_HEADERS_PER_RECORD", default_value_t = 64)]
    pub max_headers_per_record: usize,

    /// Most partitions one topic may have.
    #[arg(
        long,
        env = "STREAMHOUSE_MAX_PARTITIONS_PER_TOPIC",
        default_value_t = 10_000
    )]
    pub max_partitions_per_topic: i32,

    /// How far into the future a record's own timestamp may be; later ones get 400.
    #[arg(long, env = "STREAMHOUSE_MAX_TIMESTAMP_SKEW", default_value = "1h")]
    pub max_timestamp_skew: HumanDuration,

    /// Longest `wait_ms` a read may ask for.
    #[arg(long, env = "STREAMHOUSE_MAX_WAIT", default_value = "60s")]
    pub max_wait: HumanDuration,

    /// Memory for cached object bytes.
    #[arg(long, env = "STREAMHOUSE_CHUNK_CACHE_BYTES", default_value = "256MiB")]
    pub chunk_cache_bytes: ByteSize,

    /// Memory for compressed chunks kept decompressed, so paging through
    /// one decompresses it once.
    #[arg(
        long,
        env = "STREAMHOUSE_DECOMPRESSED_CACHE_BYTES",
        default_value = "64MiB"
    )]
    pub decompressed_cache_bytes: ByteSize,

    /// How often other agents' commits are looked for (one batched query).
    #[arg(
        long,
        env = "STREAMHOUSE_WATERMARK_POLL_INTERVAL",
        default_value = "100ms"
    )]
    pub watermark_poll_interval: HumanDuration,

    /// On PostgreSQL, announce commits to the other agents with NOTIFY (and
    /// listen for theirs), so readers wake at once and the poll runs at a
    /// tenth of its rate; `false` leaves only the poll.
    #[arg(
        long,
        env = "STREAMHOUSE_WATERMARK_PUSH",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub watermark_push: bool,

    /// The base URL other agents reach this one at (`http://10.0.0.5:8080`).
    /// With `--peer-secret`, this agent serves the objects it wrote from
    /// memory to the other agents, and reads fresh objects other agents
    /// announce from them before the object store.
    #[arg(long, env = "STREAMHOUSE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// The secret every agent of the cluster shares to authorize peer
    /// reads (32 bytes or more, or `file:PATH`); needs `--advertise-url`.
    #[arg(long, env = "STREAMHOUSE_PEER_SECRET", hide_env_values = true)]
    pub peer_secret: Option<String>,

    /// A second secret whose peer tokens and signed URLs are accepted but
    /// never made (32 bytes or more, or `file:PATH`): for rotating
    /// `--peer-secret` without refusing a read; needs `--peer-secret`.
    #[arg(long, env = "STREAMHOUSE_PEER_SECRET_ACCEPT", hide_env_values = true)]
    pub peer_secret_accept: Option<String>,

    /// Offset-index rows kept in memory.
    #[arg(
        long,
        env = "STREAMHOUSE_INDEX_CACHE_ROWS",
        default_value_t = 1_000_000
    )]
    pub index_cache_rows: u64,

    /// How long a cached index row lives; keep it within half the object GC grace.
    #[arg(long, env = "STREAMHOUSE_INDEX_CACHE_TTL", default_value = "5m")]
    pub index_cache_ttl: HumanDuration,

    /// How long a topic's metadata is cached.
    #[arg(long, env = "STREAMHOUSE_TOPIC_CACHE_TTL", default_value = "60s")]
    pub topic_cache_ttl: HumanDuration,

    /// How long an Idempotency-Key is remembered (a retry within it gets
    /// the first answer).
    #[arg(long, env = "STREAMHOUSE_IDEMPOTENCY_WINDOW", default_value = "1h")]
    pub idempotency_window: HumanDuration,

    /// Objects older than this that no committed row names are deleted by
    /// the orphan collector; a flush older than half of it is refused.
    #[arg(long, env = "STREAMHOUSE_ORPHAN_GRACE", default_value = "10m")]
    pub orphan_grace: HumanDuration,

    /// How often this agent looks for orphaned objects and expired keys.
    #[arg(long, env = "STREAMHOUSE_MAINTENANCE_INTERVAL", default_value = "5m")]
    pub maintenance_interval: HumanDuration,

    /// How often an agent plans and runs lifecycle jobs (compaction,
    /// retention, releasing deleted topics) and collects released objects.
    #[arg(long, env = "STREAMHOUSE_COMPACTION_INTERVAL", default_value = "30s")]
    pub compaction_interval: HumanDuration,

    /// Flush objects younger than this are not compacted yet.
    #[arg(long, env = "STREAMHOUSE_COMPACTION_MIN_AGE", default_value = "1m")]
    pub compaction_min_age: HumanDuration,

    /// Size of the per-partition objects compaction writes. Reads fetch
    /// one batch (at most 8 MiB) per GET whatever the object's size, while
    /// a larger object is one longer PUT that the store serves flushes
    /// behind.
    #[arg(
        long,
        env = "STREAMHOUSE_COMPACTION_TARGET_BYTES",
        default_value = "16MiB"
    )]
    pub compaction_target_bytes: ByteSize,

    /// Most bytes per second one agent's compaction reads (0: no limit),
    /// to bound the bandwidth and GETs it spends on a backlog.
    #[arg(long, env = "STREAMHOUSE_COMPACTION_MAX_RATE", default_value = "0")]
    pub compaction_max_rate: ByteSize,

    /// How often each topic's bytes and live objects are measured for the
    /// metrics (`streamhouse_topic_bytes`, `streamhouse_topic_objects`):
    /// each measurement scans the whole offset index, so one agent makes it
    /// for the fleet and every agent reads the result on each lifecycle
    /// tick, as it reads the GC backlog and the compaction lag.
    #[arg(
        long,
        env = "STREAMHOUSE_STORAGE_REPORT_INTERVAL",
        default_value = "5m"
    )]
    pub storage_report_interval: HumanDuration,

    /// How long an object replaced by compaction or released by retention
    /// stays before it is deleted; must exceed twice the index cache TTL.
    #[arg(long, env = "STREAMHOUSE_GC_GRACE", default_value = "15m")]
    pub gc_grace: HumanDuration,

    /// Webhook targets agents may call: comma-separated host patterns
    /// (`*`, `*.example.com`, a host, an address, a CIDR). Private and
    /// loopback addresses are refused unless an address pattern contains
    /// them or the host is listed by its exact name.
    #[arg(long, env = "STREAMHOUSE_WEBHOOK_ALLOW", default_value = "*")]
    pub webhook_allow: String,

    /// Longest a webhook receiver may take to answer a delivery.
    #[arg(long, env = "STREAMHOUSE_WEBHOOK_TIMEOUT", default_value = "10s")]
    pub webhook_timeout: HumanDuration,

    /// A delivering agent's session in a subscription's group: a dead
    /// agent's partitions move to the others after this.
    #[arg(
        long,
        env = "STREAMHOUSE_WEBHOOK_SESSION_TIMEOUT",
        default_value = "10s"
    )]
    pub webhook_session_timeout: HumanDuration,

    /// How often an agent looks for new, paused and deleted subscriptions.
    #[arg(long, env = "STREAMHOUSE_WEBHOOK_POLL_INTERVAL", default_value = "2s")]
    pub webhook_poll_interval: HumanDuration,

    /// The first retry's delay after a failed delivery; each further
    /// retry doubles it (with jitter) up to webhook-max-backoff.
    #[arg(long, env = "STREAMHOUSE_WEBHOOK_RETRY_BASE", default_value = "500ms")]
    pub webhook_retry_base: HumanDuration,

    /// The longest delay between delivery retries.
    #[arg(long, env = "STREAMHOUSE_WEBHOOK_MAX_BACKOFF", default_value = "5m")]
    pub webhook_max_backoff: HumanDuration,

    /// A connection whose writes make no progress this long (a client that
    /// stopped reading a stream) is closed; it can reconnect and resume.
    #[arg(long, env = "STREAMHOUSE_STALL_TIMEOUT", default_value = "30s")]
    pub stall_timeout: HumanDuration,

    /// Bytes per second a client must take while the agent's writes wait on
    /// it, over each stall-timeout window; slower clients are disconnected.
    #[arg(long, env = "STREAMHOUSE_MIN_WRITE_RATE", default_value = "4KiB")]
    pub min_write_rate: ByteSize,

    /// Most client connections open at once; beyond it a connection gets 503 and is closed.
    #[arg(long, env = "STREAMHOUSE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Time for a request's headers to arrive (HTTP/1), counted from when
    /// the agent waits for them: also how long a kept-alive connection may
    /// wait for its next request.
    #[arg(long, env = "STREAMHOUSE_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: HumanDuration,

    /// Time for a request's whole body to arrive once its headers have; beyond it 408.
    #[arg(long, env = "STREAMHOUSE_BODY_READ_TIMEOUT", default_value = "60s")]
    pub body_read_timeout: HumanDuration,

    /// A connection on which nothing moves either way this long is closed
    /// (streams are kept busy by keep-alives and pings).
    #[arg(long, env = "STREAMHOUSE_IDLE_TIMEOUT", default_value = "2m")]
    pub idle_timeout: HumanDuration,

    /// Interval of keep-alive comments on idle SSE streams.
    #[arg(long, env = "STREAMHOUSE_SSE_HEARTBEAT", default_value = "15s")]
    pub sse_heartbeat: HumanDuration,

    /// Most subscriptions one WebSocket connection may hold.
    #[arg(long, env = "STREAMHOUSE_WS_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub ws_max_subscriptions: usize,

    /// Most partitions one WebSocket connection may follow, over all its subscriptions.
    #[arg(long, env = "STREAMHOUSE_WS_MAX_PARTITIONS", default_value_t = 10_000)]
    pub ws_max_partitions: usize,

    /// Most produce and commit requests one WebSocket connection may have in flight.
    #[arg(
        long,
        env = "STREAMHOUSE_WS_MAX_INFLIGHT_REQUESTS",
        default_value_t = 16
    )]
    pub ws_max_inflight_requests: usize,

    /// Largest WebSocket message a client may send.
    #[arg(long, env = "STREAMHOUSE_WS_MAX_MESSAGE_BYTES", default_value = "1MiB")]
    pub ws_max_message_bytes: ByteSize,

    /// Outgoing bytes a WebSocket connection may have queued; subscriptions
    /// wait (and read nothing) while it is full.
    #[arg(
        long,
        env = "STREAMHOUSE_WS_MAX_BUFFERED_BYTES",
        default_value = "1MiB"
    )]
    pub ws_max_buffered_bytes: ByteSize,

    /// How long shutdown waits for requests and flushes before exiting anyway.
    #[arg(long, env = "STREAMHOUSE_SHUTDOWN_TIMEOUT", default_value = "30s")]
    pub shutdown_timeout: HumanDuration,

    /// Serve the web console from this directory instead of the copy built
    /// into the binary (for working on the console).
    #[arg(long, env = "STREAMHOUSE_CONSOLE_DIR")]
    pub console_dir: Option<PathBuf>,

    #[command(flatten)]
    pub access: crate::auth::AuthArgs,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "STREAMHOUSE_LOG", default_value = "info")]
    pub log: String,
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field(
                "metadata_url",
                &self.metadata_url.as_ref().map(|u| redact_url(u)),
            )
            .field("object_store", &self.object_store)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_path_style", &self.s3_path_style)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("linger", &self.linger)
            .field("max_flush_bytes", &self.max_flush_bytes)
            .field("max_inflight_flushes", &self.max_inflight_flushes)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// Hides the password in `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:<redacted>{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Where objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

/// Request limits the API enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_records_per_request: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers_per_record: usize,
    pub max_partitions_per_topic: i32,
    pub max_wait: Duration,
    /// How far into the future a record's timestamp may be.
    pub max_timestamp_skew: Duration,
    pub max_flush_bytes: usize,
    pub sse_heartbeat: Duration,
    /// Time for a request's whole body to arrive once its headers have.
    pub body_read_timeout: Duration,
    pub ws_max_subscriptions: usize,
    pub ws_max_inflight_requests: usize,
    pub ws_max_partitions: usize,
    pub ws_max_message_bytes: usize,
    pub ws_max_buffered_bytes: usize,
    /// Malformed WebSocket messages in a row before the connection is closed.
    pub ws_max_bad_messages: u32,
}

/// Most records one read may return.
pub const MAX_READ_RECORDS: usize = 10_000;
/// Most bytes one read may ask for.
pub const MAX_READ_BYTES: usize = 64 << 20;
/// Default `compression` of new topics.
pub const DEFAULT_COMPRESSION: Compression = Compression::None;

impl ServeArgs {
    /// Parses the object-store setting.
    pub fn object_store_location(&self) -> Result<ObjectStoreLocation, String> {
        match self.object_store.as_deref() {
            None => Ok(ObjectStoreLocation::Local(self.data_dir.join("objects"))),
            Some(s) if s.starts_with("s3://") => {
                let rest = &s[5..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!(
                        "object-store {s:?} names no bucket (use s3://bucket/prefix)"
                    ));
                }
                Ok(ObjectStoreLocation::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                })
            }
            Some(s) => Ok(ObjectStoreLocation::Local(PathBuf::from(
                s.strip_prefix("file://").unwrap_or(s),
            ))),
        }
    }

    /// The flush linger, defaulting by store kind.
    pub fn linger(&self) -> Duration {
        match (self.linger, self.object_store_location()) {
            (Some(d), _) => d.0,
            (None, Ok(ObjectStoreLocation::S3 { .. })) => Duration::from_millis(100),
            (None, _) => Duration::from_millis(5),
        }
    }

    /// The request limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes.as_usize(),
            max_records_per_request: self.max_records_per_request,
            max_key_bytes: self.max_key_bytes.as_usize(),
            max_value_bytes: self.max_value_bytes.as_usize(),
            max_header_bytes: self.max_header_bytes.as_usize(),
            max_headers_per_record: self.max_headers_per_record,
            max_partitions_per_topic: self.max_partitions_per_topic,
            max_wait: self.max_wait.0,
            max_timestamp_skew: self.max_timestamp_skew.0,
            max_flush_bytes: self.max_flush_bytes.as_usize(),
            sse_heartbeat: self.sse_heartbeat.0,
            body_read_timeout: self.body_read_timeout.0,
            ws_max_subscriptions: self.ws_max_subscriptions,
            ws_max_inflight_requests: self.ws_max_inflight_requests.max(1),
            ws_max_partitions: self.ws_max_partitions,
            ws_max_message_bytes: self.ws_max_message_bytes.as_usize(),
            ws_max_buffered_bytes: self.ws_max_buffered_bytes.as_usize().max(1),
            ws_max_bad_messages: 10,
        }
    }

    /// Checks settings that are valid alone but not together.
    pub fn validate(&self) -> Result<(), String> {
        self.access.validate(self.listen)?;
        self.peer()?;
        self.validate_stores()
    }

    /// Serving and reading fresh objects between agents, when configured
    /// (both settings or neither).
    pub fn peer(&self) -> Result<Option<crate::peer::PeerConfig>, String> {
        let config = match (&self.advertise_url, &self.peer_secret) {
            (None, None) if self.peer_secret_accept.is_some() => {
                return Err("peer-secret-accept needs peer-secret".into());
            }
            (None, None) => return Ok(None),
            (Some(url), Some(secret)) => crate::peer::PeerConfig::new(url, secret)?,
            _ => {
                return Err(
                    "advertise-url and peer-secret go together: set both or neither".into(),
                );
            }
        };
        match &self.peer_secret_accept {
            Some(also) => config.accepting(also).map(Some),
            None => Ok(Some(config)),
        }
    }

    /// Checks every setting but who may connect (what `migrate` needs).
    pub fn validate_stores(&self) -> Result<(), String> {
        self.object_store_location()?;
        if self.max_flush_bytes.0 < 4096 {
            return Err("max-flush-bytes must be at least 4KiB".into());
        }
        if self.max_buffered_bytes < self.max_flush_bytes {
            return Err(format!(
                "max-buffered-bytes ({}) must be at least max-flush-bytes ({})",
                self.max_buffered_bytes, self.max_flush_bytes
            ));
        }
        if self.max_inflight_body_bytes < self.max_body_bytes {
            return Err(format!(
                "max-inflight-body-bytes ({}) must be at least max-body-bytes ({})",
                self.max_inflight_body_bytes, self.max_body_bytes
            ));
        }
        if self.max_inflight_body_bytes.0 > u64::from(u32::MAX) {
            return Err("max-inflight-body-bytes must be below 4GiB".into());
        }
        if self.max_value_bytes > self.max_flush_bytes {
            return Err(format!(
                "max-value-bytes ({}) must not exceed max-flush-bytes ({})",
                self.max_value_bytes, self.max_flush_bytes
            ));
        }
        // Index lookups are also coalesced for up to 2 s.
        let cached = self.index_cache_ttl.0.max(Duration::from_secs(2));
        if self.gc_grace.0 <= cached * 2 {
            return Err(format!(
                "gc-grace ({}) must exceed twice index-cache-ttl ({}, at least 2s), so no cached pointer outlives its object",
                self.gc_grace, self.index_cache_ttl
            ));
        }
        if self.compaction_target_bytes.0 < 1 << 20 {
            return Err("compaction-target-bytes must be at least 1MiB".into());
        }
        if self.compaction_interval.0.is_zero() {
            return Err("compaction-interval must be positive".into());
        }
        if self.storage_report_interval.0.is_zero() {
            return Err("storage-report-interval must be positive".into());
        }
        if self.max_inflight_flushes == 0 {
            return Err("max-inflight-flushes must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.max_partitions_per_topic) {
            return Err("max-partitions-per-topic must be between 1 and 100000".into());
        }
        if self.s3_access_key_id.is_some() != self.s3_secret_access_key.is_some() {
            return Err("s3-access-key-id and s3-secret-access-key must be given together".into());
        }
        if let Some(url) = &self.metadata_url
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| url.starts_with(p))
        {
            return Err(format!(
                "metadata-url {:?} is not supported; use postgres://… (PostgreSQL or CockroachDB) or sqlite:…",
                redact_url(url)
            ));
        }
        if self.index_cache_ttl.0 * 2 > self.orphan_grace.0 {
            return Err(format!(
                "index-cache-ttl ({}) must be at most half of orphan-grace ({}), so no cached pointer outlives its object",
                self.index_cache_ttl, self.orphan_grace
            ));
        }
        if self.orphan_grace.0 < Duration::from_secs(10) {
            return Err("orphan-grace must be at least 10s".into());
        }
        if self.max_connections == 0 {
            return Err("max-connections must be at least 1".into());
        }
        if self.header_read_timeout.0 < Duration::from_millis(100) {
            return Err("header-read-timeout must be at least 100ms".into());
        }
        if self.idle_timeout.0 <= self.max_wait.0 + Duration::from_secs(5)
            || self.idle_timeout.0 <= self.sse_heartbeat.0 * 2
        {
            return Err(format!(
                "idle-timeout ({}) must exceed max-wait ({}) by more than 5s and be more than twice sse-heartbeat ({}), \
                 so long-polls and quiet streams are not cut",
                self.idle_timeout, self.max_wait, self.sse_heartbeat
            ));
        }
        crate::webhooks::guard::Guard::parse(&self.webhook_allow)?;
        let session = self.webhook_session_timeout.0;
        if session < Duration::from_secs(1) || session > Duration::from_secs(300) {
            return Err("webhook-session-timeout must be between 1s and 5m".into());
        }
        if self.webhook_timeout.0.is_zero() || self.webhook_retry_base.0.is_zero() {
            return Err("webhook-timeout and webhook-retry-base must be positive".into());
        }
        if self.webhook_poll_interval.0 < Duration::from_millis(100) {
            return Err("webhook-poll-interval must be at least 100ms".into());
        }
        if self.watermark_poll_interval.0 < Duration::from_millis(5) {
            return Err("watermark-poll-interval must be at least 5ms".into());
        }
        Ok(())
    }
}

impl ServeArgs {
    /// Parses `serve` flags (without the program and subcommand names), then
    /// fills unset ones from the TOML file named by `--config`, as the
    /// `streamhouse serve` command line does.
    pub fn parse_flags<I, T>(flags: I) -> Result<ServeArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        let command = || ServeArgs::augment_args(clap::Command::new("serve").no_binary_name(true));
        let mut argv: Vec<std::ffi::OsString> = flags.into_iter().map(Into::into).collect();
        let matches = command().try_get_matches_from(&argv)?;
        if let Some(extra) = config_file_flags(&matches).map_err(|e| command().error(e.0, e.1))? {
            argv.extend(extra.into_iter().map(Into::into));
            return ServeArgs::from_arg_matches(&command().try_get_matches_from(&argv)?);
        }
        ServeArgs::from_arg_matches(&matches)
    }
}

/// The flags the `--config` file adds to `serve` (or `migrate`) flags
/// already parsed into `given`: every setting not set on the command line
/// or in the environment. `None` when no file is named. The error carries
/// the kind and message a command line parser reports.
pub fn config_file_flags(
    given: &clap::ArgMatches,
) -> Result<Option<Vec<String>>, (clap::error::ErrorKind, String)> {
    let Some(path) = given.get_one::<PathBuf>("config") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            clap::error::ErrorKind::Io,
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    toml_args(&text, given).map(Some).map_err(|msg| {
        (
            clap::error::ErrorKind::InvalidValue,
            format!("config file {}: {msg}", path.display()),
        )
    })
}

/// Turns TOML settings into flags for every setting not already given on
/// the command line or in the environment.
fn toml_args(text: &str, given: &clap::ArgMatches) -> Result<Vec<String>, String> {
    use clap::parser::ValueSource;
    let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let serve = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    let mut out = Vec::new();
    for (key, value) in table {
        let id = key.replace('-', "_");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && id != "config")
            .ok_or_else(|| format!("unknown setting {key:?}"))?;
        let source = given.value_source(&id);
        if matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let flag = format!("--{}", arg.get_long().unwrap_or(&key));
        let is_switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        match value {
            toml::Value::Boolean(b) if is_switch => {
                if b {
                    out.push(flag);
                }
            }
            toml::Value::String(s) if !is_switch => out.extend([flag, s]),
            toml::Value::Integer(i) if !is_switch => out.extend([flag, i.to_string()]),
            toml::Value::Float(f) if !is_switch => out.extend([flag, f.to_string()]),
            other => return Err(format!("setting {key:?} has an unsuitable value {other:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!("8MiB".parse::<ByteSize>().unwrap().0, 8 << 20);
        assert_eq!("512".parse::<ByteSize>().unwrap().0, 512);
        assert_eq!("1 KB".parse::<ByteSize>().unwrap().0, 1000);
        assert!("8 parsecs".parse::<ByteSize>().is_err());
        assert_eq!(
            "250ms".parse::<HumanDuration>().unwrap().0,
            Duration::from_millis(250)
        );
        assert!("soon".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn toml_fills_what_the_command_line_does_not_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "linger = \"20ms\"\nmax-flush-bytes = \"1MiB\"\ns3_path_style = true\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let p = path.to_str().unwrap();
        let args = ServeArgs::parse_flags(["--config", p, "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(args.linger, Some(HumanDuration(Duration::from_millis(20))));
        assert_eq!(args.max_flush_bytes.0, 1 << 20);
        assert!(args.s3_path_style);
        assert_eq!(args.listen.port(), 9, "command line wins over the file");

        std::fs::write(&path, "lingr = \"20ms\"\n").unwrap();
        let err = ServeArgs::parse_flags(["--config", p]).unwrap_err();
        assert!(
            err.to_string().contains("unknown setting \"lingr\""),
            "{err}"
        );
    }

    #[test]
    fn intervals_must_be_positive() {
        for flag in ["--compaction-interval", "--storage-report-interval"] {
            let args = ServeArgs::parse_flags([flag, "0s"]).unwrap();
            let err = args.validate().unwrap_err();
            assert!(err.contains(&flag[2..]), "{err}");
        }
    }

    #[test]
    fn peer_reads_need_both_settings() {
        let secret = "s".repeat(32);
        let url = "http://10.0.0.5:8080";
        for flags in [
            vec!["--peer-secret", secret.as_str()],
            vec!["--advertise-url", url],
            vec!["--advertise-url", url, "--peer-secret", "short"],
            vec!["--peer-secret-accept", secret.as_str()],
            vec![
                "--advertise-url",
                url,
                "--peer-secret",
                secret.as_str(),
                "--peer-secret-accept",
                "short",
            ],
        ] {
            let args = ServeArgs::parse_flags(flags.clone()).unwrap();
            assert!(args.validate().is_err(), "{flags:?}");
            assert!(args.validate_stores().is_ok(), "migrate needs neither");
        }
        let args =
            ServeArgs::parse_flags(["--advertise-url", url, "--peer-secret", &secret]).unwrap();
        assert_eq!(&*args.peer().unwrap().unwrap().url, url);
        let other = "t".repeat(32);
        let rotating = ServeArgs::parse_flags([
            "--advertise-url",
            url,
            "--peer-secret",
            &secret,
            "--peer-secret-accept",
            &other,
        ])
        .unwrap();
        let (ours, theirs) = (
            rotating.peer().unwrap().unwrap(),
            crate::peer::PeerConfig::new(url, &other).unwrap(),
        );
        assert!(ours.origin_url(&theirs.signed_origin()).is_some());
        assert!(
            ServeArgs::parse_flags::<_, &str>([])
                .unwrap()
                .peer()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn defaults_make_an_embedded_server() {
        let args = ServeArgs::parse_flags::<_, &str>([]).unwrap();
        assert!(args.validate().is_ok());
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.linger(), Duration::from_millis(5));
        let s3 = ServeArgs::parse_flags(["--object-store", "s3://b/p/q"]).unwrap();
        assert_eq!(
            s3.object_store_location().unwrap(),
            ObjectStoreLocation::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(s3.linger(), Duration::from_millis(100));
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:<redacted>@h/db"
        );
    }
}
