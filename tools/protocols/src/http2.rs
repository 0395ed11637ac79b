//! An HTTP echo that tells which HTTP version and ALPN protocol a request
//! came with, on two listeners: plain (HTTP/1.1, and HTTP/2 with prior
//! knowledge: h2c) and TLS (ALPN `h2`, `http/1.1`).
//!
//! Every request, any method and path, is answered `200` `application/json`:
//!
//! ```json
//! {"version": "HTTP/2.0", "method": "GET", "path": "/a?b=c", "authority": "localhost:1234",
//!  "headers": {"<name>": "<value>" | [...]}, "alpn": "h2" | "http/1.1" | null, "tls": true,
//!  "bodyBytes": 0}
//! ```
//!
//! and recorded ([`RequestSeen`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_rustls::TlsAcceptor;

use crate::net::{self, ConnInfo, Log, RequestSeen, Resp, Tasks};
use crate::{ServerError, TlsIdentity};

struct State {
    requests: Log<RequestSeen>,
    tasks: Tasks,
}

async fn handle(state: Arc<State>, info: ConnInfo, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(net::json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}))),
    };
    let seen = RequestSeen::new(&parts, body, &info);
    let echo = json!({
        "version": seen.version,
        "method": seen.method,
        "path": seen.path,
        "authority": seen.authority,
        "headers": net::headers_json(&seen.headers),
        "alpn": seen.alpn,
        "tls": seen.tls,
        "bodyBytes": seen.body.len(),
    });
    state.requests.push(seen);
    Ok(net::json_response(StatusCode::OK, &echo))
}

/// The HTTP/2 echo running in this process.
pub struct Http2Server {
    /// The plain listener (HTTP/1.1 and h2c).
    pub plain_addr: SocketAddr,
    /// The TLS listener (ALPN `h2`, `http/1.1`).
    pub tls_addr: SocketAddr,
    identity: TlsIdentity,
    state: Arc<State>,
}

impl Http2Server {
    /// Starts one on two ephemeral loopback ports, with a fresh self-signed
    /// certificate.
    pub async fn start() -> Result<Http2Server, ServerError> {
        Http2Server::start_on(crate::loopback(), crate::loopback(), &TlsIdentity::self_signed()?).await
    }

    /// Starts one listening on `plain` and `tls`, the TLS listener presenting
    /// `identity`.
    pub async fn start_on(
        plain: SocketAddr,
        tls: SocketAddr,
        identity: &TlsIdentity,
    ) -> Result<Http2Server, ServerError> {
        let config = identity.server_config(&["h2", "http/1.1"])?;
        let (plain_listener, plain_addr) = net::bind(plain).await?;
        let (tls_listener, tls_addr) = net::bind(tls).await?;
        let tasks = Tasks::default();
        let state = Arc::new(State { requests: Log::default(), tasks: tasks.clone() });
        for (listener, acceptor) in
            [(plain_listener, None), (tls_listener, Some(TlsAcceptor::from(Arc::clone(&config))))]
        {
            let st = Arc::clone(&state);
            net::spawn_accept(&tasks, listener, acceptor, move |conn, info| {
                let state = Arc::clone(&st);
                async move {
                    let mut builder = net::http_builder();
                    if info.alpn.as_deref() == Some("h2") {
                        builder = builder.http2_only();
                    } else if info.alpn.as_deref() == Some("http/1.1") {
                        builder = builder.http1_only();
                    }
                    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&state), info.clone(), req));
                    if let Err(e) = builder.serve_connection(TokioIo::new(conn), svc).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
            });
        }
        tracing::debug!(%plain_addr, %tls_addr, "HTTP/2 echo listening");
        Ok(Http2Server { plain_addr, tls_addr, identity: identity.clone(), state })
    }

    /// `http://127.0.0.1:<port>` of the plain listener.
    pub fn plain_url(&self) -> String {
        format!("http://{}", self.plain_addr)
    }

    /// `https://localhost:<port>` of the TLS listener.
    pub fn tls_url(&self) -> String {
        format!("https://localhost:{}", self.tls_addr.port())
    }

    /// The certificate (PEM) the TLS listener presents.
    pub fn cert_pem(&self) -> &str {
        self.identity.cert_pem()
    }

    /// The identity the TLS listener presents.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// The requests received so far on both listeners, oldest first.
    pub fn requests(&self) -> Vec<RequestSeen> {
        self.state.requests.snapshot()
    }

    /// Forgets the requests.
    pub fn clear(&self) {
        self.state.requests.clear();
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.state.tasks.stop();
    }

    /// Like [`stop`](Self::stop), and returns once the listeners and
    /// connections are closed.
    pub async fn shutdown(&self) {
        self.state.tasks.shutdown().await;
    }
}

impl Drop for Http2Server {
    fn drop(&mut self) {
        self.stop();
    }
}
