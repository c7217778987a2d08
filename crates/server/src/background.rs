//! Background loops: the one way an agent runs work every so often until
//! shutdown.
//!
//! The watermark poller, the metadata cache's deletion watch and
//! maintenance all tick on a period, optionally stretched by a random
//! fraction so agents started together spread their work out, and stop
//! when the agent's background cancellation token fires. A tick that runs
//! long delays the next one; ticks never pile up.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `tick` every `period`, each wait stretched by up to `jitter` of
/// the period at random (0 for none), until `cancel` fires.
pub async fn every<F, Fut>(period: Duration, jitter: f64, cancel: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let stretch = period.mul_f64(jitter.clamp(0.0, 1.0) * rand::random::<f64>());
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period + stretch) => {}
        }
        tick().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_on_the_period_and_stops_when_cancelled() {
        let ticks = Arc::new(AtomicU32::new(0));
        let cancel = CancellationToken::new();
        let counted = ticks.clone();
        let task = tokio::spawn(every(
            Duration::from_secs(1),
            0.0,
            cancel.clone(),
            move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        cancel.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            3,
            "no tick after cancellation"
        );
    }
}
