//! The gRPC test service `test.echo.Echo` (`proto/echo.proto`), on two
//! listeners: h2c and TLS (ALPN `h2`).
//!
//! * `Unary`: answers `{message, index: 0}`; request metadata named
//!   `x-test-*` is copied into the response metadata, and the trailer
//!   `x-echo-trailer: done` is set. The message `fail` is answered with
//!   `INVALID_ARGUMENT` "asked to fail".
//! * `ServerStream`: `repeat` replies `{message, index: 0..repeat}`
//!   (`repeat` from 0 to [`MAX_REPEAT`], else `INVALID_ARGUMENT`), with
//!   `x-test-*` metadata copied too.
//! * `BidiStream`: each request echoed as it arrives, `index` counting from 0.
//!
//! Every call is recorded ([`GrpcCallSeen`]) with the messages it received.
//! [`pb`] has the generated messages, client and server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;
use tonic::codegen::Service;
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Status, Streaming};

use crate::net::{self, ConnInfo, Log, Tasks};
use crate::{ServerError, TlsIdentity};

/// The generated messages (`EchoRequest`, `EchoReply`), client
/// (`echo_client::EchoClient`) and server (`echo_server`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/test.echo.rs"));
}

pub use pb::echo_client::EchoClient;
pub use pb::{EchoReply, EchoRequest};

/// The most replies `ServerStream` sends for one request.
pub const MAX_REPEAT: i32 = 10_000;

/// The full path of the unary method.
pub const UNARY_PATH: &str = "/test.echo.Echo/Unary";

/// A gRPC call the service received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCallSeen {
    id: u64,
    /// The full method path (`/test.echo.Echo/Unary`).
    pub method: String,
    /// The authority (`:authority`).
    pub authority: Option<String>,
    /// The request metadata (HTTP/2 headers, `-bin` values in base64), names
    /// in lower case, in order.
    pub metadata: Vec<(String, String)>,
    /// The `message` of each request message received so far.
    pub messages: Vec<String>,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The protocol ALPN agreed on, if any.
    pub alpn: Option<String>,
}

impl GrpcCallSeen {
    /// The first value of metadata `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        net::find_header(&self.metadata, name)
    }
}

/// Which recorded call a request is (a request extension).
#[derive(Debug, Clone, Copy)]
struct CallId(u64);

struct State {
    calls: Log<GrpcCallSeen>,
    next_id: AtomicU64,
    tasks: Tasks,
}

impl State {
    fn message(&self, id: Option<CallId>, message: &str) {
        if let Some(CallId(id)) = id {
            self.calls.update(|c| c.id == id, |c| c.messages.push(message.to_string()));
        }
    }
}

