//! The fixture shared by the unit tests of the engine (`engine_tests`) and
//! of the filters (`chain::test_support`): real RSA keys and certificates
//! (rcgen), a configuration whose key files are written to a temporary
//! directory, the Pets API as a `gateway_proto` message, requests as Envoy
//! describes them, and tokens signed with `jsonwebtoken`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use gateway_proto::api as pa;
use gateway_proto::config as pc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use serde_json::{Value, json};

use crate::keys::Fetch;
use crate::memory::Revoked;
use crate::request::Input;
use crate::settings::Settings;

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// OAuth issuer without subscription validation (`IdP`).
pub(crate) const ISS_IDP: &str = "https://idp.example.com/oauth2/token";
/// OAuth issuer with subscription validation (`Subs`).
pub(crate) const ISS_SUBS: &str = "https://subs.example.com/oauth2/token";
/// `APIM Publisher`: internal keys.
pub(crate) const ISS_PUBLISHER: &str = "https://localhost:9443/publisher";
/// `APIM APIkey`: API keys.
pub(crate) const ISS_APIKEY: &str = "https://localhost:9443/apikey";

/// The Pets API.
pub(crate) const BASE: &str = "/pets/1.0.0";
pub(crate) const VERSION: &str = "1.0.0";
/// The route's clusters.
pub(crate) const PROD: &str = "carbon.super_clusterProd_localhost_Pets1.0.0";
pub(crate) const SAND: &str = "carbon.super_clusterSand_localhost_Pets1.0.0";

/// 900901 descriptions.
pub(crate) const MISSING: &str = "Make sure you have provided the correct security credentials";
pub(crate) const BAD: &str = "Invalid Credentials. Make sure you have provided the correct security credentials";
pub(crate) const REVOKED: &str = "Invalid JWT token. Make sure you have provided the correct security credentials";
pub(crate) const NOT_JWT: &str =
    "Not a JWT token. Failed to decode the token header. Make sure you have provided the correct security credentials";
/// 700700 description.
pub(crate) const BLOCKED: &str =
    "This API has been blocked temporarily. Please try again later or contact the system administrators.";

/// The headers removed before upstream on the Pets API with the default configuration.
pub(crate) const REMOVED_BY_DEFAULT: [&str; 4] =
    ["apikey", "internal-key", "authorization", "x-wso2-client-certificate"];

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// An RSA signing key with its self-signed certificate.
pub(crate) struct RsaKey {
    pub(crate) enc: EncodingKey,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) public_pem: String,
}

impl RsaKey {
    /// The public key as a JWK's `n` and `e` (base64url).
    pub(crate) fn jwk_n_e(&self) -> (String, String) {
        use x509_parser::prelude::FromDer;
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.public_pem.as_bytes()).expect("public key PEM");
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&pem.contents).expect("spki");
        let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = spki.parsed() else { panic!("not RSA") };
        let strip = |b: &[u8]| b[b.iter().position(|x| *x != 0).unwrap_or(0)..].to_vec();
        (b64(&strip(rsa.modulus)), b64(&strip(rsa.exponent)))
    }
}

/// Base64url without padding, as in JWTs and JWKs.
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(cn: &str) -> RsaKey {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let cert = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params").self_signed(&kp).expect("cert");
    let key_pem = kp.serialize_pem();
    RsaKey {
        enc: EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("encoding key"),
        cert_pem: cert.pem(),
        public_pem: kp.public_key_pem(),
        key_pem,
    }
}

/// A client certificate (P-256), PEM.
fn client_cert(cn: &str) -> String {
    let kp = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.self_signed(&kp).expect("cert").pem()
}

/// The keys of the fixture.
pub(crate) struct Keys {
    /// `IdP`.
    pub(crate) idp: RsaKey,
    /// `Subs`.
    pub(crate) subs: RsaKey,
    /// `APIM Publisher`.
    pub(crate) publisher: RsaKey,
    /// `APIM APIkey`.
    pub(crate) apikey: RsaKey,
    /// Configured nowhere: signatures by it are bad.
    pub(crate) other: RsaKey,
    /// The backend-JWT signer.
    pub(crate) signer: RsaKey,
    /// Published only through a JWKS endpoint.
    pub(crate) jwks: RsaKey,
    /// An EC P-256 key (ES256), configured nowhere.
    pub(crate) ec: EncodingKey,
    /// The client certificate of the mTLS APIs.
    pub(crate) client: String,
    /// A certificate no API knows.
    pub(crate) other_client: String,
}

/// Generated once: RSA key generation is the slow part.
pub(crate) static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    Keys {
        idp: rsa_key("idp.example.com"),
        subs: rsa_key("subs.example.com"),
        publisher: rsa_key("publisher"),
        apikey: rsa_key("apikey"),
        other: rsa_key("attacker.example.com"),
        signer: rsa_key("gateway"),
        jwks: rsa_key("jwks.example.com"),
        ec: EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).expect("EC encoding key"),
        client: client_cert("client.example.com"),
        other_client: client_cert("intruder.example.com"),
    }
});

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

