//! The standing attack suite: what an attacker tries against the real
//! gateway (Envoy, adapter, enforcer, a real backend), each attempt with the
//! exact refusal expected and proof that the backend saw nothing.
//!
//! JWT attacks, identity and internal headers sent by a client, spoofed
//! client addresses, path tricks, method overrides, CORS preflights, security
//! overrides and blocked APIs, slow and idle connections, and bad management
//! requests. A new hole, once closed, gets its attempt here.

use std::time::{Duration, Instant};

use integration::tokens::{JwksServer, SigningKey, hs256, merge_claims, now, unique, unsigned};
use integration::{Gateway, IDP_ISSUER, Resp, XdsMode};
use serde_json::{Value, json};
use test_backend::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PETS: &str = r#"
openapi: 3.0.1
info: { title: Pets, version: "1.0" }
x-wso2-cors:
  corsConfigurationEnabled: true
  accessControlAllowOrigins: ["https://good.example"]
  accessControlAllowMethods: [GET, POST, DELETE]
  accessControlAllowHeaders: [authorization, content-type]
paths:
  /public:
    get: { x-wso2-disable-security: true }
    delete: {}
  /secured:
    get: {}
    post: {}
  /items/{id}:
    get: {}
  /opts:
    options: {}
    get: {}
"#;

/// Open at the root, secured below (operation > path item > root).
const OPEN: &str = r#"
openapi: 3.0.1
info: { title: Open, version: "1.0" }
x-wso2-disable-security: true
paths:
  /anyone:
    get: {}
  /members:
    x-wso2-disable-security: false
    get: {}
  /members/{id}:
    get: { x-wso2-disable-security: false }
    put: {}
"#;

const FROZEN: &str = r#"
openapi: 3.0.1
info: { title: Frozen, version: "1.0" }
paths:
  /status:
    get: { x-wso2-disable-security: true }
  /data:
    get: {}
"#;

fn api_yaml(name: &str, context: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "type: api\nversion: v4.2.0\ndata:\n  name: {name}\n  version: \"1.0\"\n  context: {context}\n  type: HTTP\n{extra}  endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: {endpoint}\n"
    )
}

/// The configuration of the attack gateway: the backend JWT on, short
/// limits on every server so that slow and idle clients are cut off fast.
const CONFIG: &str = r#"
[enforcer.jwtGenerator]
enabled = true
[[enforcer.jwtGenerator.keypair]]
publicCertificatePath = "{dir}/testkey.pem"
privateKeyPath = "{dir}/testkey.key"
useForSigning = true
[router.connectionTimeout]
requestHeadersTimeoutInSeconds = 2
[adapter.server.connections]
maxConnections = 4
tlsHandshakeTimeoutInSeconds = 1
requestHeadersTimeoutInSeconds = 1
idleTimeoutInSeconds = 2
"#;

const ENFORCER_LIMITS: &[&str] = &[
    "--https-max-connections",
    "4",
    "--https-handshake-timeout",
    "1",
    "--https-headers-timeout",
    "1",
    "--https-idle-timeout",
    "2",
];

/// The attack gateway; `env` sets config.toml keys (`CC_*`) of the adapter.
async fn gateway(b: &Backend, env: &[(&str, &str)]) -> Gateway {
    let url = b.url();
    let mut builder = Gateway::builder(XdsMode::Delta);
    for (k, v) in env {
        builder = builder.adapter_env(k, v);
    }
    builder
        .with_enforcer()
        .config(CONFIG)
        .enforcer_args(ENFORCER_LIMITS)
        .project(
            "pets",
            &[
                ("api.yaml", &api_yaml("Pets", "/pets", &url, "  securityScheme: [oauth2, api_key]\n")),
                ("Definitions/swagger.yaml", PETS),
            ],
        )
        .project("open", &[("api.yaml", &api_yaml("Open", "/open", &url, "")), ("Definitions/swagger.yaml", OPEN)])
        .project(
            "frozen",
            &[
                ("api.yaml", &api_yaml("Frozen", "/frozen", &url, "  lifeCycleStatus: BLOCKED\n")),
                ("Definitions/swagger.yaml", FROZEN),
            ],
        )
        .start()
        .await
}

