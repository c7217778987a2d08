//! Serving connections: the accept loop, and the limits a client meets
//! before any handler runs.
//!
//! - At most `--max-connections` connections are open at once; beyond it a
//!   new connection gets a `503` problem+json with `Retry-After` and is
//!   closed, so a flood of connections cannot exhaust file descriptors.
//! - HTTP/1 request headers must arrive within `--header-read-timeout`;
//!   the same clock runs while a kept-alive connection waits for its next
//!   request, so an idle keep-alive connection is closed after it too.
//! - A connection on which nothing has moved either way for
//!   `--idle-timeout` is closed, upgraded ones included (`IdleGuard`).
//! - While writes wait on a client, it must take `--min-write-rate` bytes
//!   per second over each `--stall-timeout` window, or the connection is
//!   closed (`StallGuard`): a trickling reader cannot pin a large response.
//! - A closing connection drains what the client still sends for a moment
//!   (`Lingering`), so an early 413 or 429 reaches a client that is still
//!   uploading instead of a connection reset.
//! - A request head the HTTP parser refuses (malformed, a target over
//!   65,534 bytes, a head over 417,792 bytes or 100 fields) is answered
//!   400/414/431 with a problem document naming the limit
//!   (`ProblemAnswers`), not the parser's empty answer.
//!
//! When draining begins the loop stops accepting, and every open
//! connection finishes its request in flight and closes.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::App;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use axum::response::IntoResponse;

use super::bare::{Answers, MAX_HEAD_BYTES, MAX_HEADERS, ProblemAnswers};
use super::conn::{IdleGuard, StallGuard};
use super::error::{ApiError, ErrorCode};
use super::linger::Lingering;
use crate::metrics::Metrics;

/// What a connection may hold, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub stall_timeout: Duration,
    /// Bytes per second a client must take while writes wait on it.
    pub min_write_rate: u64,
}

/// Serves `app` on `listener` until `draining` is cancelled, then waits
/// for open connections to finish their requests and close.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    draining: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let answers = Answers::render().await;
    // Every connection task holds a receiver; the loop waits for them all.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = draining.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let io = ProblemAnswers::new(
            IdleGuard::new(
                StallGuard::new(
                    Lingering::new(stream),
                    limits.stall_timeout,
                    limits.min_write_rate,
                ),
                limits.idle_timeout,
            ),
            answers.clone(),
        );
        let (app, draining, open, metrics) = (
            app.clone(),
            draining.clone(),
            open_rx.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            metrics.open_connections.inc();
            serve_connection(io, app, limits, draining).await;
            metrics.open_connections.dec();
            drop((slot, open));
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

async fn serve_connection(
    io: ProblemAnswers<IdleGuard<StallGuard<Lingering<TcpStream>>>>,
    app: App,
    limits: ConnectionLimits,
    draining: CancellationToken,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    builder.http2().timer(TokioTimer::new());
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let mut draining_seen = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = draining.cancelled(), if !draining_seen => {
                draining_seen = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Tells a connection beyond the limit why it is closed: the problem+json
/// answer any request would get, written as HTTP/1.1, then the close.
async fn refuse(mut stream: TcpStream, max: usize) {
    let mut problem = ApiError::new(
        ErrorCode::TooManyConnections,
        format!("the agent holds {max} connections already (max-connections); retry shortly"),
    )
    .with_limit(max as u64);
    problem.retry_after = Some(Duration::from_secs(1));
    let response = problem.into_response();
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    let Ok(body) = axum::body::to_bytes(response.into_body(), 64 * 1024).await else {
        return;
    };
    head.push_str(&format!(
        "connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    ));
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}
