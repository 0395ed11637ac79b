//! What the servers share: listening (plain or TLS), the tasks of one server
//! (stopped together), recorded requests and small HTTP helpers.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// How many requests a server remembers (the oldest are forgotten first), so
/// that a long `make run` does not grow without bound.
const MAX_RECORDED: usize = 10_000;

/// Time for a client to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The tasks of one server: its accept loops, connections and WebSocket
/// sessions, aborted together by [`Tasks::stop`].
#[derive(Clone, Default)]
pub(crate) struct Tasks(Arc<Mutex<TaskSet>>);

#[derive(Default)]
struct TaskSet {
    set: JoinSet<()>,
    stopped: bool,
}

impl Tasks {
    /// Runs `fut` until it ends or the server stops.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        let mut tasks = self.0.lock();
        if tasks.stopped {
            return;
        }
        // Forget the tasks that ended.
        while tasks.set.try_join_next().is_some() {}
        tasks.set.spawn(fut);
    }

    /// Aborts every task, and any spawned later.
    pub(crate) fn stop(&self) {
        let mut tasks = self.0.lock();
        tasks.stopped = true;
        tasks.set.abort_all();
    }

    /// Aborts every task, and any spawned later, and waits until they have
    /// ended (their listeners and connections closed).
    pub(crate) async fn shutdown(&self) {
        let mut set = {
            let mut tasks = self.0.lock();
            tasks.stopped = true;
            std::mem::take(&mut tasks.set)
        };
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// A connection, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What is known of a connection besides its bytes.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// Whether it is TLS.
    pub(crate) tls: bool,
    /// The protocol ALPN agreed on, if any.
    pub(crate) alpn: Option<String>,
}

/// Binds `addr`.
pub(crate) async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Accepts connections on `listener` (completing the TLS handshake first
/// with `tls`) and runs `on_conn` for each, all as tasks of `tasks`.
pub(crate) fn spawn_accept<F, Fut>(tasks: &Tasks, listener: TcpListener, tls: Option<TlsAcceptor>, on_conn: F)
where
    F: Fn(Conn, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_conn = Arc::new(on_conn);
    let conns = tasks.clone();
    tasks.spawn(async move {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let on_conn = Arc::clone(&on_conn);
            let tls = tls.clone();
            conns.spawn(async move {
                let (conn, info) = match tls {
                    None => (Conn::Plain(tcp), ConnInfo { tls: false, alpn: None }),
                    Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let alpn =
                                stream.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
                            (Conn::Tls(Box::new(stream)), ConnInfo { tls: true, alpn })
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    },
                };
                on_conn(conn, info).await;
            });
        }
    });
}

/// An HTTP/1.1 and HTTP/2 (h2c or by ALPN) connection builder.
pub(crate) fn http_builder() -> auto::Builder<TokioExecutor> {
    auto::Builder::new(TokioExecutor::new())
}

/// A bounded list of what a server received, shared with its handle.
pub(crate) struct Log<T>(Arc<Mutex<VecDeque<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(Arc::clone(&self.0))
    }
}

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log(Arc::default())
    }
}

impl<T: Clone> Log<T> {
    pub(crate) fn push(&self, item: T) {
        let mut list = self.0.lock();
        if list.len() >= MAX_RECORDED {
            list.pop_front();
        }
        list.push_back(item);
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.0.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        let old = std::mem::take(&mut *self.0.lock());
        drop(old);
    }

    /// Changes the newest item that `pick` selects, if any.
    pub(crate) fn update(&self, pick: impl Fn(&T) -> bool, change: impl FnOnce(&mut T)) {
        if let Some(item) = self.0.lock().iter_mut().rev().find(|i| pick(i)) {
            change(item);
        }
    }
}

/// An HTTP request as a server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSeen {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with the query, as sent (`/a/b?c=d`).
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The authority: HTTP/2's `:authority` or HTTP/1.1's `host` header.
    pub authority: Option<String>,
    /// The headers in the order received, names in lower case (HTTP/2
    /// pseudo-headers are not headers: see `path` and `authority`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The protocol ALPN agreed on (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
}

impl RequestSeen {
    pub(crate) fn new(parts: &hyper::http::request::Parts, body: Bytes, info: &ConnInfo) -> RequestSeen {
        RequestSeen::of(&parts.method, &parts.uri, parts.version, &parts.headers, body, info)
    }

    pub(crate) fn of(
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        body: Bytes,
        info: &ConnInfo,
    ) -> RequestSeen {
        RequestSeen {
            method: method.to_string(),
            path: path_and_query(uri),
            version: version_name(version).to_string(),
            authority: authority(uri, headers),
            headers: header_list(headers),
            body,
            tls: info.tls,
            alpn: info.alpn.clone(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first value of header `name` (case-insensitive) in `headers`.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `HTTP/1.1`, `HTTP/2.0`, ...
pub(crate) fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// The path with the query.
pub(crate) fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string())
}

/// HTTP/2's `:authority` or HTTP/1.1's `host`.
pub(crate) fn authority(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    uri.authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| headers.get(HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()))
}

/// The headers as `(lower-case name, value)`, in order.
pub(crate) fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

/// Headers as a JSON object: a string per name, an array for repeated names.
pub(crate) fn headers_json(headers: &[(String, String)]) -> Value {
    let mut out = Map::new();
    for (k, v) in headers {
        let v = Value::String(v.clone());
        match out.get_mut(k.as_str()) {
            Some(Value::Array(a)) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                out.insert(k.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// The response type of the hyper-based servers.
pub(crate) type Resp = Response<Full<Bytes>>;

/// A response with `status`, `content_type` and `body`.
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Resp {
    respond(status, "application/json", body.to_string())
}
