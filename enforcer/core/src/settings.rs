//! The enforcer's configuration as received from the adapter, checked and
//! turned into what the request path uses: issuers with their keys, header
//! names, the backend-JWT signer, the `/testkey` issuer. Any problem refuses
//! the whole configuration (the adapter gets a NACK naming it) and the one in
//! use stays.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_proto::config as pc;

use crate::keys::{Fetch, Jwks, VerifyKey};
use crate::signer::{RsaAlg, Signer};

/// A configuration the enforcer cannot use: the key (config.toml path) and why.
/// The adapter gets it as the NACK's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingsError {
    /// Dotted path of the key, e.g. `enforcer.management.password`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl ToString) -> SettingsError {
    SettingsError { key: key.into(), reason: reason.to_string() }
}

/// A configured JWT issuer (`[[enforcer.security.tokenService]]`).
#[derive(Debug)]
pub struct Issuer {
    /// `name`
    pub name: Arc<str>,
    /// `issuer` (the `iss` claim).
    pub issuer: String,
    /// `validateSubscription`
    pub validate_subscription: bool,
    /// `consumerKeyClaim`
    pub consumer_key_claim: String,
    /// `claimMapping`: (remote, local).
    pub claim_mapping: Vec<(String, String)>,
    /// Keys from `certificateFilePath` or `certificateAlias`.
    pub certs: Vec<VerifyKey>,
    /// Keys from `jwksURL`.
    pub jwks: Option<Arc<Jwks>>,
}

/// Where the enforcer exports its spans (`[tracing]`, see
/// adapter/xds/src/translate/tracing.rs for the router's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExporter {
    /// Zipkin v2 JSON, `POST http://host:port<endpoint>`.
    Zipkin,
    /// OTLP over gRPC, `host:port`.
    OtlpGrpc,
    /// OTLP over HTTP (protobuf), `POST http://host:port<endpoint>`.
    OtlpHttp,
}

/// `[tracing]` as the enforcer uses it: one span per check, child of the
/// router's ext_authz call (B3 headers for zipkin, W3C `traceparent`
/// otherwise), exported when the router sampled the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The protocol.
    pub exporter: TraceExporter,
    /// Collector host.
    pub host: String,
    /// Collector port.
    pub port: u16,
    /// Collector path (zipkin, otlp over HTTP).
    pub endpoint: String,
    /// Export timeout, seconds.
    pub timeout_s: u64,
}

impl TraceSettings {
    fn load(t: &gateway_proto::config::Tracing) -> Result<Option<TraceSettings>, SettingsError> {
        if !t.enabled {
            return Ok(None);
        }
        let prop = |k: &str| {
            t.config_properties
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| resolve_env(v).trim().to_string())
        };
        let exporter = match t.r#type.to_ascii_lowercase().as_str() {
            "zipkin" => TraceExporter::Zipkin,
            "otlp" if prop("protocol").is_some_and(|p| p.eq_ignore_ascii_case("http")) => TraceExporter::OtlpHttp,
            "otlp" => TraceExporter::OtlpGrpc,
            other => return Err(invalid("tracing.type", format!("{other:?}: expected zipkin or otlp"))),
        };
        let port = match prop("port") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| invalid("tracing.configProperties.port", format!("{p:?} is not a port")))?,
            None => 9411,
        };
        let default_endpoint = if exporter == TraceExporter::Zipkin { "/api/v2/spans" } else { "/v1/traces" };
        Ok(Some(TraceSettings {
            host: prop("host").filter(|h| !h.is_empty()).unwrap_or_else(|| "jaeger".into()),
            port,
            endpoint: prop("endpoint").filter(|e| !e.is_empty()).unwrap_or_else(|| default_endpoint.into()),
            timeout_s: prop("timeout").and_then(|t| t.parse().ok()).unwrap_or(15),
            exporter,
        }))
    }
}

/// `[analytics]` as the enforcer uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsSettings {
    /// Events are produced.
    pub enabled: bool,
    /// `stdout` or a file path.
    pub sink: String,
    /// Events held while the sink is slow.
    pub queue_size: usize,
}

