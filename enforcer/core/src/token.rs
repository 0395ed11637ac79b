//! JWT parsing (no verification): the three parts, the header and the claims
//! the gateway uses, in a compact form that is cheap to cache.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use base64::Engine;
use serde_json::{Map, Value};

/// Longest token accepted (bytes).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a value is not a usable JWT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not three non-empty dot-separated parts, or too long.
    #[error("not a JWT: expected three dot-separated base64url parts")]
    Shape,
    /// The header is not base64url JSON with a string `alg`.
    #[error("bad JWT header: {0}")]
    Header(&'static str),
    /// The payload is not a base64url JSON object.
    #[error("bad JWT payload: {0}")]
    Payload(&'static str),
}

/// The parts of a JWT.
#[derive(Debug, Clone)]
pub struct Jwt<'a> {
    /// The whole token.
    pub raw: &'a str,
    /// `alg` from the header.
    pub alg: String,
    /// `kid` from the header.
    pub kid: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// `header.payload`: what the signature covers.
    pub signing_input: &'a str,
    /// The signature part (base64url).
    pub signature: &'a str,
}

fn b64(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// Whether `s` looks like a JWT: three dot-separated parts (the test Choreo
/// Connect's authenticators use to decide whether they can authenticate).
pub fn looks_like_jwt(s: &str) -> bool {
    s.split('.').count() == 3
}

/// Parses a JWT without checking its signature.
pub fn parse(raw: &str) -> Result<Jwt<'_>, ParseError> {
    if raw.len() > MAX_TOKEN_LEN {
        return Err(ParseError::Shape);
    }
    let mut it = raw.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(ParseError::Shape);
    };
    if h.is_empty() || p.is_empty() {
        return Err(ParseError::Shape);
    }
    let header: Map<String, Value> = b64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(ParseError::Header("not base64url-encoded JSON object"))?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or(ParseError::Header("no alg"))?.to_string();
    // RFC 7515 §4.1.11: a token listing extensions in `crit` must be refused
    // unless they are understood, and none are (`b64: false` among them).
    if header.contains_key("crit") {
        return Err(ParseError::Header("crit: no header extension is supported"));
    }
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_string);
    let claims: Map<String, Value> = b64(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(ParseError::Payload("not base64url-encoded JSON object"))?;
    Ok(Jwt { raw, alg, kid, claims, signing_input: &raw[..h.len() + 1 + p.len()], signature: s })
}

/// One entry of `subscribedAPIs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscribedApi {
    /// API name.
    pub name: Box<str>,
    /// API version.
    pub version: Box<str>,
    /// API context (base path): internal keys match on it.
    pub context: Box<str>,
    /// Subscription tier.
    pub tier: Box<str>,
    /// API publisher.
    pub publisher: Box<str>,
}

/// The `application` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Application {
    /// Numeric id (as text).
    pub id: Box<str>,
    /// UUID.
    pub uuid: Box<str>,
    /// Name.
    pub name: Box<str>,
    /// Tier.
    pub tier: Box<str>,
    /// Owner.
    pub owner: Box<str>,
}

/// What the gateway needs from a validated token; cached per token.
///
/// What differs from token to token is held here; the rest, which every
/// token of one user and application carries alike, is one shared
/// [`TokenFacts`] (reached through `Deref`: `info.sub`). A cached token then
/// costs its id, its `exp`, a few claims and a pointer (the enforcer holds
/// 100,000 of them, ARCHITECTURE.md).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// `jti`, or the signature when there is none: the revocation key.
    pub id: Box<str>,
    /// `exp`, Unix seconds.
    pub exp: Option<i64>,
    /// The claims of [`PER_TOKEN_CLAIMS`] with a string or number value, as text.
    pub claims: ClaimText,
    /// What the token shares with the other tokens of its user and application.
    pub facts: Arc<TokenFacts>,
}

impl std::ops::Deref for TokenInfo {
    type Target = TokenFacts;

    fn deref(&self) -> &TokenFacts {
        &self.facts
    }
}

