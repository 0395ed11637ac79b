//! Stopping without failing a request.
//!
//! On SIGTERM the enforcer reports NOT_SERVING on its gRPC health (a router
//! with several enforcers stops sending it checks within a second:
//! envoy/bootstrap.yaml's health check of `ext-authz`) but keeps deciding:
//! a router draining beside it in the same pod still sends checks until it
//! exits. It stops once no check has arrived for `idle` (the routers have
//! moved on or are gone), or after `max` at the latest; the gRPC server then
//! finishes the checks in flight before it closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When the last check arrived.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }
}

impl Activity {
    /// Notes a check now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last check (since start when there was none).
    pub fn idle(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// How long the enforcer keeps deciding after SIGTERM.
#[derive(Debug, Clone, Copy)]
pub struct DrainLimits {
    /// Stop once no check arrived for this long.
    pub idle: Duration,
    /// Stop after this long whatever arrives.
    pub max: Duration,
}

/// Resolves when the enforcer may stop: `activity` quiet for `limits.idle`,
/// or `limits.max` after the call.
pub async fn quiet(activity: &Activity, limits: DrainLimits) {
    let deadline = Instant::now() + limits.max;
    loop {
        let idle = activity.idle();
        if idle >= limits.idle || Instant::now() >= deadline {
            return;
        }
        let wait = (limits.idle - idle).min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_until_checks_stop_or_the_limit() {
        let activity = std::sync::Arc::new(Activity::default());
        let limits = DrainLimits { idle: Duration::from_secs(2), max: Duration::from_secs(10) };
        // Checks every 500 ms for 3 s: the drain lasts until 2 s after the last.
        let a = std::sync::Arc::clone(&activity);
        let feeder = tokio::spawn(async move {
            for _ in 0..6 {
                a.touch();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let t0 = tokio::time::Instant::now();
        quiet(&activity, limits).await;
        let took = t0.elapsed();
        feeder.await.expect("feeder");
        assert!(took >= Duration::from_millis(4500) && took < Duration::from_millis(5200), "{took:?}");

        // Checks that never stop: the limit ends it.
        activity.touch();
        let a = std::sync::Arc::clone(&activity);
        let busy = tokio::spawn(async move {
            loop {
                a.touch();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let t0 = tokio::time::Instant::now();
        quiet(&activity, limits).await;
        busy.abort();
        let took = t0.elapsed();
        assert!(took >= Duration::from_secs(10) && took < Duration::from_millis(10_200), "{took:?}");
    }
}