/// Everything the enforcer's decisions depend on.
#[derive(Debug)]
pub struct Settings {
    /// Issuers by `iss`.
    pub issuers: HashMap<String, Arc<Issuer>>,
    /// Issuer of API keys (`APIM APIkey`, else `APIM Publisher`).
    pub api_key_issuer: Option<Arc<Issuer>>,
    /// Issuer of internal keys (`APIM Publisher`).
    pub internal_key_issuer: Option<Arc<Issuer>>,
    /// Lower-cased header carrying `Bearer <JWT>`.
    pub auth_header: String,
    /// Lower-cased internal-key header.
    pub internal_key_header: String,
    /// Pass the auth header to the backend.
    pub outbound_auth_header: bool,
    /// Lower-cased client-certificate header.
    pub cert_header: String,
    /// Use the TLS peer certificate (not the header).
    pub cert_from_tls: bool,
    /// The certificate header is URL-encoded.
    pub cert_header_encoded: bool,
    /// Pass the certificate header to the backend.
    pub outbound_cert_header: bool,
    /// Token cache: enabled, size, entry lifetime in seconds.
    pub cache: (bool, u64, u64),
    /// Admin API credentials.
    pub management: (String, String),
    /// Serve the admin API.
    pub rest_server: bool,
    /// Backend JWT.
    pub backend_jwt: Option<BackendJwtSettings>,
    /// `/testkey`.
    pub test_key: Option<TestKeySettings>,
    /// Analytics.
    pub analytics: AnalyticsSettings,
    /// Tracing, when enabled.
    pub tracing: Option<TraceSettings>,
    /// `[enforcer.throttling]`.
    pub throttling: ThrottleSettings,
    /// `[adapter] soapErrorInXMLEnabled`: denials of SOAP requests are SOAP faults.
    pub soap_faults: bool,
    /// What the operator should know (default credentials in use), logged
    /// each time the configuration is applied.
    pub warnings: Vec<String>,
}

/// `[enforcer.throttling]`, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleSettings {
    /// Count and enforce tiers.
    pub enabled: bool,
    /// Shared counters in Redis (else in memory).
    pub redis: Option<RedisSettings>,
    /// Share of a limit quota leases may leave unused.
    pub accuracy: f64,
    /// `local`, `open` or `closed`.
    pub failure_mode: String,
    /// Replicas sharing the counters.
    pub replicas: u32,
    /// Header, query-parameter and JWT-claim conditions of advanced policies apply.
    pub conditions: (bool, bool, bool),
    /// Which rate-limit headers to write.
    pub headers: crate::ratelimit::HeaderKinds,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            enabled: true,
            redis: None,
            accuracy: 0.02,
            failure_mode: "local".into(),
            replicas: 1,
            conditions: (false, false, false),
            headers: crate::ratelimit::HeaderKinds::default(),
        }
    }
}

/// `[enforcer.throttling.redis]`, loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://...`, `$env{}` resolved.
    pub url: String,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Longest wait for one call, milliseconds.
    pub timeout_ms: u64,
}

