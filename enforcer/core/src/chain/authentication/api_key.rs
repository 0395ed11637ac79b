//! The API-key authenticator: a JWT in the header or query parameter of the
//! resource's `apiKey` schemes, signed by `APIM APIkey` (else `APIM
//! Publisher`), with its IP and referer restrictions and subscriptions.

use super::validate::{TokenError, validate};
use super::{Attempt, authed, subscription};
use crate::apis::KeyLocation;
use crate::cache::Kind;
use crate::chain::Context;
use crate::decision::AuthType;
use crate::deny::Deny;
use crate::request::{query_param, without_query_params};
use crate::token::{self, TokenInfo};

fn key_issuer_missing() -> Deny {
    let mut d = Deny::unclassified("Unclassified Authentication Failure");
    d.status = 500;
    d
}

pub(super) async fn attempt(cx: &Context<'_>) -> Option<Attempt> {
    let op = cx.op?;
    let raw = op.api_keys.iter().find_map(|loc| {
        let v = match loc {
            KeyLocation::Header(h) => cx.input.header(h).map(|v| v.trim().to_string()),
            KeyLocation::Query(q) => query_param(cx.input.path, q),
        };
        v.filter(|v| !v.is_empty())
    })?;
    if !token::looks_like_jwt(&raw) {
        return None;
    }
    let s = cx.settings;
    let Some(issuer) = &s.api_key_issuer else { return Some(Attempt::Fail(key_issuer_missing())) };
    let info = match validate(cx.memory, Kind::ApiKey, &raw, Some(issuer), s).await {
        Ok(i) => i,
        Err(TokenError::Expired | TokenError::Revoked | TokenError::WrongType) => {
            return Some(Attempt::Fail(Deny::bad_token()));
        }
        Err(TokenError::NoKeys) => return Some(Attempt::Fail(key_issuer_missing())),
        Err(_) => return Some(Attempt::Fail(Deny::authentication_failed("API key authentication failed."))),
    };
    if let Some(d) = restrictions(cx, &info) {
        return Some(Attempt::Fail(d));
    }
    let mut a = authed(&info, AuthType::ApiKey, &raw);
    if issuer.validate_subscription {
        if let Err(d) = subscription(cx, &info, &mut a) {
            return Some(Attempt::Fail(d));
        }
    } else {
        a.app_name = format!("anon:{}", issuer.name);
        a.tier = "Unlimited".into();
    }
    // The key goes no further than the gateway.
    let queries: Vec<String> = op
        .api_keys
        .iter()
        .filter_map(|l| match l {
            KeyLocation::Query(q) => Some(q.clone()),
            KeyLocation::Header(_) => None,
        })
        .chain(cx.api.api_key_queries.iter().cloned())
        .collect();
    if cx.input.path.contains('?') && !queries.is_empty() {
        let p = without_query_params(cx.input.path, &queries);
        if p != cx.input.path {
            a.api_key_query = Some(p);
        }
    }
    Some(Attempt::Ok(a))
}

/// `permittedIP` (the client's address, as the router determined it) and
/// `permittedReferer` claims.
fn restrictions(cx: &Context<'_>, info: &TokenInfo) -> Option<Deny> {
    let forbidden = || Some(Deny::not_subscribed("Resource forbidden "));
    if let Some(ips) = &info.permitted_ip {
        let ip = cx.input.client_ip();
        if !ip.is_empty() {
            if ips.split(',').map(str::trim).any(|p| ip_matches(p, ip)) {
                return None;
            }
            return forbidden();
        }
    }
    if let Some(refs) = &info.permitted_referer {
        let Some(referer) = cx.input.header("referer") else { return forbidden() };
        if !refs.split(',').map(str::trim).any(|p| wildcard_match(p, referer)) {
            return forbidden();
        }
    }
    None
}

fn ip_matches(pattern: &str, ip: &str) -> bool {
    let Some((net, bits)) = pattern.split_once('/') else { return pattern == ip };
    let (Ok(net), Ok(addr), Ok(bits)) =
        (net.parse::<std::net::IpAddr>(), ip.parse::<std::net::IpAddr>(), bits.parse::<u32>())
    else {
        return false;
    };
    match (net, addr) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// `*` matches any run of non-space characters; everything else literally.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part) && !rest[..rest.len() - part.len()].contains(' ');
        } else {
            let Some(pos) = rest.find(part) else { return false };
            if rest[..pos].contains(' ') {
                return false;
            }
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_referer_restrictions() {
        assert!(ip_matches("10.0.0.0/8", "10.1.2.3"));
        assert!(!ip_matches("10.0.0.0/8", "11.1.2.3"));
        assert!(ip_matches("1.2.3.4", "1.2.3.4"));
        assert!(ip_matches("::1/128", "::1"));
        assert!(!ip_matches("10.0.0.0/8", "::1"));
        assert!(wildcard_match("https://*.example.com/*", "https://www.example.com/page"));
        assert!(!wildcard_match("https://*.example.com/*", "https://www.example.org/"));
        assert!(!wildcard_match("https://*.example.com/*", "https://a b.example.com/"));
        assert!(wildcard_match("exact", "exact"));
    }
}
