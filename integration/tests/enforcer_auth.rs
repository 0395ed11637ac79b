//! API keys, internal keys, custom auth headers, disabled security, key type
//! routing, the test key, the backend JWT and the algorithms the enforcer
//! accepts: the real Envoy, adapter, enforcer and backends.

use integration::tokens::{SigningKey, merge_claims, now, unique};
use integration::{Gateway, IDP_ISSUER, Resp, XdsMode};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use test_backend::Backend;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Shop, version: "2.0" }
paths:
  /items:
    get: {}
    post: {}
  /items/{id}:
    get: { x-wso2-disable-security: true }
"#;

fn shop_yaml(prod: &str, sand: Option<&str>, extra: &str) -> String {
    let sand = sand.map(|s| format!("    sandbox_endpoints:\n      url: {s}\n")).unwrap_or_default();
    format!(
        "type: api\nversion: v4.2.0\ndata:\n  name: Shop\n  version: \"2.0\"\n  context: /shop\n  type: HTTP\n{extra}  endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: {prod}\n{sand}"
    )
}

fn idp_claims(extra: Value) -> Value {
    let c = json!({
        "iss": IDP_ISSUER, "sub": "bob", "azp": "client-9", "exp": now() + 600, "iat": now(),
        "jti": format!("j-{}-{}", now(), unique()),
        "application": {"id": 9, "uuid": "app-9", "name": "ShopApp", "tier": "Gold", "owner": "bob"},
        "subscribedAPIs": [{"name": "Shop", "version": "2.0", "context": "/shop/2.0", "subscriptionTier": "Gold"}],
        "department": "sales",
    });
    merge_claims(c, extra)
}