impl ThrottleSettings {
    fn load(t: Option<&pc::Throttling>) -> Result<ThrottleSettings, SettingsError> {
        // Absent: an adapter from before throttling was configurable; the defaults.
        let Some(t) = t else { return Ok(ThrottleSettings::default()) };
        let redis = match t.backend.as_str() {
            "" | "memory" => None,
            "redis" => {
                let url = resolve_env(&t.redis_url);
                if url.contains("$env{") {
                    return Err(invalid(
                        "enforcer.throttling.redis.url",
                        "a $env{} reference is not set in the enforcer's environment",
                    ));
                }
                url::Url::parse(&url).ok().filter(|u| u.scheme() == "redis").ok_or_else(|| {
                    invalid("enforcer.throttling.redis.url", "expected redis://[:password@]host:port[/db] (no TLS yet)")
                })?;
                Some(RedisSettings {
                    url,
                    key_prefix: t.redis_key_prefix.clone(),
                    timeout_ms: t.redis_timeout_millis.max(1),
                })
            }
            other => {
                return Err(invalid("enforcer.throttling.backend", format!("{other:?}: expected memory or redis")));
            }
        };
        if !["local", "open", "closed", ""].contains(&t.failure_mode.as_str()) {
            return Err(invalid(
                "enforcer.throttling.failureMode",
                format!("{:?}: expected local, open or closed", t.failure_mode),
            ));
        }
        Ok(ThrottleSettings {
            enabled: t.enabled,
            redis,
            accuracy: if t.accuracy > 0.0 && t.accuracy <= 0.5 { t.accuracy } else { 0.02 },
            failure_mode: if t.failure_mode.is_empty() { "local".into() } else { t.failure_mode.clone() },
            replicas: t.replicas.max(1),
            conditions: (t.enable_header_conditions, t.enable_query_param_conditions, t.enable_jwt_claim_conditions),
            headers: crate::ratelimit::HeaderKinds {
                retry_after: t.header_retry_after,
                x_rate_limit: t.header_x_rate_limit,
                ietf: t.header_ietf,
            },
        })
    }
}

/// `[enforcer.jwtGenerator]`, loaded.
#[derive(Debug)]
pub struct BackendJwtSettings {
    /// Header name.
    pub header: String,
    /// Claim prefix, ending with `/` unless empty.
    pub dialect: String,
    /// Lifetime, seconds.
    pub ttl: i64,
    /// The signature algorithm (`signingAlgorithm`).
    pub alg: RsaAlg,
    /// Signs the JWT (none for `signingAlgorithm = NONE`).
    pub signer: Option<Signer>,
    /// Public keys, as the `/jwks` document.
    pub jwks: String,
}

/// `[enforcer.jwtIssuer]`, loaded.
#[derive(Debug)]
pub struct TestKeySettings {
    /// `iss`
    pub issuer: String,
    /// Lifetime, seconds.
    pub validity: i64,
    /// Users (name, password).
    pub users: Vec<(String, String)>,
    /// The signing key.
    pub signer: Signer,
}

/// A credential: `$env{NAME}` resolved, refused when a variable is unset (the
/// reference would be a password anyone can read in the documentation) or
/// when it is empty.
fn credential(key: &str, raw: &str) -> Result<String, SettingsError> {
    let v = resolve_env(raw);
    if let Some(start) = v.find("$env{") {
        let name = v[start + 5..].split('}').next().unwrap_or("");
        return Err(invalid(key, format!("$env{{{name}}} is not set in the enforcer's environment")));
    }
    if v.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(v)
}

/// A warning when `user`/`password` are Choreo Connect's well-known defaults.
fn default_credentials(key: &str, user: &str, password: &str) -> Option<String> {
    (user == "admin" && password == "admin").then(|| {
        format!("{key}: the well-known default credentials (admin/admin) are in use; set your own (README: Hardening)")
    })
}

/// Replaces `$env{NAME}` with the environment variable (left as is when unset).
pub fn resolve_env(s: &str) -> String {
    if !s.contains("$env{") {
        return s.to_string();
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("$env{") {
        let Some(len) = rest[start + 5..].find('}') else { break };
        let name = &rest[start + 5..start + 5 + len];
        out.push_str(&rest[..start]);
        match std::env::var(name) {
            Ok(v) => out.push_str(&v),
            Err(_) => out.push_str(&rest[start..start + 6 + len]),
        }
        rest = &rest[start + 6 + len..];
    }
    out.push_str(rest);
    out
}

fn key_path(truststore: &str, t: &pc::Issuer) -> Option<String> {
    if !t.certificate_file_path.is_empty() {
        return Some(resolve_env(&t.certificate_file_path));
    }
    if !t.certificate_alias.is_empty() && !truststore.is_empty() {
        return Some(format!("{}/{}.pem", resolve_env(truststore).trim_end_matches('/'), t.certificate_alias));
    }
    None
}

/// What a configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// The enforcer service: its decisions, and its admin API and
    /// `/testkey`, whose credentials and signing key are loaded and checked.
    #[default]
    Service,
    /// Decisions only (the enforcer's module in the router): the admin
    /// API's and `/testkey`'s credentials and key are left out, so the router
    /// needs neither their secrets in its environment nor their files.
    Decisions,
}

