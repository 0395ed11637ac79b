//! The decision for one request (ARCHITECTURE.md, "The enforcer"): API and resource lookup,
//! CORS answers, the authenticators in Choreo Connect's order and rules,
//! subscriptions, scopes, key type → cluster, backend JWT.
//!
//! Input and output are plain values, independent of gRPC, so every decision
//! is unit-testable (and fuzzable).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::apis::{Api, ApiIndex, KeyLocation, Mtls, Operation, Resource};
use crate::cache::{self, Kind, SKEW_SECS, TokenCache};
use crate::deny::{Deny, www_authenticate};
use crate::settings::{Issuer, Settings};
use crate::token::{self, TokenInfo};

/// `WWW-Authenticate` challenge of the JWT authenticator.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"Choreo Connect\"";
/// `WWW-Authenticate` challenge of the mTLS authenticator.
pub const MTLS_CHALLENGE: &str = "Mutual SSL realm=\"Choreo Connect\"";
/// Header with the cluster the enforcer picked.
pub const CLUSTER_HEADER: &str = "x-wso2-cluster-header";
/// Header with the client's address, set by the router before ext_authz.
pub const CLIENT_IP_HEADER: &str = "x-wso2-client-ip";

/// One request, as Envoy describes it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Method.
    pub method: &'a str,
    /// Path with query.
    pub path: &'a str,
    /// Lower-cased request headers.
    pub headers: &'a HashMap<String, String>,
    /// The route's context extensions.
    pub ext: &'a HashMap<String, String>,
    /// The TLS peer certificate (URL-encoded PEM), or empty.
    pub peer_cert: &'a str,
    /// The downstream address, for the client IP.
    pub source_ip: &'a str,
}

impl Input<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn ext(&self, key: &str) -> &str {
        self.ext.get(key).map(String::as_str).unwrap_or("")
    }

    /// Client IP: the address the router determined (`x-wso2-client-ip`,
    /// which it sets from its `use_remote_address` and trusted hops and
    /// overwrites whatever a client sent), else the peer address of the check.
    /// Never `x-forwarded-for`, which a client can write.
    pub fn client_ip(&self) -> &str {
        self.header(CLIENT_IP_HEADER).map(str::trim).filter(|x| !x.is_empty()).unwrap_or(self.source_ip)
    }
}

/// Who was let in, for headers, metadata and analytics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthInfo {
    /// API UUID.
    pub api_id: String,
    /// API name.
    pub api_name: String,
    /// API version.
    pub api_version: String,
    /// API base path.
    pub api_context: String,
    /// API type.
    pub api_type: String,
    /// Resource template.
    pub resource: String,
    /// `JWT`, `API Key`, `Internal Key`, `mtls`, `Unsecured`.
    pub auth_type: &'static str,
    /// Application name.
    pub app_name: String,
    /// Application UUID.
    pub app_id: String,
    /// Application owner.
    pub app_owner: String,
    /// PRODUCTION or SANDBOX.
    pub key_type: String,
    /// End user (`sub`).
    pub user: String,
    /// Subscription tier.
    pub tier: String,
}

/// What Envoy is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward, with these header changes.
    Allow {
        /// Headers set (overwriting).
        set: Vec<(Cow<'static, str>, String)>,
        /// Headers removed.
        remove: Vec<String>,
        /// Who.
        info: AuthInfo,
    },
    /// Answer directly.
    Deny {
        /// Why.
        deny: Deny,
        /// `WWW-Authenticate` value, for authentication failures.
        www_authenticate: Option<String>,
        /// What was known when refusing (API, resource), for analytics.
        info: AuthInfo,
    },
}

/// The enforcer's state: configuration, APIs, revoked tokens, caches.
pub struct Engine {
    /// The configuration (none until the first one arrives: every check fails).
    pub settings: ArcSwapOption<Settings>,
    /// The APIs of the label.
    pub apis: ArcSwap<ApiIndex>,
    /// Revoked token ids with their expiry.
    pub revoked: ArcSwap<HashMap<Box<str>, i64>>,
    /// Validated tokens.
    pub cache: ArcSwap<TokenCache>,
    /// Backend JWTs by (token id, API), with their `exp`.
    pub backend_jwts: moka::sync::Cache<BackendJwtKey, (Arc<str>, i64)>,
    /// Which of the adapter's data sets arrived at least once ([`Received`] bits).
    received: AtomicU8,
}

