//! Per-tenant quotas from `--tenant-quotas` (TOML): produce bytes per
//! second, requests per second and open streams, enforced by each agent
//! on its own traffic (a fleet of N agents admits up to N times the rate).
//! Rates are token buckets holding one second of burst; a request larger
//! than the bucket is admitted when the bucket is full and leaves it in
//! debt, so the average rate holds whatever the request sizes.
//!
//! ```toml
//! [default]                      # every tenant not listed below
//! produce_bytes_per_second = "10MiB"
//! requests_per_second = 1000
//! open_streams = 100
//!
//! [tenants.acme]
//! produce_bytes_per_second = "50MiB"
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;

use crate::config::ByteSize;
use crate::metrics::Metrics;

/// One tenant's limits; absent ones are unlimited.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub produce_bytes_per_second: Option<QuotaBytes>,
    pub requests_per_second: Option<u64>,
    pub open_streams: Option<i64>,
}

/// A byte rate written as in the flags (`10MiB`) or as a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuotaBytes {
    Number(u64),
    Text(String),
}

impl QuotaBytes {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            QuotaBytes::Number(n) => Ok(*n),
            QuotaBytes::Text(s) => s.parse::<ByteSize>().map(|b| b.0),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    #[serde(default)]
    default: Quota,
    #[serde(default)]
    tenants: HashMap<String, Quota>,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    ProduceBytes,
    Requests,
    OpenStreams,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::ProduceBytes => "produce_bytes_per_second",
            QuotaKind::Requests => "requests_per_second",
            QuotaKind::OpenStreams => "open_streams",
        }
    }
}

/// A refusal: the limit, its value, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverQuota {
    pub kind: QuotaKind,
    pub limit: u64,
    pub retry_after: Duration,
}

/// A rate as a token bucket of one second's worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate: rate.max(1) as f64,
            tokens: rate.max(1) as f64,
            at: Instant::now(),
        }
    }

    /// Takes `n` if the bucket holds `n` (or is full, for `n` beyond its
    /// size, which leaves it in debt); otherwise how long until it will.
    fn take(&mut self, n: u64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        let need = (n as f64).min(self.rate);
        if self.tokens < need {
            return Err(Duration::from_secs_f64(
                (need - self.tokens) / self.rate + 0.001,
            ));
        }
        self.tokens -= n as f64;
        Ok(())
    }
}

/// What one tenant has used.
#[derive(Debug)]
struct Usage {
    bytes: Option<Bucket>,
    requests: Option<Bucket>,
    streams: Arc<AtomicI64>,
    produced: Counter,
    requests_seen: Counter,
    open: Gauge,
}

/// Every tenant's quota and usage on this agent.
#[derive(Debug, Default)]
pub struct Quotas {
    default: Quota,
    tenants: HashMap<String, Quota>,
    usage: Mutex<HashMap<String, Usage>>,
    metrics: Option<Arc<Metrics>>,
}

/// An open stream counted against its tenant; released on drop.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicI64>, Gauge);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        self.1.dec();
    }
}

impl Quotas {
    /// Reads the quota file (none: no limits, usage still counted).
    pub fn load(path: Option<&Path>, metrics: Arc<Metrics>) -> Result<Quotas, String> {
        let file = match path {
            None => QuotaFile::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("tenant-quotas {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("tenant-quotas {}: {e}", p.display()))?
            }
        };
        for (name, q) in std::iter::once(("default", &file.default))
            .chain(file.tenants.iter().map(|(n, q)| (n.as_str(), q)))
        {
            if let Some(b) = &q.produce_bytes_per_second {
                b.bytes()
                    .map_err(|e| format!("tenant-quotas [{name}] produce_bytes_per_second: {e}"))?;
            }
        }
        Ok(Quotas {
            default: file.default,
            tenants: file.tenants,
            usage: Mutex::new(HashMap::new()),
            metrics: Some(metrics),
        })
    }