/// The part of a token that its user's and application's other tokens share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenFacts {
    /// Name of the configured issuer that validated it.
    pub issuer: Arc<str>,
    /// `sub` (after claim mapping).
    pub sub: Arc<str>,
    /// Scopes from `scope` (string or list).
    pub scopes: Arc<[Box<str>]>,
    /// `keytype` claim.
    pub keytype: Option<Arc<str>>,
    /// Consumer key from the issuer's `consumerKeyClaim`.
    pub consumer_key: Option<Arc<str>>,
    /// `application` claim.
    pub application: Option<Arc<Application>>,
    /// `subscribedAPIs`, `None` when the claim is absent.
    pub subscribed: Option<Arc<[SubscribedApi]>>,
    /// `permittedIP` (API keys).
    pub permitted_ip: Option<Box<str>>,
    /// `permittedReferer` (API keys).
    pub permitted_referer: Option<Box<str>>,
    /// `tierInfo`: the subscription tiers' throttling settings.
    pub tier_info: Box<[TierInfo]>,
    /// Top-level claims other than [`PER_TOKEN_CLAIMS`] with a string,
    /// number or boolean value, as text (JWT-claim throttling conditions and
    /// custom key templates read them).
    pub shared_claims: ClaimText,
}

/// Claims that differ between two tokens of the same user and application.
///
/// Any claim may be listed here or not without changing a decision: a
/// listed claim is kept with each token, an unlisted one in the shared part,
/// so listing the claims that identity providers issue anew for every token
/// (OIDC's `auth_time`, `nonce`, `sid`, the hashes) keeps their other
/// claims shared.
pub const PER_TOKEN_CLAIMS: &[&str] = &["jti", "exp", "iat", "nbf", "auth_time", "nonce", "sid", "at_hash", "c_hash"];

/// Claims as text, packed in one allocation (`u16` name length, name,
/// `u32` value length, value, repeated): a cached token holds a dozen of
/// them, and a pair of boxed strings each cost four times the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClaimText(Box<[u8]>);

impl ClaimText {
    /// Packs `(name, value)` pairs; a pair too long to pack (a 64 KiB name,
    /// a 4 GiB value) is left out.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, std::borrow::Cow<'a, str>)>) -> ClaimText {
        let mut buf = Vec::new();
        for (k, v) in pairs {
            let (Ok(kl), Ok(vl)) = (u16::try_from(k.len()), u32::try_from(v.len())) else { continue };
            buf.extend_from_slice(&kl.to_le_bytes());
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(&vl.to_le_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        ClaimText(buf.into_boxed_slice())
    }

    /// The value of claim `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every `(name, value)` pair, in the token's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (kl, r) = rest.split_first_chunk::<2>()?;
            let (k, r) = r.split_at_checked(usize::from(u16::from_le_bytes(*kl)))?;
            let (vl, r) = r.split_first_chunk::<4>()?;
            let (v, r) = r.split_at_checked(usize::try_from(u32::from_le_bytes(*vl)).ok()?)?;
            rest = r;
            // Both were whole `str`s when packed.
            Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?))
        })
    }
}

/// One entry of the `tierInfo` claim (API Manager's self-contained tokens).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TierInfo {
    /// The subscription tier.
    pub tier: Box<str>,
    /// `stopOnQuotaReach`, when given.
    pub stop_on_quota_reach: Option<bool>,
    /// `spikeArrestLimit` (0: none).
    pub spike_arrest_limit: u64,
    /// `spikeArrestUnit` (`sec`, `min`).
    pub spike_arrest_unit: Box<str>,
    /// `graphQLMaxDepth`, when given (0: no limit).
    pub graphql_max_depth: Option<u32>,
    /// `graphQLMaxComplexity`, when given (0: no limit).
    pub graphql_max_complexity: Option<u32>,
}

impl TokenFacts {
    /// The `tierInfo` entry of `tier`.
    pub fn tier_info(&self, tier: &str) -> Option<&TierInfo> {
        self.tier_info.iter().find(|t| &*t.tier == tier)
    }
}