pub(crate) fn write_pem(dir: &Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).expect("write PEM");
    p.to_string_lossy().into_owned()
}

fn issuer(name: &str, iss: &str, cert_file: &str, validate_subscription: bool) -> pc::Issuer {
    pc::Issuer {
        name: name.into(),
        issuer: iss.into(),
        certificate_file_path: cert_file.into(),
        validate_subscription,
        consumer_key_claim: "azp".into(),
        ..Default::default()
    }
}

/// Four certificate-backed issuers, Choreo Connect's default headers, the
/// client certificate from the TLS handshake, the token cache on.
pub(crate) fn base_config(dir: &Path) -> pc::Config {
    let k = &*KEYS;
    pc::Config {
        security: Some(pc::Security {
            token_service: vec![
                issuer("IdP", ISS_IDP, &write_pem(dir, "idp.pem", &k.idp.cert_pem), false),
                issuer("Subs", ISS_SUBS, &write_pem(dir, "subs.pem", &k.subs.cert_pem), true),
                issuer("APIM Publisher", ISS_PUBLISHER, &write_pem(dir, "publisher.pem", &k.publisher.cert_pem), true),
                issuer("APIM APIkey", ISS_APIKEY, &write_pem(dir, "apikey.pem", &k.apikey.cert_pem), true),
            ],
            auth_header: Some(pc::AuthHeader {
                enable_outbound_auth_header: false,
                authorization_header: "authorization".into(),
                test_console_header_name: "Internal-Key".into(),
            }),
            mutual_ssl: Some(pc::MutualSsl {
                certificate_header: "X-WSO2-CLIENT-CERTIFICATE".into(),
                enable_client_validation: true,
                client_certificate_encode: false,
                enable_outbound_certificate_header: false,
            }),
        }),
        cache: Some(pc::Cache { enabled: true, maximum_size: 1000, expiry_time: 15 }),
        ..Default::default()
    }
}

/// The configuration loaded, key sets fetched by `fetch`.
pub(crate) fn load_with(c: &pc::Config, fetch: Arc<dyn Fetch>) -> Settings {
    Settings::load(c, &fetch).expect("settings")
}

/// The base configuration changed by `edit`, loaded, and the directory of
/// its PEM files.
pub(crate) fn settings_with(
    fetch: Arc<dyn Fetch>,
    edit: impl FnOnce(&mut pc::Config, &Path),
) -> (Settings, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = base_config(dir.path());
    edit(&mut c, dir.path());
    (load_with(&c, fetch), dir)
}

/// `[enforcer.security.authHeader]` of a configuration.
pub(crate) fn auth_header(c: &mut pc::Config) -> &mut pc::AuthHeader {
    c.security.as_mut().and_then(|s| s.auth_header.as_mut()).expect("authHeader")
}

/// `[enforcer.security.mutualSSL]` of a configuration.
pub(crate) fn mutual_ssl(c: &mut pc::Config) -> &mut pc::MutualSsl {
    c.security.as_mut().and_then(|s| s.mutual_ssl.as_mut()).expect("mutualSSL")
}

/// Drops the issuer named `name`.
pub(crate) fn without_issuer(c: &mut pc::Config, name: &str) {
    c.security.as_mut().expect("security").token_service.retain(|i| i.name != name);
}

/// A backend-JWT generator signing with the fixture's signer (RS256).
pub(crate) fn with_backend_jwt(c: &mut pc::Config, dir: &Path, ttl: i64) {
    c.jwt_generator = Some(pc::JwtGenerator {
        enabled: true,
        claim_dialect: "http://wso2.org/claims".into(),
        header: "X-JWT-Assertion".into(),
        signing_algorithm: "SHA256withRSA".into(),
        token_ttl: ttl,
        use_kid_property: true,
        keypair: vec![pc::Keypair {
            public_certificate_path: write_pem(dir, "signer.pem", &KEYS.signer.cert_pem),
            private_key_path: write_pem(dir, "signer.key", &KEYS.signer.key_pem),
            use_for_signing: true,
        }],
        ..Default::default()
    });
}

// ---------------------------------------------------------------------------
// APIs
// ---------------------------------------------------------------------------

fn scheme(name: &str, ty: &str, key_name: &str, location: &str) -> pa::SecurityScheme {
    pa::SecurityScheme { definition_name: name.into(), r#type: ty.into(), name: key_name.into(), r#in: location.into() }
}

fn requirement(pairs: &[(&str, &[&str])]) -> pa::SecurityList {
    pa::SecurityList {
        scope_list: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), pa::Scopes { scopes: v.iter().map(|s| s.to_string()).collect() }))
            .collect(),
    }
}

