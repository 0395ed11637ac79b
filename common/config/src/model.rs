//! The typed configuration: one struct per `config.toml` table, with Choreo
//! Connect's key names (camelCase, matched case-insensitively by the loader)
//! and Choreo Connect's defaults.
//!
//! Every field has a default, so an empty file is a valid configuration. The
//! loader uses the serialised defaults as the schema (known keys and their
//! types), so a field added here is automatically known to `CC_*` overrides and
//! to unknown-key warnings.

use serde::{Deserialize, Serialize};

pub use crate::defaults::{DEFAULT_ENVIRONMENT, DEFAULT_KEYSTORE_CERT, DEFAULT_KEYSTORE_KEY, DEFAULT_VHOST};

/// The whole `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    /// `[adapter]`
    pub adapter: Adapter,
    /// `[router]` (Choreo Connect's Go struct is called `Envoy`).
    pub router: Router,
    /// `[enforcer]`: shipped to the enforcer.
    pub enforcer: crate::enforcer::Enforcer,
    /// `[analytics]`: shipped to the enforcer; also configures Envoy's access logs.
    pub analytics: crate::enforcer::Analytics,
    /// `[tracing]`: shipped to the enforcer.
    pub tracing: crate::enforcer::Tracing,
    /// `[controlPlane]`: API Manager as control plane (not supported yet; parsed so it is not warned about).
    pub control_plane: toml::Table,
    /// `[globalAdapter]`: not supported yet; parsed so it is not warned about.
    pub global_adapter: toml::Table,
    /// The router's access log: `[accessLogs]` of `log_config.toml` (a
    /// separate file, as in Choreo Connect), set by the adapter after loading.
    #[serde(skip)]
    pub access_logs: crate::log::AccessLogs,
}

/// `[adapter]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Adapter {
    /// Folder whose `apis/` subfolder holds API projects deployed at start-up
    /// and watched while running.
    pub artifacts_directory: String,
    /// Answer SOAP requests' router errors with SOAP faults.
    #[serde(rename = "soapErrorInXMLEnabled")]
    pub soap_error_in_xml_enabled: bool,
    /// `[adapter.server]`: the management REST API.
    pub server: AdapterServer,
    /// `[[adapter.vhostMapping]]`: gateway environment → default vhost.
    pub vhost_mapping: Vec<VhostMapping>,
    /// `[adapter.keystore]`: the adapter's TLS certificate and key.
    pub keystore: Keystore,
    /// `[adapter.truststore]`
    pub truststore: Truststore,
    /// `[adapter.revocation]`: revoked tokens (not in Choreo Connect).
    pub revocation: Revocation,
    /// `[adapter.throttling]`: throttling policies and blocking conditions deployed over the
    /// management API (not in Choreo Connect, where API Manager holds them).
    pub throttling: AdapterThrottling,
    /// `[adapter.xdsServer]`: TLS of the xDS server (not in Choreo Connect, where it is always mutual TLS).
    pub xds_server: XdsServer,
    /// `[adapter.store]`: where projects deployed over the REST API are kept (not in Choreo Connect,
    /// which loses them on restart).
    pub store: Store,
    /// `[adapter.metrics]`: Prometheus metrics on `GET /metrics`.
    pub metrics: AdapterMetrics,
}

/// `[adapter.metrics]`. Choreo Connect's keys; here on by default (a
/// scrape endpoint costs nothing until scraped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdapterMetrics {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// `prometheus`, the only type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Port of the metrics server (all interfaces).
    pub port: u16,
    /// Choreo Connect's sampling interval of its OS gauges; metrics here are
    /// current at every scrape, so it is accepted and not used.
    pub collection_interval: u32,
}

impl Default for AdapterMetrics {
    fn default() -> Self {
        AdapterMetrics { enabled: true, kind: "prometheus".into(), port: 19085, collection_interval: 5 }
    }
}

/// `[adapter.store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Store {
    /// Folder of the deployed projects; empty keeps them in memory only.
    pub location: String,
}

impl Default for Store {
    fn default() -> Self {
        Store { location: "/home/wso2/data/apis".into() }
    }
}

/// `[adapter.xdsServer]`: the gRPC server Envoy and the enforcer connect to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct XdsServer {
    /// Serve xDS over TLS with `[adapter.keystore]`.
    pub tls_enabled: bool,
    /// Require client certificates signed by a CA of `[adapter.truststore]`
    /// (mutual TLS, as in Choreo Connect).
    pub client_certificate_required: bool,
}

