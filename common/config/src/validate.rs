//! Value checks that types alone cannot express. Each error names the key,
//! the value and the reason.

use crate::error::{ConfigError, Warning};
use crate::model::Config;

/// TLS protocol versions Envoy accepts, in Choreo Connect's spelling.
pub const TLS_VERSIONS: &[&str] = &["TLS_AUTO", "TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3"];
/// Downstream codecs.
pub const CODEC_TYPES: &[&str] = &["AUTO", "HTTP1", "HTTP2"];

fn invalid(key: &str, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: Some(value.to_string()), reason: reason.into() }
}

fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
        Ok(())
    } else {
        Err(invalid(key, value, format!("expected one of {}", allowed.join(", "))))
    }
}

fn not_empty(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() { Err(invalid(key, value, "must not be empty")) } else { Ok(()) }
}

/// Checks a deserialised configuration.
pub fn validate(c: &Config) -> Result<(), ConfigError> {
    if let Some(f) = c.enforcer.filters.first() {
        let class = f.get("className").and_then(|v| v.as_str()).unwrap_or("");
        return Err(invalid(
            "enforcer.filters[0].className",
            class,
            "custom Java filters cannot be loaded by this gateway. Their work is done with an interceptor \
             (x-wso2-request-interceptor / x-wso2-response-interceptor, or the ccCallInterceptorService \
             operation policy) or with embedded Rego (the regoPolicy operation policy): README.md, \
             \"Custom filters\"",
        ));
    }
    let a = &c.adapter;
    not_empty("adapter.artifactsDirectory", &a.artifacts_directory)?;
    if a.server.port.parse::<u16>().is_err() {
        return Err(invalid("adapter.server.port", &a.server.port, "expected a port number 0-65535"));
    }
    let up = &a.server.upload;
    for (key, v) in [
        ("adapter.server.upload.maxZipBytes", up.max_zip_bytes),
        ("adapter.server.upload.maxUncompressedBytes", up.max_uncompressed_bytes),
        ("adapter.server.upload.maxEntries", up.max_entries),
        ("adapter.server.upload.maxCompressionRatio", up.max_compression_ratio),
    ] {
        if v == 0 {
            return Err(invalid(key, v, "must be at least 1"));
        }
    }
    let conn = &a.server.connections;
    for (key, v) in [
        ("adapter.server.connections.maxConnections", conn.max_connections),
        ("adapter.server.connections.tlsHandshakeTimeoutInSeconds", conn.tls_handshake_timeout_in_seconds),
        ("adapter.server.connections.requestHeadersTimeoutInSeconds", conn.request_headers_timeout_in_seconds),
        ("adapter.server.connections.idleTimeoutInSeconds", conn.idle_timeout_in_seconds),
    ] {
        if v == 0 {
            return Err(invalid(key, v, "must be at least 1"));
        }
    }
    one_of("adapter.metrics.type", &a.metrics.kind, &["prometheus"])?;
    if c.tracing.enabled {
        one_of("tracing.type", &c.tracing.kind, &["zipkin", "otlp"])?;
        let prop = |key: &str| c.tracing.property(key);
        for key in ["port", "maxPathLength", "connectionTimeout", "maximumTracesPerSecond"] {
            if let Some(v) = prop(key)
                && v.parse::<u32>().is_err()
            {
                return Err(invalid(&format!("tracing.configProperties.{key}"), v, "expected a whole number"));
            }
        }
        if let Some(p) = prop("port")
            && p.parse::<u16>().is_err()
        {
            return Err(invalid("tracing.configProperties.port", p, "expected a port number 1-65535"));
        }
        if let Some(p) = prop("protocol") {
            one_of("tracing.configProperties.protocol", &p, &["grpc", "http"])?;
        }
        if prop("host").is_some_and(|h| h.is_empty()) {
            return Err(invalid("tracing.configProperties.host", "", "must not be empty"));
        }
    }
    if crate::enforcer::go_duration(&a.server.token_ttl).is_none_or(|d| d.is_zero()) {
        return Err(invalid("adapter.server.tokenTTL", &a.server.token_ttl, "expected a duration such as 1h or 30m"));
    }
    for (i, m) in a.vhost_mapping.iter().enumerate() {
        not_empty(&format!("adapter.vhostMapping[{i}].environment"), &m.environment)?;
        not_empty(&format!("adapter.vhostMapping[{i}].vhost"), &m.vhost)?;
        if a.vhost_mapping[..i].iter().any(|o| o.environment == m.environment) {
            return Err(invalid(
                &format!("adapter.vhostMapping[{i}].environment"),
                &m.environment,
                "environment is mapped twice",
            ));
        }
    }

    for (i, u) in a.server.users.iter().enumerate() {
        not_empty(&format!("adapter.server.users[{i}].username"), &u.username)?;
        if u.password.is_empty() {
            return Err(ConfigError::Invalid {
                key: format!("adapter.server.users[{i}].password"),
                value: None,
                reason: "must not be empty".into(),
            });
        }
    }

    let r = &c.router;
    one_of("router.listenerCodecType", &r.listener_codec_type, CODEC_TYPES)?;
    not_empty("router.systemHost", &r.system_host)?;
    not_empty("router.listenerHost", &r.listener_host)?;
    not_empty("router.securedListenerHost", &r.secured_listener_host)?;
    if r.cluster_timeout_in_seconds == 0 {
        return Err(invalid("router.clusterTimeoutInSeconds", 0, "must be at least 1"));
    }
    if r.enforcer_response_timeout_in_seconds == 0 {
        return Err(invalid("router.enforcerResponseTimeoutInSeconds", 0, "must be at least 1"));
    }
    one_of("router.enforcerMode", &r.enforcer_mode, &["extAuthz", "module"])?;
    let tls = &r.upstream.tls;
    one_of("router.upstream.tls.minimumProtocolVersion", &tls.minimum_protocol_version, TLS_VERSIONS)?;
    one_of("router.upstream.tls.maximumProtocolVersion", &tls.maximum_protocol_version, TLS_VERSIONS)?;
    let dtls = &r.downstream.tls;
    one_of("router.downstream.tls.minimumProtocolVersion", &dtls.minimum_protocol_version, TLS_VERSIONS)?;
    one_of("router.downstream.tls.maximumProtocolVersion", &dtls.maximum_protocol_version, TLS_VERSIONS)?;

    let t = &r.upstream.timeouts;
    if t.max_route_timeout_in_seconds == 0 {
        return Err(invalid("router.upstream.timeouts.maxRouteTimeoutInSeconds", 0, "must be at least 1"));
    }
    if t.route_timeout_in_seconds > t.max_route_timeout_in_seconds {
        return Err(invalid(
            "router.upstream.timeouts.routeTimeoutInSeconds",
            t.route_timeout_in_seconds,
            format!("exceeds maxRouteTimeoutInSeconds ({})", t.max_route_timeout_in_seconds),
        ));
    }
    let h = &r.upstream.health;
    for (key, v) in [
        ("router.upstream.health.timeout", h.timeout),
        ("router.upstream.health.interval", h.interval),
        ("router.upstream.health.unhealthyThreshold", h.unhealthy_threshold),
        ("router.upstream.health.healthyThreshold", h.healthy_threshold),
    ] {
        if v == 0 {
            return Err(invalid(key, v, "must be at least 1"));
        }
    }
    for (i, code) in r.upstream.retry.status_codes.iter().enumerate() {
        if !(100..=599).contains(code) {
            return Err(invalid(&format!("router.upstream.retry.statusCodes[{i}]"), code, "not an HTTP status code"));
        }
    }
    if r.upstream.retry.base_interval_in_millis == 0 {
        return Err(invalid("router.upstream.retry.baseIntervalInMillis", 0, "must be at least 1"));
    }
    validate_enforcer(c)?;
    if r.upstream.dns.dns_refresh_rate < 2 {
        return Err(invalid(
            "router.upstream.dns.dNSRefreshRate",
            r.upstream.dns.dns_refresh_rate,
            "must be at least 2 ms",
        ));
    }
    if r.upstream.http2.max_concurrent_streams == 0 || r.upstream.http2.max_concurrent_streams > 2_147_483_647 {
        return Err(invalid(
            "router.upstream.http2.maxConcurrentStreams",
            r.upstream.http2.max_concurrent_streams,
            "expected 1-2147483647",
        ));
    }
    for (i, o) in r.cors.allow_origins.iter().enumerate() {
        not_empty(&format!("router.cors.allowOrigins[{i}]"), o)?;
    }
    Ok(())
}

