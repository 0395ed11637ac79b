//! What the enforcer's fuzz targets share: engines configured once (issuers
//! trusting a key generated at start-up, four APIs with different security),
//! a current-thread runtime, a signer for tokens the issuers trust, and seed
//! requests for the protobuf target.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use enforcer_core::apis::ApiIndex;
use enforcer_core::engine::Engine;
use enforcer_core::keys::Fetch;
use enforcer_core::settings::Settings;
use enforcer_core::signer::{RsaAlg, Signer};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use gateway_proto::{api as pa, config as pc};

/// `iss` of the issuer that does not validate subscriptions.
pub const ISS_KM: &str = "https://localhost:9443/oauth2/token";
/// `iss` of the issuer that validates subscriptions.
pub const ISS_SUBS: &str = "https://km.example.com/oauth2/token";
/// `iss` of `APIM Publisher` (internal keys; API keys fall back to it).
pub const ISS_PUBLISHER: &str = "https://localhost:9443/publisher";
/// Every configured `iss`.
pub const ISSUERS: &[&str] = &[ISS_KM, ISS_SUBS, ISS_PUBLISHER];
/// A token id the engines hold as revoked.
pub const REVOKED_JTI: &str = "revoked-jti";

/// One resource of the fixture's APIs, with what the harness knows about it.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Context extension `vHost`.
    pub vhost: &'static str,
    /// Context extension `basePath`.
    pub base_path: &'static str,
    /// Context extension `version`.
    pub version: &'static str,
    /// API name (subscriptions match on it).
    pub title: &'static str,
    /// Context extension `path`: the resource template.
    pub template: &'static str,
    /// A request path matching the template (without base path).
    pub path: &'static str,
    /// Methods the resource has.
    pub methods: &'static [&'static str],
    /// Methods that need no credentials at all (prototyped API, security disabled).
    pub open_methods: &'static [&'static str],
}

/// Every resource of the fixture's APIs.
pub const ROUTES: &[Route] = &[
    Route {
        vhost: "localhost",
        base_path: "/pets/1.0",
        version: "1.0",
        title: "Pets",
        template: "/pets",
        path: "/pets",
        methods: &["GET", "POST"],
        open_methods: &[],
    },
    Route {
        vhost: "localhost",
        base_path: "/pets/1.0",
        version: "1.0",
        title: "Pets",
        template: "/pets/{id}",
        path: "/pets/7",
        methods: &["GET", "PUT", "DELETE"],
        open_methods: &["DELETE"],
    },
    Route {
        vhost: "api.example.com",
        base_path: "/orders",
        version: "v1",
        title: "Orders",
        template: "/orders",
        path: "/orders",
        methods: &["GET", "POST"],
        open_methods: &[],
    },
    Route {
        vhost: "api.example.com",
        base_path: "/orders",
        version: "v1",
        title: "Orders",
        template: "/orders/{id}",
        path: "/orders/42",
        methods: &["GET"],
        open_methods: &[],
    },
    Route {
        vhost: "localhost",
        base_path: "/legacy",
        version: "2.0",
        title: "Legacy",
        template: "/items",
        path: "/items",
        methods: &["GET", "POST"],
        open_methods: &[],
    },
    Route {
        vhost: "localhost",
        base_path: "/legacy",
        version: "2.0",
        title: "Legacy",
        template: "/status",
        path: "/status",
        methods: &["GET"],
        // Security disabled, but the API is BLOCKED: never allowed.
        open_methods: &[],
    },
    Route {
        vhost: "localhost",
        base_path: "/proto",
        version: "0.1",
        title: "Prototype",
        template: "/echo",
        path: "/echo",
        methods: &["GET", "POST"],
        open_methods: &["GET", "POST"],
    },
];

/// The engines, the runtime and the keys.
pub struct Fixture {
    /// 0: peer certificate from TLS, analytics, backend JWT, token cache.
    /// 1: certificate from a URL-encoded header, outbound headers kept, no cache.
    pub engines: [Engine; 2],
    /// Runs the async checks.
    pub rt: tokio::runtime::Runtime,
    /// Signs tokens every configured issuer trusts.
    pub signer: Signer,
    /// The certificate of that key, also the client certificate of the mTLS APIs (PEM).
    pub cert_pem: String,
    /// The same, DER.
    pub cert_der: Vec<u8>,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static F: LazyLock<Fixture> = LazyLock::new(Fixture::new);
    &F
}

