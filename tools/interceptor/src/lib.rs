//! A reference interceptor service implementing Choreo Connect's interceptor
//! contract (Choreo Connect 1.2, `interceptor-service-open-api-v1.yaml`), for
//! the integration tests, `make run` and the benchmarks. It serves plain
//! HTTP/1.1 and HTTP/2 without TLS (h2c) on the same port.
//!
//! # The contract
//!
//! * `POST /api/v1/handle-request`: the gateway sends
//!   `{requestHeaders{}, requestTrailers{}, requestBody "<base64>", invocationContext{}}`
//!   and expects either `200` with
//!   `{directRespond, responseCode, headersToAdd{}, headersToReplace{}, headersToRemove[],
//!   trailersToAdd{}, trailersToReplace{}, trailersToRemove[], body "<base64>",
//!   dynamicEndpoint{endpointName}, interceptorContext{}}` (every field optional) or `204`
//!   (no change).
//! * `POST /api/v1/handle-response`: the gateway sends
//!   `{responseCode, requestHeaders, requestTrailers, requestBody, responseHeaders,
//!   responseTrailers, responseBody, invocationContext, interceptorContext}` and expects
//!   either `200` with `{responseCode, headersToAdd, headersToReplace, headersToRemove,
//!   trailersToAdd, trailersToReplace, trailersToRemove, body}` or `204`.
//!
//! # Default ("sample") behaviour
//!
//! Until an answer is scripted, every call gets a fixed, statically allocated
//! answer (cheap enough for the benchmarks):
//! * handle-request: `200`
//!   `{"headersToAdd":{"x-intercepted-by":"test-interceptor"},"interceptorContext":{"seen":"request"}}`
//!   ([`DEFAULT_REQUEST_ANSWER`]);
//! * handle-response: `200` `{"headersToAdd":{"x-response-intercepted-by":"test-interceptor"}}`
//!   ([`DEFAULT_RESPONSE_ANSWER`]).
//!
//! # Manager API (for tests)
//!
//! Like Choreo Connect's mock interceptor, the service is scripted and
//! inspected over HTTP under `/interceptor/`; the state is shared by all
//! connections:
//! * `POST /interceptor/request-answer`, `POST /interceptor/response-answer`:
//!   what every following handle-request / handle-response call answers, as
//!   `{"status": 200, "body": <JSON>}`. A JSON `body` is serialised; a string
//!   `body`, or `"raw": "<text>"` instead of `body`, is sent verbatim (for
//!   tests of invalid answers). `{"status": 204}` answers `204` without a body.
//!   Optional: `"contentType"` (default `application/json` when there is a
//!   body) and `"delayMs"` (answer after that many milliseconds, for timeout
//!   tests). `status` defaults to 200.
//! * `GET /interceptor/request`, `GET /interceptor/response`: the last body
//!   received by handle-request / handle-response as JSON (a JSON string if it
//!   was not JSON), or `null` if none.
//! * `GET /interceptor/request-headers`, `GET /interceptor/response-headers`:
//!   the headers of the last handle-request / handle-response call as a JSON
//!   object with lower-case names (repeated headers as arrays), plus the
//!   pseudo-headers `:method`, `:path`, `:authority` (HTTP/2 authority or the
//!   `host` header), `:scheme` (if sent) and `:version` (`HTTP/1.1`,
//!   `HTTP/2.0`); `null` if none.
//! * `GET /interceptor/status`:
//!   `{"status": "NONE"|"REQUEST_ONLY"|"RESPONSE_ONLY"|"BOTH", "requests": N, "responses": M}`,
//!   which handlers were called (and how often) since the last clear.
//! * `POST /interceptor/clear-status`: resets the status, the recorded bodies
//!   and headers, and the scripted answers (back to the defaults).
//!
//! Invalid manager requests get `400` with `{"error": "..."}`, unknown paths
//! `404` and known paths with the wrong method `405`.
//!
//! [`Interceptor`] runs the service inside a test, like `test_backend::Backend`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HOST, HeaderValue};
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// Path of the request interceptor.
pub const HANDLE_REQUEST_PATH: &str = "/api/v1/handle-request";
/// Path of the response interceptor.
pub const HANDLE_RESPONSE_PATH: &str = "/api/v1/handle-response";

/// The default handle-request answer body (status 200).
pub const DEFAULT_REQUEST_ANSWER: &str =
    r#"{"headersToAdd":{"x-intercepted-by":"test-interceptor"},"interceptorContext":{"seen":"request"}}"#;
/// The default handle-response answer body (status 200).
pub const DEFAULT_RESPONSE_ANSWER: &str = r#"{"headersToAdd":{"x-response-intercepted-by":"test-interceptor"}}"#;

