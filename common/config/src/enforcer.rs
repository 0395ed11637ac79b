//! `[enforcer]`, `[analytics]` and `[tracing]`: the parts of `config.toml`
//! the adapter ships to the enforcer (proto/wso2/discovery/config.proto).
//!
//! Strings here keep their `$env{NAME}` references: the enforcer resolves
//! them in its own environment, as in Choreo Connect.

use serde::{Deserialize, Serialize};

use crate::defaults::{DEFAULT_KEYSTORE_CERT, DEFAULT_KEYSTORE_KEY};

/// Default JWT issuer of the enforcer's `/testkey`.
pub const DEFAULT_TESTKEY_ISSUER: &str = "https://localhost:9095/testkey";

/// `[enforcer]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Enforcer {
    /// `[enforcer.authService]`
    pub auth_service: AuthService,
    /// `[enforcer.security]`
    pub security: Security,
    /// `[enforcer.cache]`: validated tokens.
    pub cache: Cache,
    /// `[enforcer.management]`: credentials of the admin API.
    pub management: Management,
    /// `[enforcer.restServer]`
    pub rest_server: RestServer,
    /// `[enforcer.jwtGenerator]`: the backend JWT.
    pub jwt_generator: JwtGenerator,
    /// `[enforcer.jwtIssuer]`: `/testkey`.
    pub jwt_issuer: JwtIssuer,
    /// `[enforcer.truststore]`: certificates by alias.
    pub truststore: EnforcerTruststore,
    /// `[enforcer.throttling]`: rate limiting, counted by the enforcer.
    pub throttling: Throttling,
    /// `[[enforcer.filters]]`: Java custom filters, refused with a message
    /// that points to interceptors and embedded Rego (validate.rs).
    pub filters: Vec<toml::Table>,
    /// `[enforcer.metrics]` (not supported; parsed so it is not warned about).
    pub metrics: toml::Table,
}

/// `[enforcer.authService]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthService {
    /// Port of the ext_authz gRPC service.
    pub port: u16,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_size: u32,
    /// Largest request-header block accepted, in bytes.
    pub max_header_limit: u32,
    /// gRPC keep-alive time, seconds.
    pub keep_alive_time: u32,
    /// Java thread pool of Choreo Connect (no effect here; kept so configs load unchanged).
    pub thread_pool: toml::Table,
}

impl Default for AuthService {
    fn default() -> Self {
        AuthService {
            port: 8081,
            max_message_size: 1_000_000_000,
            max_header_limit: 8192,
            keep_alive_time: 600,
            thread_pool: toml::Table::new(),
        }
    }
}

/// `[enforcer.security]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Security {
    /// `[[enforcer.security.tokenService]]`: the trusted JWT issuers.
    pub token_service: Vec<TokenService>,
    /// `[enforcer.security.authHeader]`
    pub auth_header: AuthHeader,
    /// `[enforcer.security.mutualSSL]`
    #[serde(rename = "mutualSSL")]
    pub mutual_ssl: MutualSsl,
}

impl Default for Security {
    fn default() -> Self {
        let issuer = |name: &str, issuer: &str, alias: &str, validate: bool, ck: &str, cert: &str| TokenService {
            name: name.into(),
            issuer: issuer.into(),
            certificate_alias: alias.into(),
            jwks_url: String::new(),
            validate_subscription: validate,
            consumer_key_claim: ck.into(),
            certificate_file_path: cert.into(),
            claim_mapping: Vec::new(),
        };
        Security {
            token_service: vec![
                issuer(
                    "Resident Key Manager",
                    "https://localhost:9443/oauth2/token",
                    "wso2carbon",
                    false,
                    "azp",
                    "/home/wso2/security/truststore/wso2carbon.pem",
                ),
                issuer("MGW", DEFAULT_TESTKEY_ISSUER, "mgw", false, "", "/home/wso2/security/truststore/mg.pem"),
                issuer(
                    "APIM Publisher",
                    "https://localhost:9443/publisher",
                    "publisher_certificate_alias",
                    true,
                    "",
                    "/home/wso2/security/truststore/wso2carbon.pem",
                ),
                issuer(
                    "APIM APIkey",
                    "",
                    "apikey_certificate_alias",
                    true,
                    "",
                    "/home/wso2/security/truststore/wso2carbon.pem",
                ),
            ],
            auth_header: AuthHeader::default(),
            mutual_ssl: MutualSsl::default(),
        }
    }
}

