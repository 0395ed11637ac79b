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
    use serde_json::json;

    use super::super::tests::{accepted, assert_failed, not_tried};
    use super::*;
    use crate::chain::test_support::Fx;
    use crate::testkit::{
        BAD, BASE, KEYS, Req, VERSION, api_key, api_key_claims, internal_key, jti_of, jwt, now, revoked, sign,
        subscription, without_issuer,
    };

    const FAILED: &str = "API key authentication failed.. Make sure you have provided the correct security credentials";

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

    #[tokio::test]
    async fn a_key_in_the_header_is_accepted_with_its_application() {
        let fx = Fx::new();
        let key = api_key(json!({"keytype": "SANDBOX"}));
        for r in [Req::get("/pets").header("apikey", &key), Req::get("/pets").header("ApiKey", &format!(" {key} "))] {
            let a = accepted(attempt(&fx.cx(&r)).await);
            assert_eq!(a.auth_type, AuthType::ApiKey);
            assert_eq!(a.raw, key, "trimmed");
            assert_eq!(a.key_type, "SANDBOX");
            assert_eq!(
                (a.app_name.as_str(), a.app_id.as_str(), a.app_owner.as_str(), a.tier.as_str()),
                ("PetApp", "app-uuid-1", "bob", "Gold")
            );
            let t = a.token.as_ref().expect("token");
            assert_eq!((&*t.id, &*t.sub, &*t.issuer), (jti_of(&key).as_str(), "alice@carbon.super", "APIM APIkey"));
            assert_eq!(a.api_key_query, None, "no query");
        }
        // A resource taking only the header.
        let r = Req::get("/keyonly").header("apikey", &key);
        assert_eq!(accepted(attempt(&fx.cx(&r)).await).auth_type, AuthType::ApiKey);
    }

    #[tokio::test]
    async fn a_key_in_the_query_is_accepted_and_taken_off_the_path() {
        let fx = Fx::new();
        let key = api_key(json!({}));
        for (path, rest) in [
            (format!("{BASE}/pets?apikey={key}"), format!("{BASE}/pets")),
            (format!("{BASE}/pets?x=1&apikey={key}&y=2"), format!("{BASE}/pets?x=1&y=2")),
        ] {
            let r = Req::get("/pets").path(&path);
            let a = accepted(attempt(&fx.cx(&r)).await);
            assert_eq!((a.auth_type, a.raw.as_str()), (AuthType::ApiKey, key.as_str()));
            assert_eq!(a.api_key_query.as_deref(), Some(rest.as_str()), "{path}");
        }
        // In the header, with the query parameter there too: the header's key, the parameter still removed.
        let r = Req::get("/pets").header("apikey", &key).path(&format!("{BASE}/pets?apikey=other&x=1"));
        let a = accepted(attempt(&fx.cx(&r)).await);
        assert_eq!(a.raw, key);
        assert_eq!(a.api_key_query.as_deref(), Some(format!("{BASE}/pets?x=1").as_str()));
    }

    #[tokio::test]
    async fn it_does_not_try_without_a_key_where_keys_apply() {
        let fx = Fx::new();
        let key = api_key(json!({}));
        for r in [
            Req::get("/pets"),
            Req::get("/pets").header("apikey", ""),
            Req::get("/pets").header("apikey", "opaque-key"),
            Req::get("/pets").path(&format!("{BASE}/pets?apikey=")),
            Req::get("/pets").path(&format!("{BASE}/pets?key={key}")),
            Req::get("/pets").header("x-api-key", &key),
            // POST /pets takes OAuth2 only; /keyonly reads the header only.
            Req::new("POST", "/pets").header("apikey", &key),
            Req::get("/keyonly").path(&format!("{BASE}/keyonly?apikey={key}")),
            Req::new("OPTIONS", "/pets").header("apikey", &key),
        ] {
            not_tried(attempt(&fx.cx(&r)).await);
        }
    }

    #[tokio::test]
    async fn a_key_that_does_not_validate_is_refused_with_its_reason() {
        let fx = Fx::new();
        for (key, description) in [
            ("x.y.z".to_string(), FAILED),
            (sign(&KEYS.idp, &api_key_claims(json!({}))), FAILED),
            (jwt(json!({})), FAILED),
            (api_key(json!({"nbf": now() + 600})), FAILED),
            (api_key(json!({"exp": now() - 60})), BAD),
            // An internal key is not an API key.
            (internal_key(json!({})), BAD),
        ] {
            let r = Req::get("/pets").header("apikey", &key);
            assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", description);
        }
        let key = api_key(json!({}));
        fx.memory.set_revoked(revoked(&[&jti_of(&key)]));
        let r = Req::get("/pets").header("apikey", &key);
        assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", BAD);
    }

    #[tokio::test]
    async fn a_key_must_be_subscribed_to_the_api() {
        let fx = Fx::new();
        for subs in [json!([subscription("Pets", "2.0.0", BASE)]), json!([subscription("Cats", VERSION, BASE)])] {
            let r = Req::get("/pets").header("apikey", &api_key(json!({"subscribedAPIs": subs})));
            assert_failed(attempt(&fx.cx(&r)).await, 403, "900908", "Resource forbidden ");
        }
        // Without subscription validation, an anonymous application.
        let fx = Fx::config(|c, _| {
            for i in &mut c.security.as_mut().expect("security").token_service {
                i.validate_subscription = false;
            }
        });
        let r = Req::get("/pets").header("apikey", &api_key(json!({"subscribedAPIs": []})));
        let a = accepted(attempt(&fx.cx(&r)).await);
        assert_eq!((a.app_name.as_str(), a.tier.as_str()), ("anon:APIM APIkey", "Unlimited"));
    }

    #[tokio::test]
    async fn without_a_key_issuer_it_is_500_900900() {
        let fx = Fx::config(|c, _| {
            without_issuer(c, "APIM APIkey");
            without_issuer(c, "APIM Publisher");
        });
        let r = Req::get("/pets").header("apikey", &api_key(json!({})));
        let d = assert_failed(attempt(&fx.cx(&r)).await, 500, "900900", "Unclassified Authentication Failure");
        assert_eq!(d.message, "Unclassified Authentication Failure");
        // Without `APIM APIkey`, the publisher's key signs API keys.
        let fx = Fx::config(|c, _| without_issuer(c, "APIM APIkey"));
        let r = Req::get("/pets").header("apikey", &sign(&KEYS.publisher, &api_key_claims(json!({}))));
        assert_eq!(accepted(attempt(&fx.cx(&r)).await).auth_type, AuthType::ApiKey);
        let r = Req::get("/pets").header("apikey", &api_key(json!({})));
        assert_failed(attempt(&fx.cx(&r)).await, 401, "900901", FAILED);
    }

    #[tokio::test]
    async fn permitted_ip_and_referer_restrict_a_key() {
        let fx = Fx::new();
        let key = api_key(json!({"permittedIP": "10.0.0.0/8, 198.51.100.7"}));
        // The client's address as the router determined it, else the peer's.
        for (ip, ok) in [("10.1.2.3", true), ("198.51.100.7", true), ("198.51.100.8", false), ("", false)] {
            let r = Req::get("/pets").header("apikey", &key).header(crate::request::CLIENT_IP_HEADER, ip);
            let a = attempt(&fx.cx(&r)).await;
            if ok {
                assert_eq!(accepted(a).auth_type, AuthType::ApiKey, "{ip}");
            } else {
                assert_failed(a, 403, "900908", "Resource forbidden ");
            }
        }
        let mut r = Req::get("/pets").header("apikey", &key);
        r.source_ip = "10.9.9.9".into();
        accepted(attempt(&fx.cx(&r)).await);

        let key = api_key(json!({"permittedReferer": "https://*.example.com/*"}));
        let r = Req::get("/pets").header("apikey", &key);
        assert_failed(attempt(&fx.cx(&r)).await, 403, "900908", "Resource forbidden ");
        let r = Req::get("/pets").header("apikey", &key).header("referer", "https://www.example.org/");
        assert_failed(attempt(&fx.cx(&r)).await, 403, "900908", "Resource forbidden ");
        let r = Req::get("/pets").header("apikey", &key).header("referer", "https://www.example.com/pets");
        accepted(attempt(&fx.cx(&r)).await);
    }
}
