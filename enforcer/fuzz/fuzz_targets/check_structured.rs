//! Structured ext_authz requests aimed at the fixture's APIs: the route
//! (vHost, basePath, version, path) is mostly one of the known ones, the
//! credentials mostly well-formed tokens whose claims the fuzzer picks, signed
//! by the key the issuers trust or not. Must never panic, and must never let
//! a request without a valid credential into a secured resource.
#![no_main]

use std::collections::HashMap;

use enforcer_fuzz::{FAR_FUTURE, Fixture, ISSUERS, REVOKED_JTI, ROUTES, Route, fixture};
use envoy_types::pb::envoy::service::auth::v3::check_response;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "OPTIONS", "get", "PATCH", "HEAD"];
const KEY_TYPES: &[&str] = &["PRODUCTION", "SANDBOX", "production", "sandbox", ""];
const SCOPES: &[&str] = &["read", "write", "admin", "other"];

#[derive(Arbitrary, Debug)]
enum Pick {
    Known(u8),
    Fuzzed(String),
}

impl Pick {
    fn get<'a>(&'a self, known: &[&'a str]) -> &'a str {
        match self {
            Pick::Known(i) => known[usize::from(*i) % known.len()],
            Pick::Fuzzed(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum RouteSel {
    Known(u8),
    /// A known API with a fuzzed template.
    Template(u8, String),
    Fuzzed {
        vhost: String,
        base_path: String,
        version: String,
        template: String,
    },
}

#[derive(Arbitrary, Debug)]
enum Time {
    Future(u16),
    Past(u16),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Time {
    fn value(&self) -> Value {
        match self {
            Time::Future(d) => json!(FAR_FUTURE + i64::from(*d)),
            Time::Past(d) => json!(1_000_000_000 + i64::from(*d)),
            Time::Int(i) => json!(i),
            Time::Float(f) => json!(f),
            Time::Text(s) => json!(s),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Scope {
    Text(Vec<u8>),
    List(Vec<u8>),
    Fuzzed(String),
}

#[derive(Arbitrary, Debug)]
enum Subscription {
    /// The route at this index, with this tier.
    Known(u8, String),
    Fuzzed {
        name: String,
        version: String,
        context: String,
    },
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Leaf {
    fn value(&self) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => json!(b),
            Leaf::Int(i) => json!(i),
            Leaf::Float(f) => json!(f),
            Leaf::Text(s) => json!(s),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Claims {
    iss: Option<Pick>,
    internal_key: bool,
    exp: Option<Time>,
    nbf: Option<Time>,
    jti: Option<Pick>,
    sub: Option<Leaf>,
    scope: Option<Scope>,
    scp: Option<Vec<u8>>,
    keytype: Option<Pick>,
    azp: Option<Leaf>,
    application: Option<Vec<(u8, Leaf)>>,
    subscribed: Option<Vec<Subscription>>,
    subscribed_not_a_list: Option<Leaf>,
    permitted_ip: Option<Pick>,
    permitted_referer: Option<Pick>,
    extra: Vec<(String, Leaf)>,
}

impl Claims {
    fn json(&self) -> Value {
        let mut m = Map::new();
        if let Some(iss) = &self.iss {
            m.insert("iss".into(), json!(iss.get(ISSUERS)));
        }
        if self.internal_key {
            m.insert("token_type".into(), json!("InternalKey"));
        }
        if let Some(t) = &self.exp {
            m.insert("exp".into(), t.value());
        }
        if let Some(t) = &self.nbf {
            m.insert("nbf".into(), t.value());
        }
        if let Some(j) = &self.jti {
            m.insert("jti".into(), json!(j.get(&[REVOKED_JTI, "jti-1", ""])));
        }
        if let Some(s) = &self.sub {
            m.insert("sub".into(), s.value());
        }
        let scopes = |picks: &[u8]| picks.iter().map(|i| SCOPES[usize::from(*i) % SCOPES.len()]).collect::<Vec<_>>();
        match &self.scope {
            Some(Scope::Text(p)) => {
                m.insert("scope".into(), json!(scopes(p).join(" ")));
            }
            Some(Scope::List(p)) => {
                m.insert("scope".into(), json!(scopes(p)));
            }
            Some(Scope::Fuzzed(s)) => {
                m.insert("scope".into(), json!(s));
            }
            None => {}
        }
        if let Some(p) = &self.scp {
            m.insert("scp".into(), json!(scopes(p)));
        }
        if let Some(k) = &self.keytype {
            m.insert("keytype".into(), json!(k.get(KEY_TYPES)));
        }
        if let Some(a) = &self.azp {
            m.insert("azp".into(), a.value());
        }
        if let Some(fields) = &self.application {
            let names = ["id", "uuid", "name", "tier", "owner", "other"];
            let app: Map<String, Value> =
                fields.iter().map(|(i, v)| (names[usize::from(*i) % names.len()].to_string(), v.value())).collect();
            m.insert("application".into(), Value::Object(app));
        }
        if let Some(subs) = &self.subscribed {
            let list: Vec<Value> = subs
                .iter()
                .map(|s| match s {
                    Subscription::Known(i, tier) => {
                        let r = &ROUTES[usize::from(*i) % ROUTES.len()];
                        json!({"name": r.title, "version": r.version, "context": r.base_path,
                               "subscriptionTier": tier, "publisher": "admin"})
                    }
                    Subscription::Fuzzed { name, version, context } => {
                        json!({"name": name, "version": version, "context": context})
                    }
                })
                .collect();
            m.insert("subscribedAPIs".into(), Value::Array(list));
        } else if let Some(v) = &self.subscribed_not_a_list {
            m.insert("subscribedAPIs".into(), v.value());
        }
        if let Some(ip) = &self.permitted_ip {
            m.insert(
                "permittedIP".into(),
                json!(ip.get(&["127.0.0.1", "10.0.0.0/8", "::1/128", "1.2.3.4, 127.0.0.0/8"])),
            );
        }
        if let Some(r) = &self.permitted_referer {
            m.insert("permittedReferer".into(), json!(r.get(&["https://*.example.com/*", "exact", "*"])));
        }
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.value());
        }
        Value::Object(m)
    }
}

#[derive(Arbitrary, Debug)]
enum Cred {
    /// Any string.
    Raw(String),
    /// A token signed by the key every issuer trusts.
    Signed(Claims),
    /// A well-formed token with a bad signature.
    Unsigned { claims: Claims, alg: Pick, kid: Option<String>, signature: String },
}

impl Cred {
    fn text(&self, f: &Fixture) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        match self {
            Cred::Raw(s) => s.clone(),
            Cred::Signed(c) => f.sign(&c.json()),
            Cred::Unsigned { claims, alg, kid, signature } => {
                let mut h = json!({"alg": alg.get(&["RS256", "none", "HS256", "ES256", "PS256"]), "typ": "JWT"});
                if let Some(kid) = kid {
                    h["kid"] = json!(kid);
                }
                format!("{}.{}.{signature}", b64.encode(h.to_string()), b64.encode(claims.json().to_string()))
            }
        }
    }

    fn is_signed(&self) -> bool {
        matches!(self, Cred::Signed(_))
    }
}

#[derive(Arbitrary, Debug)]
enum Cert {
    Valid,
    ValidUrlEncoded,
    /// The valid one, cut after this many bytes.
    Truncated(u16),
    Raw(String),
}

impl Cert {
    fn text(&self, f: &Fixture) -> String {
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        match self {
            Cert::Valid => f.cert_pem.clone(),
            Cert::ValidUrlEncoded => encode(&f.cert_pem),
            Cert::Truncated(n) => {
                let pem = &f.cert_pem;
                let n = usize::from(*n) % (pem.len() + 1);
                encode(&pem[..n])
            }
            Cert::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Case {
    engine: bool,
    route: RouteSel,
    method: Pick,
    query: Vec<(String, String)>,
    auth_scheme: Pick,
    authorization: Option<Cred>,
    legacy_authorization: Option<Cred>,
    api_key_header: Option<(Pick, Cred)>,
    api_key_query: Option<Cred>,
    internal_key: Option<Cred>,
    peer_cert: Option<Cert>,
    cert_header: Option<Cert>,
    forwarded_for: Option<Pick>,
    referer: Option<Pick>,
    request_id: Option<String>,
    headers: Vec<(String, String)>,
    prod_cluster: bool,
    sand_cluster: bool,
    source_ip: Pick,
}

fuzz_target!(|case: Case| {
    let f = fixture();
    let (route, ext): (Option<&Route>, [String; 4]) = match &case.route {
        RouteSel::Known(i) => {
            let r = &ROUTES[usize::from(*i) % ROUTES.len()];
            (Some(r), [r.vhost.into(), r.base_path.into(), r.version.into(), r.template.into()])
        }
        RouteSel::Template(i, t) => {
            let r = &ROUTES[usize::from(*i) % ROUTES.len()];
            (None, [r.vhost.into(), r.base_path.into(), r.version.into(), t.clone()])
        }
        RouteSel::Fuzzed { vhost, base_path, version, template } => {
            (None, [vhost.clone(), base_path.clone(), version.clone(), template.clone()])
        }
    };
    let method = case.method.get(METHODS);
    let mut path = match route {
        Some(r) => format!("{}{}", r.base_path, r.path),
        None => format!("{}{}", ext[1], ext[3]),
    };
    let mut query: Vec<String> = case.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers: HashMap<String, String> = case.headers.iter().cloned().collect();
    if let Some(c) = &case.api_key_query {
        let key = c.text(f);
        query.insert(
            0,
            format!("apikey={}", percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC)),
        );
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let scheme = case.auth_scheme.get(&["Bearer ", "bearer ", "BEARER  ", "Basic ", "Bearer\t"]);
    if let Some(c) = &case.authorization {
        headers.insert("authorization".into(), format!("{scheme}{}", c.text(f)));
    }
    if let Some(c) = &case.legacy_authorization {
        headers.insert("x-legacy-auth".into(), format!("{scheme}{}", c.text(f)));
    }
    if let Some((name, c)) = &case.api_key_header {
        headers.insert(name.get(&["apikey", "x-api-key"]).to_ascii_lowercase(), c.text(f));
    }
    if let Some(c) = &case.internal_key {
        headers.insert("internal-key".into(), c.text(f));
    }
    let peer_cert = case.peer_cert.as_ref().map(|c| c.text(f)).unwrap_or_default();
    if let Some(c) = &case.cert_header {
        headers.insert("x-client-cert".into(), c.text(f));
    }
    if let Some(x) = &case.forwarded_for {
        headers.insert("x-forwarded-for".into(), x.get(&["127.0.0.1", "10.1.2.3, 127.0.0.1", "::1", ""]).into());
    }
    if let Some(r) = &case.referer {
        headers.insert(
            "referer".into(),
            r.get(&["https://www.example.com/page", "exact", "https://a b.example.com/"]).into(),
        );
    }
    if let Some(id) = &case.request_id {
        headers.insert("x-request-id".into(), id.clone());
    }

    let mut req = enforcer_fuzz::check_request(route.unwrap_or(&ROUTES[0]), method, &path, headers, &peer_cert);
    let attrs = req.attributes.as_mut().expect("attributes");
    // The known resource the context extensions name, however they were picked.
    let named =
        ROUTES.iter().find(|r| [r.vhost, r.base_path, r.version, r.template] == ext.each_ref().map(String::as_str));
    let [vhost, base_path, version, template] = ext;
    attrs.context_extensions.insert("vHost".into(), vhost);
    attrs.context_extensions.insert("basePath".into(), base_path);
    attrs.context_extensions.insert("version".into(), version);
    attrs.context_extensions.insert("path".into(), template);
    if !case.prod_cluster {
        attrs.context_extensions.remove("prodClusterName");
    }
    if !case.sand_cluster {
        attrs.context_extensions.remove("sandClusterName");
    }
    if let Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) =
        attrs.source.as_mut().and_then(|p| p.address.as_mut()).and_then(|a| a.address.as_mut())
    {
        s.address = case.source_ip.get(&["127.0.0.1", "10.0.0.1", "::1", ""]).into();
    }

    let engine = &f.engines[usize::from(case.engine)];
    let resp = f.rt.block_on(enforcer::authz::check(engine, &req)).expect("a configured engine answers");
    let allowed = matches!(resp.http_response, Some(check_response::HttpResponse::OkResponse(_)));

    // No valid credential, no entry: only the resources that need none let such a request in.
    let signed = [&case.authorization, &case.legacy_authorization, &case.api_key_query, &case.internal_key]
        .into_iter()
        .flatten()
        .chain(case.api_key_header.as_ref().map(|(_, c)| c))
        .any(Cred::is_signed);
    let valid_cert = [peer_cert.as_str(), req_header(&req, "x-client-cert")].iter().any(|c| f.is_client_cert(c));
    if allowed && !signed && !valid_cert {
        let open = named.is_some_and(|r| r.open_methods.iter().any(|m| m.eq_ignore_ascii_case(method)));
        assert!(open, "allowed without a valid credential: {method} {path} on {named:?}\n{resp:?}");
    }
});

fn req_header<'a>(req: &'a envoy_types::pb::envoy::service::auth::v3::CheckRequest, name: &str) -> &'a str {
    req.attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .and_then(|h| h.headers.get(name))
        .map(String::as_str)
        .unwrap_or("")
}