impl Default for XdsServer {
    fn default() -> Self {
        XdsServer { tls_enabled: true, client_certificate_required: true }
    }
}

/// `[adapter.revocation]`: tokens revoked through the management APIs are
/// kept in this file, so they stay revoked across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Revocation {
    /// JSON file of revoked tokens; empty keeps them in memory only.
    pub file_path: String,
}

/// `[adapter.throttling]`: throttling policies and blocking conditions
/// deployed through the management API are kept in this file, so they
/// survive restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdapterThrottling {
    /// JSON file of deployed policies and blocking conditions; empty keeps them in memory only.
    pub file_path: String,
}

impl Default for AdapterThrottling {
    fn default() -> Self {
        AdapterThrottling { file_path: "/home/wso2/data/throttling.json".into() }
    }
}

impl Default for Revocation {
    fn default() -> Self {
        Revocation { file_path: "/home/wso2/data/revoked-tokens.json".into() }
    }
}

impl Default for Adapter {
    fn default() -> Self {
        Adapter {
            artifacts_directory: "/home/wso2/artifacts".into(),
            soap_error_in_xml_enabled: false,
            server: AdapterServer::default(),
            vhost_mapping: vec![VhostMapping { environment: DEFAULT_ENVIRONMENT.into(), vhost: DEFAULT_VHOST.into() }],
            keystore: Keystore::default(),
            truststore: Truststore::default(),
            revocation: Revocation::default(),
            throttling: AdapterThrottling::default(),
            store: Store::default(),
            xds_server: XdsServer::default(),
            metrics: AdapterMetrics::default(),
        }
    }
}

/// `[adapter.server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdapterServer {
    /// Serve the management REST API.
    pub enabled: bool,
    /// Interface the REST API listens on.
    pub host: String,
    /// Port of the REST API. A string in Choreo Connect's format.
    pub port: String,
    /// Lifetime of tokens from `/oauth2/token`, a Go duration such as `1h`.
    #[serde(rename = "tokenTTL")]
    pub token_ttl: String,
    /// PKCS#8 key that signs the REST API's tokens.
    pub token_private_key_path: String,
    /// `[[adapter.server.users]]`
    pub users: Vec<User>,
    /// `[adapter.server.upload]`: limits of `POST /apis` (not in Choreo Connect).
    pub upload: Upload,
    /// `[adapter.server.connections]`: limits against idle and slow clients
    /// (not in Choreo Connect).
    pub connections: Connections,
}

/// `[adapter.server.connections]`: what the management API allows a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Connections {
    /// Connections served at once; more wait until one ends.
    pub max_connections: u32,
    /// Time for a client to complete the TLS handshake, seconds.
    pub tls_handshake_timeout_in_seconds: u32,
    /// Time for a client to send a request's headers, seconds.
    pub request_headers_timeout_in_seconds: u32,
    /// A connection idle this long is closed, seconds.
    pub idle_timeout_in_seconds: u32,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max_connections: 1024,
            tls_handshake_timeout_in_seconds: 10,
            request_headers_timeout_in_seconds: 10,
            idle_timeout_in_seconds: 60,
        }
    }
}

/// `[adapter.server.upload]`: what `POST /apis` accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Upload {
    /// Largest zip accepted, bytes.
    pub max_zip_bytes: u64,
    /// Largest total uncompressed size, bytes.
    pub max_uncompressed_bytes: u64,
    /// Most entries in the zip.
    pub max_entries: u64,
    /// Highest uncompressed/compressed ratio of an entry (zip bombs).
    pub max_compression_ratio: u64,
}

impl Default for Upload {
    fn default() -> Self {
        Upload {
            max_zip_bytes: 50 * 1024 * 1024,
            max_uncompressed_bytes: 200 * 1024 * 1024,
            max_entries: 5_000,
            max_compression_ratio: 200,
        }
    }
}

impl Default for AdapterServer {
    fn default() -> Self {
        AdapterServer {
            enabled: true,
            host: "0.0.0.0".into(),
            port: "9843".into(),
            token_ttl: "1h".into(),
            token_private_key_path: DEFAULT_KEYSTORE_KEY.into(),
            users: vec![User { username: "admin".into(), password: "$env{adapter_admin_pwd}".into() }],
            upload: Upload::default(),
            connections: Connections::default(),
        }
    }
}

