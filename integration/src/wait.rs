//! Bounded waits: retries with a deadline, never bare sleeps.

use std::future::Future;
use std::time::{Duration, Instant};

/// Patience for waits, from `TEST_PATIENCE_MS` (default 20 s).
pub fn patience() -> Duration {
    std::env::var("TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(20))
}

/// Retries `f` until it returns `Ok`, for at most `patience()`; panics with
/// the last error and `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + patience();
    let mut delay = Duration::from_millis(20);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                if Instant::now() > deadline {
                    panic!("timed out waiting for {what}: {e}");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}
