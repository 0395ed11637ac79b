//! JWT authentication through the real Envoy, adapter and enforcer, with a
//! real JWKS server and the Rust backend.

use integration::tokens::{JwksServer, SigningKey, hs256, merge_claims, now, unique, unsigned};
use integration::{Gateway, IDP_ISSUER, Resp, XdsMode, api_yaml};
use serde_json::{Value, json};
use test_backend::Backend;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Pets, version: "1.0" }
components:
  securitySchemes:
    default:
      type: oauth2
      flows: { implicit: { authorizationUrl: "https://x", scopes: { "pets:write": write } } }
paths:
  /pets:
    get: {}
    post:
      security: [ { default: [ "pets:write" ] } ]
  /pets/{id}:
    get: {}
  /open:
    get: { x-wso2-disable-security: true }
"#;

const BEARER: &str =
    r#"Bearer realm="Choreo Connect", error="invalid_token", error_description="The provided token is invalid""#;

async fn gateway(b: &Backend) -> Gateway {
    Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "pets",
            &[("api.yaml", &api_yaml("Pets", "1.0", "/pets", &b.url())), ("Definitions/swagger.yaml", OAS)],
        )
        .start()
        .await
}

/// IdP claims subscribed to Pets 1.0.
fn claims(extra: Value) -> Value {
    let c = json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "client-1", "exp": now() + 600, "iat": now(),
        "jti": format!("jti-{}", rand_suffix()),
        "application": {"id": 7, "uuid": "app-uuid-7", "name": "PetApp", "tier": "Unlimited", "owner": "alice"},
        "subscribedAPIs": [{"name": "Pets", "version": "1.0", "context": "/pets/1.0", "subscriptionTier": "Gold", "publisher": "admin"}],
    });
    merge_claims(c, extra)
}

fn rand_suffix() -> u64 {
    now() as u64 * 1000 + unique()
}

async fn get(gw: &Gateway, path: &str, auth: &str) -> Resp {
    gw.request("GET", "localhost", path, &[("authorization", auth)]).await.expect("request")
}

fn assert_401(r: &Resp, description: &str, why: &str) {
    assert_eq!(r.status, 401, "{why}: {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"), "{why}");
    assert_eq!(r.header("www-authenticate"), Some(BEARER), "{why}");
    assert_eq!(
        r.json(),
        json!({"code": "900901", "error_message": "Invalid Credentials", "error_description": description}),
        "{why}"
    );
}

