//! The enforcer: Envoy's ext_authz v3 service with Choreo Connect's security
//! semantics, the access-log service for analytics, and an HTTPS server for
//! `/testkey`, `/jwks` and the admin API.
//!
//! This crate is the service: the gRPC servers ([`authz`], [`analytics`]),
//! the discovery client ([`discovery`]: configuration, APIs and revoked
//! tokens from the adapter; until all three arrive every check fails), key
//! sets over HTTP ([`jwks_http`]) and the HTTPS server ([`admin`]). The
//! decisions themselves are made by `enforcer_core` (enforcer/core), which
//! has no gRPC or HTTP in it.

pub mod admin;
pub mod analytics;
pub mod authz;
pub mod discovery;
pub mod drain;
pub mod jwks_http;
pub mod metrics;
pub mod opa_http;
pub mod redis_store;
pub mod traces;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

/// Process options (command line and environment; not part of config.toml).
#[derive(Debug, Clone)]
pub struct Options {
    /// The label (gateway environment) served.
    pub label: String,
    /// This instance's name, reported to the adapter.
    pub instance: String,
    /// The adapter's xDS endpoint, e.g. `http://adapter:18000`.
    pub adapter_url: String,
    /// ext_authz gRPC (and gRPC health).
    pub authz_address: SocketAddr,
    /// Access-log gRPC.
    pub als_address: SocketAddr,
    /// HTTPS: /testkey, /jwks, admin API.
    pub admin_address: SocketAddr,
    /// Certificate of the HTTPS server.
    pub cert: PathBuf,
    /// Key of the HTTPS server.
    pub key: PathBuf,
    /// CA certificates (file or directory) that sign the adapter's and the router's certificates.
    pub trusted_ca: Option<PathBuf>,
    /// Connect to the adapter over TLS, presenting `cert`.
    pub adapter_tls: bool,
    /// Serve ext_authz and access logs over TLS, requiring client certificates signed by `trusted_ca`.
    pub grpc_tls: bool,
    /// Limits of the HTTPS server against idle and slow clients.
    pub https_limits: gateway_tls::ServeLimits,
    /// Prometheus metrics (`GET /metrics`); none to serve none.
    pub metrics_address: Option<SocketAddr>,
    /// How long to keep deciding after SIGTERM.
    pub drain: drain::DrainLimits,
}

/// Why the enforcer could not run.
#[derive(Debug, thiserror::Error)]
pub enum EnforcerError {
    /// A port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTPS key pair is unusable.
    #[error("HTTPS key pair: {0}")]
    Tls(#[from] gateway_tls::TlsError),
    /// The adapter URL is unusable.
    #[error("adapter URL {url:?}: {reason}")]
    AdapterUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// A background task the enforcer cannot do without stopped.
    #[error("{0}; stopping so that the enforcer is restarted in a known state")]
    TaskDied(#[from] gateway_runtime::TaskDied),
}

/// An accepted gRPC connection with Nagle's algorithm off. tonic sets
/// TCP_NODELAY only on connections it accepts itself, not on those handed
/// to `serve_with_incoming`: without it, a check answered in two TCP
/// segments waited for the router's delayed ACK, and one connection's
/// checks took 44 ms each (`make bench`, enforcer end to end at one
/// connection).
fn no_delay(s: tokio::net::TcpStream) -> tokio::net::TcpStream {
    if let Err(e) = s.set_nodelay(true) {
        tracing::warn!(error = %e, "cannot turn Nagle's algorithm off on a gRPC connection");
    }
    s
}

/// The gRPC channel to the adapter's discovery service at `url`, with mutual
/// TLS from `tls` (certificate, key, CA) when given; it connects on first
/// use (the enforcer service and the enforcer module both reach the adapter
/// through it). Call inside a tokio runtime's context.
pub fn adapter_channel(
    url: &str,
    tls: Option<(&std::path::Path, &std::path::Path, &std::path::Path)>,
) -> Result<tonic::transport::Channel, EnforcerError> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| EnforcerError::AdapterUrl { url: url.to_string(), reason: e.to_string() })?;
    if let Some((cert, key, ca)) = tls {
        endpoint = endpoint.tls_config(gateway_tls::grpc::client(cert, key, ca)?)?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect_lazy())
}

async fn bind(address: SocketAddr) -> Result<TcpListener, EnforcerError> {
    TcpListener::bind(address).await.map_err(|source| EnforcerError::Bind { address, source })
}