impl Settings {
    /// Checks and loads a configuration for the enforcer service. `fetch`
    /// gets the key sets of JWKS issuers.
    pub fn load(c: &pc::Config, fetch: &Arc<dyn Fetch>) -> Result<Settings, SettingsError> {
        Settings::load_for(c, fetch, Role::Service)
    }

    /// Checks and loads a configuration for `role`.
    pub fn load_for(c: &pc::Config, fetch: &Arc<dyn Fetch>, role: Role) -> Result<Settings, SettingsError> {
        let service = role == Role::Service;
        let sec = c.security.clone().unwrap_or_default();
        let mut issuers = HashMap::new();
        let mut by_name: HashMap<String, Arc<Issuer>> = HashMap::new();
        for (i, t) in sec.token_service.iter().enumerate() {
            let at = |k: &str| format!("enforcer.security.tokenService[{i}].{k}");
            let certs = match key_path(&c.truststore_location, t) {
                Some(path) => VerifyKey::from_pem_file(&path).map_err(|e| {
                    invalid(
                        at(if t.certificate_file_path.is_empty() { "certificateAlias" } else { "certificateFilePath" }),
                        e,
                    )
                })?,
                None => Vec::new(),
            };
            let jwks = if t.jwks_url.is_empty() {
                None
            } else {
                let url = resolve_env(&t.jwks_url);
                url::Url::parse(&url).map_err(|e| invalid(at("jwksURL"), format!("{url:?}: {e}")))?;
                Some(Jwks::new(url, Arc::clone(fetch)))
            };
            if certs.is_empty() && jwks.is_none() {
                return Err(invalid(
                    at("name"),
                    format!("issuer {:?} has no key: set certificateFilePath, certificateAlias or jwksURL", t.name),
                ));
            }
            let issuer = Arc::new(Issuer {
                name: t.name.as_str().into(),
                issuer: resolve_env(&t.issuer),
                validate_subscription: t.validate_subscription,
                consumer_key_claim: t.consumer_key_claim.clone(),
                claim_mapping: t
                    .claim_mapping
                    .iter()
                    .map(|m| (m.remote_claim.clone(), m.local_claim.clone()))
                    .collect(),
                certs,
                jwks,
            });
            if !issuer.issuer.is_empty() {
                issuers.insert(issuer.issuer.clone(), Arc::clone(&issuer));
            }
            by_name.insert(t.name.clone(), issuer);
        }
        let auth = sec.auth_header.unwrap_or_default();
        let mtls = sec.mutual_ssl.unwrap_or_default();
        let cache = c.cache.unwrap_or_default();
        // Absent: Choreo Connect's default (the adapter always sends it).
        let mgmt =
            c.management.clone().unwrap_or(pc::Management { username: "admin".into(), password: "admin".into() });
        let backend_jwt = match &c.jwt_generator {
            Some(g) if g.enabled => Some(BackendJwtSettings::load(g)?),
            _ => None,
        };
        let mut warnings = Vec::new();
        let rest_server = c.rest_server.as_ref().is_none_or(|r| r.enabled);
        let management = if rest_server && service {
            let m = (
                credential("enforcer.management.username", &mgmt.username)?,
                credential("enforcer.management.password", &mgmt.password)?,
            );
            warnings.extend(default_credentials("enforcer.management", &m.0, &m.1));
            m
        } else {
            (String::new(), String::new())
        };
        let test_key = match &c.jwt_issuer {
            Some(t) if t.enabled && service => Some(TestKeySettings {
                issuer: resolve_env(&t.issuer),
                validity: t.validity_period.max(1),
                users: t
                    .jwt_user
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        let key = format!("enforcer.jwtIssuer.jwtUser[{i}]");
                        let user = credential(&format!("{key}.username"), &u.username)?;
                        let password = credential(&format!("{key}.password"), &u.password)?;
                        warnings.extend(default_credentials(&key, &user, &password));
                        Ok((user, password))
                    })
                    .collect::<Result<_, SettingsError>>()?,
                signer: Signer::from_files(&resolve_env(&t.private_key_path), &resolve_env(&t.public_certificate_path))
                    .map_err(|e| invalid("enforcer.jwtIssuer", e))?,
            }),
            _ => None,
        };
        let a = c.analytics.clone().unwrap_or_default();
        let prop = |k: &str| a.config_properties.get(k).map(|v| resolve_env(v));
        let analytics = AnalyticsSettings {
            enabled: a.enabled,
            sink: prop("sink").filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "stdout".into()),
            queue_size: match prop("queueSize") {
                Some(v) => v.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    invalid("analytics.enforcer.configProperties.queueSize", format!("{v:?} is not a positive number"))
                })?,
                None => 10_000,
            },
        };
        let lower_or = |s: &str, d: &str| if s.is_empty() { d.to_string() } else { s.to_ascii_lowercase() };
        Ok(Settings {
            issuers,
            api_key_issuer: by_name.get("APIM APIkey").or_else(|| by_name.get("APIM Publisher")).cloned(),
            internal_key_issuer: by_name.get("APIM Publisher").cloned(),
            auth_header: lower_or(&auth.authorization_header, "authorization"),
            internal_key_header: lower_or(&auth.test_console_header_name, "internal-key"),
            outbound_auth_header: auth.enable_outbound_auth_header,
            cert_header: lower_or(&mtls.certificate_header, "x-wso2-client-certificate"),
            cert_from_tls: mtls.enable_client_validation,
            cert_header_encoded: mtls.client_certificate_encode,
            outbound_cert_header: mtls.enable_outbound_certificate_header,
            cache: (cache.enabled, cache.maximum_size.max(1), cache.expiry_time.max(1) * 60),
            management,
            rest_server,
            backend_jwt,
            test_key,
            analytics,
            tracing: TraceSettings::load(&c.tracing.clone().unwrap_or_default())?,
            throttling: ThrottleSettings::load(c.throttling.as_ref())?,
            soap_faults: c.soap_error_in_xml_enabled,
            warnings,
        })
    }

    /// Every JWKS source, for background refreshing.
    pub fn jwks_sources(&self) -> Vec<Arc<Jwks>> {
        let mut v: Vec<Arc<Jwks>> = Vec::new();
        for i in self.issuers.values().chain(self.api_key_issuer.iter()).chain(self.internal_key_issuer.iter()) {
            if let Some(j) = &i.jwks
                && !v.iter().any(|x| Arc::ptr_eq(x, j))
            {
                v.push(Arc::clone(j));
            }
        }
        v
    }
}