    fn quota(&self, tenant: &str) -> &Quota {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    fn with_usage<T>(&self, tenant: &str, f: impl FnOnce(&mut Usage, &Quota) -> T) -> T {
        let quota = self.quota(tenant);
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        // Known tenants are found without allocating their name again.
        if let Some(u) = usage.get_mut(tenant) {
            return f(u, quota);
        }
        let entry = usage.entry(tenant.to_string()).or_insert_with(|| {
            let (produced, requests_seen, open) = match &self.metrics {
                Some(m) => m.tenant(tenant),
                None => Default::default(),
            };
            Usage {
                bytes: quota
                    .produce_bytes_per_second
                    .as_ref()
                    .and_then(|b| b.bytes().ok())
                    .map(Bucket::new),
                requests: quota.requests_per_second.map(Bucket::new),
                streams: Arc::new(AtomicI64::new(0)),
                produced,
                requests_seen,
                open,
            }
        });
        f(entry, quota)
    }

    /// Counts one request of `tenant`.
    pub fn request(&self, tenant: &str) -> Result<(), OverQuota> {
        self.with_usage(tenant, |u, q| {
            u.requests_seen.inc();
            match &mut u.requests {
                Some(b) => b.take(1, Instant::now()).map_err(|retry_after| OverQuota {
                    kind: QuotaKind::Requests,
                    limit: q.requests_per_second.unwrap_or(0),
                    retry_after,
                }),
                None => Ok(()),
            }
        })
    }

    /// Counts `bytes` produced by `tenant`.
    pub fn produce(&self, tenant: &str, bytes: usize) -> Result<(), OverQuota> {
        self.with_usage(tenant, |u, q| {
            let taken = match &mut u.bytes {
                Some(b) => b
                    .take(bytes as u64, Instant::now())
                    .map_err(|retry_after| OverQuota {
                        kind: QuotaKind::ProduceBytes,
                        limit: q
                            .produce_bytes_per_second
                            .as_ref()
                            .and_then(|b| b.bytes().ok())
                            .unwrap_or(0),
                        retry_after,
                    }),
                None => Ok(()),
            };
            if taken.is_ok() {
                u.produced.inc_by(bytes as u64);
            }
            taken
        })
    }

    /// Opens a stream of `tenant`, within its `open_streams`.
    pub fn open_stream(&self, tenant: &str) -> Result<StreamSlot, OverQuota> {
        self.with_usage(tenant, |u, q| {
            let now = u.streams.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(max) = q.open_streams
                && now > max
            {
                u.streams.fetch_sub(1, Ordering::Relaxed);
                return Err(OverQuota {
                    kind: QuotaKind::OpenStreams,
                    limit: max.max(0) as u64,
                    retry_after: Duration::from_secs(5),
                });
            }
            u.open.inc();
            Ok(StreamSlot(u.streams.clone(), u.open.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_admit_a_second_of_burst_then_ask_to_wait() {
        let mut b = Bucket::new(100);
        let t0 = b.at;
        assert!(b.take(60, t0).is_ok());
        let wait = b.take(60, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(190) && wait < Duration::from_millis(220),
            "{wait:?}"
        );
        assert!(b.take(40, t0).is_ok());
        let later = t0 + Duration::from_secs(1);
        assert!(
            b.take(500, later).is_ok(),
            "larger than the bucket: admitted when full"
        );
        let wait = b.take(1, later).unwrap_err();
        assert!(wait > Duration::from_secs(4), "in debt: {wait:?}");
    }

    #[test]
    fn quota_files_set_defaults_and_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.toml");
        std::fs::write(
            &p,
            "[default]\nrequests_per_second = 2\nopen_streams = 1\n[tenants.acme]\nproduce_bytes_per_second = \"1KiB\"\n",
        )
        .unwrap();
        let q = Quotas::load(Some(&p), Arc::new(Metrics::default())).unwrap();
        assert!(q.request("x").is_ok());
        assert!(q.request("x").is_ok());
        assert_eq!(q.request("x").unwrap_err().kind, QuotaKind::Requests);
        assert!(q.request("acme").is_ok(), "acme has no request limit");
        assert!(q.produce("acme", 4096).is_ok());
        assert_eq!(q.produce("acme", 1).unwrap_err().limit, 1024);
        let s = q.open_stream("x").unwrap();
        assert_eq!(q.open_stream("x").unwrap_err().kind, QuotaKind::OpenStreams);
        drop(s);
        assert!(q.open_stream("x").is_ok());
        std::fs::write(&p, "[default]\nproduce_bytes_per_second = \"lots\"\n").unwrap();
        assert!(Quotas::load(Some(&p), Arc::new(Metrics::default())).is_err());
    }
}
