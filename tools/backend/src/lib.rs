//! A fast HTTP/1.1 and HTTP/2 (h2c) backend for `make run`, the tests and
//! the benchmarks.
//!
//! Every request is answered with a JSON echo of what arrived:
//! `{"backend", "method", "path", "query", "headers", "body"}`, and the
//! response header `x-backend-name`. Request headers steer it:
//! * `x-backend-delay-ms: N`: answer after N milliseconds;
//! * `x-backend-status: N`: answer with status N;
//! * `x-backend-close: true`: close the connection without answering;
//! * `x-backend-set-headers: a, b`: answer with headers `a` and `b` set to
//!   `response-header-value` (for tests of response-flow header policies).
//!
//! Requests to `/__fixed` get a small fixed body, for load tests that should
//! measure the proxy rather than JSON encoding. `GET /__hits` answers
//! `{"hits": N}`, the requests served so far (itself not counted), for tests
//! that run the backend in another process or container.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// Why a request should not be answered.
#[derive(Debug)]
struct Close;

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed on request")
    }
}

impl std::error::Error for Close {}

async fn handle(name: Arc<str>, hits: Arc<AtomicU64>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Close> {
    if req.uri().path() == "/__hits" {
        let body = json!({"hits": hits.load(Ordering::Relaxed)}).to_string();
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default());
    }
    hits.fetch_add(1, Ordering::Relaxed);
    if req.uri().path() == "/__fixed" {
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .header("x-backend-name", name.as_ref())
            .body(Full::new(Bytes::from_static(b"{\"status\":\"ok\",\"service\":\"backend\"}")))
            .unwrap_or_default());
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    if header("x-backend-close").as_deref() == Some("true") {
        return Err(Close);
    }
    let delay = header("x-backend-delay-ms").and_then(|v| v.parse::<u64>().ok());
    let status = header("x-backend-status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = Map::new();
    for (k, v) in req.headers() {
        let v = Value::String(String::from_utf8_lossy(v.as_bytes()).to_string());
        match headers.get_mut(k.as_str()) {
            Some(Value::Array(a)) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                headers.insert(k.as_str().to_string(), v);
            }
        }
    }
    let set_headers = header("x-backend-set-headers").unwrap_or_default();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let echo = json!({
        "backend": name.as_ref(),
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-backend-name", name.as_ref());
    for h in set_headers.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        resp = resp.header(h, "response-header-value");
    }
    Ok(resp.body(Full::new(Bytes::from(echo.to_string()))).unwrap_or_default())
}

/// Serves on `listener` until the task is dropped, counting requests in `hits`.
pub async fn serve(listener: TcpListener, name: String, hits: Arc<AtomicU64>) {
    let name: Arc<str> = Arc::from(name);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let name = Arc::clone(&name);
        let hits = Arc::clone(&hits);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&name), Arc::clone(&hits), req));
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

/// A backend running in this process.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts a backend named `name` on an ephemeral loopback port, on the
    /// current tokio runtime.
    pub async fn start(name: &str) -> std::io::Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(listener, name.to_string(), Arc::clone(&hits)));
        Ok(Backend { addr, hits, task })
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening (existing connections end with the runtime).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
