//! A WebSocket echo server.
//!
//! Accepts an upgrade (HTTP/1.1, RFC 6455) on any path and records it
//! ([`UpgradeSeen`]); the first subprotocol offered, if any, is accepted.
//! Then every text and binary message is echoed back unchanged, except two
//! text messages:
//! * `__whoami`: answered with the JSON text
//!   `{"path": "<path?query>", "headers": {"<name>": "<value>" | [...]}}` of
//!   the upgrade request (names in lower case, repeated ones as arrays);
//! * `__close`: the server closes the connection with code 1000.
//!
//! A request that is not a WebSocket upgrade is answered `426 Upgrade
//! Required`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::ServerError;
use crate::net::{self, Log, Resp, Tasks, find_header, header_list, headers_json, path_and_query};

/// A WebSocket upgrade request the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeSeen {
    /// The path with the query (`/chat?room=1`).
    pub path: String,
    /// The headers in the order received, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl UpgradeSeen {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// What `__whoami` answers.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"path": self.path, "headers": headers_json(&self.headers)})
    }
}

/// Whether `req` asks for a WebSocket upgrade; if so the
/// `Sec-WebSocket-Accept` to answer.
pub(crate) fn upgrade_accept<B>(req: &Request<B>) -> Option<String> {
    let has_token = |name, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if req.method() != Method::GET || req.version() != Version::HTTP_11 {
        return None;
    }
    if !has_token(CONNECTION, "upgrade") || !has_token(UPGRADE, "websocket") {
        return None;
    }
    if req.headers().get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return None;
    }
    req.headers().get(SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes()))
}

/// The subprotocols `req` offers, in order.
pub(crate) fn offered_protocols<B>(req: &Request<B>) -> Vec<String> {
    req.headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `101 Switching Protocols` accepting the upgrade, with `protocol`.
pub(crate) fn switching_protocols(accept: &str, protocol: Option<&str>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(v) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

/// `426 Upgrade Required`.
pub(crate) fn upgrade_required() -> Resp {
    let mut resp =
        net::respond(StatusCode::UPGRADE_REQUIRED, "text/plain; charset=utf-8", "a WebSocket upgrade is expected\n");
    resp.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
    resp
}

/// Runs `session` on the connection `req` upgrades to, once the `101` is
/// sent, as a task of `tasks`.
pub(crate) fn on_upgrade<F, Fut>(tasks: &Tasks, req: &mut Request<Incoming>, session: F)
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let upgrade = hyper::upgrade::on(req);
    tasks.spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                session(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
}

struct State {
    upgrades: Log<UpgradeSeen>,
    messages: AtomicU64,
    tasks: Tasks,
}

async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Result<Resp, Infallible> {
    let Some(accept) = upgrade_accept(&req) else {
        return Ok(upgrade_required());
    };
    let seen = UpgradeSeen { path: path_and_query(req.uri()), headers: header_list(req.headers()) };
    tracing::debug!(path = %seen.path, "WebSocket upgrade");
    state.upgrades.push(seen.clone());
    let protocol = offered_protocols(&req).into_iter().next();
    let st = Arc::clone(&state);
    on_upgrade(&state.tasks, &mut req, move |ws| echo(st, seen, ws));
    Ok(switching_protocols(&accept, protocol.as_deref()))
}

async fn echo<S>(state: Arc<State>, seen: UpgradeSeen, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket session ended");
                return;
            }
        };
        let reply = match msg {
            Message::Text(text) => {
                state.messages.fetch_add(1, Ordering::Relaxed);
                match text.as_str() {
                    "__whoami" => Message::text(seen.to_json().to_string()),
                    "__close" => {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        if ws.close(Some(frame)).await.is_err() {
                            return;
                        }
                        // Go on reading: the client's close ends the stream.
                        continue;
                    }
                    _ => Message::Text(text),
                }
            }
            Message::Binary(data) => {
                state.messages.fetch_add(1, Ordering::Relaxed);
                Message::Binary(data)
            }
            // tungstenite queues the pong (and the answer to a close); send it.
            Message::Ping(_) | Message::Close(_) => {
                let _ = ws.flush().await;
                continue;
            }
            Message::Pong(_) | Message::Frame(_) => continue,
        };
        if let Err(e) = ws.send(reply).await {
            tracing::debug!(error = %e, "WebSocket send failed");
            return;
        }
    }
}

/// A WebSocket echo server running in this process.
pub struct WebSocketServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl WebSocketServer {
    /// Starts one on an ephemeral loopback port.
    pub async fn start() -> Result<WebSocketServer, ServerError> {
        WebSocketServer::start_on(crate::loopback()).await
    }

    /// Starts one listening on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Result<WebSocketServer, ServerError> {
        let (listener, addr) = net::bind(addr).await?;
        let tasks = Tasks::default();
        let state = Arc::new(State { upgrades: Log::default(), messages: AtomicU64::new(0), tasks: tasks.clone() });
        let st = Arc::clone(&state);
        net::spawn_accept(&tasks, listener, None, move |conn, _info| {
            let state = Arc::clone(&st);
            async move {
                let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
                if let Err(e) = net::http_builder().serve_connection_with_upgrades(TokioIo::new(conn), svc).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
        });
        tracing::debug!(%addr, "WebSocket echo server listening");
        Ok(WebSocketServer { addr, state })
    }

    /// `ws://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The upgrade requests accepted so far, oldest first.
    pub fn upgrades(&self) -> Vec<UpgradeSeen> {
        self.state.upgrades.snapshot()
    }

    /// Text and binary messages received so far (over all connections).
    pub fn messages(&self) -> u64 {
        self.state.messages.load(Ordering::Relaxed)
    }

    /// Forgets the upgrades and the message count.
    pub fn clear(&self) {
        self.state.upgrades.clear();
        self.state.messages.store(0, Ordering::Relaxed);
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

impl Drop for WebSocketServer {
    fn drop(&mut self) {
        self.stop();
    }
}