fn op(method: &str) -> pa::Operation {
    pa::Operation { method: method.into(), ..Default::default() }
}

fn secured(method: &str, security: Vec<pa::SecurityList>) -> pa::Operation {
    pa::Operation { method: method.into(), has_security: true, security, ..Default::default() }
}

/// Pets 1.0.0: OAuth2 (`default`) or an API key (header `apikey`, query
/// `apikey`). `/pets` GET and POST (scope `write`), `/pets/{id}` GET and
/// DELETE (scope `admin` and `pets:delete`), `/open` GET with security
/// disabled, `/keyonly` GET with the header API key only, `/cors` GET and
/// OPTIONS.
pub(crate) fn pets_api() -> pa::Api {
    pa::Api {
        id: "api-pets".into(),
        title: "Pets".into(),
        version: VERSION.into(),
        api_type: "HTTP".into(),
        base_path: BASE.into(),
        vhost: "localhost".into(),
        api_lifecycle_state: "PUBLISHED".into(),
        security_scheme: vec![
            scheme("default", "oauth2", "", ""),
            scheme("api_key_header", "apiKey", "apikey", "header"),
            scheme("api_key_query", "apiKey", "apikey", "query"),
        ],
        security: vec![
            requirement(&[("default", &[])]),
            requirement(&[("api_key_header", &[]), ("api_key_query", &[])]),
        ],
        resources: vec![
            pa::Resource {
                path: "/pets".into(),
                methods: vec![op("GET"), secured("POST", vec![requirement(&[("default", &["write"])])])],
            },
            pa::Resource {
                path: "/pets/{id}".into(),
                methods: vec![
                    op("GET"),
                    secured("DELETE", vec![requirement(&[("default", &["admin", "pets:delete"])])]),
                ],
            },
            pa::Resource {
                path: "/open".into(),
                methods: vec![pa::Operation { method: "GET".into(), disable_security: true, ..Default::default() }],
            },
            pa::Resource {
                path: "/keyonly".into(),
                methods: vec![secured("GET", vec![requirement(&[("api_key_header", &[])])])],
            },
            pa::Resource { path: "/cors".into(), methods: vec![op("GET"), op("OPTIONS")] },
        ],
        ..Default::default()
    }
}

/// Pets, changed by `edit`.
pub(crate) fn pets_with(edit: impl FnOnce(&mut pa::Api)) -> pa::Api {
    let mut a = pets_api();
    edit(&mut a);
    a
}

/// Pets with mutual TLS (`mandatory` or `optional`) and the fixture's client certificate.
pub(crate) fn mtls_api(mutual_ssl: &str, application_security: bool) -> pa::Api {
    pets_with(|a| {
        a.mutual_ssl = mutual_ssl.into();
        a.application_security = application_security;
        a.client_certificates = vec![pa::Certificate {
            alias: "client".into(),
            tier: "Gold".into(),
            content: KEYS.client.clone().into_bytes(),
        }];
    })
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// A request as Envoy describes it, owning what [`Input`] borrows.
#[derive(Clone)]
pub(crate) struct Req {
    pub(crate) method: String,
    pub(crate) template: String,
    pub(crate) path: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) ext: HashMap<String, String>,
    pub(crate) peer_cert: String,
    pub(crate) source_ip: String,
    pub(crate) body: Vec<u8>,
}

impl Req {
    /// `method` on the Pets resource `template` (`{id}` is 7 in the path),
    /// with both clusters, as the router describes it.
    pub(crate) fn new(method: &str, template: &str) -> Req {
        let ext = [
            ("vHost", "localhost"),
            ("basePath", BASE),
            ("version", VERSION),
            ("path", template),
            ("prodClusterName", PROD),
            ("sandClusterName", SAND),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Req {
            method: method.into(),
            template: template.into(),
            path: format!("{BASE}{}", template.replace("{id}", "7")),
            headers: HashMap::new(),
            ext,
            peer_cert: String::new(),
            source_ip: "192.0.2.10".into(),
            body: Vec::new(),
        }
    }

    /// The request body, as the router passes it.
    pub(crate) fn body(mut self, body: &str) -> Req {
        self.body = body.as_bytes().to_vec();
        self
    }

    pub(crate) fn get(template: &str) -> Req {
        Req::new("GET", template)
    }

    /// The same resource on another API (base path and version).
    pub(crate) fn api(mut self, base: &str, version: &str) -> Req {
        self.ext.insert("basePath".into(), base.into());
        self.ext.insert("version".into(), version.into());
        self.path = format!("{base}{}", self.template.replace("{id}", "7"));
        self
    }

    /// The path with query.
    pub(crate) fn path(mut self, p: &str) -> Req {
        self.path = p.into();
        self
    }

    pub(crate) fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.insert(k.to_ascii_lowercase(), v.into());
        self
    }

