//! The adapter: the gateway's control plane.
//!
//! It loads API projects (from the artifacts folder, later also over the
//! management API), translates them with `gateway-xds` and serves the result
//! to Envoy over ADS. This crate holds the I/O: the gRPC and HTTPS servers,
//! the folder watcher and the wiring. The logic lives in `gateway-model`
//! (projects) and `gateway-xds` (translation, snapshots, stream state).

pub mod ads;
pub mod artifacts;
pub mod clock;
pub mod enforcer;
pub mod fsutil;
pub mod hub;
pub mod management;
pub mod metrics;
pub mod publisher;
pub mod status;
pub mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_config::Config;
use gateway_model::ParseOptions;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::hub::Hub;

/// Process options that are not part of `config.toml`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the ADS gRPC server listens.
    pub xds_address: SocketAddr,
}

/// Why the adapter stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// A port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The management API's key pair is unusable.
    #[error("[adapter.keystore]: {0}")]
    Tls(#[from] gateway_tls::TlsError),
    /// The revoked-token file is unusable.
    #[error("[adapter.revocation]: {0}")]
    Revocation(#[from] enforcer::revocation::RevocationError),
    /// The throttling file cannot be read.
    #[error("[adapter.throttling]: {0}")]
    Throttle(#[from] enforcer::throttle::ThrottleError),
    /// The gRPC server failed.
    #[error("xDS server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The API store cannot be opened.
    #[error("[adapter.store]: {0}")]
    Store(#[from] store::StoreError),
    /// The management API's token key cannot be used.
    #[error("{0}")]
    TokenKey(#[from] management::auth::KeyError),
    /// A background task the adapter cannot do without stopped.
    #[error("{0}; stopping so that the adapter is restarted in a known state")]
    TaskDied(#[from] gateway_runtime::TaskDied),
}

/// The management API's limits against idle and slow clients.
fn serve_limits(config: &Config) -> gateway_tls::ServeLimits {
    let c = &config.adapter.server.connections;
    let secs = |s: u32| std::time::Duration::from_secs(u64::from(s));
    gateway_tls::ServeLimits {
        max_connections: c.max_connections as usize,
        handshake_timeout: secs(c.tls_handshake_timeout_in_seconds),
        header_read_timeout: secs(c.request_headers_timeout_in_seconds),
        idle_timeout: secs(c.idle_timeout_in_seconds),
    }
}

/// The parse options the configuration and the environment imply.
pub fn parse_options(config: &Config, env: impl Iterator<Item = (String, String)>) -> ParseOptions {
    let r = &config.router;
    ParseOptions {
        max_retry_count: r.upstream.retry.max_retry_count,
        default_retry_status_codes: r.upstream.retry.status_codes.clone(),
        max_route_timeout_ms: r.upstream.timeouts.max_route_timeout_in_seconds.saturating_mul(1000),
        vhost_mapping: config.adapter.vhost_mapping.iter().map(|m| (m.environment.clone(), m.vhost.clone())).collect(),
        env: env.filter(|(k, _)| k.starts_with("api_")).collect::<BTreeMap<_, _>>(),
        known_tiers: gateway_model::policy::KnownTiers::default(),
    }
}

/// The folder of API projects: `<artifactsDirectory>/apis`.
pub fn apis_dir(config: &Config) -> PathBuf {
    Path::new(&config.adapter.artifacts_directory).join("apis")
}

/// The folder of throttling policies: `<artifactsDirectory>/throttling-policies`.
pub fn policies_dir(config: &Config) -> PathBuf {
    Path::new(&config.adapter.artifacts_directory).join("throttling-policies")
}

/// TLS of the xDS server: `[adapter.keystore]`, and client certificates
/// checked against `[adapter.truststore]` when required.
fn xds_tls(config: &Config) -> Result<tonic::transport::ServerTlsConfig, AdapterError> {
    let ks = &config.adapter.keystore;
    let client_ca =
        config.adapter.xds_server.client_certificate_required.then(|| Path::new(&config.adapter.truststore.location));
    Ok(gateway_tls::grpc::server(Path::new(&ks.cert_path), Path::new(&ks.key_path), client_ca)?)
}

/// Runs the adapter until `shutdown` completes.
pub async fn run(
    config: Config,
    opts: Options,
    parse_opts: ParseOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdapterError> {
    let config = Arc::new(config);
    let throttle_file = Some(Path::new(&config.adapter.throttling.file_path)).filter(|p| !p.as_os_str().is_empty());
    let catalogue = enforcer::throttle::Catalogue::open(throttle_file, parse_opts.known_tiers.clone())?;
    let hub = Hub::with_catalogue(Arc::clone(&config), catalogue);
    let revocation_file = Some(Path::new(&config.adapter.revocation.file_path)).filter(|p| !p.as_os_str().is_empty());
    hub.revocations.replace(enforcer::revocation::Store::open(revocation_file, clock::now_secs())?);
    let report = Arc::new(artifacts::Report::default());
    let parse_opts = Arc::new(parse_opts);
    let server = &config.adapter.server;
    let ttl = gateway_config::enforcer::go_duration(&server.token_ttl).unwrap_or(std::time::Duration::from_secs(3600));
    let rest = Arc::new(management::deploy::Rest {
        hub: Arc::clone(&hub),
        store: store::Store::open(
            Some(Path::new(&config.adapter.store.location)).filter(|p| !p.as_os_str().is_empty()),
        )?,
        parse_opts: Arc::clone(&parse_opts),
        auth: if server.enabled {
            Some(management::auth::Auth::new(server.users.clone(), Path::new(&server.token_private_key_path), ttl)?)
        } else {
            None
        },
        upload: server.upload.clone(),
        not_restored: parking_lot::Mutex::new(Vec::new()),
    });

    // Listen at once; streams wait (in `ads`) until the mounted projects are
    // applied, so an Envoy never receives a configuration without them and
    // connects without waiting out a reconnect back-off.
    let xds = TcpListener::bind(opts.xds_address)
        .await
        .map_err(|source| AdapterError::Bind { address: opts.xds_address.to_string(), source })?;
    info!(address = %xds.local_addr().map(|a| a.to_string()).unwrap_or_default(), "xDS (ADS) server listening");

    let mut tasks = gateway_runtime::Supervisor::new();
    if config.adapter.server.enabled {
        let address = format!("{}:{}", config.adapter.server.host, config.adapter.server.port);
        let tls = gateway_tls::server_config(
            Path::new(&config.adapter.keystore.cert_path),
            Path::new(&config.adapter.keystore.key_path),
        )?;
        let listener = TcpListener::bind(&address).await.map_err(|source| AdapterError::Bind { address, source })?;
        let app = management::router(Arc::clone(&hub), Arc::clone(&report), Arc::clone(&rest));
        tasks.spawn(
            "management API",
            gateway_tls::serve_tls(
                "management API",
                listener,
                tokio_rustls::TlsAcceptor::from(tls),
                app,
                serve_limits(&config),
            ),
        );
    }

    if config.adapter.metrics.enabled {
        let address = SocketAddr::from(([0, 0, 0, 0], config.adapter.metrics.port));
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AdapterError::Bind { address: address.to_string(), source })?;
        info!(%address, "metrics: GET /metrics");
        let h = Arc::clone(&hub);
        tasks.spawn_fallible("metrics", async move {
            metrics::serve(listener, h).await.map_err(|e| format!("metrics server: {e}"))
        });
    }

    let dir = apis_dir(&config);
    {
        let (h, r, d, o) = (Arc::clone(&hub), Arc::clone(&report), dir.clone(), Arc::clone(&parse_opts));
        let pdir = policies_dir(&config);
        let rest = Arc::clone(&rest);
        // Start-up loading, then the folder watch. If loading fails, the
        // task dies and the adapter stops: no Envoy ever gets a
        // configuration without the mounted and stored APIs.
        tasks.spawn_fallible("artifacts folder", async move {
            let (h2, r2, d2, o2) = (Arc::clone(&h), Arc::clone(&r), d.clone(), Arc::clone(&o));
            let policies_dir = pdir;
            // The folder, then what was deployed over the REST API, before any
            // Envoy gets a configuration; no REST change in between.
            // Throttling policies first: projects may name them as tiers.
            let (known, restored, policies) = tokio::task::spawn_blocking(move || {
                let _change = h2.changes().blocking_lock();
                gateway_runtime::failpoint("artifacts-load");
                let mut policies = artifacts::PolicyFolder::default();
                policies.load(&h2, &r2, &policies_dir);
                let known = artifacts::load_all(&h2, &r2, &d2, &o2);
                (known, management::deploy::restore(&rest), (policies, policies_dir))
            })
            .await
            .map_err(|e| format!("loading the artifacts folder failed: {e}"))?;
            match restored {
                Ok(n) => info!(apis = n, "restored the APIs deployed over the REST API"),
                Err(e) => return Err(format!("cannot read the API store: {e}")),
            }
            h.update(|s| s.gateway.set_ready());
            h.set_loaded();
            let (folder, policies_dir) = policies;
            tokio::join!(
                folder.watch(Arc::clone(&h), Arc::clone(&r), policies_dir),
                artifacts::watch(h, r, d, o, known)
            );
            Ok::<(), String>(())
        });
    }

    {
        let h = Arc::clone(&hub);
        tasks.spawn("revocation expiry", async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                gateway_runtime::failpoint("revocation-expiry");
                let h = Arc::clone(&h);
                // The file is written (and fsynced) off the async workers.
                if let Err(e) = tokio::task::spawn_blocking(move || h.revocations.expire()).await {
                    tracing::error!(error = %e, "expiring revocations failed");
                }
            }
        });
    }

    // On shutdown, end the long-lived ADS streams so the gRPC server can
    // finish; give it a few seconds, then stop regardless.
    let closing_hub = Arc::clone(&hub);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        closing_hub.close();
        let _ = stop_tx.send(());
    };
    // grpc.health.v1: SERVING once the start-up projects are applied (the
    // container health check, `adapter --health-check`, asks it).
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    {
        let h = Arc::clone(&hub);
        tasks.spawn("health", async move {
            h.loaded().await;
            health_reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
            std::future::pending::<()>().await;
        });
    }
    let mut builder = tonic::transport::Server::builder();
    if config.adapter.xds_server.tls_enabled {
        builder = builder.tls_config(xds_tls(&config)?)?;
        info!(mutual = config.adapter.xds_server.client_certificate_required, "xDS server uses TLS");
    }
    let server = builder
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(ads::Ads::service(Arc::clone(&hub)))
        .add_service(enforcer::service::Service::server(Arc::clone(&hub)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(xds), signal);
    let deadline = async {
        let _ = stop_rx.await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    };
    let result = tokio::select! {
        r = server => r.map_err(AdapterError::from),
        () = deadline => Ok(()),
        died = tasks.died() => Err(AdapterError::from(died)),
    };
    tasks.abort_all();
    info!("adapter stopped");
    result
}

/// `adapter --health-check`: asks this host's xDS server for its gRPC health
/// (SERVING once the start-up projects are applied), with the adapter's own
/// certificate when the server wants one. `server_name` must be a name of the
/// server certificate (`ADAPTER_SERVER_NAME`, as in Choreo Connect).
pub async fn health_check(config: &Config, port: u16, server_name: &str) -> Result<(), gateway_tls::grpc::ProbeError> {
    let x = &config.adapter;
    let tls = if x.xds_server.tls_enabled {
        let ca = gateway_tls::grpc::ca(Path::new(&x.truststore.location))?;
        let mut tls = tonic::transport::ClientTlsConfig::new().ca_certificate(ca).domain_name(server_name);
        if x.xds_server.client_certificate_required {
            tls = tls.identity(gateway_tls::grpc::identity(
                Path::new(&x.keystore.cert_path),
                Path::new(&x.keystore.key_path),
            )?);
        }
        Some(tls)
    } else {
        None
    };
    gateway_tls::grpc::probe(port, tls, std::time::Duration::from_secs(3)).await
}