impl BackendJwtSettings {
    fn load(g: &pc::JwtGenerator) -> Result<BackendJwtSettings, SettingsError> {
        let mut jwks = Vec::new();
        let mut signer = None;
        // Choreo Connect signs RS256 whatever it is told and advertises the
        // configured algorithm in its JWKS; here both follow the configuration.
        let none = g.signing_algorithm.eq_ignore_ascii_case("NONE");
        let alg = match g.signing_algorithm.as_str() {
            _ if none => RsaAlg::Rs256,
            other => RsaAlg::from_java_name(other).ok_or_else(|| {
                invalid(
                    "enforcer.jwtGenerator.signingAlgorithm",
                    format!("{other:?} is not one of SHA256withRSA, SHA384withRSA, SHA512withRSA, NONE"),
                )
            })?,
        };
        for (i, k) in g.keypair.iter().enumerate() {
            let s = Signer::from_files(&resolve_env(&k.private_key_path), &resolve_env(&k.public_certificate_path))
                .map_err(|e| invalid(format!("enforcer.jwtGenerator.keypair[{i}]"), e))?;
            jwks.push(s.jwk(alg.jws_name()));
            if k.use_for_signing && signer.is_none() {
                signer = Some(s);
            }
        }
        if signer.is_none() && !none {
            return Err(invalid("enforcer.jwtGenerator.keypair", "no keypair has useForSigning = true"));
        }
        let dialect = if g.claim_dialect.is_empty() || g.claim_dialect.ends_with('/') {
            g.claim_dialect.clone()
        } else {
            format!("{}/", g.claim_dialect)
        };
        Ok(BackendJwtSettings {
            header: if g.header.is_empty() { "x-jwt-assertion".into() } else { g.header.to_ascii_lowercase() },
            dialect,
            ttl: g.token_ttl.max(1),
            alg,
            signer: if none { None } else { signer },
            jwks: serde_json::json!({ "keys": jwks }).to_string(),
        })
    }
}