fn list(pairs: &[(&str, &[&str])]) -> pa::SecurityList {
    pa::SecurityList {
        scope_list: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), pa::Scopes { scopes: v.iter().map(|s| s.to_string()).collect() }))
            .collect(),
    }
}

fn scheme(name: &str, kind: &str, key: &str, location: &str) -> pa::SecurityScheme {
    pa::SecurityScheme { definition_name: name.into(), r#type: kind.into(), name: key.into(), r#in: location.into() }
}

fn op(method: &str) -> pa::Operation {
    pa::Operation { method: method.into(), ..Default::default() }
}

fn secured(method: &str, security: Vec<pa::SecurityList>) -> pa::Operation {
    pa::Operation { method: method.into(), has_security: true, security, ..Default::default() }
}

fn resource(path: &str, methods: Vec<pa::Operation>) -> pa::Resource {
    pa::Resource { path: path.into(), methods }
}

/// The APIs: oauth2 + API keys (header and query) with scopes and a
/// security-disabled operation; mandatory mTLS; optional mTLS with a custom
/// authorization header, BLOCKED; PROTOTYPED.
pub fn apis(cert_pem: &str) -> Vec<pa::Api> {
    let client_cert = || {
        vec![pa::Certificate {
            alias: "client".into(),
            tier: "Unlimited".into(),
            content: cert_pem.as_bytes().to_vec(),
        }]
    };
    vec![
        pa::Api {
            id: "pets-id".into(),
            title: "Pets".into(),
            version: "1.0".into(),
            api_type: "HTTP".into(),
            base_path: "/pets/1.0".into(),
            vhost: "localhost".into(),
            api_lifecycle_state: "PUBLISHED".into(),
            security_scheme: vec![
                scheme("default", "oauth2", "", ""),
                scheme("api_key_header", "apiKey", "ApiKey", "header"),
                scheme("api_key_query", "apiKey", "apikey", "query"),
            ],
            security: vec![list(&[("default", &[])])],
            resources: vec![
                resource(
                    "/pets",
                    vec![
                        op("GET"),
                        secured(
                            "POST",
                            vec![
                                list(&[("default", &["write"])]),
                                list(&[("api_key_header", &[]), ("api_key_query", &[])]),
                            ],
                        ),
                    ],
                ),
                resource(
                    "/pets/{id}",
                    vec![
                        secured("GET", vec![list(&[("default", &["read", "admin"])])]),
                        secured("PUT", vec![list(&[("api_key_query", &[])])]),
                        pa::Operation { method: "DELETE".into(), disable_security: true, ..Default::default() },
                    ],
                ),
            ],
            has_production: true,
            has_sandbox: true,
            ..Default::default()
        },
        pa::Api {
            id: "orders-id".into(),
            title: "Orders".into(),
            version: "v1".into(),
            api_type: "HTTP".into(),
            base_path: "/orders".into(),
            vhost: "api.example.com".into(),
            api_lifecycle_state: "PUBLISHED".into(),
            security_scheme: vec![scheme("default", "oauth2", "", "")],
            security: vec![list(&[("default", &[])])],
            resources: vec![
                resource("/orders", vec![op("GET"), op("POST")]),
                resource("/orders/{id}", vec![op("GET")]),
            ],
            has_production: true,
            mutual_ssl: "mandatory".into(),
            application_security: false,
            client_certificates: client_cert(),
            ..Default::default()
        },
        pa::Api {
            id: "legacy-id".into(),
            title: "Legacy".into(),
            version: "2.0".into(),
            api_type: "HTTP".into(),
            base_path: "/legacy".into(),
            vhost: "localhost".into(),
            api_lifecycle_state: "BLOCKED".into(),
            authorization_header: "X-Legacy-Auth".into(),
            security_scheme: vec![scheme("default", "oauth2", "", ""), scheme("key", "apiKey", "X-API-Key", "header")],
            security: vec![list(&[("default", &[])]), list(&[("key", &[])])],
            resources: vec![
                resource("/items", vec![op("GET"), op("POST")]),
                resource(
                    "/status",
                    vec![pa::Operation { method: "GET".into(), disable_security: true, ..Default::default() }],
                ),
            ],
            has_sandbox: true,
            mutual_ssl: "optional".into(),
            application_security: true,
            client_certificates: client_cert(),
            ..Default::default()
        },
        pa::Api {
            id: "proto-id".into(),
            title: "Prototype".into(),
            version: "0.1".into(),
            api_type: "HTTP".into(),
            base_path: "/proto".into(),
            vhost: "localhost".into(),
            api_lifecycle_state: "PROTOTYPED".into(),
            resources: vec![resource("/echo", vec![op("GET"), op("POST")])],
            has_production: true,
            ..Default::default()
        },
    ]
}

fn issuer(name: &str, iss: &str, cert: &str, validate_subscription: bool) -> pc::Issuer {
    pc::Issuer {
        name: name.into(),
        issuer: iss.into(),
        certificate_file_path: cert.into(),
        validate_subscription,
        consumer_key_claim: "azp".into(),
        claim_mapping: vec![pc::ClaimMapping { remote_claim: "scp".into(), local_claim: "scope".into() }],
        ..Default::default()
    }
}

/// The two configurations (see [`Fixture::engines`]).
pub fn configs(cert: &str, key: &str) -> [pc::Config; 2] {
    let token_service = vec![
        issuer("Resident Key Manager", ISS_KM, cert, false),
        issuer("Subscriptions KM", ISS_SUBS, cert, true),
        issuer("APIM Publisher", ISS_PUBLISHER, cert, true),
        issuer("APIM APIkey", "", cert, true),
    ];
    let first = pc::Config {
        security: Some(pc::Security {
            token_service: token_service.clone(),
            auth_header: None,
            mutual_ssl: Some(pc::MutualSsl { enable_client_validation: true, ..Default::default() }),
        }),
        jwt_generator: Some(pc::JwtGenerator {
            enabled: true,
            claim_dialect: "http://wso2.org/claims".into(),
            signing_algorithm: "SHA256withRSA".into(),
            token_ttl: 3600,
            keypair: vec![pc::Keypair {
                public_certificate_path: cert.into(),
                private_key_path: key.into(),
                use_for_signing: true,
            }],
            ..Default::default()
        }),
        cache: Some(pc::Cache { enabled: true, maximum_size: 1000, expiry_time: 15 }),
        analytics: Some(pc::Analytics { enabled: true, ..Default::default() }),
        ..Default::default()
    };
    let second = pc::Config {
        security: Some(pc::Security {
            token_service,
            auth_header: Some(pc::AuthHeader { enable_outbound_auth_header: true, ..Default::default() }),
            mutual_ssl: Some(pc::MutualSsl {
                certificate_header: "X-Client-Cert".into(),
                enable_client_validation: false,
                client_certificate_encode: true,
                enable_outbound_certificate_header: true,
            }),
        }),
        cache: Some(pc::Cache { enabled: false, ..Default::default() }),
        ..Default::default()
    };
    [first, second]
}

/// Environment variable naming a PEM file holding the signing key: read if
/// it exists, else written with a new key. Keeping the key keeps the corpus's
/// signed tokens valid from one run to the next (and crashes reproducible).
pub const KEY_ENV: &str = "ENFORCER_FUZZ_KEY";

fn key_pair() -> rcgen::KeyPair {
    let path = std::env::var_os(KEY_ENV);
    if let Some(p) = &path
        && let Ok(pem) = std::fs::read_to_string(p)
        && let Ok(kp) = rcgen::KeyPair::from_pem(&pem)
    {
        return kp;
    }
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    if let Some(p) = path {
        let _ = std::fs::write(p, kp.serialize_pem());
    }
    kp
}

impl Fixture {
    fn new() -> Fixture {
        let kp = key_pair();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("certificate parameters");
        let cert = params.self_signed(&kp).expect("self-signed certificate");
        let cert_pem = cert.pem();
        let cert_der = cert.der().to_vec();
        // The enforcer reads key files while loading: they are needed only until then.
        let dir = tempfile::tempdir().expect("temporary directory");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &cert_pem).expect("write certificate");
        std::fs::write(&key_path, kp.serialize_pem()).expect("write key");
        let (cert_path, key_path) = (cert_path.to_str().expect("UTF-8 path"), key_path.to_str().expect("UTF-8 path"));
        let signer = Signer::from_files(key_path, cert_path).expect("signer");
        let http: Arc<dyn Fetch> = enforcer::jwks_http::HttpFetch::new();
        let engines = configs(cert_path, key_path).map(|c| {
            let engine = Engine::new();
            engine.set_settings(Arc::new(Settings::load(&c, &http).expect("settings")));
            engine.set_apis(ApiIndex::new(apis(&cert_pem)).expect("APIs"));
            engine.set_revoked(HashMap::from([(REVOKED_JTI.into(), i64::MAX)]));
            engine.set_throttle(enforcer_core::throttle::ThrottleData::default());
            engine
        });
        drop(dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        Fixture { engines, rt, signer, cert_pem, cert_der }
    }

    /// Whether `pem` (URL-encoded or not) is the client certificate of the mTLS APIs.
    pub fn is_client_cert(&self, pem: &str) -> bool {
        let decoded = percent_encoding::percent_decode_str(pem).decode_utf8_lossy();
        [pem, &*decoded].iter().any(|p| {
            x509_parser::pem::parse_x509_pem(p.as_bytes()).is_ok_and(|(_, parsed)| parsed.contents == self.cert_der)
        })
    }

    /// A token every configured issuer trusts.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT"}).to_string();
        self.signer.sign(RsaAlg::Rs256, &header, &claims.to_string()).expect("signing")
    }
}