/// The data sets the enforcer needs before it decides anything.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Received {
    Apis = 1,
    Revoked = 2,
}

/// A backend JWT's cache key: the incoming token's id and the API (`basePath:version`).
pub type BackendJwtKey = (Box<str>, Box<str>);

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

/// The whole check failed: the enforcer cannot decide yet (it has not
/// received its configuration, its APIs and the revoked tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the enforcer has not received its configuration, APIs and revoked tokens yet")]
pub struct NotReady;

struct Ctx<'a> {
    s: &'a Settings,
    input: Input<'a>,
    api: &'a Api,
    resource: &'a Resource,
    op: &'a Operation,
}

/// The outcome of one authenticator that could try.
enum Attempt {
    Ok(Authed),
    Fail(Deny),
}

struct Authed {
    info: Option<Arc<TokenInfo>>,
    auth_type: &'static str,
    key_type: String,
    app_name: String,
    app_id: String,
    app_owner: String,
    tier: String,
    token: String,
    api_key_query: Option<String>,
}

impl Engine {
    /// An engine with no configuration and no APIs.
    pub fn new() -> Engine {
        Engine {
            settings: ArcSwapOption::empty(),
            apis: ArcSwap::from_pointee(ApiIndex::default()),
            revoked: ArcSwap::from_pointee(HashMap::new()),
            cache: ArcSwap::from_pointee(TokenCache::new(false, 1, 1)),
            backend_jwts: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
            received: AtomicU8::new(0),
        }
    }

    /// Installs the APIs of the label.
    pub fn set_apis(&self, index: ApiIndex) {
        self.apis.store(Arc::new(index));
        self.received.fetch_or(Received::Apis as u8, Ordering::Release);
    }

    /// Whether the configuration, the APIs and the revoked tokens have all
    /// arrived: before that no request is let through (a token revoked
    /// before a restart must not work while the list is on its way).
    pub fn is_ready(&self) -> bool {
        let all = Received::Apis as u8 | Received::Revoked as u8;
        self.received.load(Ordering::Acquire) & all == all && self.settings.load().is_some()
    }

    /// Installs a configuration, with an empty token cache: tokens validated
    /// under the previous one (an issuer since removed, a key since replaced)
    /// must be validated again.
    pub fn set_settings(&self, s: Arc<Settings>) {
        self.cache.store(Arc::new(TokenCache::new(s.cache.0, s.cache.1, s.cache.2)));
        self.backend_jwts.invalidate_all();
        self.settings.store(Some(s));
    }

    /// Installs the revoked tokens and drops them from the caches.
    pub fn set_revoked(&self, revoked: HashMap<Box<str>, i64>) {
        self.cache.load().drop_revoked(&revoked);
        let ids = revoked.clone();
        let _ = self.backend_jwts.invalidate_entries_if(move |k, _| ids.contains_key(&k.0));
        self.revoked.store(Arc::new(revoked));
        self.received.fetch_or(Received::Revoked as u8, Ordering::Release);
    }

    fn is_revoked(&self, id: &str) -> bool {
        self.revoked.load().contains_key(id)
    }