/// `application/json` (a function: `HeaderValue` holds `Bytes`, which a
/// `const` would copy at every use anyway).
fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response status.
    pub status: StatusCode,
    /// Response body, sent as is (for 204 and 304 neither the body nor the
    /// content type is sent).
    pub body: Bytes,
    /// `content-type` of the response, if any.
    pub content_type: Option<HeaderValue>,
    /// How long to wait before answering.
    pub delay: Option<Duration>,
}

impl Answer {
    /// `status` with `body` serialised as JSON.
    pub fn json(status: StatusCode, body: &Value) -> Answer {
        Answer { status, body: Bytes::from(body.to_string()), content_type: Some(json_type()), delay: None }
    }

    /// `status` with `body` sent verbatim as `application/json` (which it
    /// need not be).
    pub fn raw(status: StatusCode, body: impl Into<Bytes>) -> Answer {
        Answer { status, body: body.into(), content_type: Some(json_type()), delay: None }
    }

    /// `204 No Content`: no change.
    pub fn no_content() -> Answer {
        Answer { status: StatusCode::NO_CONTENT, body: Bytes::new(), content_type: None, delay: None }
    }

    /// The same answer, sent after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Answer {
        self.delay = Some(delay);
        self
    }

    /// Parses a manager API answer:
    /// `{"status", "body" | "raw", "contentType", "delayMs"}`, all optional.
    pub fn from_manager_json(text: &[u8]) -> Result<Answer, String> {
        let value: Value = serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(obj) = value else { return Err("expected a JSON object".to_string()) };
        if let Some(k) =
            obj.keys().find(|k| !matches!(k.as_str(), "status" | "body" | "raw" | "contentType" | "delayMs"))
        {
            return Err(format!("unknown field `{k}` (expected status, body, raw, contentType, delayMs)"));
        }
        let status = match obj.get("status") {
            None => StatusCode::OK,
            Some(s) => s
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .and_then(|n| StatusCode::from_u16(n).ok())
                .filter(|s| !s.is_informational())
                .ok_or_else(|| format!("`status` must be an HTTP status from 200 to 999, got {s}"))?,
        };
        let body = match (obj.get("body"), obj.get("raw")) {
            (Some(_), Some(_)) => return Err("give either `body` or `raw`, not both".to_string()),
            (None, Some(Value::String(s))) | (Some(Value::String(s)), None) => Bytes::from(s.clone()),
            (None, Some(_)) => return Err("`raw` must be a string".to_string()),
            (Some(v), None) => Bytes::from(v.to_string()),
            (None, None) => Bytes::new(),
        };
        let content_type = match obj.get("contentType") {
            None => (!body.is_empty()).then(json_type),
            Some(Value::String(s)) => Some(
                HeaderValue::from_str(s).map_err(|_| format!("`contentType` is not a valid header value: {s:?}"))?,
            ),
            Some(_) => return Err("`contentType` must be a string".to_string()),
        };
        let delay = match obj.get("delayMs") {
            None => None,
            Some(d) => Some(Duration::from_millis(
                d.as_u64().ok_or_else(|| format!("`delayMs` must be a non-negative integer, got {d}"))?,
            )),
        };
        Ok(Answer { status, body, content_type, delay })
    }
}

/// Which handlers were called since the last clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// Neither.
    None,
    /// Only handle-request.
    RequestOnly,
    /// Only handle-response.
    ResponseOnly,
    /// Both.
    Both,
}

impl CallStatus {
    fn from_calls(requests: u64, responses: u64) -> CallStatus {
        match (requests > 0, responses > 0) {
            (false, false) => CallStatus::None,
            (true, false) => CallStatus::RequestOnly,
            (false, true) => CallStatus::ResponseOnly,
            (true, true) => CallStatus::Both,
        }
    }

    /// `NONE`, `REQUEST_ONLY`, `RESPONSE_ONLY` or `BOTH`, as the manager API
    /// reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::None => "NONE",
            CallStatus::RequestOnly => "REQUEST_ONLY",
            CallStatus::ResponseOnly => "RESPONSE_ONLY",
            CallStatus::Both => "BOTH",
        }
    }
}

