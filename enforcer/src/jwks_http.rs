//! Key sets over HTTP: the [`Fetch`] the enforcer's JWKS sources use
//! (`enforcer_core::keys::Jwks`), with a bounded body.

use std::sync::Arc;
use std::time::Duration;

use enforcer_core::keys::{Fetch, FetchError, Jwks};
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::ResultLabels;

/// Fetches key sets with reqwest; a body larger than [`Jwks::MAX_BYTES`] is
/// refused as it arrives, not after.
#[derive(Debug, Clone)]
pub struct HttpFetch {
    client: reqwest::Client,
    counted: Arc<std::sync::OnceLock<Family<ResultLabels, Counter>>>,
}

impl HttpFetch {
    /// A fetcher with the enforcer's timeouts (5 s a request, 2 s to connect).
    pub fn new() -> Arc<HttpFetch> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Arc::new(HttpFetch { client, counted: Arc::default() })
    }

    /// Counts fetches by result in `family` from now on.
    pub fn count_in(&self, family: Family<ResultLabels, Counter>) {
        let _ = self.counted.set(family);
    }
}

impl Fetch for HttpFetch {
    fn fetch(&self, url: &str) -> BoxFuture<'static, Result<Vec<u8>, FetchError>> {
        let request = self.client.get(url);
        let counted = Arc::clone(&self.counted);
        async move {
            let mut resp = request.send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status()));
            }
            let too_big = || format!("the key set is larger than {} bytes", Jwks::MAX_BYTES);
            if resp.content_length().is_some_and(|n| n > Jwks::MAX_BYTES as u64) {
                return Err(too_big());
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                if body.len() + chunk.len() > Jwks::MAX_BYTES {
                    return Err(too_big());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
        .map(move |r: Result<Vec<u8>, String>| {
            if let Some(family) = counted.get() {
                let result = if r.is_ok() { "success" } else { "error" };
                family.get_or_create(&ResultLabels { result }).inc();
            }
            r.map_err(FetchError)
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A JWKS endpoint that answers `body` after `delay` (never, with `None`),
    /// counting requests.
    async fn endpoint(delay: Option<Duration>, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let hits = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&hits);
        let body = Arc::new(body);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (h, body) = (Arc::clone(&h), Arc::clone(&body));
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    h.fetch_add(1, Ordering::SeqCst);
                    match delay {
                        None => std::future::pending::<()>().await,
                        Some(d) => tokio::time::sleep(d).await,
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_key_ids_share_one_bounded_fetch_and_then_fail_fast() {
        // An endpoint that never answers: the worst case for a flood of forged kids.
        let (url, hits) = endpoint(None, Vec::new()).await;
        let jwks = Jwks::new(url, HttpFetch::new());
        let started = Instant::now();
        let waiters: Vec<_> = (0..50)
            .map(|i| {
                let j = Arc::clone(&jwks);
                tokio::spawn(async move { j.key(&format!("forged-{i}")).await.is_none() })
            })
            .collect();
        for w in waiters {
            assert!(w.await.expect("task"));
        }
        let took = started.elapsed();
        // One fetch for all of them, bounded by MISS_WAIT (the client's own
        // timeout is 5 s): no queue behind a lock.
        assert!(took < Jwks::MISS_WAIT + Duration::from_millis(1500), "50 unknown kids took {took:?}");
        // Within MIN_REFETCH after that fetch began, another unknown kid fails at once.
        let t = Instant::now();
        assert!(jwks.key("forged-again").await.is_none());
        assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch for all of them");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_set_that_is_too_large_is_refused() {
        let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(Jwks::MAX_BYTES));
        let (url, _) = endpoint(Some(Duration::ZERO), big.into_bytes()).await;
        let jwks = Jwks::new(url, HttpFetch::new());
        let err = jwks.fetch().await.expect_err("too large").to_string();
        assert!(err.contains("larger than 1048576 bytes"), "{err}");
    }
}