    /// Decides on one request.
    pub async fn check(&self, input: Input<'_>) -> Result<Decision, NotReady> {
        let Some(s) = self.settings.load_full() else { return Err(NotReady) };
        if !self.is_ready() {
            return Err(NotReady);
        }
        let apis = self.apis.load();
        let Some(api) = apis.find(input.ext("vHost"), input.ext("basePath"), input.ext("version")) else {
            return Ok(deny(Deny::not_found(), None, AuthInfo::default()));
        };
        let template = input.ext("path");
        let mut info = AuthInfo {
            api_id: api.raw.id.clone(),
            api_name: api.raw.title.clone(),
            api_version: api.raw.version.clone(),
            api_context: api.raw.base_path.clone(),
            api_type: api.raw.api_type.clone(),
            resource: template.to_string(),
            ..Default::default()
        };
        let resource = api.resources.get(template);
        let op = resource.and_then(|r| r.operation(input.method));
        let (Some(resource), Some(op)) = (resource, op) else {
            // CORS: OPTIONS on a path without an OPTIONS operation (README.md, "Errors").
            if input.method.eq_ignore_ascii_case("OPTIONS")
                && let Some(r) = resource
            {
                return Ok(deny(Deny::options(r.allow.clone()), None, info));
            }
            return Ok(deny(Deny::not_found(), None, info));
        };
        let ctx = Ctx { s: &s, input, api, resource, op };
        Ok(self.authenticate(&ctx, info.clone()).await.unwrap_or_else(|(d, www)| {
            info.auth_type = "";
            deny(d, www, info)
        }))
    }