fn validate_enforcer(c: &Config) -> Result<(), ConfigError> {
    let e = &c.enforcer;
    for (i, ts) in e.security.token_service.iter().enumerate() {
        let key = |k: &str| format!("enforcer.security.tokenService[{i}].{k}");
        not_empty(&key("name"), &ts.name)?;
        // The API-key issuer is looked up by name; its `iss` is not checked.
        if ts.name != "APIM APIkey" {
            not_empty(&key("issuer"), &ts.issuer)?;
        }
        if !ts.jwks_url.is_empty() {
            match url::Url::parse(&ts.jwks_url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                Ok(_) => return Err(invalid(&key("jwksURL"), &ts.jwks_url, "expected an http or https URL")),
                Err(err) => return Err(invalid(&key("jwksURL"), &ts.jwks_url, err.to_string())),
            }
        }
        if e.security.token_service[..i].iter().any(|o| !ts.issuer.is_empty() && o.issuer == ts.issuer) {
            return Err(invalid(&key("issuer"), &ts.issuer, "issuer is configured twice"));
        }
    }
    not_empty("enforcer.security.authHeader.authorizationHeader", &e.security.auth_header.authorization_header)?;
    not_empty("enforcer.security.authHeader.testConsoleHeaderName", &e.security.auth_header.test_console_header_name)?;
    if e.cache.enabled && e.cache.maximum_size == 0 {
        return Err(invalid("enforcer.cache.maximumSize", 0, "must be at least 1 when the cache is enabled"));
    }
    validate_throttling(&e.throttling)?;
    let g = &e.jwt_generator;
    one_of("enforcer.jwtGenerator.encoding", &g.encoding, &["base64", "base64url"])?;
    one_of(
        "enforcer.jwtGenerator.signingAlgorithm",
        &g.signing_algorithm,
        &["SHA256withRSA", "SHA384withRSA", "SHA512withRSA", "NONE"],
    )?;
    not_empty("enforcer.jwtGenerator.header", &g.header)?;
    if g.enabled {
        if g.token_ttl == 0 {
            return Err(invalid("enforcer.jwtGenerator.tokenTTL", 0, "must be at least 1"));
        }
        for (key, v) in [
            ("enforcer.jwtGenerator.jwksRatelimitQuota", g.jwks_ratelimit_quota),
            ("enforcer.jwtGenerator.jwksRatelimitTimeWindowInSeconds", g.jwks_ratelimit_time_window_in_seconds),
        ] {
            if v == 0 {
                return Err(invalid(key, v, "must be at least 1"));
            }
        }
        if g.keypair.iter().filter(|k| k.use_for_signing).count() != 1 {
            return Err(invalid(
                "enforcer.jwtGenerator.keypair",
                g.keypair.len(),
                "exactly one keypair must have useForSigning = true",
            ));
        }
    }
    let t = &e.jwt_issuer;
    one_of("enforcer.jwtIssuer.encoding", &t.encoding, &["base64", "base64url"])?;
    one_of("enforcer.jwtIssuer.signingAlgorithm", &t.signing_algorithm, &["SHA256withRSA"])?;
    if t.enabled {
        not_empty("enforcer.jwtIssuer.issuer", &t.issuer)?;
        if t.validity_period == 0 {
            return Err(invalid("enforcer.jwtIssuer.validityPeriod", 0, "must be at least 1"));
        }
    }
    for (key, v) in [
        ("analytics.adapter.bufferFlushInterval", &c.analytics.adapter.buffer_flush_interval),
        ("analytics.adapter.gRPCRequestTimeout", &c.analytics.adapter.grpc_request_timeout),
    ] {
        if crate::enforcer::go_duration(v).is_none() {
            return Err(invalid(key, v, "expected a duration such as 1s or 500ms"));
        }
    }
    if c.analytics.enabled {
        let props = &c.analytics.enforcer.config_properties;
        if let Some(v) = props.get("queueSize") {
            let ok = v.as_integer().is_some_and(|n| n > 0)
                || v.as_str().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n > 0);
            if !ok {
                return Err(invalid("analytics.enforcer.configProperties.queueSize", v, "expected a positive number"));
            }
        }
        if let Some(v) = props.get("sink")
            && v.as_str().is_none_or(|s| s.trim().is_empty())
        {
            return Err(invalid("analytics.enforcer.configProperties.sink", v, "expected \"stdout\" or a file path"));
        }
    }
    Ok(())
}