/// The request line and headers of a handler call.
struct Head {
    version: Version,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Head {
    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert(":method".into(), Value::String(self.method.to_string()));
        let path = self.uri.path_and_query().map_or_else(|| self.uri.path().to_string(), |p| p.to_string());
        out.insert(":path".into(), Value::String(path));
        let authority = self
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| self.headers.get(HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()));
        if let Some(a) = authority {
            out.insert(":authority".into(), Value::String(a));
        }
        if let Some(s) = self.uri.scheme_str() {
            out.insert(":scheme".into(), Value::String(s.to_string()));
        }
        out.insert(":version".into(), Value::String(format!("{:?}", self.version)));
        for (k, v) in &self.headers {
            let v = Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned());
            match out.get_mut(k.as_str()) {
                Some(Value::Array(a)) => a.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
                None => {
                    out.insert(k.as_str().to_string(), v);
                }
            }
        }
        Value::Object(out)
    }
}

/// What is recorded and scripted for one handler.
#[derive(Default)]
struct Side {
    calls: u64,
    body: Option<Bytes>,
    head: Option<Head>,
    answer: Option<Answer>,
}

/// A recorded body as JSON: itself if it is JSON, else a JSON string.
fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[derive(Default)]
struct Inner {
    request: Side,
    response: Side,
}

/// Which handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Request,
    Response,
}

/// The service's state, shared by all connections (cheap to clone).
#[derive(Clone, Default)]
pub struct State {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("State")
            .field("requests", &inner.request.calls)
            .field("responses", &inner.response.calls)
            .field("request_answer", &inner.request.answer)
            .field("response_answer", &inner.response.answer)
            .finish()
    }
}

impl State {
    /// A fresh state: nothing recorded, default answers.
    pub fn new() -> State {
        State::default()
    }

    fn side<R>(&self, h: Handler, f: impl FnOnce(&mut Side) -> R) -> R {
        let mut inner = self.inner.lock();
        f(match h {
            Handler::Request => &mut inner.request,
            Handler::Response => &mut inner.response,
        })
    }

    /// Which handlers were called since the last clear.
    pub fn status(&self) -> CallStatus {
        let (requests, responses) = self.calls();
        CallStatus::from_calls(requests, responses)
    }

    /// handle-request and handle-response calls since the last clear.
    pub fn calls(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        (inner.request.calls, inner.response.calls)
    }

    /// The last body handle-request received (a JSON string if it was not
    /// JSON).
    pub fn last_request(&self) -> Option<Value> {
        self.side(Handler::Request, |s| s.body.clone()).map(|b| body_json(&b))
    }

    /// The last body handle-response received (a JSON string if it was not
    /// JSON).
    pub fn last_response(&self) -> Option<Value> {
        self.side(Handler::Response, |s| s.body.clone()).map(|b| body_json(&b))
    }

    /// The headers of the last handle-request call, as
    /// `GET /interceptor/request-headers` reports them.
    pub fn last_request_headers(&self) -> Option<Value> {
        self.side(Handler::Request, |s| s.head.as_ref().map(Head::to_json))
    }

    /// The headers of the last handle-response call, as
    /// `GET /interceptor/response-headers` reports them.
    pub fn last_response_headers(&self) -> Option<Value> {
        self.side(Handler::Response, |s| s.head.as_ref().map(Head::to_json))
    }

    /// What every following handle-request call answers.
    pub fn set_request_answer(&self, answer: Answer) {
        self.side(Handler::Request, |s| s.answer = Some(answer));
    }

    /// What every following handle-response call answers.
    pub fn set_response_answer(&self, answer: Answer) {
        self.side(Handler::Response, |s| s.answer = Some(answer));
    }

    /// Forgets the calls, recorded bodies and headers, and scripted answers.
    pub fn clear(&self) {
        let old = std::mem::take(&mut *self.inner.lock());
        drop(old);
    }

    /// Records a call and returns the scripted answer, if any.
    fn record(&self, h: Handler, head: Head, body: Bytes) -> Option<Answer> {
        let (answer, old) = self.side(h, |s| {
            s.calls += 1;
            (s.answer.clone(), (s.body.replace(body), s.head.replace(head)))
        });
        // The previous call's head and body are freed outside the lock.
        drop(old);
        answer
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut().insert(CONTENT_TYPE, ct);
    }
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Resp {
    respond(status, Some(json_type()), Bytes::from(body.to_string()))
}

fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json_response(status, &json!({"error": message.into()}))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, format!("use {allow}"));
    resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

async fn read_body(body: Incoming) -> Result<Bytes, Resp> {
    match body.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    }
}