    async fn authenticate(&self, c: &Ctx<'_>, mut info: AuthInfo) -> Result<Decision, (Deny, Option<String>)> {
        let api = c.api;
        let challenges: Vec<&str> =
            if api.mtls != Mtls::Off { vec![MTLS_CHALLENGE, BEARER_CHALLENGE] } else { vec![BEARER_CHALLENGE] };
        let auth_fail = |d: Deny| (d, Some(www_authenticate(&challenges)));
        if api.prototyped || c.op.disable_security {
            if api.blocked {
                return Err(auth_fail(Deny::api_blocked()));
            }
            let key_type = if !c.input.ext("prodClusterName").is_empty() { "PRODUCTION" } else { "SANDBOX" };
            info.auth_type = "Unsecured";
            info.key_type = key_type.into();
            info.user = "anonymous".into();
            let mut set = Vec::new();
            if let Some(cluster) = cluster_for(c, key_type) {
                set.push((Cow::Borrowed(CLUSTER_HEADER), cluster.to_string()));
            }
            return Ok(Decision::Allow { set, remove: Vec::new(), info });
        }

        // Mutual TLS first, as Choreo Connect orders its authenticators.
        let mut mtls_ok = false;
        if api.mtls != Mtls::Off {
            mtls_ok = self.mtls(c);
            if !mtls_ok && api.mtls == Mtls::Mandatory {
                return Err(auth_fail(Deny::missing_credentials()));
            }
        }
        let app_auth_needed = !(mtls_ok && api.mtls == Mtls::Mandatory && !api.application_security);

        let mut first_error: Option<Deny> = None;
        let mut could_try = false;
        let mut authed: Option<Authed> = None;
        if app_auth_needed {
            for step in [Kind::InternalKey, Kind::Jwt, Kind::ApiKey] {
                let attempt = match step {
                    Kind::InternalKey => self.internal_key(c).await,
                    Kind::Jwt => self.jwt(c).await,
                    Kind::ApiKey => self.api_key(c).await,
                };
                match attempt {
                    None => {}
                    Some(Attempt::Ok(a)) => {
                        could_try = true;
                        authed = Some(a);
                        break;
                    }
                    Some(Attempt::Fail(d)) => {
                        could_try = true;
                        first_error.get_or_insert(d);
                    }
                }
            }
        }
        let authed = match authed {
            Some(a) => a,
            None if !app_auth_needed => Authed {
                info: None,
                auth_type: "mtls",
                key_type: if !c.input.ext("prodClusterName").is_empty() {
                    "PRODUCTION".into()
                } else {
                    "SANDBOX".into()
                },
                app_name: String::new(),
                app_id: String::new(),
                app_owner: String::new(),
                tier: String::new(),
                token: String::new(),
                api_key_query: None,
            },
            None => {
                let d = match (could_try, first_error) {
                    (true, Some(d)) => d,
                    _ => Deny::missing_credentials(),
                };
                return Err(auth_fail(d));
            }
        };

        // Key type → cluster: PRODUCTION or SANDBOX picks the route's cluster.
        let cluster = match authed.key_type.to_ascii_uppercase().as_str() {
            "PRODUCTION" => cluster_for(c, "PRODUCTION").ok_or_else(|| auth_fail(Deny::no_endpoint(true)))?,
            "SANDBOX" => cluster_for(c, "SANDBOX").ok_or_else(|| auth_fail(Deny::no_endpoint(false)))?,
            _ => {
                return Err(auth_fail(Deny::invalid_credentials(format!(
                    "Invalid key type.{}",
                    crate::deny::CREDENTIALS_SUFFIX
                ))));
            }
        };

        let mut set: Vec<(Cow<'static, str>, String)> = vec![(Cow::Borrowed(CLUSTER_HEADER), cluster.to_string())];
        let mut remove: Vec<String> = Vec::with_capacity(4);
        remove.extend(api.api_key_headers.iter().cloned());
        remove.push(c.s.internal_key_header.clone());
        if !c.s.outbound_auth_header {
            remove.push(api.auth_header.clone().unwrap_or_else(|| c.s.auth_header.clone()));
        }
        if !c.s.outbound_cert_header {
            remove.push(c.s.cert_header.clone());
        }
        if let Some(q) = &authed.api_key_query {
            set.push((Cow::Borrowed(":path"), q.clone()));
        } else if !api.api_key_queries.is_empty() && c.input.path.contains('?') {
            let p = without_query_params(c.input.path, &api.api_key_queries);
            if p != c.input.path {
                set.push((Cow::Borrowed(":path"), p));
            }
        }

        if let (Some(bj), Some(tok)) = (&c.s.backend_jwt, &authed.info) {
            match self.backend_jwt(c, bj, tok, &authed) {
                Ok(jwt) => set.push((Cow::Owned(bj.header.clone()), jwt.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "backend JWT could not be generated");
                    return Err(auth_fail(Deny::unclassified("Unclassified Authentication Failure")));
                }
            }
        }

        info.auth_type = authed.auth_type;
        info.key_type = authed.key_type.to_ascii_uppercase();
        info.app_name = authed.app_name;
        info.app_id = authed.app_id;
        info.app_owner = authed.app_owner;
        info.tier = authed.tier;
        info.user = authed.info.as_ref().map(|t| t.sub.to_string()).unwrap_or_default();
        let _ = authed.token;
        Ok(Decision::Allow { set, remove, info })
    }

    fn mtls(&self, c: &Ctx<'_>) -> bool {
        let raw = if c.s.cert_from_tls {
            Some(c.input.peer_cert)
                .filter(|x| !x.is_empty())
                .map(|x| percent_decode_str(x).decode_utf8_lossy().into_owned())
        } else {
            c.input.header(&c.s.cert_header).map(|x| {
                if c.s.cert_header_encoded {
                    percent_decode_str(x).decode_utf8_lossy().into_owned()
                } else {
                    x.to_string()
                }
            })
        };
        let Some(pem) = raw.filter(|p| !p.trim().is_empty()) else { return false };
        let Ok((_, parsed)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else { return false };
        c.api.client_certs.iter().any(|cc| cc.der == parsed.contents)
    }

    /// Validates a token of `kind` with `issuer` keys, using and filling the cache.
    async fn validate(
        &self,
        kind: Kind,
        raw: &str,
        issuer_fixed: Option<&Arc<Issuer>>,
        s: &Settings,
    ) -> Result<Arc<TokenInfo>, TokenError> {
        let now = crate::now_secs();
        let cache = self.cache.load();
        let key = cache::key(kind, raw);
        if let Some(hit) = cache.get(&key, now) {
            if self.is_revoked(&hit.id) {
                return Err(TokenError::Revoked);
            }
            return Ok(hit);
        }
        let jwt = token::parse(raw).map_err(|_| TokenError::Parse)?;
        let id = jwt.claims.get("jti").and_then(Value::as_str).filter(|x| !x.is_empty()).unwrap_or(jwt.signature);
        if self.is_revoked(id) {
            return Err(TokenError::Revoked);
        }
        if kind == Kind::ApiKey && jwt.claims.get("token_type").and_then(Value::as_str) == Some("InternalKey") {
            return Err(TokenError::WrongType);
        }
        if kind == Kind::InternalKey && jwt.claims.get("token_type").and_then(Value::as_str) != Some("InternalKey") {
            return Err(TokenError::WrongType);
        }
        // API keys and internal keys are JWTs of configured issuers too: never
        // accept one as an OAuth token.
        if kind == Kind::Jwt
            && jwt
                .claims
                .get("token_type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("apiKey") || t.eq_ignore_ascii_case("InternalKey"))
        {
            return Err(TokenError::WrongType);
        }
        let issuer = match issuer_fixed {
            Some(i) => Arc::clone(i),
            None => {
                let iss = jwt.claims.get("iss").and_then(Value::as_str).unwrap_or("");
                s.issuers.get(iss).cloned().ok_or(TokenError::Invalid)?
            }
        };
        // Signature: the JWKS key named by `kid`, else the issuer's certificates.
        let verified = match (&jwt.kid, &issuer.jwks) {
            (Some(kid), Some(jwks)) => match jwks.key(kid).await {
                Some(k) => k.verify(&jwt.alg, jwt.signing_input, jwt.signature),
                None if !issuer.certs.is_empty() => {
                    issuer.certs.iter().any(|k| k.verify(&jwt.alg, jwt.signing_input, jwt.signature))
                }
                None => false,
            },
            (None, Some(jwks)) if issuer.certs.is_empty() => {
                jwks.keys().iter().any(|k| k.verify(&jwt.alg, jwt.signing_input, jwt.signature))
            }
            _ => {
                if issuer.certs.is_empty() {
                    return Err(TokenError::NoKeys);
                }
                issuer.certs.iter().any(|k| k.verify(&jwt.alg, jwt.signing_input, jwt.signature))
            }
        };
        if !verified {
            return Err(TokenError::Signature);
        }
        let exp = token::time_claim(&jwt.claims, "exp");
        match exp {
            Some(exp) if exp + SKEW_SECS <= now => return Err(TokenError::Expired),
            None if kind == Kind::Jwt => return Err(TokenError::Invalid),
            _ => {}
        }
        if let Some(nbf) = token::time_claim(&jwt.claims, "nbf")
            && nbf - SKEW_SECS > now
        {
            return Err(TokenError::Invalid);
        }
        let mut claims: Map<String, Value> = jwt.claims;
        token::map_claims(&mut claims, &issuer.claim_mapping);
        let info = Arc::new(TokenInfo::from_claims(
            jwt.signature,
            &claims,
            Arc::clone(&issuer.name),
            &issuer.consumer_key_claim,
        ));
        cache.insert(key, Arc::clone(&info));
        Ok(info)
    }

    async fn jwt(&self, c: &Ctx<'_>) -> Option<Attempt> {
        if !c.op.jwt {
            return None;
        }
        let header = c.api.auth_header.as_deref().unwrap_or(&c.s.auth_header);
        let value = c.input.header(header)?;
        let raw = bearer_token(value)?;
        let s = c.s;
        let info = match self.validate(Kind::Jwt, raw, None, s).await {
            Ok(i) => i,
            Err(TokenError::Parse) => return Some(Attempt::Fail(Deny::not_a_jwt())),
            Err(TokenError::Revoked) => return Some(Attempt::Fail(Deny::revoked())),
            Err(TokenError::NoKeys) => {
                return Some(Attempt::Fail(Deny::unclassified("Unclassified Authentication Failure")));
            }
            Err(_) => return Some(Attempt::Fail(Deny::bad_token())),
        };
        let issuer = s.issuers.values().find(|i| i.name == info.issuer).cloned();
        let validate_subs = issuer.as_ref().is_some_and(|i| i.validate_subscription);
        let mut a = authed(&info, "JWT", raw);
        if validate_subs {
            match &info.subscribed {
                Some(subs) => {
                    let Some(sub) = subs.iter().find(|x| *x.name == c.api.raw.title && *x.version == c.api.raw.version)
                    else {
                        return Some(Attempt::Fail(Deny::not_subscribed("Resource forbidden ")));
                    };
                    a.tier = sub.tier.to_string();
                }
                None => {
                    return Some(Attempt::Fail(Deny::not_subscribed(
                        "User is NOT authorized to access the Resource. API Subscription validation failed.",
                    )));
                }
            }
            if c.api.blocked {
                return Some(Attempt::Fail(Deny::api_blocked()));
            }
        } else {
            a.app_name = format!("anon:{}", info.issuer);
            a.tier = "Unlimited".into();
        }
        if let Some(d) = scopes(c, &info) {
            return Some(Attempt::Fail(d));
        }
        Some(Attempt::Ok(a))
    }

    async fn api_key(&self, c: &Ctx<'_>) -> Option<Attempt> {
        let mut found = None;
        for loc in &c.op.api_keys {
            let v = match loc {
                KeyLocation::Header(h) => c.input.header(h).map(|v| v.trim().to_string()),
                KeyLocation::Query(q) => query_param(c.input.path, q),
            };
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                found = Some(v);
                break;
            }
        }
        let raw = found?;
        if !token::looks_like_jwt(&raw) {
            return None;
        }
        let s = c.s;
        let Some(issuer) = &s.api_key_issuer else {
            let mut d = Deny::unclassified("Unclassified Authentication Failure");
            d.status = 500;
            return Some(Attempt::Fail(d));
        };
        let info = match self.validate(Kind::ApiKey, &raw, Some(issuer), s).await {
            Ok(i) => i,
            Err(TokenError::Expired | TokenError::Revoked | TokenError::WrongType) => {
                return Some(Attempt::Fail(Deny::bad_token()));
            }
            Err(TokenError::NoKeys) => {
                let mut d = Deny::unclassified("Unclassified Authentication Failure");
                d.status = 500;
                return Some(Attempt::Fail(d));
            }
            Err(_) => return Some(Attempt::Fail(Deny::authentication_failed("API key authentication failed."))),
        };
        if let Some(d) = api_key_restrictions(c, &info) {
            return Some(Attempt::Fail(d));
        }
        let mut a = authed(&info, "API Key", &raw);
        if issuer.validate_subscription {
            let Some(subs) = &info.subscribed else {
                return Some(Attempt::Fail(Deny::not_subscribed(
                    "User is NOT authorized to access the Resource. API Subscription validation failed.",
                )));
            };
            let Some(sub) = subs.iter().find(|x| *x.name == c.api.raw.title && *x.version == c.api.raw.version) else {
                return Some(Attempt::Fail(Deny::not_subscribed("Resource forbidden ")));
            };
            a.tier = sub.tier.to_string();
            if c.api.blocked {
                return Some(Attempt::Fail(Deny::api_blocked()));
            }
        } else {
            a.app_name = format!("anon:{}", issuer.name);
            a.tier = "Unlimited".into();
        }
        // The key goes no further than the gateway.
        let queries: Vec<&str> =
            c.op.api_keys
                .iter()
                .filter_map(|l| match l {
                    KeyLocation::Query(q) => Some(q.as_str()),
                    KeyLocation::Header(_) => None,
                })
                .chain(c.api.api_key_queries.iter().map(String::as_str))
                .collect();
        if c.input.path.contains('?') && !queries.is_empty() {
            let owned: Vec<String> = queries.iter().map(|q| q.to_string()).collect();
            let p = without_query_params(c.input.path, &owned);
            if p != c.input.path {
                a.api_key_query = Some(p);
            }
        }
        Some(Attempt::Ok(a))
    }

    async fn internal_key(&self, c: &Ctx<'_>) -> Option<Attempt> {
        let raw = c.input.header(&c.s.internal_key_header)?.trim();
        if !token::looks_like_jwt(raw) {
            return None;
        }
        let s = c.s;
        let Some(issuer) = &s.internal_key_issuer else {
            return Some(Attempt::Fail(Deny::bad_token()));
        };
        let info = match self.validate(Kind::InternalKey, raw, Some(issuer), s).await {
            Ok(i) => i,
            Err(TokenError::Parse) => {
                return Some(Attempt::Fail(Deny::authentication_failed("Internal key authentication failed.")));
            }
            Err(TokenError::WrongType) => return Some(Attempt::Fail(Deny::missing_credentials())),
            Err(_) => return Some(Attempt::Fail(Deny::bad_token())),
        };
        let subs = info.subscribed.as_deref().unwrap_or(&[]);
        if !subs.iter().any(|x| *x.context == c.api.raw.base_path && *x.version == c.api.raw.version) {
            return Some(Attempt::Fail(Deny::not_subscribed("Resource forbidden ")));
        }
        if c.api.blocked {
            return Some(Attempt::Fail(Deny::api_blocked()));
        }
        let mut a = authed(&info, "Internal Key", raw);
        a.app_name = "internal-key-app".into();
        a.tier = "Unlimited".into();
        Some(Attempt::Ok(a))
    }

    fn backend_jwt(
        &self,
        c: &Ctx<'_>,
        bj: &crate::settings::BackendJwtSettings,
        tok: &Arc<TokenInfo>,
        a: &Authed,
    ) -> Result<Arc<str>, String> {
        let key = (tok.id.clone(), format!("{}:{}", c.api.raw.base_path, c.api.raw.version).into_boxed_str());
        // Reused while it has at least the clock skew left (Choreo Connect: 5 s).
        let now = crate::now_secs();
        if let Some((j, exp)) = self.backend_jwts.get(&key)
            && exp - now >= SKEW_SECS
        {
            return Ok(j);
        }
        let jwt: Arc<str> = crate::backend_jwt::generate(
            bj,
            c.api,
            a.auth_type,
            tok,
            &a.key_type,
            &a.app_name,
            &a.app_id,
            &a.tier,
            &a.token,
        )?
        .into();
        self.backend_jwts.insert(key, (Arc::clone(&jwt), now + bj.ttl));
        Ok(jwt)
    }
}

/// Token validation failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenError {
    Parse,
    Revoked,
    WrongType,
    Invalid,
    NoKeys,
    Signature,
    Expired,
}

fn authed(info: &Arc<TokenInfo>, auth_type: &'static str, raw: &str) -> Authed {
    let app = info.application.as_deref();
    Authed {
        info: Some(Arc::clone(info)),
        auth_type,
        key_type: info.key_type().to_string(),
        app_name: app.map(|a| a.name.to_string()).unwrap_or_default(),
        app_id: app.map(|a| a.uuid.to_string()).unwrap_or_default(),
        app_owner: app.map(|a| a.owner.to_string()).unwrap_or_default(),
        tier: String::new(),
        token: raw.to_string(),
        api_key_query: None,
    }
}

fn deny(deny: Deny, www_authenticate: Option<String>, info: AuthInfo) -> Decision {
    Decision::Deny { deny, www_authenticate, info }
}

fn cluster_for<'a>(c: &Ctx<'a>, key_type: &str) -> Option<&'a str> {
    let ext = c.input.ext;
    let key = if key_type == "PRODUCTION" { "prodClusterName" } else { "sandClusterName" };
    let name = ext.get(key).map(String::as_str).unwrap_or("");
    Some(name).filter(|n| !n.is_empty())
}