impl TokenInfo {
    /// A claim's value as text.
    pub fn claim(&self, name: &str) -> Option<&str> {
        if PER_TOKEN_CLAIMS.contains(&name) { self.claims.get(name) } else { self.shared_claims.get(name) }
    }
}

fn text(v: Option<&Value>) -> Box<str> {
    match v {
        Some(Value::String(s)) => s.as_str().into(),
        Some(Value::Null) | None => "".into(),
        Some(other) => other.to_string().into_boxed_str(),
    }
}

fn opt_text(v: Option<&Value>) -> Option<Box<str>> {
    match v {
        None | Some(Value::Null) => None,
        some => Some(text(some)),
    }
}

/// Scopes from a `scope` claim: a space-separated string or a list.
pub fn scopes_of(v: Option<&Value>) -> Box<[Box<str>]> {
    match v {
        Some(Value::String(s)) => s.split(' ').filter(|x| !x.is_empty()).map(Into::into).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(Into::into).collect(),
        _ => Box::new([]),
    }
}

/// Applies an issuer's claim mapping: each claim named `remote` is renamed `local`.
pub fn map_claims(claims: &mut Map<String, Value>, mapping: &[(String, String)]) {
    for (remote, local) in mapping {
        if let Some(v) = claims.remove(remote) {
            claims.insert(local.clone(), v);
        }
    }
}

/// A timestamp claim as Unix seconds (integers and floats accepted).
pub fn time_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    match claims.get(name)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64)),
        _ => None,
    }
}

/// Values that many cached tokens share (a user, the scopes, an
/// application and its subscriptions) are kept once: a cached token then
/// costs its id and a few pointers. Each set is bounded: past
/// [`MAX_INTERNED`] values it starts afresh (values in use stay alive in the
/// tokens holding them). Only validations (cache misses) come here.
#[derive(Default)]
struct Interner {
    strs: HashSet<Arc<str>>,
    scopes: HashSet<Arc<[Box<str>]>>,
    apps: HashSet<Arc<Application>>,
    subs: HashSet<Arc<[SubscribedApi]>>,
    facts: HashSet<Arc<TokenFacts>>,
}

/// Most values kept per kind by the interner.
pub const MAX_INTERNED: usize = 50_000;

static INTERNER: LazyLock<parking_lot::Mutex<Interner>> = LazyLock::new(Default::default);

fn intern<T: ?Sized + Hash + Eq>(set: &mut HashSet<Arc<T>>, value: &T, make: impl FnOnce() -> Arc<T>) -> Arc<T> {
    if let Some(v) = set.get(value) {
        return Arc::clone(v);
    }
    if set.len() >= MAX_INTERNED {
        set.clear();
    }
    let v = make();
    set.insert(Arc::clone(&v));
    v
}

/// The claims with a string, number or boolean value, as text.
fn claim_texts(claims: &Map<String, Value>) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
    claims.iter().filter_map(|(k, v)| match v {
        Value::String(s) => Some((k.as_str(), std::borrow::Cow::Borrowed(s.as_str()))),
        Value::Number(_) | Value::Bool(_) => Some((k.as_str(), std::borrow::Cow::Owned(v.to_string()))),
        _ => None,
    })
}