/// A [`Fetch`] for configurations without JWKS issuers (tests, tools).
#[derive(Debug, Clone, Copy)]
pub struct NoFetch;

impl Fetch for NoFetch {
    fn fetch(&self, url: &str) -> futures::future::BoxFuture<'static, Result<Vec<u8>, crate::keys::FetchError>> {
        let url = url.to_string();
        Box::pin(
            async move { Err(crate::keys::FetchError(format!("no key-set fetcher configured (cannot fetch {url})"))) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_fetch() -> Arc<dyn Fetch> {
        Arc::new(NoFetch)
    }

    #[test]
    fn env_references_resolve_in_the_enforcers_environment() {
        let name = "ENFORCER_SETTINGS_TEST_PW";
        assert_eq!(resolve_env(&format!("a$env{{{name}}}b")), format!("a$env{{{name}}}b"), "unset stays");
        assert_eq!(resolve_env("plain"), "plain");
        assert_eq!(resolve_env("x$env{PATH"), "x$env{PATH");
    }

    #[test]
    fn credentials_must_be_set_and_defaults_are_warned_about() {
        let with = |user: &str, password: &str| pc::Config {
            management: Some(pc::Management { username: user.into(), password: password.into() }),
            ..Default::default()
        };
        let http = no_fetch();
        let err = Settings::load(&with("admin", "$env{ENFORCER_SETTINGS_TEST_UNSET}"), &http).expect_err("unset");
        assert_eq!(
            err.to_string(),
            "enforcer.management.password: $env{ENFORCER_SETTINGS_TEST_UNSET} is not set in the enforcer's environment"
        );
        let unset = with("admin", "$env{ENFORCER_SETTINGS_TEST_UNSET}");
        let s = Settings::load_for(&unset, &http, Role::Decisions).expect("decisions need no admin credentials");
        assert_eq!(s.management, (String::new(), String::new()));
        let err = Settings::load(&with("admin", ""), &http).expect_err("empty");
        assert_eq!(err.to_string(), "enforcer.management.password: must not be empty");
        let s = Settings::load(&with("admin", "admin"), &http).expect("defaults work");
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0].starts_with("enforcer.management: the well-known default credentials"),
            "{:?}",
            s.warnings
        );
        assert!(Settings::load(&with("ops", "s3cret"), &http).expect("own").warnings.is_empty());
        // The admin API switched off: its credentials are not needed.
        let mut off = with("", "");
        off.rest_server = Some(pc::RestServer { enabled: false });
        assert!(Settings::load(&off, &http).is_ok());
    }

    #[test]
    fn an_issuer_without_keys_is_refused_naming_it() {
        let c = pc::Config {
            security: Some(pc::Security {
                token_service: vec![pc::Issuer { name: "X".into(), issuer: "https://x".into(), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = Settings::load(&c, &no_fetch()).expect_err("no keys").to_string();
        assert!(err.contains("tokenService[0]") && err.contains("\"X\""), "{err}");
        let c2 = pc::Config {
            security: Some(pc::Security {
                token_service: vec![pc::Issuer {
                    name: "X".into(),
                    issuer: "https://x".into(),
                    certificate_file_path: "/nonexistent/cert.pem".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = Settings::load(&c2, &no_fetch()).expect_err("missing file").to_string();
        assert!(err.contains("certificateFilePath") && err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