fn validate_throttling(t: &crate::enforcer::Throttling) -> Result<(), ConfigError> {
    one_of("enforcer.throttling.backend", &t.backend, &["memory", "redis"])?;
    one_of("enforcer.throttling.failureMode", &t.failure_mode, &["local", "open", "closed"])?;
    if !(t.accuracy > 0.0 && t.accuracy <= 0.5) {
        return Err(invalid("enforcer.throttling.accuracy", t.accuracy, "expected a fraction above 0 and at most 0.5"));
    }
    if t.replicas == 0 {
        return Err(invalid("enforcer.throttling.replicas", 0, "must be at least 1"));
    }
    if t.backend == "redis" {
        let url = t.redis.url.trim();
        not_empty("enforcer.throttling.redis.url", url)?;
        // `$env{}` references are resolved by the enforcer; the scheme is known already.
        if url.starts_with("rediss://") {
            return Err(invalid(
                "enforcer.throttling.redis.url",
                url,
                "TLS to Redis (rediss://) is not supported yet: use redis:// on a private network",
            ));
        }
        if !(url.starts_with("redis://") || url.starts_with("$env{")) {
            return Err(invalid("enforcer.throttling.redis.url", url, "expected redis://[:password@]host:port[/db]"));
        }
        if t.redis.timeout_millis == 0 {
            return Err(invalid("enforcer.throttling.redis.timeoutMillis", 0, "must be at least 1"));
        }
    }
    Ok(())
}