/// One `[[enforcer.security.tokenService]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenService {
    /// Name; `APIM Publisher` signs internal keys, `APIM APIkey` API keys.
    pub name: String,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Certificate alias in `[enforcer.truststore]`.
    pub certificate_alias: String,
    /// JWKS endpoint with the signing keys.
    #[serde(rename = "jwksURL")]
    pub jwks_url: String,
    /// Check the token's subscriptions (`subscribedAPIs`).
    pub validate_subscription: bool,
    /// Claim holding the consumer key (client id).
    pub consumer_key_claim: String,
    /// PEM certificate with the signing key.
    pub certificate_file_path: String,
    /// `[[...claimMapping]]`: claims renamed before use.
    pub claim_mapping: Vec<ClaimMapping>,
}

/// A claim renaming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimMapping {
    /// Claim name in the token.
    pub remote_claim: String,
    /// Name the gateway uses.
    pub local_claim: String,
}

/// `[enforcer.security.authHeader]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthHeader {
    /// Pass the authorization header on to the backend.
    pub enable_outbound_auth_header: bool,
    /// Header carrying `Bearer <JWT>`.
    pub authorization_header: String,
    /// Header carrying internal keys.
    pub test_console_header_name: String,
}

impl Default for AuthHeader {
    fn default() -> Self {
        AuthHeader {
            enable_outbound_auth_header: false,
            authorization_header: "authorization".into(),
            test_console_header_name: "Internal-Key".into(),
        }
    }
}

/// `[enforcer.security.mutualSSL]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MutualSsl {
    /// Header with the client certificate when the TLS peer certificate is not used.
    pub certificate_header: String,
    /// Use the certificate Envoy saw in the TLS handshake.
    pub enable_client_validation: bool,
    /// The certificate header is URL-encoded.
    pub client_certificate_encode: bool,
    /// Pass the certificate header on to the backend.
    pub enable_outbound_certificate_header: bool,
}

impl Default for MutualSsl {
    fn default() -> Self {
        MutualSsl {
            certificate_header: "X-WSO2-CLIENT-CERTIFICATE".into(),
            enable_client_validation: true,
            client_certificate_encode: false,
            enable_outbound_certificate_header: false,
        }
    }
}

/// `[enforcer.throttling]`: Choreo Connect's keys (the condition switches;
/// the Traffic Manager keys are accepted and warned about) and the
/// gateway's own counting settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Throttling {
    /// Count and enforce throttling tiers (on by default: a tier a project or a token names is enforced).
    pub enabled: bool,
    /// Where counters live: `memory` (one enforcer, exact) or `redis` (shared by replicas).
    pub backend: String,
    /// Share of a limit that quota leases may leave unused across replicas (Redis backend), 0 < accuracy ≤ 0.5.
    pub accuracy: f64,
    /// When Redis cannot be reached: `local` (count in memory with limit ÷ replicas), `open` (admit), `closed` (refuse).
    pub failure_mode: String,
    /// Enforcer replicas sharing the counters (for `local` failure mode and lease sizes).
    pub replicas: u32,
    /// Apply header conditions of advanced policies (API Manager's `enable_header_based_throttling`).
    pub enable_header_conditions: bool,
    /// Apply query-parameter conditions of advanced policies.
    pub enable_query_param_conditions: bool,
    /// Apply JWT-claim conditions of advanced policies.
    pub enable_jwt_claim_conditions: bool,
    /// Publish events to API Manager's Traffic Manager (not supported: counting is local or in Redis).
    pub enable_global_event_publishing: bool,
    /// `[enforcer.throttling.redis]`
    pub redis: ThrottlingRedis,
    /// `[enforcer.throttling.headers]`: rate-limit headers on responses.
    pub headers: ThrottlingHeaders,
    /// Choreo Connect's Traffic Manager JMS factory (accepted, not used).
    pub jms_connection_initial_context_factory: String,
    /// Choreo Connect's Traffic Manager JMS URL (accepted, not used).
    #[serde(rename = "jmsConnectionProviderURL")]
    pub jms_connection_provider_url: String,
    /// `[enforcer.throttling.publisher]`: Choreo Connect's Traffic Manager event publisher (accepted, not used).
    pub publisher: toml::Table,
}

impl Default for Throttling {
    fn default() -> Self {
        Throttling {
            enabled: true,
            backend: "memory".into(),
            accuracy: 0.02,
            failure_mode: "local".into(),
            replicas: 1,
            enable_header_conditions: false,
            enable_query_param_conditions: false,
            enable_jwt_claim_conditions: false,
            enable_global_event_publishing: false,
            redis: ThrottlingRedis::default(),
            headers: ThrottlingHeaders::default(),
            jms_connection_initial_context_factory: String::new(),
            jms_connection_provider_url: String::new(),
            publisher: toml::Table::new(),
        }
    }
}