async fn req(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    gw.request(method, "localhost", path, headers).await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_in_header_and_query_and_internal_keys() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "shop",
            &[
                ("api.yaml", &shop_yaml(&b.url(), None, "  securityScheme: [oauth2, api_key]\n")),
                ("Definitions/swagger.yaml", OAS),
            ],
        )
        .start()
        .await;
    let apim = &gw.idp().apim;
    let key = apim.sign_without_kid(&json!({
        "iss": "https://localhost:9443/apikey", "sub": "carol", "jti": format!("ak-{}", unique()), "iat": now(), "exp": now() + 600,
        "keytype": "PRODUCTION", "application": {"id": 3, "uuid": "app-3", "name": "KeyApp", "owner": "carol"},
        "subscribedAPIs": [{"name": "Shop", "version": "2.0", "context": "/shop/2.0", "subscriptionTier": "Unlimited"}],
    }));
    // Header `apikey`: accepted and not forwarded.
    let r = req(&gw, "GET", "/shop/2.0/items", &[("apikey", &key)]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.enforcer_log());
    assert!(r.json()["headers"].get("apikey").is_none(), "{}", r.body);
    // Query `apikey`: accepted and removed from the upstream path, other parameters kept.
    let r = req(&gw, "GET", &format!("/shop/2.0/items?color=red&apikey={key}&size=9"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_path(), "/items");
    assert_eq!(r.json()["query"], "color=red&size=9", "{}", r.body);
    // A key signed by someone else.
    let forged = SigningKey::rsa("x").sign_without_kid(&json!({"jti": "f1", "exp": now() + 60, "subscribedAPIs": []}));
    let r = req(&gw, "GET", "/shop/2.0/items", &[("apikey", &forged)]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"code": "900901", "error_message": "Invalid Credentials",
               "error_description": "API key authentication failed.. Make sure you have provided the correct security credentials"})
    );
    // A key for another API.
    let other = apim.sign_without_kid(
        &json!({"jti": "o1", "exp": now() + 60, "subscribedAPIs": [{"name": "Else", "version": "2.0"}]}),
    );
    let r = req(&gw, "GET", "/shop/2.0/items", &[("apikey", &other)]).await;
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!("900908")));

    // Internal key (Internal-Key header, token_type InternalKey, subscribed by context).
    let internal = apim.sign_without_kid(&json!({
        "iss": "https://localhost:9443/publisher", "sub": "admin", "jti": format!("ik-{}", unique()), "exp": now() + 600,
        "token_type": "InternalKey", "keytype": "PRODUCTION",
        "subscribedAPIs": [{"name": "Shop", "version": "2.0", "context": "/shop/2.0", "publisher": "admin"}],
    }));
    let r = req(&gw, "POST", "/shop/2.0/items", &[("internal-key", &internal)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["headers"].get("internal-key").is_none(), "{}", r.body);
    // An API key is no internal key, and an internal key is no API key.
    let r = req(&gw, "GET", "/shop/2.0/items", &[("internal-key", &key)]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = req(&gw, "GET", "/shop/2.0/items", &[("apikey", &internal)]).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // A JWT still works on the same API (oauth2 kept in securityScheme).
    let jwt = gw.idp().idp.sign(&idp_claims(json!({})));
    let r = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {jwt}"))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(b.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_auth_header_disabled_security_and_key_types() {
    let prod = Backend::start("prod").await.expect("backend");
    let sand = Backend::start("sand").await.expect("backend");
    let open = Backend::start("open").await.expect("backend");
    let open_yaml =
        "type: api\nversion: v4.2.0\ndata:\n  name: Open\n  version: v1\n  context: /open\n  type: HTTP\n  \
                     endpointConfig:\n    endpoint_type: http\n    production_endpoints:\n      url: URL\n"
            .replace("URL", &open.url());
    let open_oas = "openapi: 3.0.1\ninfo: { title: Open, version: v1 }\nx-wso2-disable-security: true\npaths:\n  /any:\n    get: {}\n";
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "shop",
            &[
                ("api.yaml", &shop_yaml(&prod.url(), Some(&sand.url()), "  authorizationHeader: X-Shop-Auth\n")),
                ("Definitions/swagger.yaml", OAS),
            ],
        )
        .project("open", &[("api.yaml", &open_yaml), ("Definitions/swagger.yaml", open_oas)])
        .start()
        .await;
    let idp = &gw.idp().idp;
    let token = idp.sign(&idp_claims(json!({})));
    // The API's own header carries the token; Authorization is not looked at.
    let r = req(&gw, "GET", "/shop/2.0/items", &[("x-shop-auth", &format!("Bearer {token}"))]).await;
    assert_eq!((r.status, r.json()["backend"].clone()), (200, json!("prod")), "{}", r.body);
    assert!(r.json()["headers"].get("x-shop-auth").is_none(), "{}", r.body);
    let r = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!((r.status, r.json()["code"].clone()), (401, json!("900901")), "{}", r.body);

    // Sandbox key → sandbox endpoints.
    let sandbox = idp.sign(&idp_claims(json!({"keytype": "SANDBOX"})));
    let r = req(&gw, "GET", "/shop/2.0/items", &[("x-shop-auth", &format!("Bearer {sandbox}"))]).await;
    assert_eq!((r.status, r.json()["backend"].clone()), (200, json!("sand")), "{}", r.body);

    // Security disabled on a resource, and on a whole API: no token needed,
    // and a client cannot pick the sandbox by sending the cluster header.
    let r = req(&gw, "GET", "/shop/2.0/items/5", &[]).await;
    assert_eq!((r.status, r.json()["backend"].clone()), (200, json!("prod")), "{}", r.body);
    let r = req(&gw, "GET", "/open/v1/any", &[("x-wso2-cluster-header", "anything")]).await;
    assert_eq!((r.status, r.json()["backend"].clone()), (200, json!("open")), "{}", r.body);
    assert_eq!(sand.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_key_on_an_api_without_sandbox_is_refused() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Sotw)
        .with_enforcer()
        .project("shop", &[("api.yaml", &shop_yaml(&b.url(), None, "")), ("Definitions/swagger.yaml", OAS)])
        .start()
        .await;
    let sandbox = gw.idp().idp.sign(&idp_claims(json!({"keytype": "SANDBOX"})));
    let r = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {sandbox}"))]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_description"], "Sandbox key offered to an API with no sandbox endpoint");
    assert_eq!(b.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_key_in_two_requests_backend_jwt_and_every_algorithm() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config(
            "[enforcer.jwtGenerator]\nenabled = true\ntokenTTL = 600\njwksRatelimitQuota = 2\njwksRatelimitTimeWindowInSeconds = 60\n[[enforcer.jwtGenerator.keypair]]\n\
             publicCertificatePath = \"{dir}/testkey.pem\"\nprivateKeyPath = \"{dir}/testkey.key\"\nuseForSigning = true\n",
        )
        .project("shop", &[("api.yaml", &shop_yaml(&b.url(), None, "")), ("Definitions/swagger.yaml", OAS)])
        .start()
        .await;
    // The README's two curl commands: a token from /testkey, then the API.
    let basic = [("authorization", "Basic YWRtaW46YWRtaW4=")];
    let t = req(&gw, "POST", "/testkey", &basic).await;
    assert_eq!(t.status, 200, "{}\n{}", t.body, gw.enforcer_log());
    assert_eq!(t.header("content-type"), Some("text/plain"));
    let token = t.body.trim().to_string();
    let r = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The backend got a backend JWT signed by the gateway, and can verify it
    // with the keys at /.wellknown/jwks.
    let assertion = r.json()["headers"]["x-jwt-assertion"].as_str().expect("X-JWT-Assertion").to_string();
    let jwks = req(&gw, "GET", "/.wellknown/jwks", &[]).await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks.body).expect("JWKS");
    let header = jsonwebtoken::decode_header(&assertion).expect("header");
    let jwk = set.find(header.kid.as_deref().expect("kid")).expect("kid published at /.wellknown/jwks");
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_issuer(&["wso2.org/products/am"]);
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(&assertion, &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("jwk"), &v)
        .expect("backend JWT verifies")
        .claims;
    assert_eq!(claims["http://wso2.org/claims/apiname"], "Shop");
    assert_eq!(claims["http://wso2.org/claims/apicontext"], "/shop/2.0");
    assert_eq!(claims["http://wso2.org/claims/keytype"], "PRODUCTION");
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 600);
    // Cached per token: the same caller gets the same backend JWT.
    let again = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(again.json()["headers"]["x-jwt-assertion"], Value::String(assertion));

    // The JWKS route is rate limited as in Choreo Connect
    // (jwksRatelimitQuota per jwksRatelimitTimeWindowInSeconds; 2 per minute here).
    assert_eq!(req(&gw, "GET", "/.wellknown/jwks", &[]).await.status, 200, "the second in a minute");
    let r = req(&gw, "GET", "/.wellknown/jwks", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (429, "local_rate_limited"), "the third in a minute");

    // Wrong test-key credentials.
    let t = req(&gw, "POST", "/testkey", &[("authorization", "Basic YWRtaW46bm9wZQ==")]).await;
    assert_eq!((t.status, t.body.as_str()), (401, "Wrong username or password. Please provide valid credentials."));

    // Every algorithm the IdP may use: RS256/384/512, PS256, ES256, ES384, EdDSA.
    let rsa = SigningKey::rsa("rsa");
    let keys = [
        SigningKey::rsa("rs256"),
        SigningKey::rsa("rs384").with_alg(Algorithm::RS384),
        SigningKey::rsa("rs512").with_alg(Algorithm::RS512),
        SigningKey::rsa("ps256").with_alg(Algorithm::PS256),
        SigningKey::ec256("es256"),
        SigningKey::ec384("es384"),
        SigningKey::ed25519("eddsa"),
    ];
    let refs: Vec<&SigningKey> = keys.iter().chain(std::iter::once(&rsa)).collect();
    gw.idp().jwks.set_keys(&refs);
    for k in &keys {
        let tok = k.sign(&idp_claims(json!({})));
        let r = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {tok}"))]).await;
        assert_eq!(r.status, 200, "{:?}: {}\n{}", k.alg, r.body, gw.enforcer_log());
    }
    // An EC key never verifies an RSA algorithm, whatever the header says.
    let es = SigningKey::ec256("es256");
    let mut h = jsonwebtoken::Header::new(Algorithm::RS256);
    h.kid = Some("es256".into());
    let _ = es;
    let wrong = format!(
        "{}.{}.{}",
        b64(&serde_json::to_string(&h).expect("header")),
        b64(&idp_claims(json!({})).to_string()),
        b64("sig")
    );
    let r = req(&gw, "GET", "/shop/2.0/items", &[("authorization", &format!("Bearer {wrong}"))]).await;
    assert_eq!(r.status, 401);
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