fn claims(extra: Value) -> Value {
    let c = json!({
        "iss": IDP_ISSUER, "sub": "mallory", "azp": "client-1", "exp": now() + 600, "iat": now(),
        "jti": format!("a-{}-{}", now(), unique()),
        "application": {"id": 1, "uuid": "app-1", "name": "App", "owner": "mallory"},
        "subscribedAPIs": [
            {"name": "Pets", "version": "1.0", "context": "/pets/1.0", "subscriptionTier": "Gold"},
            {"name": "Open", "version": "1.0", "context": "/open/1.0", "subscriptionTier": "Gold"},
            {"name": "Frozen", "version": "1.0", "context": "/frozen/1.0", "subscriptionTier": "Gold"},
        ],
    });
    merge_claims(c, extra)
}

async fn call(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    gw.request(method, "localhost", path, headers).await.expect("request")
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A refusal with the gateway's JSON: status and code.
#[track_caller]
fn refused(r: &Resp, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.json()["code"], code, "{what}: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attacks_are_refused_and_reach_nothing() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    let idp = &gw.idp().idp;
    let attacker = SigningKey::rsa("attacker");
    let attacker_jwks = JwksServer::start(&[&attacker]).await;
    let valid = idp.sign(&claims(json!({})));
    let path = "/pets/1.0/secured";

    // Control: the genuine token works.
    assert_eq!(call(&gw, "GET", path, &[("authorization", &bearer(&valid))]).await.status, 200);
    let hits = b.hits();

    let signature_of_valid = valid.rsplit('.').next().expect("signature").to_string();
    let forged_claims = claims(json!({"sub": "admin"}));
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let head = |extra: Value| merge_claims(json!({"alg": "RS256", "typ": "JWT", "kid": idp.kid}), extra);
    let nested = idp.sign_with_header(&head(json!({"cty": "JWT"})), &json!(valid));
    let attempts: Vec<(&str, String)> = vec![
        ("alg none", unsigned(&idp.kid, &claims(json!({})))),
        ("HS256 keyed with the RSA public key", hs256(idp.public_pem().as_bytes(), &idp.kid, &claims(json!({})))),
        (
            "kid path traversal",
            attacker.sign_with_header(&head(json!({"kid": "../../../../etc/passwd"})), &claims(json!({}))),
        ),
        ("kid injection", attacker.sign_with_header(&head(json!({"kid": "' OR '1'='1"})), &claims(json!({})))),
        ("kid naming the real key, signed by another", attacker.sign_with_header(&head(json!({})), &claims(json!({})))),
        (
            "jku to the attacker's keys",
            attacker
                .sign_with_header(&head(json!({"kid": "attacker", "jku": attacker_jwks.url()})), &claims(json!({}))),
        ),
        (
            "x5u to the attacker's keys",
            attacker
                .sign_with_header(&head(json!({"kid": "attacker", "x5u": attacker_jwks.url()})), &claims(json!({}))),
        ),
        (
            "embedded jwk",
            attacker.sign_with_header(&head(json!({"kid": "attacker", "jwk": attacker.jwk})), &claims(json!({}))),
        ),
        ("crit extension", idp.sign_with_header(&head(json!({"crit": ["exp"]})), &claims(json!({})))),
        (
            "unencoded payload (b64: false)",
            idp.sign_with_header(&head(json!({"b64": false, "crit": ["b64"]})), &claims(json!({}))),
        ),
        ("stripped signature", format!("{}.{}.", b64(&head(json!({}))), b64(&forged_claims))),
        ("swapped signature", format!("{}.{}.{signature_of_valid}", b64(&head(json!({}))), b64(&forged_claims))),
        ("expired", idp.sign(&claims(json!({"exp": now() - 3600})))),
        ("not yet valid", idp.sign(&claims(json!({"nbf": now() + 3600})))),
        ("unknown issuer", idp.sign(&claims(json!({"iss": "https://evil.example"})))),
        ("no expiry", idp.sign(&claims(json!({"exp": null})))),
        ("oversized", idp.sign(&claims(json!({"pad": "x".repeat(20_000)})))),
        ("nested JWT", nested),
        (
            "an API key as a bearer token",
            gw.idp().apim.sign(&claims(json!({"token_type": "apiKey", "iss": "https://localhost:9443/apikey"}))),
        ),
        (
            "an internal key as a bearer token",
            gw.idp()
                .apim
                .sign(&claims(json!({"token_type": "InternalKey", "iss": "https://localhost:9443/publisher"}))),
        ),
        ("a token typed apiKey from a trusted issuer", idp.sign(&claims(json!({"token_type": "apiKey"})))),
    ];
    for (what, token) in &attempts {
        let r = call(&gw, "GET", path, &[("authorization", &bearer(token))]).await;
        refused(&r, 401, "900901", what);
        assert!(r.header("www-authenticate").is_some_and(|w| w.contains("invalid_token")), "{what}: {:?}", r.headers);
    }
    // Tokens whose header is too large for Envoy never reach the enforcer.
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    let r = call(&gw, "GET", path, &[("authorization", &huge)]).await;
    assert_eq!(r.status, 431, "{}", r.body);
    assert_eq!(b.hits(), hits, "no attempt reached the backend");
    assert_eq!(attacker_jwks.hits(), 0, "keys named by a token are never fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_internal_headers_from_a_client_never_reach_the_backend() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    let token = gw.idp().idp.sign(&claims(json!({})));
    let forged: Vec<(&str, &str)> = vec![
        ("x-jwt-assertion", "forged.identity.token"),
        ("x-wso2-client-certificate", "-----BEGIN CERTIFICATE-----forged"),
        ("x-wso2-client-ip", "203.0.113.9"),
        ("x-wso2-cluster-header", "carbon.super_clusterSand_localhost_Pets1.0"),
        ("x-wso2-route-scope", "/other"),
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-envoy-original-path", "/forged"),
        ("x-envoy-decorator-operation", "forged"),
        ("x-envoy-max-retries", "5"),
        ("x-envoy-retry-on", "5xx"),
        // Honoured, this would turn the slow answer below into a 504.
        ("x-envoy-upstream-rq-timeout-ms", "1"),
        ("x-backend-delay-ms", "300"),
    ];
    for (path, auth) in [("/pets/1.0/public", None), ("/pets/1.0/secured", Some(bearer(&token)))] {
        let mut headers = forged.clone();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let r = call(&gw, "GET", path, &headers).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let seen = r.json()["headers"].clone();
        let seen = seen.as_object().expect("headers");
        for (name, value) in &forged {
            if *name == "x-backend-delay-ms" {
                continue;
            }
            let got = seen.get(*name);
            assert!(
                got.is_none_or(|g| g.as_str() != Some(*value)),
                "{path}: the backend saw the client's {name}: {got:?}"
            );
        }
        for name in seen.keys() {
            assert!(!name.starts_with("x-wso2-"), "{path}: internal header {name} reached the backend");
            assert!(!name.contains("method-override") && name != "x-http-method", "{path}: {name}");
        }
        match auth {
            // The gateway's own assertion, signed by it, replaces nothing a client sent.
            Some(_) => {
                let jwt = seen["x-jwt-assertion"].as_str().expect("the backend JWT");
                let payload = jwt.split('.').nth(1).expect("payload");
                use base64::Engine;
                let claims: Value = serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64"),
                )
                .expect("claims");
                assert_eq!(claims["iss"], "wso2.org/products/am");
                assert_eq!(claims["sub"], "mallory");
            }
            None => assert!(seen.get("x-jwt-assertion").is_none(), "public route: {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_choose_its_address() {
    let b = Backend::start("b").await.expect("backend");
    let api_key = |gw: &Gateway, permitted: &str| {
        gw.idp().apim.sign_without_kid(&json!({
            "iss": "https://localhost:9443/apikey", "sub": "carol", "jti": format!("ak-{}", unique()), "iat": now(),
            "exp": now() + 600, "keytype": "PRODUCTION", "token_type": "apiKey", "permittedIP": permitted,
            "application": {"id": 3, "uuid": "app-3", "name": "KeyApp", "owner": "carol"},
            "subscribedAPIs": [{"name": "Pets", "version": "1.0", "context": "/pets/1.0", "subscriptionTier": "Unlimited"}],
        }))
    };
    let gw = gateway(&b, &[]).await;
    let remote_only = api_key(&gw, "203.0.113.7");
    let local = api_key(&gw, "127.0.0.1");
    assert_eq!(call(&gw, "GET", "/pets/1.0/secured", &[("apikey", &local)]).await.status, 200, "control");
    let hits = b.hits();
    for spoof in [
        vec![("x-forwarded-for", "203.0.113.7")],
        vec![("x-forwarded-for", "203.0.113.7, 10.0.0.1")],
        vec![("x-real-ip", "203.0.113.7")],
        vec![("x-wso2-client-ip", "203.0.113.7")],
        vec![("forwarded", "for=203.0.113.7")],
    ] {
        let mut h = spoof.clone();
        h.push(("apikey", &remote_only));
        let r = call(&gw, "GET", "/pets/1.0/secured", &h).await;
        refused(&r, 403, "900908", &format!("{spoof:?}"));
    }
    assert_eq!(b.hits(), hits);
    drop(gw);

    // Behind one trusted proxy (use_remote_address and one trusted hop), the
    // address the proxy appended counts; what the client put before it does not.
    let gw = gateway(&b, &[("CC_ROUTER_XFFNUMTRUSTEDHOPS", "1")]).await;
    let remote_only = api_key(&gw, "203.0.113.7");
    let r =
        call(&gw, "GET", "/pets/1.0/secured", &[("apikey", &remote_only), ("x-forwarded-for", "1.1.1.1, 203.0.113.7")])
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r =
        call(&gw, "GET", "/pets/1.0/secured", &[("apikey", &remote_only), ("x-forwarded-for", "203.0.113.7, 1.1.1.1")])
            .await;
    refused(&r, 403, "900908", "the client's own entry");
}

/// A raw request to the router (no client normalises it).
async fn raw(gw: &Gateway, method: &str, target: &str, extra: &str) -> Resp {
    let req = format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\n{extra}connection: close\r\n\r\n");
    gw.raw(req.as_bytes()).await.unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_do_not_reach_secured_resources() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    let r = raw(&gw, "GET", "/pets/1.0/public", "").await;
    assert_eq!(r.status, 200, "control: {}", r.body);
    let hits = b.hits();
    let refused_paths: &[(&str, u16)] = &[
        // Escaped slashes: refused outright, never decoded by a backend.
        ("/pets/1.0/items/..%2F..%2Fadmin", 400),
        ("/pets/1.0/items/..%2f..%2fadmin", 400),
        ("/pets%2F1.0/public", 400),
        ("/pets/1.0/items/a%5C..%5Csecured", 400),
        // Dot segments are resolved before routing: they land on what they name.
        ("/pets/1.0/public/../secured", 401),
        ("/pets/1.0/public/%2e%2e/secured", 401),
        ("/pets/1.0/public/%2E%2E/secured", 401),
        ("/pets/1.0/./secured", 401),
        // `..;` (a parameter on a dot segment, which Tomcat resolves) is resolved here too.
        ("/pets/1.0/public/..;/secured", 401),
        // Double slashes are merged.
        ("//pets//1.0//secured", 401),
        // Case, trailing dots and bytes that are not separators match nothing.
        ("/PETS/1.0/secured", 404),
        ("/pets/1.0/SECURED", 404),
        ("/pets/1.0/secured.", 404),
        ("/pets/1.0/secured%00", 400),
        ("/pets/1.0/secured%20", 404),
        ("/pets/1.0/public;/../secured", 401),
        // Absolute form names the same path.
        ("http://localhost/pets/1.0/secured", 401),
    ];
    for (target, status) in refused_paths {
        let r = raw(&gw, "GET", target, "").await;
        assert_eq!(r.status, *status, "GET {target}: {}", r.body);
    }
    // Overlong request lines and headers.
    let long = format!("/pets/1.0/items/{}", "a".repeat(70 * 1024));
    let r = raw(&gw, "GET", &long, "").await;
    assert!(matches!(r.status, 414 | 431 | 400), "overlong path: {}", r.status);
    assert_eq!(b.hits(), hits, "no trick reached the backend");

    // The normal forms still work, and the backend gets the normalised path.
    let r = raw(&gw, "GET", "//pets//1.0//public", "").await;
    assert_eq!((r.status, r.upstream_path().as_str()), (200, "/public"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_overrides_are_neither_honoured_nor_forwarded() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    // GET /public is open, DELETE /public is secured: an override header must
    // not turn the one into the other at the backend.
    for h in ["x-http-method-override", "x-http-method", "x-method-override"] {
        let r = call(&gw, "GET", "/pets/1.0/public", &[(h, "DELETE")]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["method"], "GET");
        assert!(r.json()["headers"].get(h).is_none(), "{h} reached the backend");
    }
    let hits = b.hits();
    // Authorization follows the real method.
    let r = call(&gw, "DELETE", "/pets/1.0/public", &[("x-http-method-override", "GET")]).await;
    refused(&r, 401, "900901", "DELETE with an override to GET");
    let r = call(&gw, "POST", "/pets/1.0/public", &[("x-http-method-override", "GET")]).await;
    refused(&r, 404, "404", "an undeclared method");
    assert_eq!(b.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_never_reach_the_backend() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    // The hole that was: OPTIONS with Access-Control-Request-Method and no
    // Origin, with a body, to an undefined path under the base path.
    let r = raw(
        &gw,
        "OPTIONS",
        "/pets/1.0/admin/delete-all",
        "access-control-request-method: DELETE\r\ncontent-length: 12\r\n\r\n{\"all\":true}",
    )
    .await;
    refused(&r, 404, "404", "undefined path");
    // A defined path, no Origin: the enforcer's answer, no CORS headers.
    for (target, allow) in [("/pets/1.0/secured", "OPTIONS, GET, POST"), ("/pets/1.0/public", "OPTIONS, GET, DELETE")] {
        let r = call(&gw, "OPTIONS", target, &[("access-control-request-method", "GET")]).await;
        assert_eq!((r.status, r.header("allow")), (204, Some(allow)), "{target}: {:?}", r.headers);
        assert!(r.header("access-control-allow-origin").is_none(), "{:?}", r.headers);
        assert_eq!(r.body, "");
        // A plain OPTIONS: the same.
        let r = call(&gw, "OPTIONS", target, &[]).await;
        assert_eq!((r.status, r.header("allow")), (204, Some(allow)), "{target}: {:?}", r.headers);
    }
    // From an allowed origin: Envoy's CORS filter answers.
    let r = call(
        &gw,
        "OPTIONS",
        "/pets/1.0/secured",
        &[("origin", "https://good.example"), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://good.example"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST, DELETE"));
    // From a refused origin: exactly what a request without Origin gets.
    let r = call(
        &gw,
        "OPTIONS",
        "/pets/1.0/secured",
        &[("origin", "https://evil.example"), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!((r.status, r.header("allow")), (204, Some("OPTIONS, GET, POST")), "{:?}", r.headers);
    assert!(r.header("access-control-allow-origin").is_none(), "{:?}", r.headers);
    // An override header changes nothing.
    let r = call(&gw, "OPTIONS", "/pets/1.0/public", &[("x-http-method-override", "DELETE")]).await;
    assert_eq!(r.status, 204);
    // A resource that declares OPTIONS: authenticated like any method.
    let r = call(&gw, "OPTIONS", "/pets/1.0/opts", &[]).await;
    refused(&r, 401, "900901", "declared OPTIONS without a token");
    assert_eq!(b.hits(), 0, "no OPTIONS reached the backend");
    let token = gw.idp().idp.sign(&claims(json!({})));
    let r = call(&gw, "OPTIONS", "/pets/1.0/opts", &[("authorization", &bearer(&token))]).await;
    assert_eq!((r.status, r.json()["method"].as_str()), (200, Some("OPTIONS")), "{}", r.body);
    assert_eq!(b.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_resources_of_open_apis_and_blocked_apis_stay_closed() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    let token = gw.idp().idp.sign(&claims(json!({})));
    let auth = bearer(&token);
    // Root open, path and operation secured.
    assert_eq!(call(&gw, "GET", "/open/1.0/anyone", &[]).await.status, 200);
    assert_eq!(call(&gw, "PUT", "/open/1.0/members/7", &[]).await.status, 200, "inherits the root");
    let hits = b.hits();
    refused(&call(&gw, "GET", "/open/1.0/members", &[]).await, 401, "900901", "path item secured");
    refused(&call(&gw, "GET", "/open/1.0/members/7", &[]).await, 401, "900901", "operation secured");
    // A blocked API: 503 everywhere, where security is disabled too.
    refused(&call(&gw, "GET", "/frozen/1.0/status", &[]).await, 503, "700700", "blocked, public resource");
    refused(&call(&gw, "GET", "/frozen/1.0/status", &[("authorization", &auth)]).await, 503, "700700", "blocked");
    refused(
        &call(&gw, "GET", "/frozen/1.0/data", &[("authorization", &auth)]).await,
        503,
        "700700",
        "blocked, secured",
    );
    assert_eq!(b.hits(), hits);
    assert_eq!(call(&gw, "GET", "/open/1.0/members", &[("authorization", &auth)]).await.status, 200, "control");
}

/// Reads until the server closes the connection; how long that took, or
/// `None` when it was still open after 20 s.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// Opens a TCP connection, sends `send`, and waits for the server to close it.
async fn closed_after(addr: &str, send: &[u8]) -> Option<Duration> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(send).await.expect("write");
    read_until_closed(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_cut_off() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    let router = format!("127.0.0.1:{}", gw.ports.http);
    let mgmt = format!("127.0.0.1:{}", gw.ports.mgmt);
    let enforcer = format!("127.0.0.1:{}", gw.ports.enforcer_https);

    // Router: request headers trickled in and never finished (slowloris).
    let took = closed_after(&router, b"GET /pets/1.0/public HTTP/1.1\r\nhost: localhost\r\nx-a: 1\r\n").await;
    assert!(took.is_some(), "the router kept a slow-header connection open");
    // Adapter and enforcer HTTPS: sockets that never start TLS, taking every
    // connection slot, are dropped and real clients get through.
    for (name, addr) in [("management API", &mgmt), ("enforcer HTTPS", &enforcer)] {
        let idle: Vec<_> = (0..6).map(|_| tokio::spawn(closed_after_owned(addr.clone()))).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        match name {
            "management API" => {
                let r = gw.mgmt("GET", "/apis", None).await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
            _ => {
                let r = gw.enforcer_https("GET", "/apis", &[("authorization", "Basic YWRtaW46YWRtaW4=")], "").await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{name}: a client waited {:?}", t.elapsed());
        for i in idle {
            assert!(i.await.expect("task").is_some(), "{name}: an idle socket was kept open");
        }
        // Headers trickled over TLS are cut off too.
        assert!(slow_tls_headers(&gw, addr).await, "{name}: slow headers over TLS were not cut off");
    }
    assert_eq!(b.hits(), 0);
}

async fn closed_after_owned(addr: String) -> Option<Duration> {
    closed_after(&addr, b"").await
}

/// Completes TLS (the gateway's CA), then sends half a request line and
/// waits: true when the server closes the connection.
async fn slow_tls_headers(gw: &Gateway, addr: &str) -> bool {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(gw.certs.ca_pem.as_bytes()) {
        roots.add(cert.expect("CA certificate")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(b"GET /apis HTTP/1.1\r\nhost: loc").await.expect("write");
    read_until_closed(&mut tls).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_management_requests_get_json_refusals_and_change_nothing() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b, &[]).await;
    let before = gw.mgmt("GET", "/apis", None).await.json();
    let url = |p: &str| gw.mgmt_url(p);
    let client = gw.client();
    let send = |rb: reqwest::RequestBuilder| async move {
        let r = rb.send().await.expect("management request");
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (status, ct, r.text().await.unwrap_or_default())
    };
    // Credentials.
    for auth in [
        None,
        Some("Basic YWRtaW46d3Jvbmc="),
        Some("Basic !!!"),
        Some("Bearer a.b.c"),
        Some("Bearer"),
        Some("Digest x"),
    ] {
        let mut rb = client.get(url("/apis"));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let (status, ct, body) = send(rb).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(ct, "application/json", "{auth:?}");
        assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["code"], 401);
    }
    let basic = |rb: reqwest::RequestBuilder| rb.basic_auth("admin", Some("admin"));
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "deploy without multipart",
            basic(client.post(url("/apis"))).body("{}").header("content-type", "application/json"),
            400,
        ),
        (
            "deploy without a file part",
            basic(client.post(url("/apis"))).multipart(reqwest::multipart::Form::new().text("x", "y")),
            400,
        ),
        (
            "deploy with a bad override",
            basic(client.post(url("/apis?override=maybe"))).multipart(reqwest::multipart::Form::new().text("x", "y")),
            400,
        ),
        (
            "deploy garbage",
            basic(client.post(url("/apis"))).multipart(
                reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"not a zip".to_vec())),
            ),
            400,
        ),
        ("delete without apiName", basic(client.delete(url("/apis"))), 400),
        ("list with limit 0", basic(client.get(url("/apis?limit=0"))), 400),
        ("list with a bad limit", basic(client.get(url("/apis?limit=many"))), 400),
        ("list with a bad query", basic(client.get(url("/apis?query=name:x"))), 400),
        ("query string not UTF-8", basic(client.get(url("/apis?limit=%FF%FE"))), 400),
        ("unknown method", basic(client.put(url("/apis"))), 405),
        ("unknown path", basic(client.get(url("/nothing"))), 404),
        ("revoke garbage", basic(client.post(url("/revoked_tokens"))).body("{not json"), 400),
        (
            "revoke an unknown field",
            basic(client.post(url("/revoked_tokens"))).json(&json!({"jti": "x", "extra": 1})),
            400,
        ),
        ("unrevoke without a name", basic(client.delete(url("/revoked_tokens"))), 400),
        ("token request garbage", client.post(url("/oauth2/token")).body("user=admin"), 400),
    ];
    for (what, rb, status) in cases {
        let (got, ct, body) = send(rb).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(ct.starts_with("application/json"), "{what}: content-type {ct:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        assert!(v["message"].is_string(), "{what}: {body}");
    }
    // Raw tricks on the path.
    let r = gw.mgmt("GET", "/../../../../etc/passwd", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let after = gw.mgmt("GET", "/apis", None).await.json();
    assert_eq!(before, after, "nothing changed");
}
