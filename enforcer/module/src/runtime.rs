//! The module's background: one thread with a tokio runtime, which holds
//! the enforcer's engine and keeps it fed from the adapter, exactly as the
//! enforcer service does (its four discovery streams, enforcer/src/discovery.rs).
//!
//! Requests are decided in Envoy's worker threads (filter.rs); only what
//! waits on the network (the adapter's streams, JWKS fetches, Redis) runs
//! here, so a worker never blocks.
//!
//! Where the adapter is, and how to reach it, comes from the router's own
//! environment: the variables its bootstrap is rendered from
//! (scripts/render-bootstrap.sh): `ROUTER_LABEL`, `ADAPTER_HOST`,
//! `ADAPTER_PORT`, `COMPONENT_TLS`, `ROUTER_PUBLIC_CERT_PATH`,
//! `ROUTER_PRIVATE_KEY_PATH`, `ADAPTER_CA_CERT_PATH`, `HOSTNAME`. The module
//! reaches the adapter as the router does, with the router's certificate.
//!
//! The module serves the enforcer's metrics (enforcer/src/metrics.rs: its
//! checks, token cache, key-set fetches and shared throttling) on
//! `GET /metrics` of `ENFORCER_MODULE_METRICS_ADDRESS` (default
//! `0.0.0.0:19087`: next to the enforcer service's 19086, which a pod that
//! runs both containers shares; empty: not served).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use enforcer::discovery;
use enforcer::metrics::Metrics;
use enforcer_core::Engine;

/// Why the module cannot run.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting from the environment is unusable.
    #[error("{key}={value:?}: {reason}")]
    Setting {
        /// The variable.
        key: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The channel to the adapter cannot be made (its URL, the TLS material).
    #[error("the channel to the adapter: {0}")]
    Adapter(#[from] enforcer::EnforcerError),
    /// The runtime could not start.
    #[error("runtime: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the adapter is and who the module is, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The label (gateway environment) of the router.
    pub label: String,
    /// The name reported to the adapter.
    pub instance: String,
    /// `http(s)://host:port` of the adapter's gRPC server.
    pub adapter_url: String,
    /// Client certificate, key and CA for mutual TLS; none without TLS.
    pub tls: Option<(String, String, String)>,
    /// Where the enforcer's metrics are served; none: not served.
    pub metrics: Option<SocketAddr>,
}

impl Settings {
    /// Reads the settings with `var` (the process environment in Envoy).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Settings, StartError> {
        let get = |k: &str, default: &str| var(k).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string());
        let port = get("ADAPTER_PORT", "18000");
        if port.parse::<u16>().is_err() {
            return Err(StartError::Setting { key: "ADAPTER_PORT", value: port, reason: "not a port number".into() });
        }
        let tls = match get("COMPONENT_TLS", "true").as_str() {
            "true" => Some((
                get("ROUTER_PUBLIC_CERT_PATH", "/home/wso2/security/keystore/mg.pem"),
                get("ROUTER_PRIVATE_KEY_PATH", "/home/wso2/security/keystore/mg.key"),
                get("ADAPTER_CA_CERT_PATH", "/home/wso2/security/truststore/mg.pem"),
            )),
            "false" => None,
            other => {
                return Err(StartError::Setting {
                    key: "COMPONENT_TLS",
                    value: other.to_string(),
                    reason: "must be true or false".into(),
                });
            }
        };
        let metrics = match var("ENFORCER_MODULE_METRICS_ADDRESS") {
            Some(v) if v.is_empty() => None,
            v => {
                let v = v.unwrap_or_else(|| DEFAULT_METRICS_ADDRESS.to_string());
                Some(v.parse::<SocketAddr>().map_err(|e| StartError::Setting {
                    key: "ENFORCER_MODULE_METRICS_ADDRESS",
                    value: v.clone(),
                    reason: format!("not an address (host:port): {e}"),
                })?)
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Settings {
            label: get("ROUTER_LABEL", "Default"),
            instance: format!("{}-module", get("HOSTNAME", "router")),
            adapter_url: format!("{scheme}://{}:{port}", get("ADAPTER_HOST", "127.0.0.1")),
            tls,
            metrics,
        })
    }
}

/// Next to the enforcer service's own metrics port (19086).
const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:19087";

/// The engine and the runtime that feeds it.
pub struct Shared {
    /// The enforcer's engine (decides in Envoy's workers).
    pub engine: Arc<Engine>,
    /// The runtime: network waits (key sets, Redis, the adapter) run on its
    /// worker thread. Held here, in the module's static, it lives as long
    /// as Envoy (which unloads modules only at exit).
    pub runtime: tokio::runtime::Runtime,
    /// The enforcer's metrics, counted for the module's decisions.
    pub metrics: Arc<Metrics>,
}

