//! Push delivery to webhooks: every agent delivers every subscription.
//!
//! Each agent lists the subscriptions every `--webhook-poll-interval` and
//! runs one worker per active one. A worker is a member of the
//! subscription's consumer group (`subscription:<name>`), so partitions
//! are spread over the agents, leased and fenced like any group's: no
//! partition is delivered by two agents at once, and a dead agent's
//! partitions move after its session (`--webhook-session-timeout`). See
//! `deliver` for one worker, `guard` for the SSRF guard, `sign` for the
//! signature.

mod deliver;
pub mod guard;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::groups::Groups;
use crate::ingest::Ingest;
use crate::metadata::{Metadata, SubscriptionRow};
use crate::metrics::Metrics;
use guard::{Guard, GuardedResolver};

/// Subscriptions read per page of the listing.
const LIST_LIMIT: u32 = 10_000;

/// How delivery behaves; from the `--webhook-*` flags.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub guard: Arc<Guard>,
    /// Longest a receiver may take to answer one delivery.
    pub timeout: Duration,
    /// The delivering member's session in the subscription's group.
    pub session_timeout: Duration,
    /// How often the agent looks for new, paused and deleted subscriptions.
    pub poll_interval: Duration,
    /// The first retry's delay; each further one doubles, up to `max_backoff`.
    pub retry_base: Duration,
    pub max_backoff: Duration,
}

/// What workers share.
#[derive(Debug)]
struct Deps {
    groups: Groups,
    metadata: Metadata,
    ingest: Ingest,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    config: WebhookConfig,
}

/// The delivery loop of one agent.
#[derive(Debug, Clone)]
pub struct Webhooks {
    deps: Arc<Deps>,
}

impl Webhooks {
    pub fn new(
        groups: Groups,
        metadata: Metadata,
        ingest: Ingest,
        metrics: Arc<Metrics>,
        config: WebhookConfig,
    ) -> Result<Webhooks, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, past the guard.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(config.guard.clone())))
            .user_agent(concat!("StreamHouse-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Webhooks {
            deps: Arc::new(Deps {
                groups,
                metadata,
                ingest,
                metrics,
                client,
                config,
            }),
        })
    }

    /// Keeps one worker per active subscription until `cancel` fires; then
    /// stops them (each leaves its group, so its partitions move at once).
    pub async fn run(self, cancel: CancellationToken) {
        let tracker = TaskTracker::new();
        let mut workers: HashMap<(String, String), (i64, CancellationToken)> = HashMap::new();
        loop {
            match self.active().await {
                Ok(active) => {
                    let wanted: HashMap<(String, String), SubscriptionRow> = active
                        .into_iter()
                        .map(|s| ((s.tenant.clone(), s.name.clone()), s))
                        .collect();
                    workers.retain(|key, (created, stop)| {
                        let keep = wanted.get(key).is_some_and(|s| s.created_at_ms == *created);
                        if !keep {
                            stop.cancel();
                        }
                        keep
                    });
                    for (key, sub) in wanted {
                        if workers.contains_key(&key) {
                            continue;
                        }
                        let stop = cancel.child_token();
                        workers.insert(key, (sub.created_at_ms, stop.clone()));
                        tracker.spawn(deliver::work(self.deps.clone(), sub, stop));
                    }
                    self.deps
                        .metrics
                        .groups
                        .webhook_workers
                        .set(workers.len() as i64);
                }
                Err(e) => tracing::warn!(error = %e, "listing subscriptions failed"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.deps.config.poll_interval) => {}
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Every active subscription of every tenant, a page at a time.
    async fn active(&self) -> Result<Vec<SubscriptionRow>, crate::metadata::MetadataError> {
        let mut out = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .deps
                .metadata
                .subscriptions
                .list_subscriptions(
                    None,
                    after.as_ref().map(|(t, n)| (t.as_str(), n.as_str())),
                    LIST_LIMIT,
                )
                .await?;
            let full = page.len() == LIST_LIMIT as usize;
            after = page.last().map(|s| (s.tenant.clone(), s.name.clone()));
            out.extend(page.into_iter().filter(|s| !s.paused));
            if !full {
                return Ok(out);
            }
        }
    }
}