impl TokenInfo {
    /// The gateway's view of a token's (mapped) claims.
    pub fn from_claims(
        jwt_signature: &str,
        claims: &Map<String, Value>,
        issuer: Arc<str>,
        consumer_key_claim: &str,
    ) -> TokenInfo {
        let id = claims.get("jti").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(jwt_signature);
        let application = claims.get("application").and_then(Value::as_object).map(|a| Application {
            id: text(a.get("id")),
            uuid: text(a.get("uuid")),
            name: text(a.get("name")),
            tier: text(a.get("tier")),
            owner: text(a.get("owner")),
        });
        let subscribed: Option<Vec<SubscribedApi>> = claims.get("subscribedAPIs").map(|v| {
            v.as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_object)
                        .map(|s| SubscribedApi {
                            name: text(s.get("name")),
                            version: text(s.get("version")),
                            context: text(s.get("context")),
                            tier: text(s.get("subscriptionTier")),
                            publisher: text(s.get("publisher")),
                        })
                        .collect()
                })
                .unwrap_or_default()
        });
        let sub = text(claims.get("sub"));
        let scopes = scopes_of(claims.get("scope"));
        let keytype = opt_text(claims.get("keytype"));
        let consumer_key = if consumer_key_claim.is_empty() { None } else { opt_text(claims.get(consumer_key_claim)) };
        let mut i = INTERNER.lock();
        let i = &mut *i;
        let mut string = |v: Box<str>| intern(&mut i.strs, &*v, || Arc::from(v.clone()));
        let sub = string(sub);
        let keytype = keytype.map(&mut string);
        let consumer_key = consumer_key.map(&mut string);
        let facts = TokenFacts {
            issuer,
            sub,
            scopes: intern(&mut i.scopes, &*scopes, || Arc::from(scopes.clone())),
            keytype,
            consumer_key,
            application: application.map(|a| intern(&mut i.apps, &a, || Arc::new(a.clone()))),
            subscribed: subscribed.map(|s| intern(&mut i.subs, s.as_slice(), || Arc::from(s.clone()))),
            permitted_ip: opt_text(claims.get("permittedIP")).filter(|s| !s.is_empty()),
            permitted_referer: opt_text(claims.get("permittedReferer")).filter(|s| !s.is_empty()),
            tier_info: claims
                .get("tierInfo")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(tier, v)| {
                            let v = v.as_object()?;
                            Some(TierInfo {
                                tier: tier.as_str().into(),
                                stop_on_quota_reach: v.get("stopOnQuotaReach").and_then(Value::as_bool),
                                spike_arrest_limit: v.get("spikeArrestLimit").and_then(Value::as_u64).unwrap_or(0),
                                spike_arrest_unit: text(v.get("spikeArrestUnit")),
                                graphql_max_depth: v
                                    .get("graphQLMaxDepth")
                                    .and_then(Value::as_u64)
                                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                                graphql_max_complexity: v
                                    .get("graphQLMaxComplexity")
                                    .and_then(Value::as_u64)
                                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            shared_claims: ClaimText::new(claim_texts(claims).filter(|(k, _)| !PER_TOKEN_CLAIMS.contains(k))),
        };
        TokenInfo {
            id: id.into(),
            exp: time_claim(claims, "exp"),
            claims: ClaimText::new(claim_texts(claims).filter(|(k, _)| PER_TOKEN_CLAIMS.contains(k))),
            facts: intern(&mut i.facts, &facts, || Arc::new(facts.clone())),
        }
    }

    /// The key type: `keytype` claim, default PRODUCTION.
    pub fn key_type(&self) -> &str {
        self.keytype.as_deref().filter(|k| !k.is_empty()).unwrap_or("PRODUCTION")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_claims_read_back_in_order() {
        use std::borrow::Cow;
        let long = "x".repeat(70_000);
        let c = ClaimText::new([
            ("iss", Cow::Borrowed("https://idp")),
            ("", Cow::Borrowed("empty name")),
            ("n", Cow::Owned("42".to_string())),
            (long.as_str(), Cow::Borrowed("name too long: left out")),
            ("big", Cow::Borrowed(long.as_str())),
            ("ünï", Cow::Borrowed("")),
        ]);
        let got: Vec<(&str, &str)> = c.iter().collect();
        assert_eq!(
            got,
            vec![("iss", "https://idp"), ("", "empty name"), ("n", "42"), ("big", long.as_str()), ("ünï", "")]
        );
        assert_eq!(ClaimText::default().iter().count(), 0);
        assert_eq!((c.get("n"), c.get("big").map(str::len), c.get("none")), (Some("42"), Some(70_000), None));
    }

    #[test]
    fn claims_are_kept_per_token_or_shared() {
        let claims = |jti: &str| -> Map<String, Value> {
            serde_json::from_value(serde_json::json!({
                "sub": "alice", "jti": jti, "exp": 4_000_000_000i64, "iat": 5, "department": "eng", "admin": true,
                "auth_time": jti.len(), "nonce": format!("n-{jti}"),
                "list": ["not", "text"]
            }))
            .expect("claims")
        };
        let a = TokenInfo::from_claims("sig", &claims("a"), Arc::from("IdP"), "");
        let b = TokenInfo::from_claims("sig", &claims("b"), Arc::from("IdP"), "");
        let got = |t: &TokenInfo| {
            ["sub", "jti", "exp", "iat", "department", "admin", "list", "nbf"].map(|n| t.claim(n).map(str::to_string))
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            got(&a),
            [some("alice"), some("a"), some("4000000000"), some("5"), some("eng"), some("true"), None, None]
        );
        assert_eq!(got(&b)[1], some("b"));
        assert_eq!((b.claim("nonce"), b.claim("auth_time")), (Some("n-b"), Some("1")));
        assert!(Arc::ptr_eq(&a.facts, &b.facts), "one copy of what the tokens share");
    }

    fn enc(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn parses_parts_header_and_claims() {
        let t = format!("{}.{}.c2ln", enc(r#"{"alg":"RS256","kid":"k1"}"#), enc(r#"{"sub":"a","exp":10}"#));
        let j = parse(&t).expect("jwt");
        assert_eq!(j.alg, "RS256");
        assert_eq!(j.kid.as_deref(), Some("k1"));
        assert_eq!(j.signature, "c2ln");
        assert_eq!(j.signing_input, &t[..t.rfind('.').expect("dot")]);
        assert_eq!(time_claim(&j.claims, "exp"), Some(10));
    }

    #[test]
    fn rejects_what_is_not_a_jwt() {
        let h = enc(r#"{"alg":"RS256"}"#);
        let p = enc(r#"{"sub":"a"}"#);
        for bad in [
            "aaa.bbb.ccc".to_string(),
            "a.b".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.s.x"),
            format!(".{p}.s"),
            format!("{}.{p}.s", enc(r#"{"typ":"JWT"}"#)),
            format!("{}.{p}.s", enc("[1]")),
            format!("{h}.{}.s", enc("\"str\"")),
            // Critical header extensions are never understood.
            format!("{}.{p}.s", enc(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#)),
            format!("{}.{p}.s", enc(r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#)),
            format!("{h}.!!.s"),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claims_become_token_info() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"sub":"alice","scope":"read write","keytype":"SANDBOX","azp":"ck1",
                "application":{"id":7,"uuid":"u-1","name":"App","tier":"Unlimited","owner":"bob"},
                "subscribedAPIs":[{"name":"Pets","version":"1.0","context":"/pets/1.0","subscriptionTier":"Gold","publisher":"admin"}]}"#,
        )
        .expect("json");
        let i = TokenInfo::from_claims("sig", &claims, "iss".into(), "azp");
        assert_eq!(&*i.id, "sig", "no jti: the signature");
        assert_eq!(i.scopes.len(), 2);
        assert_eq!(i.key_type(), "SANDBOX");
        assert_eq!(i.consumer_key.as_deref(), Some("ck1"));
        assert_eq!(i.application.as_ref().map(|a| &*a.id), Some("7"));
        let subs = i.subscribed.as_ref().expect("subscribed");
        assert_eq!((&*subs[0].name, &*subs[0].tier), ("Pets", "Gold"));
        let none = TokenInfo::from_claims("sig", &Map::new(), "iss".into(), "");
        assert!(none.subscribed.is_none());
        assert_eq!(none.key_type(), "PRODUCTION");
    }

    #[test]
    fn scopes_from_list_and_mapping() {
        let mut claims: Map<String, Value> =
            serde_json::from_str(r#"{"scp":["a","b"],"client_id":"c"}"#).expect("json");
        map_claims(&mut claims, &[("scp".into(), "scope".into()), ("client_id".into(), "azp".into())]);
        assert_eq!(&*scopes_of(claims.get("scope")), &["a".into(), "b".into()] as &[Box<str>]);
        assert_eq!(claims.get("azp"), Some(&Value::String("c".into())));
    }
}