/// A user of a management API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct User {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// One `[[adapter.vhostMapping]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct VhostMapping {
    /// Gateway environment (label), e.g. `Default`.
    pub environment: String,
    /// The vhost APIs deployed to that environment get when they name none.
    pub vhost: String,
}

/// A PEM certificate and key pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Keystore {
    /// PEM certificate (chain).
    pub cert_path: String,
    /// PEM private key.
    pub key_path: String,
}

impl Default for Keystore {
    fn default() -> Self {
        Keystore { cert_path: DEFAULT_KEYSTORE_CERT.into(), key_path: DEFAULT_KEYSTORE_KEY.into() }
    }
}

/// `[adapter.truststore]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Truststore {
    /// Folder of trusted PEM certificates.
    pub location: String,
}

impl Default for Truststore {
    fn default() -> Self {
        Truststore { location: "/home/wso2/security/truststore".into() }
    }
}

/// `[router]`: what the adapter generates for Envoy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Router {
    /// Interface of the HTTP listener.
    pub listener_host: String,
    /// Port of the HTTP listener.
    pub listener_port: u16,
    /// Interface of the HTTPS listener.
    pub secured_listener_host: String,
    /// Port of the HTTPS listener.
    pub secured_listener_port: u16,
    /// Downstream codec: `AUTO`, `HTTP1`, `HTTP2` (or `HTTP3`, not supported).
    pub listener_codec_type: String,
    /// Upstream connect timeout.
    pub cluster_timeout_in_seconds: u32,
    /// Timeout of one ext_authz check.
    pub enforcer_response_timeout_in_seconds: u32,
    /// Where the enforcer's decisions are made: `extAuthz` (default: the
    /// router asks the enforcer service over gRPC; the enforcer scales apart
    /// from the routers) or `module` (inside each router, by the enforcer's
    /// dynamic module `libgateway_module.so`, which the router's Envoy loads;
    /// no hop per request; the enforcer service still serves analytics,
    /// `/testkey`, `/jwks` and its admin API). Not a Choreo Connect key.
    pub enforcer_mode: String,
    /// The vhost that carries `/health`, `/ready`, `/testkey` and `/.wellknown/jwks`.
    pub system_host: String,
    /// The client's address is the connection's peer (Envoy's
    /// `use_remote_address`), which Envoy appends to `x-forwarded-for`.
    /// `false` takes it from `x-forwarded-for` instead, which a client
    /// talking to the router directly can write itself: only for a router
    /// behind a proxy that sets the header. Default `true` (Choreo Connect's
    /// is `false`): every IP-based decision (API-key IP restrictions, later
    /// blocking conditions and rate limits) uses this address.
    pub use_remote_address: bool,
    /// Proxies in front of the router that append to `x-forwarded-for` and
    /// are trusted (Envoy's `xff_num_trusted_hops`): the client's address is
    /// that many entries from the right.
    pub xff_num_trusted_hops: u32,
    /// Soft limit on a connection's read and write buffers.
    pub per_connection_buffer_limit_bytes: u32,
    /// `[router.keystore]`: the HTTPS listener's certificate, as files on the router.
    pub keystore: Keystore,
    /// `[router.cors]`: the CORS policy of APIs that declare none.
    pub cors: Cors,
    /// `[router.upstream.*]`
    pub upstream: Upstream,
    /// `[router.downstream.*]`
    pub downstream: Downstream,
    /// `[router.connectionTimeout]`
    pub connection_timeout: ConnectionTimeout,
    /// `[router.payloadPassingToEnforcer]`
    pub payload_passing_to_enforcer: PayloadPassing,
}

impl Router {
    /// True when the enforcer's decisions are made in the router's Envoy
    /// (`enforcerMode = "module"`).
    pub fn enforcer_in_module(&self) -> bool {
        self.enforcer_mode.eq_ignore_ascii_case("module")
    }
}

impl Default for Router {
    fn default() -> Self {
        Router {
            listener_host: "0.0.0.0".into(),
            listener_port: 9090,
            secured_listener_host: "0.0.0.0".into(),
            secured_listener_port: 9095,
            listener_codec_type: "AUTO".into(),
            cluster_timeout_in_seconds: 20,
            enforcer_response_timeout_in_seconds: 20,
            enforcer_mode: "extAuthz".into(),
            system_host: "localhost".into(),
            use_remote_address: true,
            xff_num_trusted_hops: 0,
            per_connection_buffer_limit_bytes: 1_048_576,
            keystore: Keystore::default(),
            cors: Cors::default(),
            upstream: Upstream::default(),
            downstream: Downstream::default(),
            connection_timeout: ConnectionTimeout::default(),
            payload_passing_to_enforcer: PayloadPassing::default(),
        }
    }
}