async fn handle_call(state: &State, h: Handler, parts: Parts, body: Incoming) -> Resp {
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    tracing::debug!(handler = ?h, bytes = body.len(), version = ?parts.version, "interceptor call");
    let head = Head { version: parts.version, method: parts.method, uri: parts.uri, headers: parts.headers };
    match state.record(h, head, body) {
        None => {
            let body = match h {
                Handler::Request => DEFAULT_REQUEST_ANSWER,
                Handler::Response => DEFAULT_RESPONSE_ANSWER,
            };
            respond(StatusCode::OK, Some(json_type()), Bytes::from_static(body.as_bytes()))
        }
        Some(answer) => {
            if let Some(d) = answer.delay {
                tokio::time::sleep(d).await;
            }
            if matches!(answer.status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
                respond(answer.status, None, Bytes::new())
            } else {
                respond(answer.status, answer.content_type, answer.body)
            }
        }
    }
}

async fn handle_manager(state: &State, parts: Parts, body: Incoming) -> Resp {
    let path = parts.uri.path();
    let get = |f: &dyn Fn() -> Value| {
        if parts.method == Method::GET { json_response(StatusCode::OK, &f()) } else { method_not_allowed("GET") }
    };
    match path {
        "/interceptor/request" => get(&|| state.last_request().unwrap_or(Value::Null)),
        "/interceptor/response" => get(&|| state.last_response().unwrap_or(Value::Null)),
        "/interceptor/request-headers" => get(&|| state.last_request_headers().unwrap_or(Value::Null)),
        "/interceptor/response-headers" => get(&|| state.last_response_headers().unwrap_or(Value::Null)),
        "/interceptor/status" => get(&|| {
            let (requests, responses) = state.calls();
            let status = CallStatus::from_calls(requests, responses);
            json!({"status": status.as_str(), "requests": requests, "responses": responses})
        }),
        "/interceptor/clear-status" => {
            if parts.method != Method::POST {
                return method_not_allowed("POST");
            }
            state.clear();
            tracing::info!("interceptor state cleared");
            json_response(StatusCode::OK, &json!({"status": CallStatus::None.as_str()}))
        }
        "/interceptor/request-answer" | "/interceptor/response-answer" => {
            if parts.method != Method::POST {
                return method_not_allowed("POST");
            }
            let text = match read_body(body).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let answer = match Answer::from_manager_json(&text) {
                Ok(a) => a,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            tracing::info!(
                path,
                status = answer.status.as_u16(),
                bytes = answer.body.len(),
                "interceptor answer scripted"
            );
            if path == "/interceptor/request-answer" {
                state.set_request_answer(answer);
            } else {
                state.set_response_answer(answer);
            }
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such path: {path}")),
    }
}

async fn handle(state: State, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let resp = match parts.uri.path() {
        HANDLE_REQUEST_PATH => handle_call(&state, Handler::Request, parts, body).await,
        HANDLE_RESPONSE_PATH => handle_call(&state, Handler::Response, parts, body).await,
        p if p.starts_with("/interceptor/") => handle_manager(&state, parts, body).await,
        p => error(StatusCode::NOT_FOUND, format!("no such path: {p}")),
    };
    Ok(resp)
}

/// Serves the interceptor contract and the manager API on `listener`
/// (HTTP/1.1 and h2c) until the task is dropped.
pub async fn serve(listener: TcpListener, state: State) {
    serve_with(listener, state, None).await;
}

/// Serves over TLS (HTTP/1.1 and HTTP/2 by ALPN) until the task is dropped.
pub async fn serve_tls(listener: TcpListener, state: State, config: Arc<rustls::ServerConfig>) {
    serve_with(listener, state, Some(tokio_rustls::TlsAcceptor::from(config))).await;
}

async fn serve_with(listener: TcpListener, state: State, tls: Option<tokio_rustls::TlsAcceptor>) {
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
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, state).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_connection(stream, state).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
            }
        });
    }
}

async fn serve_connection<S>(stream: S, state: State)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
    if let Err(e) = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// An interceptor service running in this process.
pub struct Interceptor {
    /// Where it listens.
    pub addr: SocketAddr,
    state: State,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl Interceptor {
    /// Starts an interceptor service on an ephemeral loopback port, on the
    /// current tokio runtime.
    pub async fn start() -> std::io::Result<Interceptor> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = State::new();
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(Interceptor { addr, state, task, tls: false })
    }

    /// Starts one serving TLS with `config` (for tests of https interceptor
    /// services; [`Interceptor::url`] is then `https://localhost:<port>`).
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> std::io::Result<Interceptor> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = State::new();
        let task = tokio::spawn(serve_tls(listener, state.clone(), config));
        Ok(Interceptor { addr, state, task, tls: true })
    }

    /// Its state: what it recorded, and where to script answers without HTTP.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>` over TLS.
    pub fn url(&self) -> String {
        if self.tls { format!("https://localhost:{}", self.addr.port()) } else { format!("http://{}", self.addr) }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops listening (existing connections end with the runtime).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Interceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