const BAD: &str = "Invalid Credentials. Make sure you have provided the correct security credentials";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_pass_and_credentials_stay_at_the_gateway() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b).await;
    let idp = gw.idp();
    let token = idp.idp.sign(&claims(json!({})));
    let r = gw
        .request(
            "GET",
            "localhost",
            "/pets/1.0/pets/7",
            &[("authorization", &format!("Bearer {token}")), ("x-wso2-cluster-header", "evil")],
        )
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.enforcer_log());
    let seen = r.json();
    assert_eq!(seen["path"], "/pets/7");
    assert!(seen["headers"].get("authorization").is_none(), "the token is not forwarded: {seen}");
    assert!(seen["headers"].get("x-wso2-cluster-header").is_none(), "{seen}");
    assert_eq!(b.hits(), 1);

    // The same token again (cached) and the public resource without a token.
    assert_eq!(get(&gw, "/pets/1.0/pets", &format!("Bearer {token}")).await.status, 200);
    assert_eq!(gw.get("/pets/1.0/open").await.expect("open").status, 200);

    // No credentials at all.
    let r = gw.get("/pets/1.0/pets").await.expect("request");
    assert_401(&r, "Make sure you have provided the correct security credentials", "no token");
    assert_eq!(b.hits(), 3, "refused requests never reach the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_choreo_connects_bodies() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b).await;
    let idp = gw.idp();
    let other = SigningKey::rsa("k1"); // same kid, different key: bad signature
    let cases: Vec<(String, String, &str)> = vec![
        (format!("Bearer {}", other.sign(&claims(json!({})))), BAD.into(), "bad signature"),
        (format!("Bearer {}", idp.idp.sign(&claims(json!({"exp": now() - 60})))), BAD.into(), "expired"),
        (format!("Bearer {}", idp.idp.sign(&claims(json!({"nbf": now() + 600})))), BAD.into(), "not yet valid"),
        (format!("Bearer {}", idp.idp.sign(&claims(json!({"iss": "https://unknown.example"})))), BAD.into(), "unknown issuer"),
        (
            "Bearer aaa.bbb.ccc".into(),
            "Not a JWT token. Failed to decode the token header. Make sure you have provided the correct security credentials".into(),
            "not a JWT",
        ),
        (format!("Bearer {}", unsigned("k1", &claims(json!({})))), BAD.into(), "alg none"),
        (
            format!("Bearer {}", hs256(idp.idp.public_pem().as_bytes(), "k1", &claims(json!({})))),
            BAD.into(),
            "HS256 signed with the RSA public key",
        ),
        (
            format!("Bearer Bearer {}", idp.idp.sign(&claims(json!({})))),
            "Make sure you have provided the correct security credentials".into(),
            "Bearer Bearer",
        ),
        ("Basic YWRtaW46YWRtaW4=".into(), "Make sure you have provided the correct security credentials".into(), "Basic"),
    ];
    for (auth, description, why) in &cases {
        let r = get(&gw, "/pets/1.0/pets", auth).await;
        assert_401(&r, description, why);
    }
    assert_eq!(b.hits(), 0, "nothing reached the backend\n{}", gw.enforcer_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_subscriptions_are_enforced() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b).await;
    let idp = gw.idp();
    // POST /pets needs pets:write.
    let without = idp.idp.sign(&claims(json!({"scope": "pets:read"})));
    let r = gw
        .request("POST", "localhost", "/pets/1.0/pets", &[("authorization", &format!("Bearer {without}"))])
        .await
        .expect("post");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"code": "900910", "error_message": "The access token does not allow you to access the requested resource",
               "error_description": "User is NOT authorized to access the Resource: /pets. Scope validation failed."})
    );
    let with = idp.idp.sign(&claims(json!({"scope": "pets:read pets:write"})));
    let r = gw
        .request("POST", "localhost", "/pets/1.0/pets", &[("authorization", &format!("Bearer {with}"))])
        .await
        .expect("post");
    assert_eq!(r.status, 200, "{}", r.body);

    // Subscribed to another API only: 403 900908.
    let other = idp.idp.sign(&claims(json!({"subscribedAPIs": [{"name": "Other", "version": "1.0"}]})));
    let r = get(&gw, "/pets/1.0/pets", &format!("Bearer {other}")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["code"], "900908");
    assert_eq!(r.json()["error_message"], "Resource forbidden ");
    // No subscription claim at all (and no subscription store): 403 900908.
    let none = idp.idp.sign(&claims(json!({"subscribedAPIs": null})));
    let r = get(&gw, "/pets/1.0/pets", &format!("Bearer {none}")).await;
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!("900908")));
    assert_eq!(b.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_and_outage() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = gateway(&b).await;
    let first = gw.idp().idp.sign(&claims(json!({})));
    assert_eq!(get(&gw, "/pets/1.0/pets", &format!("Bearer {first}")).await.status, 200);

    // Rotation: a new key with a new kid is published; its tokens work at once.
    let k2 = SigningKey::ec256("k2");
    gw.idp().jwks.set_keys(&[&gw.idp().idp, &k2]);
    let rotated = k2.sign(&claims(json!({})));
    let r = get(&gw, "/pets/1.0/pets", &format!("Bearer {rotated}")).await;
    assert_eq!(r.status, 200, "new kid accepted without restart: {}\n{}", r.body, gw.enforcer_log());

    // Outage: the JWKS endpoint goes away; keys already fetched keep working
    // for tokens never seen before.
    let hits_before = gw.idp().jwks.hits();
    if let Some(idp) = gw.idp.as_mut() {
        idp.jwks.stop();
    }
    let fresh = gw.idp().idp.sign(&claims(json!({})));
    assert_eq!(get(&gw, "/pets/1.0/pets", &format!("Bearer {fresh}")).await.status, 200);
    let fresh2 = k2.sign(&claims(json!({})));
    assert_eq!(get(&gw, "/pets/1.0/pets", &format!("Bearer {fresh2}")).await.status, 200);
    // A token naming a kid nobody published is refused.
    let stranger = SigningKey::rsa("k3").sign(&claims(json!({})));
    assert_401(&get(&gw, "/pets/1.0/pets", &format!("Bearer {stranger}")).await, BAD, "unknown kid");
    assert!(gw.idp().jwks.hits() >= hits_before);
    drop(JwksServer::start(&[]).await);
}