    pub(crate) fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A context extension of the route ("" removes a cluster).
    pub(crate) fn ext(mut self, k: &str, v: &str) -> Req {
        self.ext.insert(k.into(), v.into());
        self
    }

    /// The TLS peer certificate, URL-encoded as Envoy sends it.
    pub(crate) fn peer_cert(mut self, pem: &str) -> Req {
        self.peer_cert = url_encode(pem);
        self
    }

    pub(crate) fn source_ip(mut self, ip: &str) -> Req {
        self.source_ip = ip.into();
        self
    }

    pub(crate) fn input(&self) -> Input<'_> {
        Input {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            ext: &self.ext,
            peer_cert: &self.peer_cert,
            source_ip: &self.source_ip,
            body: &self.body,
        }
    }
}

pub(crate) fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

pub(crate) fn now() -> i64 {
    crate::now_secs()
}

fn new_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// `base` with the entries of `extra` (an object) set; `null` removes an entry.
pub(crate) fn merged(mut base: Value, extra: Value) -> Value {
    let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) else { panic!("claims must be objects") };
    for (k, v) in e {
        if v.is_null() {
            b.remove(&k);
        } else {
            b.insert(k, v);
        }
    }
    base
}

/// `iss`, `sub: alice`, ten minutes' validity, a fresh `jti`, and `extra`.
pub(crate) fn claims(iss: &str, extra: Value) -> Value {
    merged(
        json!({"iss": iss, "sub": "alice", "aud": "pets", "iat": now(), "exp": now() + 600, "jti": new_jti()}),
        extra,
    )
}

/// RS256.
pub(crate) fn sign(key: &RsaKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key.enc).expect("sign")
}

/// A token of the `IdP` issuer (no subscription validation).
pub(crate) fn jwt(extra: Value) -> String {
    sign(&KEYS.idp, &claims(ISS_IDP, extra))
}

pub(crate) fn application() -> Value {
    json!({"id": 12, "uuid": "app-uuid-1", "name": "PetApp", "tier": "10PerMin", "owner": "bob"})
}

pub(crate) fn subscription(name: &str, version: &str, context: &str) -> Value {
    json!({"name": name, "version": version, "context": context, "subscriptionTier": "Gold", "publisher": "admin"})
}

/// A token of the `Subs` issuer (subscriptions validated), subscribed to Pets.
pub(crate) fn subs_jwt(extra: Value) -> String {
    let base =
        json!({"azp": "ck-1", "application": application(), "subscribedAPIs": [subscription("Pets", VERSION, BASE)]});
    sign(&KEYS.subs, &claims(ISS_SUBS, merged(base, extra)))
}

pub(crate) fn api_key_claims(extra: Value) -> Value {
    let base = json!({
        "sub": "alice@carbon.super", "keytype": "PRODUCTION", "token_type": "apiKey",
        "application": application(), "subscribedAPIs": [subscription("Pets", VERSION, BASE)],
    });
    claims(ISS_APIKEY, merged(base, extra))
}

/// An API key of `APIM APIkey`, subscribed to Pets.
pub(crate) fn api_key(extra: Value) -> String {
    sign(&KEYS.apikey, &api_key_claims(extra))
}

pub(crate) fn internal_key_claims(extra: Value) -> Value {
    let base = json!({
        "sub": "admin", "keytype": "PRODUCTION", "token_type": "InternalKey",
        "subscribedAPIs": [{"name": "Pets", "context": BASE, "version": VERSION, "publisher": "admin"}],
    });
    claims(ISS_PUBLISHER, merged(base, extra))
}

/// An internal key of `APIM Publisher` for Pets.
pub(crate) fn internal_key(extra: Value) -> String {
    sign(&KEYS.publisher, &internal_key_claims(extra))
}

/// A backend JWT checked against the fixture's signer (`aud` not checked).
pub(crate) fn decode_backend_jwt(raw: &str, alg: Algorithm) -> jsonwebtoken::errors::Result<TokenData<Value>> {
    let mut v = Validation::new(alg);
    v.validate_aud = false;
    let key = DecodingKey::from_rsa_pem(KEYS.signer.public_pem.as_bytes()).expect("public key");
    jsonwebtoken::decode::<Value>(raw, &key, &v)
}

/// The decoded payload of a JWT.
pub(crate) fn payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64"))
        .expect("json")
}

pub(crate) fn jti_of(token: &str) -> String {
    payload(token)["jti"].as_str().expect("jti").to_string()
}

/// These token ids revoked for the next ten minutes.
pub(crate) fn revoked(ids: &[&str]) -> Revoked {
    ids.iter().map(|id| (Box::<str>::from(*id), now() + 600)).collect()
}