static SHARED: OnceLock<Result<Arc<Shared>, String>> = OnceLock::new();

/// The module's engine and runtime, started on first use (Envoy's main
/// thread, when the first filter configuration arrives). Every later call
/// returns the same, or the same error.
pub fn shared() -> Result<Arc<Shared>, String> {
    SHARED
        .get_or_init(|| Settings::from_env(|k| std::env::var(k).ok()).and_then(start).map_err(|e| e.to_string()))
        .clone()
}

fn start(s: Settings) -> Result<Arc<Shared>, StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gateway-module")
        .enable_all()
        .build()?;
    let handle = runtime.handle();
    let engine = Arc::new(Engine::new());
    enforcer::opa_http::install();
    let (settings_tx, _settings_rx) = tokio::sync::watch::channel(None);
    let metrics = Arc::new(Metrics::new(Arc::default(), Some(Arc::clone(&engine))));
    let http_fetch = enforcer::jwks_http::HttpFetch::new();
    http_fetch.count_in(metrics.jwks_fetches.clone());
    let fetch: Arc<dyn enforcer_core::keys::Fetch> = http_fetch;
    let applier = Arc::new(discovery::Applier {
        engine: Arc::clone(&engine),
        fetch,
        settings_tx,
        limiter_settings: parking_lot::Mutex::new(None),
        role: enforcer_core::settings::Role::Decisions,
    });
    let channel = {
        let _in_runtime = handle.enter();
        let tls = s.tls.as_ref().map(|(c, k, a)| (Path::new(c), Path::new(k), Path::new(a)));
        enforcer::adapter_channel(&s.adapter_url, tls)?
    };
    let client = discovery::Client { channel, label: s.label.clone(), instance: s.instance.clone() };
    for (_, kind) in discovery::STREAMS {
        handle.spawn(discovery::run_stream(client.clone(), kind, Arc::clone(&applier)));
    }
    if let Some(address) = s.metrics {
        // A port that cannot be had costs the metrics, not the decisions.
        match std::net::TcpListener::bind(address).and_then(|l| {
            l.set_nonblocking(true)?;
            let _in_runtime = handle.enter();
            tokio::net::TcpListener::from_std(l)
        }) {
            Ok(listener) => {
                let m = Arc::clone(&metrics);
                handle.spawn(gateway_runtime::metrics::serve(listener, Arc::new(move || m.render())));
            }
            Err(e) => crate::abi::log_error(&format!("the enforcer's metrics are not served on {address}: {e}")),
        }
    }
    Ok(Arc::new(Shared { engine, runtime, metrics }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_environment_says_where_the_adapter_is() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let s = Settings::from_env(env(&[])).expect("defaults");
        assert_eq!(s.adapter_url, "https://127.0.0.1:18000");
        assert_eq!(s.label, "Default");
        assert_eq!(s.instance, "router-module");
        assert!(s.tls.is_some());
        let s = Settings::from_env(env(&[
            ("ROUTER_LABEL", "Prod"),
            ("ADAPTER_HOST", "adapter"),
            ("ADAPTER_PORT", "18001"),
            ("COMPONENT_TLS", "false"),
            ("HOSTNAME", "r1"),
        ]))
        .expect("settings");
        assert_eq!(
            s,
            Settings {
                label: "Prod".into(),
                instance: "r1-module".into(),
                adapter_url: "http://adapter:18001".into(),
                tls: None,
                metrics: Some(SocketAddr::from(([0, 0, 0, 0], 19087))),
            }
        );
        let e = Settings::from_env(env(&[("ADAPTER_PORT", "x")])).expect_err("bad port");
        assert_eq!(e.to_string(), "ADAPTER_PORT=\"x\": not a port number");
        let s = Settings::from_env(env(&[("ENFORCER_MODULE_METRICS_ADDRESS", "")])).expect("no metrics");
        assert_eq!(s.metrics, None);
        let e = Settings::from_env(env(&[("ENFORCER_MODULE_METRICS_ADDRESS", "19086")])).expect_err("bad address");
        assert!(e.to_string().starts_with("ENFORCER_MODULE_METRICS_ADDRESS=\"19086\": not an address"), "{e}");
        let e = Settings::from_env(env(&[("COMPONENT_TLS", "yes")])).expect_err("bad flag");
        assert_eq!(e.to_string(), "COMPONENT_TLS=\"yes\": must be true or false");
    }
}
