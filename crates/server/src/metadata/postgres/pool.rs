//! The connection pool, and which pooled connections get checked (one
//! round trip) before they are handed out.
//!
//! The pool's default checks every one, which put a round trip in front of
//! every statement. Here a connection is checked only when it may have
//! died unseen: when it has been idle a while, or when it has been idle
//! since a connection to the store was last seen lost (the store restarted
//! or failed over, and every connection idle then is dead). A flush commit
//! sent on a dead connection would have to answer "outcome unknown" where
//! "not stored" is the truth. The pool also checks each connection as it
//! comes back, so one that broke in use is not handed out again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// A pooled connection idle this long is checked before it is handed out
/// even when no loss was seen.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// When a connection to the store was last seen lost.
#[derive(Debug)]
pub(super) struct Losses {
    start: Instant,
    /// Milliseconds since `start` plus one; zero when none was seen.
    last: AtomicU64,
}

impl Losses {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Losses {
            start: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    /// Records that a connection was lost now.
    pub(super) fn seen(&self) {
        self.last
            .fetch_max(self.millis(Duration::ZERO), Ordering::Relaxed);
    }

    /// Records a lost connection if `result` is one.
    pub(super) fn note<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(sqlx::Error::Io(_)) = &result {
            self.seen();
        }
        result
    }

    /// Whether a connection idle for `idle_for` has been idle since a loss
    /// was seen (in the same millisecond counts).
    fn idle_across(&self, idle_for: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last != 0 && self.millis(idle_for) <= last
    }

    /// `ago` before now, as stored in `last`.
    fn millis(&self, ago: Duration) -> u64 {
        self.start.elapsed().saturating_sub(ago).as_millis() as u64 + 1
    }
}

/// Opens the pool on `opts`.
pub(super) async fn open(
    opts: PgConnectOptions,
    losses: Arc<Losses>,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(16)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let check = meta.idle_for >= PING_IDLE_AFTER || losses.idle_across(meta.idle_for);
            Box::pin(async move {
                if check {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(opts)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_idle_since_a_loss_are_checked() {
        let losses = Losses::new();
        assert!(
            !losses.idle_across(Duration::from_secs(3600)),
            "no loss yet"
        );
        std::thread::sleep(Duration::from_millis(5));
        losses.seen();
        assert!(losses.idle_across(Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            !losses.idle_across(Duration::from_millis(1)),
            "used after the loss"
        );

        let losses = Losses::new();
        let _ = losses.note::<()>(Err(sqlx::Error::RowNotFound));
        assert!(!losses.idle_across(Duration::from_secs(3600)), "not a loss");
        let io = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let _ = losses.note::<()>(Err(sqlx::Error::Io(io)));
        assert!(losses.idle_across(Duration::from_secs(3600)));
    }
}
