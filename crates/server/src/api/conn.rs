//! Guards on a connection's IO: a stalled reader, and an idle connection.
//!
//! Streams (SSE, WebSocket) write only as fast as the client reads. A
//! client that stops reading leaves writes pending forever, holding the
//! connection and its buffers. [`StallGuard`] fails a write that has made
//! no progress for the stall timeout, which closes the connection; the
//! client can reconnect and resume from its last event id.
//!
//! [`IdleGuard`] closes a connection on which no byte has moved either
//! way for the idle timeout, whatever it is doing: a client that opened a
//! connection (or upgraded one) and went quiet. Live streams are not idle:
//! SSE sends keep-alive comments and WebSocket connections are pinged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An IO whose writes fail when the client takes them too slowly: while
/// writes wait on the client, at least `min_rate` bytes per second must be
/// taken over each `timeout` window (with `min_rate` 0: any progress at
/// all). A client that trickles a few bytes now and then would otherwise
/// hold a large response, and its buffers, forever.
#[derive(Debug)]
pub(super) struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    min_rate: u64,
    /// Open while writes wait on the client.
    window: Option<Window>,
    timer: Option<Pin<Box<Sleep>>>,
    /// A write had to wait since the last one that went through.
    waited: bool,
    /// Since when writes have gone through without waiting.
    flowing_since: Option<Instant>,
}

/// A stretch of time during which writes wait on the client.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    /// Bytes the client took since `start`.
    taken: u64,
}

/// Writes that go through without waiting this long close the window:
/// the client caught up.
const CAUGHT_UP: Duration = Duration::from_secs(1);

impl<T> StallGuard<T> {
    pub(super) fn new(inner: T, timeout: Duration, min_rate: u64) -> Self {
        StallGuard {
            inner,
            timeout,
            min_rate,
            window: None,
            timer: None,
            waited: false,
            flowing_since: None,
        }
    }

    /// A write went through with `n` bytes.
    fn took(&mut self, n: usize) {
        if let Some(w) = self.window.as_mut() {
            w.taken += n as u64;
        }
        if std::mem::take(&mut self.waited) {
            return;
        }
        let now = Instant::now();
        let since = *self.flowing_since.get_or_insert(now);
        if now.duration_since(since) > CAUGHT_UP {
            self.window = None;
        }
    }

    /// Called when a write could not proceed: opens or continues the
    /// window, and fails once a whole window took too little.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.waited = true;
        self.flowing_since = None;
        let now = Instant::now();
        loop {
            let w = *self.window.get_or_insert(Window {
                start: now,
                taken: 0,
            });
            let deadline = w.start + self.timeout;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let needed = (self.min_rate as f64 * self.timeout.as_secs_f64()) as u64;
            if w.taken == 0 || w.taken < needed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client is reading too slowly (stall timeout, min-write-rate)",
                )));
            }
            // Fast enough over this window: judge the next one afresh.
            self.window = Some(Window {
                start: now,
                taken: 0,
            });
        }
    }
}

use std::future::Future;

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T> StallGuard<T> {
    /// Passes a write-side result through, arming the stall timer while it
    /// is pending and failing once the timer has run out.
    fn guard<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => match self.check_stall(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.took(n);
        }
        self.guard(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.took(n);
        }
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An IO that fails once no byte has moved either way for a while.
#[derive(Debug)]
pub(super) struct IdleGuard<T> {
    inner: T,
    timeout: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleGuard<T> {
    pub(super) fn new(inner: T, timeout: Duration) -> Self {
        let last = Instant::now();
        IdleGuard {
            inner,
            timeout,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + timeout)),
        }
    }

    /// Called when the IO could not proceed: fails once the connection has
    /// been idle for the timeout, else arms the timer for that moment.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.last + self.timeout;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection was idle too long (idle timeout)",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn idle<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match self.check_idle(cx) {
            Poll::Ready(e) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.idle(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.idle(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.idle(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.idle(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_that_cannot_progress_fails_after_the_timeout() {
        // A duplex pipe with a tiny buffer that nobody reads.
        let (a, _b) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(a, Duration::from_secs(30), 0);
        let started = Instant::now();
        let err = guarded.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_minimum_rate_any_progress_keeps_it_open() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(a, Duration::from_secs(30), 0);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut total = 0;
            while total < 256 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap();
            }
        });
        guarded.write_all(&[1u8; 256]).await.unwrap();
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_nothing_moving_fails_after_the_idle_timeout() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(64);
        let mut guarded = IdleGuard::new(a, Duration::from_secs(60));
        // Traffic keeps it open...
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            b.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            guarded.read_exact(&mut one).await.unwrap();
        }
        // ...and silence closes it.
        let started = Instant::now();
        let mut one = [0u8; 1];
        let err = guarded.read_exact(&mut one).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_slower_than_the_minimum_rate_is_cut() {
        let (a, mut b) = tokio::io::duplex(16);
        // 100 bytes/s over 30 s windows: 3,000 bytes per window at least.
        let mut guarded = StallGuard::new(a, Duration::from_secs(30), 100);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match tokio::io::AsyncReadExt::read(&mut b, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        let started = Instant::now();
        let err = guarded.write_all(&[1u8; 100_000]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(30),
            "16 bytes/s is too slow"
        );
        drop(guarded);
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_at_the_minimum_rate_is_served() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(a, Duration::from_secs(30), 100);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 20_000 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                total += tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap();
            }
        });
        guarded.write_all(&[1u8; 20_000]).await.unwrap();
        reader.await.unwrap();
    }
}