/// Runs the enforcer until `shutdown` completes.
pub async fn run(opts: Options, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), EnforcerError> {
    let engine = Arc::new(enforcer_core::Engine::new());
    opa_http::install();
    let (settings_tx, settings_rx) = tokio::sync::watch::channel(None);
    let http_fetch = jwks_http::HttpFetch::new();
    let fetch: Arc<dyn enforcer_core::keys::Fetch> = Arc::clone(&http_fetch) as _;
    let applier = Arc::new(discovery::Applier {
        engine: Arc::clone(&engine),
        fetch,
        settings_tx,
        limiter_settings: parking_lot::Mutex::new(None),
        role: enforcer_core::settings::Role::Service,
    });

    let trusted_ca = || -> Result<&std::path::Path, EnforcerError> {
        Ok(opts.trusted_ca.as_deref().ok_or_else(|| gateway_tls::TlsError::File {
            path: "TRUSTED_CA_CERTS_PATH".into(),
            reason: "not set, but TLS between components is on".into(),
        })?)
    };
    let adapter_tls = match opts.adapter_tls {
        true => Some((opts.cert.as_path(), opts.key.as_path(), trusted_ca()?)),
        false => None,
    };
    let channel = adapter_channel(&opts.adapter_url, adapter_tls)?;
    let grpc_tls = match opts.grpc_tls {
        true => Some(gateway_tls::grpc::server(&opts.cert, &opts.key, Some(trusted_ca()?))?),
        false => None,
    };
    let client =
        discovery::Client { channel: channel.clone(), label: opts.label.clone(), instance: opts.instance.clone() };
    let mut tasks = gateway_runtime::Supervisor::new();
    for (name, kind) in discovery::STREAMS {
        tasks.spawn(name, discovery::run_stream(client.clone(), kind, Arc::clone(&applier)));
    }

    let authz = bind(opts.authz_address).await?;
    let als = bind(opts.als_address).await?;
    let admin = bind(opts.admin_address).await?;
    info!(
        authz = %opts.authz_address, access_logs = %opts.als_address, https = %opts.admin_address,
        adapter = %opts.adapter_url, label = %opts.label, grpc_tls = opts.grpc_tls, adapter_tls = opts.adapter_tls,
        "enforcer listening"
    );

    let tls = gateway_tls::server_config(&opts.cert, &opts.key)?;
    let revoker: admin::Revoker = {
        let channel = channel.clone();
        Arc::new(move |tokens| {
            let channel = channel.clone();
            Box::pin(async move {
                let mut c =
                    gateway_proto::service::enforcer_discovery_service_client::EnforcerDiscoveryServiceClient::new(
                        channel,
                    );
                c.revoke_tokens(gateway_proto::service::RevokeRequest { tokens }).await.map(|_| ())
            })
        })
    };
    let app = axum::Router::new()
        .fallback(admin::handle)
        .with_state(admin::AdminState { engine: Arc::clone(&engine), revoker });
    tasks.spawn(
        "HTTPS server",
        gateway_tls::serve_tls(
            "enforcer HTTPS (testkey, jwks, admin)",
            admin,
            tokio_rustls::TlsAcceptor::from(tls),
            app,
            opts.https_limits,
        ),
    );

    let (tracer, trace_task) = traces::Tracer::start(settings_rx.clone(), &opts.label);
    tasks.spawn("trace export", trace_task);
    let (als_service, counters, analytics_task) = analytics::Als::start(settings_rx);
    let metrics = Arc::new(metrics::Metrics::new(counters, Some(Arc::clone(&engine))));
    http_fetch.count_in(metrics.jwks_fetches.clone());
    if let Some(address) = opts.metrics_address {
        let listener = bind(address).await?;
        info!(%address, "metrics: GET /metrics");
        let m = Arc::clone(&metrics);
        tasks.spawn_fallible("metrics server", async move {
            gateway_runtime::metrics::serve(listener, Arc::new(move || m.render()))
                .await
                .map_err(|e| format!("metrics server: {e}"))
        });
    }
    tasks.spawn("analytics", analytics_task);
    let mut als_builder = tonic::transport::Server::builder();
    if let Some(tls) = &grpc_tls {
        als_builder = als_builder.tls_config(tls.clone())?;
    }
    let als_server = {
        use futures::StreamExt;
        als_builder.add_service(als_service).serve_with_incoming(TcpListenerStream::new(als).map(|c| c.map(no_delay)))
    };
    tasks.spawn_fallible("access-log server", als_server);

    type AuthzServer =
        envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer<authz::Authz>;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AuthzServer>().await;
    // SIGTERM: NOT_SERVING at once, deciding until the router is gone or the
    // checks stop (drain.rs), which counts the ext_authz connections.
    let activity = Arc::new(drain::Activity::default());
    let counted = {
        use futures::StreamExt;
        let activity = Arc::clone(&activity);
        TcpListenerStream::new(authz).map(move |c| c.map(|s| drain::Counted::new(no_delay(s), Arc::clone(&activity))))
    };
    let drained = {
        let (activity, limits) = (Arc::clone(&activity), opts.drain);
        async move {
            shutdown.await;
            health_reporter.set_not_serving::<AuthzServer>().await;
            health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            info!(
                idle_s = limits.idle.as_secs_f64(),
                max_s = limits.max.as_secs_f64(),
                "draining: health NOT_SERVING; deciding until checks stop"
            );
            drain::quiet(&activity, limits).await;
            info!("drained: closing the ext_authz server");
        }
    };
    let mut authz_builder = tonic::transport::Server::builder();
    if let Some(tls) = grpc_tls {
        authz_builder = authz_builder.tls_config(tls)?;
    }
    let server = authz_builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(authz::Authz::server(Arc::clone(&engine), metrics, activity, Some(tracer), 64 * 1024 * 1024))
        .serve_with_incoming_shutdown(counted, drained);
    let result = tokio::select! {
        r = server => r.map_err(EnforcerError::from),
        died = tasks.died() => Err(EnforcerError::from(died)),
    };
    tasks.abort_all();
    info!("enforcer stopped");
    result
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn accepted_grpc_connections_do_not_wait_to_coalesce_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = tokio::net::TcpStream::connect(address).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        assert!(!accepted.nodelay().expect("option"), "the OS default is Nagle on");
        assert!(super::no_delay(accepted).nodelay().expect("option"));
    }
}