/// `[router.cors]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cors {
    /// Apply this policy to APIs without `x-wso2-cors`.
    pub enabled: bool,
    /// Allowed origins; `*` allows any.
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Methods`
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`
    pub allow_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials`
    pub allow_credentials: bool,
    /// `Access-Control-Expose-Headers`
    pub expose_headers: Vec<String>,
}

impl Default for Cors {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Cors {
            enabled: true,
            allow_origins: s(&["*"]),
            allow_methods: s(&["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]),
            allow_headers: s(&[
                "authorization",
                "Access-Control-Allow-Origin",
                "Content-Type",
                "SOAPAction",
                "apikey",
                "testKey",
                "Internal-Key",
            ]),
            allow_credentials: false,
            expose_headers: Vec::new(),
        }
    }
}

/// `[router.upstream]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Upstream {
    /// `[router.upstream.tls]`
    pub tls: UpstreamTls,
    /// `[router.upstream.timeouts]`
    pub timeouts: UpstreamTimeouts,
    /// `[router.upstream.health]`
    pub health: UpstreamHealth,
    /// `[router.upstream.retry]`
    pub retry: UpstreamRetry,
    /// `[router.upstream.dns]`
    pub dns: UpstreamDns,
    /// `[router.upstream.http2]`
    pub http2: UpstreamHttp2,
}

/// `[router.upstream.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpstreamTls {
    /// `TLS1_0` … `TLS1_3`
    pub minimum_protocol_version: String,
    /// `TLS1_0` … `TLS1_3`
    pub maximum_protocol_version: String,
    /// Colon- or comma-separated cipher suites (BoringSSL names); empty = Envoy's defaults.
    pub ciphers: String,
    /// CA bundle used for https endpoints without a certificate of their own.
    pub trusted_cert_path: String,
    /// Check the upstream certificate's subject alternative names against the endpoint host.
    pub verify_host_name: bool,
    /// Accept any upstream certificate (development only).
    pub disable_ssl_verification: bool,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        UpstreamTls {
            minimum_protocol_version: "TLS1_1".into(),
            maximum_protocol_version: "TLS1_2".into(),
            ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA, \
                      ECDHE-RSA-AES128-SHA, AES128-GCM-SHA256, AES128-SHA, ECDHE-ECDSA-AES256-GCM-SHA384, \
                      ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-AES256-SHA, ECDHE-RSA-AES256-SHA, \
                      AES256-GCM-SHA384, AES256-SHA"
                .into(),
            trusted_cert_path: "/etc/ssl/certs/ca-certificates.crt".into(),
            verify_host_name: true,
            disable_ssl_verification: false,
        }
    }
}

/// `[router.upstream.timeouts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpstreamTimeouts {
    /// Route timeout of endpoints without `timeoutInMillis`.
    pub route_timeout_in_seconds: u32,
    /// Upper bound for an endpoint's `timeoutInMillis`.
    pub max_route_timeout_in_seconds: u32,
    /// Route idle timeout.
    pub route_idle_timeout_in_seconds: u32,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            route_timeout_in_seconds: 60,
            max_route_timeout_in_seconds: 60,
            route_idle_timeout_in_seconds: 300,
        }
    }
}

/// `[router.upstream.health]`: active health checks of failover endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpstreamHealth {
    /// Seconds before a health check attempt times out.
    pub timeout: u32,
    /// Seconds between health checks.
    pub interval: u32,
    /// Failed checks before a host is unhealthy.
    pub unhealthy_threshold: u32,
    /// Passed checks before a host is healthy again.
    pub healthy_threshold: u32,
}

impl Default for UpstreamHealth {
    fn default() -> Self {
        UpstreamHealth { timeout: 1, interval: 10, unhealthy_threshold: 2, healthy_threshold: 2 }
    }
}

/// `[router.upstream.retry]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpstreamRetry {
    /// Upper bound for an endpoint's retry count.
    pub max_retry_count: u32,
    /// Base interval of the exponential retry back-off.
    pub base_interval_in_millis: u32,
    /// Status codes retried when an endpoint's retryConfig lists none.
    pub status_codes: Vec<u32>,
}

