//! Stopping without failing a request.
//!
//! On SIGTERM the enforcer reports NOT_SERVING on its gRPC health (a router
//! with several enforcers stops sending it checks within a second:
//! envoy/bootstrap.yaml's health check of `ext-authz`) but keeps deciding:
//! a router draining beside it in the same pod still sends checks until it
//! exits. It stops as soon as no router is connected any more (the router
//! beside it has exited), or once no check has arrived for `idle` (the
//! routers have moved on to other enforcers), or after `max` at the latest;
//! the gRPC server then finishes the checks in flight before it closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When the last check arrived, and how many connections are open.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    connections: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0), connections: AtomicU64::new(0) }
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

    /// Connections open to the ext_authz server.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A connection to the ext_authz server, counted in [`Activity`] while open.
pub struct Counted<T> {
    inner: T,
    activity: std::sync::Arc<Activity>,
}

impl<T> Counted<T> {
    /// Counts `inner` until it is dropped.
    pub fn new(inner: T, activity: std::sync::Arc<Activity>) -> Counted<T> {
        activity.connections.fetch_add(1, Ordering::Relaxed);
        Counted { inner, activity }
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.activity.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Counted<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
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

/// Resolves when the enforcer may stop: no connection open, `activity`
/// quiet for `limits.idle`, or `limits.max` after the call.
pub async fn quiet(activity: &Activity, limits: DrainLimits) {
    let deadline = Instant::now() + limits.max;
    loop {
        let idle = activity.idle();
        if activity.connections() == 0 || idle >= limits.idle || Instant::now() >= deadline {
            return;
        }
        // Short steps: a closed connection ends the wait within 50 ms.
        let wait = (limits.idle - idle).min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait.clamp(Duration::from_millis(10), Duration::from_millis(50))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_until_checks_stop_or_the_limit() {
        let activity = std::sync::Arc::new(Activity::default());
        let limits = DrainLimits { idle: Duration::from_secs(2), max: Duration::from_secs(10) };
        // A router connected all along (the replica case: its health checks).
        let connection = Counted::new((), std::sync::Arc::clone(&activity));
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

        // The router gone (its connections closed): at once, checks or not.
        activity.touch();
        let a = std::sync::Arc::clone(&activity);
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(connection);
            a.touch();
        });
        let t0 = tokio::time::Instant::now();
        quiet(&activity, limits).await;
        closer.await.expect("closer");
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(400), "{took:?}");
        assert_eq!(activity.connections(), 0);
    }
}