/// Copies `x-test-*` entries of `from` into `to`.
fn copy_test_metadata(from: &MetadataMap, to: &mut MetadataMap) {
    for entry in from.iter() {
        match entry {
            KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("x-test-") => {
                to.append(k.clone(), v.clone());
            }
            KeyAndValueRef::Binary(k, v) if k.as_str().starts_with("x-test-") => {
                to.append_bin(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send + 'static>>;

struct EchoService {
    state: Arc<State>,
}

#[tonic::async_trait]
impl pb::echo_server::Echo for EchoService {
    async fn unary(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoReply>, Status> {
        let id = request.extensions().get::<CallId>().copied();
        let (metadata, _, msg) = request.into_parts();
        self.state.message(id, &msg.message);
        if msg.message == "fail" {
            return Err(Status::invalid_argument("asked to fail"));
        }
        let mut response = tonic::Response::new(EchoReply { message: msg.message, index: 0 });
        copy_test_metadata(&metadata, response.metadata_mut());
        Ok(response)
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<ReplyStream>, Status> {
        let id = request.extensions().get::<CallId>().copied();
        let (metadata, _, msg) = request.into_parts();
        self.state.message(id, &msg.message);
        if !(0..=MAX_REPEAT).contains(&msg.repeat) {
            return Err(Status::invalid_argument(format!("repeat must be from 0 to {MAX_REPEAT}")));
        }
        let message = msg.message;
        let replies =
            futures::stream::iter((0..msg.repeat).map(move |index| Ok(EchoReply { message: message.clone(), index })));
        let mut response = tonic::Response::new(Box::pin(replies) as ReplyStream);
        copy_test_metadata(&metadata, response.metadata_mut());
        Ok(response)
    }

    type BidiStreamStream = ReplyStream;

    async fn bidi_stream(
        &self,
        request: tonic::Request<Streaming<EchoRequest>>,
    ) -> Result<tonic::Response<ReplyStream>, Status> {
        let id = request.extensions().get::<CallId>().copied();
        let (metadata, _, inbound) = request.into_parts();
        let state = Arc::clone(&self.state);
        let replies = inbound.enumerate().map(move |(i, r)| {
            r.map(|m| {
                state.message(id, &m.message);
                EchoReply { message: m.message, index: i32::try_from(i).unwrap_or(i32::MAX) }
            })
        });
        let mut response = tonic::Response::new(Box::pin(replies) as ReplyStream);
        copy_test_metadata(&metadata, response.metadata_mut());
        Ok(response)
    }
}

type Svc = pb::echo_server::EchoServer<EchoService>;

async fn handle(
    state: Arc<State>,
    svc: Svc,
    info: ConnInfo,
    mut req: Request<Incoming>,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    state.calls.push(GrpcCallSeen {
        id,
        method: req.uri().path().to_string(),
        authority: net::authority(req.uri(), req.headers()),
        metadata: net::header_list(req.headers()),
        messages: Vec::new(),
        tls: info.tls,
        alpn: info.alpn.clone(),
    });
    req.extensions_mut().insert(CallId(id));
    let unary = req.uri().path() == UNARY_PATH;
    let mut svc = svc;
    let response = svc.call(req).await?;
    if !unary {
        return Ok(response);
    }
    // tonic sets no trailers of its own on a successful unary call: add
    // `x-echo-trailer` to the trailers frame that carries `grpc-status`.
    Ok(response.map(|body| {
        tonic::body::Body::new(body.map_frame(|mut frame| {
            if let Some(trailers) = frame.trailers_mut() {
                trailers.insert("x-echo-trailer", HeaderValue::from_static("done"));
            }
            frame
        }))
    }))
}

/// The gRPC service running in this process.
pub struct GrpcServer {
    /// The h2c listener.
    pub plain_addr: SocketAddr,
    /// The TLS listener (ALPN `h2`).
    pub tls_addr: SocketAddr,
    identity: TlsIdentity,
    state: Arc<State>,
}

impl GrpcServer {
    /// Starts one on two ephemeral loopback ports, with a fresh self-signed
    /// certificate.
    pub async fn start() -> Result<GrpcServer, ServerError> {
        GrpcServer::start_on(crate::loopback(), crate::loopback(), &TlsIdentity::self_signed()?).await
    }

    /// Starts one listening on `plain` (h2c) and `tls`, the TLS listener
    /// presenting `identity`.
    pub async fn start_on(
        plain: SocketAddr,
        tls: SocketAddr,
        identity: &TlsIdentity,
    ) -> Result<GrpcServer, ServerError> {
        let config = identity.server_config(&["h2"])?;
        let (plain_listener, plain_addr) = net::bind(plain).await?;
        let (tls_listener, tls_addr) = net::bind(tls).await?;
        let tasks = Tasks::default();
        let state = Arc::new(State { calls: Log::default(), next_id: AtomicU64::new(0), tasks: tasks.clone() });
        let svc = pb::echo_server::EchoServer::new(EchoService { state: Arc::clone(&state) });
        for (listener, acceptor) in
            [(plain_listener, None), (tls_listener, Some(TlsAcceptor::from(Arc::clone(&config))))]
        {
            let st = Arc::clone(&state);
            let svc = svc.clone();
            net::spawn_accept(&tasks, listener, acceptor, move |conn, info| {
                let state = Arc::clone(&st);
                let svc = svc.clone();
                async move {
                    let hyper_svc = hyper::service::service_fn(move |req| {
                        handle(Arc::clone(&state), svc.clone(), info.clone(), req)
                    });
                    let builder = net::http_builder().http2_only();
                    if let Err(e) = builder.serve_connection(TokioIo::new(conn), hyper_svc).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
            });
        }
        tracing::debug!(%plain_addr, %tls_addr, "gRPC echo listening");
        Ok(GrpcServer { plain_addr, tls_addr, identity: identity.clone(), state })
    }

    /// `http://127.0.0.1:<port>` of the h2c listener.
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

    /// The calls received so far on both listeners, oldest first.
    pub fn calls(&self) -> Vec<GrpcCallSeen> {
        self.state.calls.snapshot()
    }

    /// Forgets the calls.
    pub fn clear(&self) {
        self.state.calls.clear();
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

    /// A client of the h2c listener.
    pub async fn client(&self) -> Result<EchoClient<Channel>, tonic::transport::Error> {
        connect(&self.plain_url(), None).await
    }

    /// A client of the TLS listener, trusting its certificate.
    pub async fn tls_client(&self) -> Result<EchoClient<Channel>, tonic::transport::Error> {
        connect(&self.tls_url(), Some(self.cert_pem())).await
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An `Echo` client of `url` (`http://host:port` for h2c, `https://...` for
/// TLS trusting `ca_pem`, the server name being the URL's host), for calls
/// to this service directly or through the gateway.
pub async fn connect(url: &str, ca_pem: Option<&str>) -> Result<EchoClient<Channel>, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(url.to_string())?;
    if let Some(ca) = ca_pem {
        endpoint = endpoint.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))?;
    }
    Ok(EchoClient::new(endpoint.connect().await?))
}