/// An `exp` far ahead (2096), so seeds and inputs do not depend on the clock.
pub const FAR_FUTURE: i64 = 4_000_000_000;

/// A CheckRequest as Envoy sends it for `route`.
pub fn check_request(
    route: &Route,
    method: &str,
    path: &str,
    headers: HashMap<String, String>,
    peer_cert: &str,
) -> CheckRequest {
    let ext = HashMap::from([
        ("vHost".to_string(), route.vhost.to_string()),
        ("basePath".to_string(), route.base_path.to_string()),
        ("version".to_string(), route.version.to_string()),
        ("path".to_string(), route.template.to_string()),
        ("prodClusterName".to_string(), format!("{}_prod", route.title)),
        ("sandClusterName".to_string(), format!("{}_sand", route.title)),
    ]);
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".into(),
                        ..Default::default()
                    })),
                }),
                certificate: peer_cert.into(),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1234".into(),
                    method: method.into(),
                    path: path.into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: ext,
            ..Default::default()
        }),
    }
}

/// Seed CheckRequests (encoded) for the protobuf target: every route and
/// method, without credentials, with a valid JWT, API key, internal key and
/// client certificate.
pub fn seeds(f: &Fixture) -> Vec<Vec<u8>> {
    use prost::Message;
    let jwt = f.sign(&serde_json::json!({
        "iss": ISS_KM, "sub": "alice", "exp": FAR_FUTURE, "scope": "read write", "azp": "ck",
        "keytype": "PRODUCTION", "application": {"id": 1, "uuid": "u", "name": "App", "owner": "bob", "tier": "Unlimited"}
    }));
    let subscribed: Vec<serde_json::Value> = ROUTES
        .iter()
        .map(|r| serde_json::json!({"name": r.title, "version": r.version, "context": r.base_path, "subscriptionTier": "Gold"}))
        .collect();
    let api_key = f.sign(&serde_json::json!({
        "iss": ISS_PUBLISHER, "sub": "alice", "exp": FAR_FUTURE, "keytype": "SANDBOX", "subscribedAPIs": subscribed,
        "permittedIP": "127.0.0.0/8"
    }));
    let internal = f.sign(&serde_json::json!({
        "iss": ISS_PUBLISHER, "sub": "admin", "exp": FAR_FUTURE, "token_type": "InternalKey", "subscribedAPIs": subscribed
    }));
    let cert = percent_encoding::utf8_percent_encode(&f.cert_pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut out = Vec::new();
    for r in ROUTES {
        for m in r.methods.iter().chain(["OPTIONS"].iter()) {
            let variants: [(&[(&str, String)], &str, &str); 5] = [
                (&[], "", ""),
                (&[("authorization", format!("Bearer {jwt}"))], "", ""),
                (&[("apikey", api_key.clone()), ("x-api-key", api_key.clone())], "", ""),
                (&[("internal-key", internal.clone())], "", ""),
                (&[("x-client-cert", cert.clone())], &cert, "?apikey=x.y.z&a=b"),
            ];
            for (headers, peer, query) in variants {
                let headers = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                let path = format!("{}{}{query}", r.base_path, r.path);
                out.push(check_request(r, m, &path, headers, peer).encode_to_vec());
            }
        }
    }
    out
}

/// Writes [`seeds`] into `dir` (made if missing), once per file name.
pub fn write_seeds(f: &Fixture, dir: &str) {
    let _ = std::fs::create_dir_all(dir);
    for (i, s) in seeds(f).into_iter().enumerate() {
        let path = std::path::Path::new(dir).join(format!("seed-{i:03}"));
        if !path.exists() {
            let _ = std::fs::write(path, s);
        }
    }
}