impl Default for UpstreamRetry {
    fn default() -> Self {
        UpstreamRetry { max_retry_count: 5, base_interval_in_millis: 25, status_codes: vec![504] }
    }
}

/// `[router.upstream.dns]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpstreamDns {
    /// DNS refresh interval of hostname endpoints.
    #[serde(rename = "dNSRefreshRate")]
    pub dns_refresh_rate: u32,
    /// Use the record's TTL as the refresh interval instead.
    #[serde(rename = "respectDNSTtl")]
    pub respect_dns_ttl: bool,
}

impl Default for UpstreamDns {
    fn default() -> Self {
        UpstreamDns { dns_refresh_rate: 5000, respect_dns_ttl: false }
    }
}

/// `[router.upstream.http2]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpstreamHttp2 {
    /// HPACK table size for HTTP/2 upstreams.
    pub hpack_table_size: u32,
    /// Maximum concurrent streams on an HTTP/2 upstream connection.
    pub max_concurrent_streams: u32,
}

impl Default for UpstreamHttp2 {
    fn default() -> Self {
        UpstreamHttp2 { hpack_table_size: 4096, max_concurrent_streams: 2_147_483_647 }
    }
}

/// `[router.downstream]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Downstream {
    /// `[router.downstream.tls]`
    pub tls: DownstreamTls,
}

/// `[router.downstream.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DownstreamTls {
    /// `TLS1_0` … `TLS1_3`
    pub minimum_protocol_version: String,
    /// `TLS1_0` … `TLS1_3`
    pub maximum_protocol_version: String,
    /// Cipher suites; empty = Envoy's defaults.
    pub ciphers: String,
    /// CA bundle for client certificates when `mTLSAPIsEnabled`.
    pub trusted_cert_path: String,
    /// Ask HTTPS clients for a certificate (not required) for mutual-TLS APIs.
    #[serde(rename = "mTLSAPIsEnabled")]
    pub mtls_apis_enabled: bool,
}

impl Default for DownstreamTls {
    fn default() -> Self {
        DownstreamTls {
            minimum_protocol_version: "TLS1_1".into(),
            maximum_protocol_version: "TLS1_2".into(),
            ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA, \
                      ECDHE-RSA-AES128-SHA, AES128-GCM-SHA256, AES128-SHA, ECDHE-ECDSA-AES256-GCM-SHA384, \
                      ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-AES256-SHA, ECDHE-RSA-AES256-SHA, \
                      AES256-GCM-SHA384, AES256-SHA"
                .into(),
            trusted_cert_path: "/etc/ssl/certs/ca-certificates.crt".into(),
            mtls_apis_enabled: false,
        }
    }
}

/// `[router.connectionTimeout]`: downstream connection timeouts (0 = disabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConnectionTimeout {
    /// Whole-request timeout.
    pub request_timeout_in_seconds: u32,
    /// Timeout for receiving the request headers. Default 10 (Choreo
    /// Connect: 0, no limit, which lets a client hold a stream open by
    /// trickling header bytes).
    pub request_headers_timeout_in_seconds: u32,
    /// Stream idle timeout.
    pub stream_idle_timeout_in_seconds: u32,
    /// Connection idle timeout.
    pub idle_timeout_in_seconds: u32,
}

impl Default for ConnectionTimeout {
    fn default() -> Self {
        ConnectionTimeout {
            request_timeout_in_seconds: 0,
            request_headers_timeout_in_seconds: 10,
            stream_idle_timeout_in_seconds: 300,
            idle_timeout_in_seconds: 3600,
        }
    }
}

/// `[router.payloadPassingToEnforcer]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PayloadPassing {
    /// Send request bodies to the enforcer.
    pub pass_request_payload: bool,
    /// Maximum body bytes buffered for the enforcer.
    pub max_request_bytes: u32,
    /// Send a partial body when it is larger than `maxRequestBytes`.
    pub allow_partial_message: bool,
    /// Send the body as bytes rather than UTF-8 text.
    pub pack_as_bytes: bool,
}

impl Default for PayloadPassing {
    fn default() -> Self {
        PayloadPassing {
            pass_request_payload: false,
            max_request_bytes: 102_400,
            allow_partial_message: false,
            pack_as_bytes: false,
        }
    }
}
