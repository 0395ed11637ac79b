//! Endpoint URLs and endpoint lists (`x-wso2-*-endpoints`, api.yaml `endpointConfig`).

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::model::{BasicAuth, CircuitBreakers, Endpoint, EndpointCluster, EndpointKind, RetryConfig, Scheme};
use crate::problem::Ctx;
use crate::value::{field, kind, opt_object, opt_string, opt_u64};

/// Parses an endpoint URL. A URL without a scheme gets `default_scheme`.
pub fn parse_endpoint_url(raw: &str, default_scheme: Scheme) -> Result<Endpoint, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("empty endpoint URL".into());
    }
    if trimmed.starts_with('/') {
        return Err(format!("relative URL {trimmed:?}: endpoints must be absolute URLs"));
    }
    let full = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        let prefix = match default_scheme {
            Scheme::Ws | Scheme::Wss => "ws://",
            _ => "http://",
        };
        format!("{prefix}{trimmed}")
    };
    let url = url::Url::parse(&full).map_err(|e| format!("malformed endpoint URL {trimmed:?}: {e}"))?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        other => return Err(format!("unsupported scheme {other:?} in {trimmed:?} (expected http, https, ws or wss)")),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) => {
            check_host_name(d).map_err(|why| format!("malformed endpoint host in {trimmed:?}: {why}"))?;
            d.to_string()
        }
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("no host in endpoint URL {trimmed:?}")),
    };
    let port = match url.port() {
        Some(0) => return Err(format!("port 0 in {trimmed:?}: endpoint ports must be 1-65535")),
        Some(p) => p,
        None => {
            if scheme.is_tls() {
                443
            } else {
                80
            }
        }
    };
    let base_path = url.path().trim_end_matches('/').to_string();
    Ok(Endpoint { url: full, scheme, host, port, base_path })
}

fn check_host_name(host: &str) -> Result<(), String> {
    if host.contains('{') || host.contains('}') {
        return Err(format!("{host:?} contains an unresolved {{variable}}"));
    }
    let ok_chars = host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok_chars {
        return Err(format!("{host:?} is not a valid host name"));
    }
    if host.starts_with(['-', '.']) || host.ends_with('-') {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok(())
}

/// True when the host is an IP address literal (no DNS needed).
pub fn is_ip(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
}

/// What an endpoint extension value refers to.
pub(crate) enum EndpointsValue {
    /// An inline endpoint list.
    Inline(EndpointCluster),
    /// `#/x-wso2-endpoints/<name>`
    Reference(String),
}

/// Parses an `x-wso2-production-endpoints` style value at `path`.
pub(crate) fn parse_endpoints_extension(
    ctx: &mut Ctx<'_>,
    v: &Value,
    path: &str,
    default_scheme: Scheme,
    allow_reference: bool,
) -> Option<EndpointsValue> {
    match v {
        Value::String(s) if allow_reference => match s.strip_prefix("#/x-wso2-endpoints/") {
            Some(name) if !name.is_empty() => Some(EndpointsValue::Reference(name.to_string())),
            _ => {
                ctx.err(path, format!("invalid endpoint reference {s:?} (expected \"#/x-wso2-endpoints/<name>\")"));
                None
            }
        },
        Value::Object(obj) => parse_endpoint_object(ctx, obj, path, default_scheme).map(EndpointsValue::Inline),
        other => {
            let expected = if allow_reference {
                "an object with `urls`, or \"#/x-wso2-endpoints/<name>\""
            } else {
                "an object with `urls`"
            };
            ctx.err(path, format!("expected {expected}, found {}", kind(other)));
            None
        }
    }
}

/// Parses `{urls, type, advanceEndpointConfig, securityConfig}`.
pub(crate) fn parse_endpoint_object(
    ctx: &mut Ctx<'_>,
    obj: &Map<String, Value>,
    path: &str,
    default_scheme: Scheme,
) -> Option<EndpointCluster> {
    let problems_before = ctx.problems.len();
    let urls_path = field(path, "urls");
    let urls: Vec<String> = match obj.get("urls") {
        None | Some(Value::Null) => {
            ctx.err(&urls_path, "missing: an endpoint list needs `urls`");
            return None;
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    other => {
                        ctx.err(format!("{urls_path}[{i}]"), format!("expected a URL string, found {}", kind(other)))
                    }
                }
            }
            out
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(other) => {
            ctx.err(&urls_path, format!("expected a list of URLs, found {}", kind(other)));
            return None;
        }
    };
    if urls.is_empty() {
        ctx.err(&urls_path, "no URLs given");
    }
    let mut endpoints = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        match parse_endpoint_url(u, default_scheme) {
            Ok(e) => endpoints.push(e),
            Err(why) => ctx.err(format!("{urls_path}[{i}]"), why),
        }
    }
    let kind = match opt_string(ctx, obj.get("type"), &field(path, "type")) {
        Some(t) if t.to_ascii_lowercase().starts_with("failover") => EndpointKind::Failover,
        Some(t) if t.is_empty() || t.eq_ignore_ascii_case("load_balance") || t.eq_ignore_ascii_case("http") => {
            EndpointKind::LoadBalance
        }
        Some(t) => {
            ctx.err(field(path, "type"), format!("unknown endpoint type {t:?} (expected load_balance or failover)"));
            EndpointKind::LoadBalance
        }
        None => EndpointKind::LoadBalance,
    };
    let mut cluster = EndpointCluster::plain(endpoints, kind);
    let adv_path = field(path, "advanceEndpointConfig");
    if let Some(adv) = opt_object(ctx, obj.get("advanceEndpointConfig"), &adv_path) {
        parse_advance_config(ctx, adv, &adv_path, &mut cluster);
    }
    let sec_path = field(path, "securityConfig");
    if let Some(sec) = opt_object(ctx, obj.get("securityConfig"), &sec_path) {
        cluster.basic_auth = parse_security_config(ctx, sec, &sec_path);
    }
    if ctx.problems.len() > problems_before {
        return None;
    }
    Some(cluster)
}

fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    crate::value::get_ci(obj, key)
}

fn parse_advance_config(ctx: &mut Ctx<'_>, adv: &Map<String, Value>, path: &str, cluster: &mut EndpointCluster) {
    let retry_path = field(path, "retryConfig");
    if let Some(r) = opt_object(ctx, get_ci(adv, "retryConfig"), &retry_path) {
        let count = opt_u64(ctx, get_ci(r, "count"), &field(&retry_path, "count")).unwrap_or(0);
        let codes_path = field(&retry_path, "statusCodes");
        let mut codes = Vec::new();
        match get_ci(r, "statusCodes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(c) = opt_u64(ctx, Some(item), &format!("{codes_path}[{i}]")) {
                        codes.push(c.min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
            Some(other) => ctx.err(&codes_path, format!("expected a list of status codes, found {}", kind(other))),
        }
        cluster.retry = Some(RetryConfig { count: count.min(u64::from(u32::MAX)) as u32, status_codes: codes });
    }
    if let Some(t) = opt_u64(ctx, get_ci(adv, "timeoutInMillis"), &field(path, "timeoutInMillis")) {
        cluster.timeout_ms = Some(t.min(u64::from(u32::MAX)) as u32).filter(|t| *t > 0);
    }
    let cb_path = field(path, "circuitBreakers");
    if let Some(cb) = opt_object(ctx, get_ci(adv, "circuitBreakers"), &cb_path) {
        let mut get = |key: &str| {
            opt_u64(ctx, get_ci(cb, key), &field(&cb_path, key))
                .filter(|v| *v > 0)
                .map(|v| v.min(u64::from(u32::MAX)) as u32)
        };
        cluster.circuit_breakers = Some(CircuitBreakers {
            max_connections: get("maxConnections"),
            max_requests: get("maxRequests"),
            max_pending_requests: get("maxPendingRequests"),
            max_retries: get("maxRetries"),
            max_connection_pools: get("maxConnectionPools"),
        });
    }
}

/// Parses `securityConfig` / api.yaml `endpoint_security.<env>` into basic credentials.
/// Returns `None` when security is not enabled.
pub(crate) fn parse_security_config(ctx: &mut Ctx<'_>, sec: &Map<String, Value>, path: &str) -> Option<BasicAuth> {
    let enabled = match get_ci(sec, "enabled") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => true,
    };
    if !enabled {
        return None;
    }
    let ty = opt_string(ctx, get_ci(sec, "type"), &field(path, "type")).unwrap_or_default();
    if !ty.eq_ignore_ascii_case("basic") {
        ctx.err(field(path, "type"), format!("endpoint security type {ty:?} is not supported (only basic)"));
        return None;
    }
    let username = opt_string(ctx, get_ci(sec, "username"), &field(path, "username")).unwrap_or_default();
    let password = opt_string(ctx, get_ci(sec, "password"), &field(path, "password")).unwrap_or_default();
    if username.is_empty() {
        ctx.err(field(path, "username"), "basic endpoint security needs a username");
        return None;
    }
    Some(BasicAuth { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_host_port_and_base_path() {
        let e = parse_endpoint_url("https://api.example.com/v3/", Scheme::Http).expect("valid");
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.base_path.as_str()),
            (Scheme::Https, "api.example.com", 443, "/v3")
        );
        let e = parse_endpoint_url("backend:8080", Scheme::Http).expect("valid");
        assert_eq!((e.url.as_str(), e.port, e.base_path.as_str()), ("http://backend:8080", 8080, ""));
        let e = parse_endpoint_url("http://[::1]:9000/x", Scheme::Http).expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert!(is_ip(&e.host));
        let e = parse_endpoint_url(" http://10.0.0.1 ", Scheme::Http).expect("valid");
        assert_eq!((e.host.as_str(), e.port), ("10.0.0.1", 80));
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("/relative", "relative URL"),
            ("", "empty endpoint URL"),
            ("ftp://x.example", "unsupported scheme \"ftp\""),
            ("http://x.example:0", "port 0"),
            ("http://x.example:99999", "malformed endpoint URL"),
            ("http://{host}.example", "malformed endpoint"),
            ("http://-bad.example", "not a valid host name"),
        ];
        for (url, want) in cases {
            let err = parse_endpoint_url(url, Scheme::Http).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
