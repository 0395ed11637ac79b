//! Real backends for the integration tests of WebSocket, GraphQL, SOAP,
//! HTTP/2 and gRPC APIs, and for `make run`.
//!
//! Each server binds loopback port 0 by default (`start()`), or a given
//! address (`start_on(..)`), runs on the current tokio runtime and is stopped
//! by `stop()` or by dropping its handle, which also ends the connections it
//! has open (so a test of "backend down" sees it down at once); `shutdown()`
//! does the same and returns once all is closed. Every server
//! records what it received, for tests to assert on:
//!
//! * [`WebSocketServer`] ([`websocket`]): accepts upgrades on any path and
//!   echoes text and binary messages; `__whoami` answers the upgrade request
//!   as JSON, `__close` closes with 1000. Records [`UpgradeSeen`]s.
//! * [`GraphqlServer`] ([`graphql`]): the StarWars-like schema of
//!   `schema.graphql` ([`graphql::SCHEMA_SDL`]) over `POST` and `GET` on any
//!   path, subscriptions over `graphql-transport-ws` / `graphql-ws`.
//!   Records [`RequestSeen`]s.
//! * [`SoapServer`] ([`soap`]): answers SOAP 1.1 and 1.2 with an echo
//!   envelope of the same version, or a fault on `x-soap-fault: true`.
//!   Records [`SoapRequestSeen`]s (action, content type, body).
//! * [`Http2Server`] ([`http2`]): a JSON echo telling the HTTP version and
//!   the ALPN protocol, plain (HTTP/1.1 and h2c) and over TLS.
//! * [`GrpcServer`] ([`grpc`]): the `test.echo.Echo` service of
//!   `proto/echo.proto`, h2c and over TLS; [`grpc::pb`] has the client.
//!
//! The TLS listeners present a [`TlsIdentity`]: self-signed for `localhost`,
//! `127.0.0.1` and `::1`, made at start, or a PEM pair given by the caller;
//! `cert_pem()` on the handles gives the certificate to trust.
//!
//! [`Protocols`] starts them all (what the `test-protocols` binary runs).

mod net;
mod tls;

pub mod graphql;
pub mod grpc;
pub mod http2;
pub mod soap;
pub mod websocket;

use std::net::{Ipv4Addr, SocketAddr};

pub use graphql::GraphqlServer;
pub use grpc::{GrpcCallSeen, GrpcServer};
pub use http2::Http2Server;
pub use net::RequestSeen;
pub use soap::{SoapRequestSeen, SoapServer};
pub use tls::TlsIdentity;
pub use websocket::{UpgradeSeen, WebSocketServer};

/// The WebSocket implementation the servers use, for the tests' clients
/// (`tokio_tungstenite::client_async` over a `TcpStream`).
pub use tokio_tungstenite;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key is unusable, or could not be generated.
    #[error("TLS: {0}")]
    Tls(String),
}

/// `127.0.0.1:0`: an ephemeral loopback port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Where [`Protocols::start_on`] listens (each `127.0.0.1:0` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// The WebSocket echo server.
    pub websocket: SocketAddr,
    /// The GraphQL server.
    pub graphql: SocketAddr,
    /// The SOAP responder.
    pub soap: SocketAddr,
    /// The HTTP echo, plain (HTTP/1.1 and h2c).
    pub http2: SocketAddr,
    /// The HTTP echo over TLS (ALPN h2, http/1.1).
    pub http2_tls: SocketAddr,
    /// The gRPC service, h2c.
    pub grpc: SocketAddr,
    /// The gRPC service over TLS (ALPN h2).
    pub grpc_tls: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        let l = loopback();
        Listen { websocket: l, graphql: l, soap: l, http2: l, http2_tls: l, grpc: l, grpc_tls: l }
    }
}

/// All the servers, sharing one TLS identity.
pub struct Protocols {
    /// The WebSocket echo server.
    pub websocket: WebSocketServer,
    /// The GraphQL server.
    pub graphql: GraphqlServer,
    /// The SOAP responder.
    pub soap: SoapServer,
    /// The HTTP/2 echo (plain and TLS).
    pub http2: Http2Server,
    /// The gRPC service (plain and TLS).
    pub grpc: GrpcServer,
}

impl Protocols {
    /// Starts every server on an ephemeral loopback port, with a fresh
    /// self-signed certificate.
    pub async fn start() -> Result<Protocols, ServerError> {
        Protocols::start_on(&Listen::default(), &TlsIdentity::self_signed()?).await
    }

    /// Starts every server where `listen` says, the TLS listeners with
    /// `identity`.
    pub async fn start_on(listen: &Listen, identity: &TlsIdentity) -> Result<Protocols, ServerError> {
        Ok(Protocols {
            websocket: WebSocketServer::start_on(listen.websocket).await?,
            graphql: GraphqlServer::start_on(listen.graphql).await?,
            soap: SoapServer::start_on(listen.soap).await?,
            http2: Http2Server::start_on(listen.http2, listen.http2_tls, identity).await?,
            grpc: GrpcServer::start_on(listen.grpc, listen.grpc_tls, identity).await?,
        })
    }

    /// `(name, address)` of every listener, in the order the binary prints
    /// them: `websocket`, `graphql`, `soap`, `http2`, `http2-tls`, `grpc`,
    /// `grpc-tls`.
    pub fn addresses(&self) -> Vec<(&'static str, SocketAddr)> {
        vec![
            ("websocket", self.websocket.addr),
            ("graphql", self.graphql.addr),
            ("soap", self.soap.addr),
            ("http2", self.http2.plain_addr),
            ("http2-tls", self.http2.tls_addr),
            ("grpc", self.grpc.plain_addr),
            ("grpc-tls", self.grpc.tls_addr),
        ]
    }

    /// Stops every server.
    pub fn stop(&self) {
        self.websocket.stop();
        self.graphql.stop();
        self.soap.stop();
        self.http2.stop();
        self.grpc.stop();
    }

    /// Like [`stop`](Self::stop), and returns once every listener and
    /// connection is closed.
    pub async fn shutdown(&self) {
        self.websocket.shutdown().await;
        self.graphql.shutdown().await;
        self.soap.shutdown().await;
        self.http2.shutdown().await;
        self.grpc.shutdown().await;
    }
}
