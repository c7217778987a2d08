//! Revoked tokens: the set every agent refuses, kept current from the
//! metadata store by polling (the agent that revokes adds to its own set at
//! once), and the end of a long-lived session whose token expires or is
//! revoked while its stream is open.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Caller;
use crate::clock::SharedClock;
use crate::metadata::{Revocations, RevokedToken};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Expired,
    Revoked,
}

/// Revoked `jti`s by tenant, not yet expired.
type RevokedSet = HashMap<String, HashSet<String>>;

/// The revoked `(tenant, jti)` pairs not yet expired.
#[derive(Debug)]
pub struct Revoked {
    set: RwLock<RevokedSet>,
    changed: watch::Sender<u64>,
}

impl Default for Revoked {
    fn default() -> Self {
        Revoked {
            set: RwLock::new(HashMap::new()),
            changed: watch::Sender::new(0),
        }
    }
}

impl Revoked {
    pub fn contains(&self, caller: &Caller) -> bool {
        let Some(jti) = &caller.jti else {
            return false;
        };
        self.set.read().is_ok_and(|s| {
            s.get(caller.tenant.as_str())
                .is_some_and(|jtis| jtis.contains(jti.as_ref()))
        })
    }

    /// Adds one revocation (the agent that recorded it knows at once).
    pub fn add(&self, tenant: &str, jti: &str) {
        let added = self.set.write().is_ok_and(|mut s| {
            s.entry(tenant.to_string())
                .or_default()
                .insert(jti.to_string())
        });
        if added {
            self.changed.send_modify(|g| *g += 1);
        }
    }

    /// Replaces the set with the store's; wakes sessions if it grew.
    pub fn replace(&self, rows: Vec<RevokedToken>) {
        let mut fresh = RevokedSet::new();
        for r in rows {
            fresh.entry(r.tenant).or_default().insert(r.jti);
        }
        let grew = match self.set.write() {
            Ok(mut s) => {
                let grew = fresh.iter().any(|(tenant, jtis)| {
                    s.get(tenant)
                        .is_none_or(|known| jtis.iter().any(|j| !known.contains(j)))
                });
                *s = fresh;
                grew
            }
            Err(_) => false,
        };
        if grew {
            self.changed.send_modify(|g| *g += 1);
        }
    }

    pub fn len(&self) -> usize {
        self.set
            .read()
            .map(|s| s.values().map(HashSet::len).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when `caller`'s token expires (by `now_ms`, this agent's
    /// clock) or is revoked; never for a caller without a token.
    pub async fn session_end(&self, caller: &Caller, now_ms: i64) -> SessionEnd {
        let expiry = async {
            match caller.expires_at {
                Some(exp) => {
                    let left = exp.saturating_mul(1000).saturating_sub(now_ms).max(0);
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
                }
                None => std::future::pending().await,
            }
        };
        let revocation = async {
            if caller.jti.is_none() {
                return std::future::pending().await;
            }
            let mut rx = self.changed.subscribe();
            loop {
                if self.contains(caller) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            _ = expiry => SessionEnd::Expired,
            _ = revocation => SessionEnd::Revoked,
        }
    }

    /// Keeps the set current from the store every `interval`.
    pub async fn poll(
        self: Arc<Self>,
        store: Arc<dyn Revocations>,
        clock: SharedClock,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        loop {
            match store.revoked_tokens(clock.now_ms()).await {
                Ok(rows) => self.replace(rows),
                Err(e) => {
                    tracing::debug!(error = %e, "revoked tokens not read; keeping the last set")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