/// `[enforcer.throttling.redis]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ThrottlingRedis {
    /// `redis://[user:password@]host:port[/db]` (no TLS yet); `$env{}` allowed.
    pub url: String,
    /// Prefix of every counter key.
    pub key_prefix: String,
    /// Longest wait for one Redis call, milliseconds.
    pub timeout_millis: u64,
}

impl Default for ThrottlingRedis {
    fn default() -> Self {
        ThrottlingRedis { url: String::new(), key_prefix: "cc:rl:".into(), timeout_millis: 20 }
    }
}

/// `[enforcer.throttling.headers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ThrottlingHeaders {
    /// `Retry-After` (an HTTP-date at the window's end) on throttled responses, as Choreo Connect.
    pub retry_after: bool,
    /// `X-RateLimit-Limit/-Remaining/-Reset` (Envoy's DRAFT_VERSION_03 format) on allowed and throttled responses.
    pub x_rate_limit: bool,
    /// IETF `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-11).
    pub ietf: bool,
}

impl Default for ThrottlingHeaders {
    fn default() -> Self {
        ThrottlingHeaders { retry_after: true, x_rate_limit: false, ietf: false }
    }
}

/// `[enforcer.cache]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cache {
    /// Cache validated tokens.
    pub enabled: bool,
    /// Most tokens kept.
    pub maximum_size: u64,
    /// Minutes an entry lives at most (never past the token's `exp`).
    pub expiry_time: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache { enabled: true, maximum_size: 10_000, expiry_time: 15 }
    }
}

/// `[enforcer.management]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Management {
    /// Admin API user.
    pub username: String,
    /// Admin API password.
    pub password: String,
}

impl Default for Management {
    fn default() -> Self {
        Management { username: "admin".into(), password: "admin".into() }
    }
}

/// `[enforcer.restServer]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RestServer {
    /// Serve the admin API.
    pub enabled: bool,
}

impl Default for RestServer {
    fn default() -> Self {
        RestServer { enabled: true }
    }
}

/// `[[enforcer.jwtGenerator.keypair]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Keypair {
    /// PEM certificate (published at `/jwks`).
    pub public_certificate_path: String,
    /// PKCS#8 or PKCS#1 PEM key.
    pub private_key_path: String,
    /// Sign with this pair (exactly one should).
    pub use_for_signing: bool,
}

/// `[enforcer.jwtGenerator]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JwtGenerator {
    /// Send a backend JWT.
    pub enabled: bool,
    /// `base64` or `base64url`.
    pub encoding: String,
    /// Prefix of the gateway's claims.
    pub claim_dialect: String,
    /// Not supported (Java claim dialect conversion).
    pub convert_dialect: bool,
    /// Header carrying the backend JWT.
    pub header: String,
    /// `SHA256withRSA` (RS256).
    pub signing_algorithm: String,
    /// Not supported (Java user-claim retrieval).
    pub enable_user_claims: bool,
    /// Java class names of Choreo Connect (no effect here).
    pub gateway_generator_impl: String,
    /// Java class names of Choreo Connect (no effect here).
    pub claims_extractor_impl: String,
    /// Lifetime of a backend JWT, seconds.
    #[serde(rename = "tokenTTL")]
    pub token_ttl: u64,
    /// Put the key id in the header.
    pub use_kid_property: bool,
    /// Choreo Connect's `/jwks` rate limit (no effect here).
    pub jwks_ratelimit_quota: u32,
    /// Choreo Connect's `/jwks` rate limit window (no effect here).
    pub jwks_ratelimit_time_window_in_seconds: u32,
    /// `[[enforcer.jwtGenerator.keypair]]`
    pub keypair: Vec<Keypair>,
}

impl Default for JwtGenerator {
    fn default() -> Self {
        JwtGenerator {
            enabled: false,
            encoding: "base64".into(),
            claim_dialect: "http://wso2.org/claims".into(),
            convert_dialect: false,
            header: "X-JWT-Assertion".into(),
            signing_algorithm: "SHA256withRSA".into(),
            enable_user_claims: false,
            gateway_generator_impl: String::new(),
            claims_extractor_impl: String::new(),
            token_ttl: 3600,
            use_kid_property: true,
            jwks_ratelimit_quota: 1000,
            jwks_ratelimit_time_window_in_seconds: 10,
            keypair: vec![Keypair {
                public_certificate_path: DEFAULT_KEYSTORE_CERT.into(),
                private_key_path: DEFAULT_KEYSTORE_KEY.into(),
                use_for_signing: true,
            }],
        }
    }
}

