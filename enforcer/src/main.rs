//! The enforcer binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

// mimalloc: the enforcer allocates many small, short-lived objects per check
// (headers, metadata) and keeps many small ones (cached tokens). glibc's
// malloc held 35% more memory for the same 100,000 cached tokens (127 vs 94 MB,
// enforcer/core/examples/cache_mem.rs) and returns little of it. Built with
// mimalloc's `no_thp` (Cargo.toml): asking for transparent huge pages made
// the heap's RSS grow in 2 MiB steps, 68 MB against 43 MB for the enforcer
// memory benchmark (1,000 APIs, 100,000 tokens; ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway's enforcer: ext_authz, access logs and the admin API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Ask the running enforcer on this host for its gRPC health (ext_authz
    /// port) and exit 0 when it serves: the container health check.
    #[arg(long)]
    health_check: bool,

    /// The name the enforcer's certificate carries, for --health-check.
    #[arg(long, env = "ENFORCER_SERVER_NAME", default_value = "enforcer")]
    server_name: String,

    /// Gateway environment (label) whose APIs this enforcer serves.
    #[arg(long, env = "ENFORCER_LABEL", default_value = "Default")]
    label: String,
    /// Adapter host (xDS).
    #[arg(long, env = "ADAPTER_HOST", default_value = "127.0.0.1")]
    adapter_host: String,
    /// Adapter xDS port.
    #[arg(long, env = "ADAPTER_XDS_PORT", default_value_t = 18000)]
    adapter_xds_port: u16,
    /// ext_authz gRPC address.
    #[arg(long, env = "ENFORCER_AUTHZ_ADDRESS", default_value = "0.0.0.0:8081")]
    authz_address: SocketAddr,
    /// Access-log (analytics) gRPC address.
    #[arg(long, env = "ENFORCER_ALS_ADDRESS", default_value = "0.0.0.0:18090")]
    als_address: SocketAddr,
    /// HTTPS address of /testkey, /jwks and the admin API.
    #[arg(long, env = "ENFORCER_ADMIN_ADDRESS", default_value = "0.0.0.0:9001")]
    admin_address: SocketAddr,
    /// PEM certificate of the HTTPS server.
    #[arg(long, env = "ENFORCER_PUBLIC_CERT_PATH", default_value = "/home/wso2/security/keystore/mg.pem")]
    cert: PathBuf,
    /// PEM private key of the HTTPS server.
    #[arg(long, env = "ENFORCER_PRIVATE_KEY_PATH", default_value = "/home/wso2/security/keystore/mg.key")]
    key: PathBuf,
    /// CA certificates (file, or directory of .pem/.crt) that sign the adapter's and the router's certificates.
    #[arg(long, env = "TRUSTED_CA_CERTS_PATH")]
    trusted_ca: Option<PathBuf>,
    /// Connect to the adapter over (mutual) TLS.
    #[arg(long, env = "ADAPTER_TLS", default_value_t = true, action = clap::ArgAction::Set)]
    adapter_tls: bool,
    /// Serve ext_authz and access logs over mutual TLS.
    #[arg(long, env = "ENFORCER_GRPC_TLS", default_value_t = true, action = clap::ArgAction::Set)]
    grpc_tls: bool,
    /// Log format, text or json, instead of log_config.toml's LogFormat
    /// (LOG_CONFIG_PATH). Levels: its logLevel and [[pkg]], or RUST_LOG.
    #[arg(long, env = "LOG_FORMAT")]
    log_format: Option<String>,
    /// HTTPS server: connections served at once (more wait until one ends).
    #[arg(long, env = "ENFORCER_HTTPS_MAX_CONNECTIONS", default_value_t = 1024)]
    https_max_connections: usize,
    /// HTTPS server: seconds for a client to complete the TLS handshake.
    #[arg(long, env = "ENFORCER_HTTPS_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    https_handshake_timeout: u64,
    /// HTTPS server: seconds for a client to send a request's headers.
    #[arg(long, env = "ENFORCER_HTTPS_HEADERS_TIMEOUT", default_value_t = 10)]
    https_headers_timeout: u64,
    /// HTTPS server: seconds after which an idle connection is closed.
    #[arg(long, env = "ENFORCER_HTTPS_IDLE_TIMEOUT", default_value_t = 60)]
    https_idle_timeout: u64,
    /// Prometheus metrics address (`GET /metrics`); `off` serves none.
    #[arg(long, env = "ENFORCER_METRICS_ADDRESS", default_value = "0.0.0.0:19086")]
    metrics_address: String,
    /// After SIGTERM: stop once no check arrived for this many seconds (or at
    /// once when no router is connected).
    #[arg(long, env = "ENFORCER_DRAIN_IDLE_S", default_value_t = 5.0)]
    drain_idle_s: f64,
    /// After SIGTERM: stop after this many seconds at the latest (above the
    /// router's DRAIN_TIME_S, so a router draining beside it keeps its checks).
    #[arg(long, env = "ENFORCER_DRAIN_TIMEOUT_S", default_value_t = 30.0)]
    drain_timeout_s: f64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let default_log_config = std::path::Path::new("/home/wso2/conf/log_config.toml");
    if let Err(e) = gateway_runtime::logging::init_from_file(default_log_config, args.log_format.as_deref()) {
        eprintln!("enforcer: {e}");
        return std::process::ExitCode::from(64);
    }
    let metrics_address = match args.metrics_address.trim() {
        "" | "off" => None,
        a => match a.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("enforcer: ENFORCER_METRICS_ADDRESS={a}: not an address (host:port, or off): {e}");
                return std::process::ExitCode::from(64);
            }
        },
    };
    let seconds = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("enforcer: {name}={v}: expected seconds (0 or more)"))
        }
    };
    let drain = match (
        seconds("ENFORCER_DRAIN_IDLE_S", args.drain_idle_s),
        seconds("ENFORCER_DRAIN_TIMEOUT_S", args.drain_timeout_s),
    ) {
        (Ok(idle), Ok(max)) => enforcer::drain::DrainLimits { idle, max },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(64);
        }
    };
    let opts = enforcer::Options {
        label: args.label,
        instance: std::env::var("HOSTNAME").unwrap_or_default(),
        adapter_url: format!(
            "{}://{}:{}",
            if args.adapter_tls { "https" } else { "http" },
            args.adapter_host,
            args.adapter_xds_port
        ),
        authz_address: args.authz_address,
        als_address: args.als_address,
        admin_address: args.admin_address,
        cert: args.cert,
        key: args.key,
        trusted_ca: args.trusted_ca,
        adapter_tls: args.adapter_tls,
        grpc_tls: args.grpc_tls,
        https_limits: gateway_tls::ServeLimits {
            max_connections: args.https_max_connections.max(1),
            handshake_timeout: Duration::from_secs(args.https_handshake_timeout.max(1)),
            header_read_timeout: Duration::from_secs(args.https_headers_timeout.max(1)),
            idle_timeout: Duration::from_secs(args.https_idle_timeout.max(1)),
        },
        metrics_address,
        drain,
    };
    if args.health_check {
        return health_check(&opts, &args.server_name);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("enforcer: cannot start the runtime: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    match runtime.block_on(enforcer::run(opts, gateway_runtime::shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "enforcer failed");
            eprintln!("enforcer: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `--health-check`: gRPC health of the ext_authz server on this host, over
/// mutual TLS with the enforcer's own certificate when its servers use TLS.
fn health_check(opts: &enforcer::Options, server_name: &str) -> std::process::ExitCode {
    let probe = async {
        let tls = match (opts.grpc_tls, &opts.trusted_ca) {
            (false, _) => None,
            (true, Some(ca)) => Some(gateway_tls::grpc::client(&opts.cert, &opts.key, ca)?.domain_name(server_name)),
            (true, None) => {
                return Err(gateway_tls::grpc::ProbeError::Tls(gateway_tls::TlsError::File {
                    path: "TRUSTED_CA_CERTS_PATH".into(),
                    reason: "not set, but TLS between components is on".into(),
                }));
            }
        };
        gateway_tls::grpc::probe(opts.authz_address.port(), tls, Duration::from_secs(3)).await
    };
    let result = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(probe));
    match result {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("unhealthy: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