fn scopes(c: &Ctx<'_>, info: &TokenInfo) -> Option<Deny> {
    if c.op.scopes.is_empty() || c.op.scopes.iter().any(|s| info.scopes.iter().any(|t| **t == **s)) {
        None
    } else {
        Some(Deny::scopes(&c.resource.path))
    }
}

fn api_key_restrictions(c: &Ctx<'_>, info: &TokenInfo) -> Option<Deny> {
    let forbidden = || Some(Deny::not_subscribed("Resource forbidden "));
    if let Some(ips) = &info.permitted_ip {
        let ip = c.input.client_ip();
        if !ip.is_empty() {
            if ips.split(',').map(str::trim).any(|p| ip_matches(p, ip)) {
                return None;
            }
            return forbidden();
        }
    }
    if let Some(refs) = &info.permitted_referer {
        let Some(referer) = c.input.header("referer") else { return forbidden() };
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

/// The decoded value of query parameter `name` in `path`.
pub fn query_param(path: &str, name: &str) -> Option<String> {
    let (_, q) = path.split_once('?')?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The token of a `Bearer` authorization value, as Choreo Connect reads it:
/// `bearer` (any case), exactly two whitespace-separated parts, the whole
/// value in three dot-separated parts; the token is what follows the first
/// whitespace character up to the next (so two spaces give an empty token).
/// `None` when the JWT authenticator cannot handle the value.
pub fn bearer_token(value: &str) -> Option<&str> {
    if !value.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("bearer")) || !token::looks_like_jwt(value) {
        return None;
    }
    if !value.is_ascii() {
        // Rare: Unicode whitespace counts too.
        if value.split_whitespace().count() != 2 {
            return None;
        }
        return value.split(char::is_whitespace).nth(1);
    }
    // The same rules on bytes: this runs for every request with a token.
    let ws = |c: u8| c.is_ascii_whitespace() || c == 0x0b;
    let b = value.as_bytes();
    let first_ws = b.iter().position(|c| ws(*c))?;
    let second_start = first_ws + b[first_ws..].iter().position(|c| !ws(*c))?;
    let second_end = second_start + b[second_start..].iter().position(|c| ws(*c)).unwrap_or(b.len() - second_start);
    if b[second_end..].iter().any(|c| !ws(*c)) {
        return None;
    }
    let raw_end = first_ws + 1 + b[first_ws + 1..].iter().position(|c| ws(*c)).unwrap_or(b.len() - first_ws - 1);
    Some(&value[first_ws + 1..raw_end])
}

/// `path` without the query parameters named in `names`, order of the rest kept.
pub fn without_query_params(path: &str, names: &[String]) -> String {
    let Some((p, q)) = path.split_once('?') else { return path.to_string() };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| {
            let k = pair.split('=').next().unwrap_or("");
            let k = percent_decode_str(&k.replace('+', " ")).decode_utf8_lossy().into_owned();
            !k.is_empty() && !names.contains(&k)
        })
        .collect();
    if kept.is_empty() { p.to_string() } else { format!("{p}?{}", kept.join("&")) }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod check_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Choreo Connect's rule, written plainly: the reference for [`bearer_token`].
    fn bearer_reference(value: &str) -> Option<&str> {
        if !value.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("bearer"))
            || value.split_whitespace().count() != 2
            || !token::looks_like_jwt(value)
        {
            return None;
        }
        Some(value.split(char::is_whitespace).nth(1).unwrap_or(""))
    }

    #[test]
    fn bearer_token_follows_choreo_connects_rule() {
        for v in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER\ta.b.c",
            "Bearer  a.b.c",
            "Bearer a.b.c ",
            " Bearer a.b.c",
            "Bearer a.b.c d",
            "Bearer Bearer a.b.c",
            "Bearera.b.c x",
            "Bearer",
            "Bearer ",
            "Bearer a.b",
            "Bearer a.b.c.d",
            "Basic a.b.c",
            "Bearer\u{a0}a.b.c",
            "Bearer é.b.c",
            "Bearer a.b.c\u{2003}",
            "Bearer\x0ba.b.c",
            "",
        ] {
            assert_eq!(bearer_token(v), bearer_reference(v), "{v:?}");
        }
    }

    #[test]
    fn query_params_are_found_and_removed() {
        assert_eq!(query_param("/a?x=1&apikey=a%2Eb.c", "apikey").as_deref(), Some("a.b.c"));
        assert_eq!(query_param("/a", "apikey"), None);
        let names = vec!["apikey".to_string()];
        assert_eq!(without_query_params("/a?x=1&apikey=k&y=2", &names), "/a?x=1&y=2");
        assert_eq!(without_query_params("/a?apikey=k", &names), "/a");
        assert_eq!(without_query_params("/a?x=1", &names), "/a?x=1");
    }

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