/// `[enforcer.jwtIssuer]`: the `/testkey` token issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JwtIssuer {
    /// Serve `/testkey`.
    pub enabled: bool,
    /// `iss` of the tokens issued.
    pub issuer: String,
    /// `base64` or `base64url`.
    pub encoding: String,
    /// Prefix of claims.
    pub claim_dialect: String,
    /// `SHA256withRSA` (RS256).
    pub signing_algorithm: String,
    /// PEM certificate of the signing key.
    pub public_certificate_path: String,
    /// PEM private key.
    pub private_key_path: String,
    /// Lifetime of a token, seconds.
    pub validity_period: u64,
    /// `[[enforcer.jwtIssuer.jwtUser]]`: who may get a token.
    pub jwt_user: Vec<JwtUser>,
}

impl Default for JwtIssuer {
    fn default() -> Self {
        JwtIssuer {
            enabled: true,
            issuer: DEFAULT_TESTKEY_ISSUER.into(),
            encoding: "base64".into(),
            claim_dialect: "http://wso2.org/claims".into(),
            signing_algorithm: "SHA256withRSA".into(),
            public_certificate_path: DEFAULT_KEYSTORE_CERT.into(),
            private_key_path: DEFAULT_KEYSTORE_KEY.into(),
            validity_period: 3600,
            jwt_user: vec![JwtUser { username: "admin".into(), password: "$env{enforcer_admin_pwd}".into() }],
        }
    }
}

/// A `/testkey` user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct JwtUser {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `[enforcer.truststore]`: a directory of PEM certificates named `<alias>.pem`
/// (Choreo Connect: a Java truststore), for `certificateAlias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnforcerTruststore {
    /// The directory.
    pub location: String,
}

impl Default for EnforcerTruststore {
    fn default() -> Self {
        EnforcerTruststore { location: "/home/wso2/security/truststore".into() }
    }
}

/// `[analytics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Analytics {
    /// Emit analytics events (and have Envoy send access logs).
    pub enabled: bool,
    /// `Default` or `ELK`: both write JSON lines here.
    #[serde(rename = "type")]
    pub kind: String,
    /// `[analytics.adapter]`: Envoy's access-log buffering.
    pub adapter: AnalyticsAdapter,
    /// `[analytics.enforcer]`
    pub enforcer: AnalyticsEnforcer,
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics {
            enabled: false,
            kind: "Default".into(),
            adapter: AnalyticsAdapter::default(),
            enforcer: AnalyticsEnforcer::default(),
        }
    }
}

/// `[analytics.adapter]`: how Envoy batches access logs for the enforcer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsAdapter {
    /// Flush interval, a Go duration (`1s`).
    pub buffer_flush_interval: String,
    /// Buffer size in bytes.
    pub buffer_size_bytes: u32,
    /// gRPC timeout for log delivery, a Go duration.
    #[serde(rename = "gRPCRequestTimeout")]
    pub grpc_request_timeout: String,
}

impl Default for AnalyticsAdapter {
    fn default() -> Self {
        AnalyticsAdapter {
            buffer_flush_interval: "1s".into(),
            buffer_size_bytes: 16384,
            grpc_request_timeout: "20s".into(),
        }
    }
}

/// `[analytics.enforcer]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsEnforcer {
    /// `[analytics.enforcer.configProperties]`: `sink` (`stdout`, default, or a
    /// file path) and `queueSize` (events held while the sink is slow,
    /// default 10000) are used here; the rest is passed on.
    pub config_properties: toml::Table,
    /// `[analytics.enforcer.LogReceiver]`
    #[serde(rename = "LogReceiver")]
    pub log_receiver: LogReceiver,
}

/// `[analytics.enforcer.LogReceiver]`: the access-log service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogReceiver {
    /// gRPC port of the access-log service.
    pub port: u16,
}

impl Default for LogReceiver {
    fn default() -> Self {
        LogReceiver { port: 18090 }
    }
}

/// `[tracing]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Tracing {
    /// Emit traces.
    pub enabled: bool,
    /// `zipkin`, `azure` or `otlp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `[tracing.configProperties]`
    pub config_properties: toml::Table,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing { enabled: false, kind: "zipkin".into(), config_properties: toml::Table::new() }
    }
}

impl Tracing {
    /// A `configProperties` value (key matched case-insensitively): a string
    /// as in Choreo Connect, or a number.
    pub fn property(&self, key: &str) -> Option<String> {
        self.config_properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| match v {
            toml::Value::String(s) => s.trim().to_string(),
            other => other.to_string(),
        })
    }
}

/// Parses a Go duration such as `1s`, `500ms`, `1m30s` or `1h`.
pub fn go_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}