/// Warnings for Choreo Connect's well-known default credentials (admin/admin)
/// on the adapter's management API, given at every start while they are in use.
pub fn default_credentials(c: &Config) -> Vec<Warning> {
    if !c.adapter.server.enabled {
        return Vec::new();
    }
    c.adapter
        .server
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.username == "admin" && u.password == "admin")
        .map(|(i, u)| Warning::DefaultCredentials {
            key: format!("adapter.server.users[{i}]"),
            username: u.username.clone(),
        })
        .collect()
}

/// Warnings for sections that are accepted but have no effect here.
pub fn not_used(c: &Config) -> Vec<Warning> {
    let e = &c.enforcer;
    let mut out = Vec::new();
    if e.auth_service != crate::enforcer::AuthService::default() {
        out.push(Warning::NotUsed {
            key: "enforcer.authService".into(),
            instead: "the enforcer's ext_authz address is its --authz-address (ENFORCER_AUTHZ_ADDRESS), \
                      default 0.0.0.0:8081, and its gRPC limits are built in",
        });
    }
    let t = &e.throttling;
    if t.enable_global_event_publishing
        || !t.publisher.is_empty()
        || !t.jms_connection_provider_url.is_empty()
        || !t.jms_connection_initial_context_factory.is_empty()
    {
        out.push(Warning::NotUsed {
            key: "enforcer.throttling.enableGlobalEventPublishing".into(),
            instead: "API Manager's Traffic Manager is not used: the enforcer counts itself, in memory or in \
                      Redis ([enforcer.throttling] backend)",
        });
    }
    if !e.metrics.is_empty() {
        out.push(Warning::NotUsed { key: "enforcer.metrics".into(), instead: "enforcer metrics are not exported yet" });
    }
    out
}
