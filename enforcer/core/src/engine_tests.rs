//! Every decision of [`Engine::check`] through the whole filter chain, with
//! an engine built in-process from the shared fixture of [`crate::testkit`]:
//! real RSA keys and certificates, a configuration loaded from PEM files,
//! APIs indexed from `gateway_proto` messages and signed tokens.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use gateway_proto::api as pa;
use gateway_proto::config as pc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::apis::ApiIndex;
use crate::chain::{BEARER_CHALLENGE, CLUSTER_HEADER, MTLS_CHALLENGE};
use crate::decision::{AuthInfo, AuthType, Decision, KeyType};
use crate::deny::Deny;
use crate::engine::{Engine, NotReady};
use crate::keys::{Fetch, FetchError};
use crate::settings::{NoFetch, Settings};
use crate::testkit::{
    BAD, BASE, BLOCKED, ISS_IDP, ISS_SUBS, KEYS, MISSING, NOT_JWT, PROD, REMOVED_BY_DEFAULT, REVOKED, Req, SAND,
    VERSION, api_key, api_key_claims, application, auth_header, b64, base_config, claims, decode_backend_jwt,
    internal_key, internal_key_claims, jti_of, jwt, load_with, mtls_api, mutual_ssl, now, payload, pets_api, pets_with,
    revoked, settings_with, sign, subs_jwt, subscription, url_encode, with_backend_jwt, without_issuer, write_pem,
};
use crate::throttle::ThrottleData;

// ---------------------------------------------------------------------------
// Configuration, tokens
// ---------------------------------------------------------------------------

const ISS_JWKS: &str = "https://jwks.example.com/token";

const WWW_BEARER: &str =
    "Bearer realm=\"Choreo Connect\", error=\"invalid_token\", error_description=\"The provided token is invalid\"";

fn load(c: &pc::Config) -> Settings {
    load_with(c, Arc::new(NoFetch))
}

/// A key-set document handed to the JWKS source as it is (the HTTP side is
/// tested in the service crate, enforcer/src/jwks_http.rs, and end to end).
struct Document(Vec<u8>);

impl Fetch for Document {
    fn fetch(&self, _url: &str) -> futures::future::BoxFuture<'static, Result<Vec<u8>, FetchError>> {
        let body = self.0.clone();
        Box::pin(async move { Ok(body) })
    }
}

fn sign_with(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

/// An engine with a configuration and APIs, and the directory of its PEM files.
struct Fx {
    engine: Engine,
    _dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        Fx::with(|_, _| {}, vec![pets_api()])
    }

    fn apis(apis: Vec<pa::Api>) -> Fx {
        Fx::with(|_, _| {}, apis)
    }

    fn config(edit: impl FnOnce(&mut pc::Config, &Path)) -> Fx {
        Fx::with(edit, vec![pets_api()])
    }

    fn config_with(fetch: Arc<dyn Fetch>, edit: impl FnOnce(&mut pc::Config, &Path)) -> Fx {
        Fx::build(fetch, edit, vec![pets_api()])
    }

    fn with(edit: impl FnOnce(&mut pc::Config, &Path), apis: Vec<pa::Api>) -> Fx {
        Fx::build(Arc::new(NoFetch), edit, apis)
    }

    fn build(fetch: Arc<dyn Fetch>, edit: impl FnOnce(&mut pc::Config, &Path), apis: Vec<pa::Api>) -> Fx {
        let (settings, dir) = settings_with(fetch, edit);
        let engine = Engine::new();
        engine.set_settings(Arc::new(settings));
        engine.set_apis(ApiIndex::new(apis).expect("APIs"));
        engine.set_revoked(HashMap::new());
        engine.set_throttle(ThrottleData::default());
        Fx { engine, _dir: dir }
    }

    async fn check(&self, r: &Req) -> Decision {
        self.engine.check(r.input()).await.expect("the engine has a configuration")
    }
}

// ---------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------

type SetHeaders = Vec<(Cow<'static, str>, String)>;

#[track_caller]
fn allowed(d: Decision) -> (SetHeaders, Vec<String>, AuthInfo) {
    match d {
        Decision::Allow { set, remove, info, .. } => (set, remove, info),
        Decision::Deny { deny, .. } => {
            panic!("expected Allow, got {} {} {:?}: {}", deny.status, deny.code, deny.message, deny.description)
        }
    }
}

#[track_caller]
fn denied(d: Decision) -> (Deny, Option<String>, AuthInfo) {
    match d {
        Decision::Deny { deny, www_authenticate, info } => (deny, www_authenticate, info),
        Decision::Allow { set, info, .. } => panic!("expected Deny, got Allow {set:?} {info:?}"),
    }
}

/// A denial with this status, code and description.
#[track_caller]
fn assert_denied(d: Decision, status: u16, code: &str, description: &str) -> (Deny, Option<String>, AuthInfo) {
    let (deny, www, info) = denied(d);
    assert_eq!(
        (deny.status, deny.code, deny.description.as_ref()),
        (status, code, description),
        "message {:?}",
        deny.message
    );
    (deny, www, info)
}

/// 401 / 900901 / Invalid Credentials with the Bearer challenge.
#[track_caller]
fn assert_401(d: Decision, description: &str) {
    let (deny, www, _) = assert_denied(d, 401, "900901", description);
    assert_eq!(deny.message, "Invalid Credentials");
    assert_eq!(www.as_deref(), Some(WWW_BEARER));
}

fn header<'a>(set: &'a [(Cow<'static, str>, String)], name: &str) -> Option<&'a str> {
    set.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The headers Pets removes on every authenticated request, with the defaults.
fn removed_by_default() -> Vec<String> {
    REMOVED_BY_DEFAULT.map(String::from).to_vec()
}

// ---------------------------------------------------------------------------
// API and resource lookup, CORS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn without_a_configuration_the_engine_is_not_ready() {
    let engine = Engine::new();
    engine.set_apis(ApiIndex::new(vec![pets_api()]).expect("APIs"));
    let r = Req::get("/pets").bearer(&jwt(json!({})));
    assert_eq!(engine.check(r.input()).await, Err(NotReady));
    assert_eq!(engine.check(Req::get("/open").input()).await, Err(NotReady), "not even unsecured resources");
}

#[tokio::test]
async fn without_the_revoked_tokens_or_the_apis_the_engine_is_not_ready() {
    // A token revoked before a restart must not work while the list is on its way.
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::new();
    engine.set_settings(Arc::new(load(&base_config(dir.path()))));
    engine.set_apis(ApiIndex::new(vec![pets_api()]).expect("APIs"));
    let token = jwt(json!({}));
    assert_eq!(engine.check(Req::get("/pets").bearer(&token).input()).await, Err(NotReady), "no revoked list yet");
    engine.set_revoked(revoked(&[&jti_of(&token)]));
    assert_eq!(
        engine.check(Req::get("/pets").bearer(&token).input()).await,
        Err(NotReady),
        "no blocking conditions yet: a client blocked before a restart must not get in meanwhile"
    );
    engine.set_throttle(ThrottleData::default());
    assert!(engine.is_ready());
    assert_eq!(
        assert_denied(
            engine.check(Req::get("/pets").bearer(&token).input()).await.expect("ready"),
            401,
            "900901",
            "Invalid JWT token. Make sure you have provided the correct security credentials"
        )
        .0
        .code,
        "900901"
    );

    let engine = Engine::new();
    engine.set_settings(Arc::new(load(&base_config(dir.path()))));
    engine.set_revoked(HashMap::new());
    engine.set_throttle(ThrottleData::default());
    assert_eq!(engine.check(Req::get("/open").input()).await, Err(NotReady), "no APIs yet");
}

#[tokio::test]
async fn an_unknown_api_is_404() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    for r in [
        Req::get("/pets").api("/nope", VERSION),
        Req::get("/pets").api(BASE, "2.0.0"),
        Req::get("/pets").ext("vHost", "other.example.com"),
    ] {
        let (deny, www, info) =
            assert_denied(fx.check(&r.bearer(&token)).await, 404, "404", "The requested resource is not available.");
        assert_eq!(deny.message, "Not Found");
        assert_eq!(www, None);
        assert_eq!(info, AuthInfo::default());
        assert!(!deny.empty_body);
        assert_eq!(
            deny.body(),
            r#"{"error_message":"Not Found","code":"404","error_description":"The requested resource is not available."}"#
        );
    }
}

#[tokio::test]
async fn an_unknown_resource_or_method_is_404_with_the_api_known() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    for r in [Req::get("/nothing"), Req::new("PATCH", "/pets"), Req::new("OPTIONS", "/nothing")] {
        let (_, www, info) =
            assert_denied(fx.check(&r.bearer(&token)).await, 404, "404", "The requested resource is not available.");
        assert_eq!(www, None);
        assert_eq!(
            (info.api_id.as_str(), info.api_name.as_str(), info.api_version.as_str()),
            ("api-pets", "Pets", VERSION)
        );
        assert_eq!(info.api_context, BASE);
        assert_eq!(info.auth_type_str(), "");
    }
}

#[tokio::test]
async fn options_on_a_resource_without_options_is_204_with_allow() {
    let fx = Fx::new();
    for method in ["OPTIONS", "options"] {
        let (deny, www, info) = denied(fx.check(&Req::new(method, "/pets")).await);
        assert_eq!(deny.status, 204);
        assert_eq!(deny.code, "");
        assert_eq!(deny.headers, vec![("allow", "OPTIONS, GET, POST".to_string())]);
        assert!(deny.empty_body);
        assert_eq!(deny.body(), "");
        assert_eq!(www, None, "no credentials needed, no challenge");
        assert_eq!(info.resource, "/pets");
    }
    let (deny, _, _) = denied(fx.check(&Req::new("OPTIONS", "/pets/{id}")).await);
    assert_eq!(deny.headers, vec![("allow", "OPTIONS, GET, DELETE".to_string())]);
}

#[tokio::test]
async fn options_declared_by_the_resource_is_authenticated_like_any_method() {
    let fx = Fx::new();
    assert_401(fx.check(&Req::new("OPTIONS", "/cors")).await, MISSING);
    let (set, _, info) = allowed(fx.check(&Req::new("OPTIONS", "/cors").bearer(&jwt(json!({})))).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
    assert_eq!(info.auth_type_str(), "JWT");
}

// ---------------------------------------------------------------------------
// Unsecured, prototyped, blocked
// ---------------------------------------------------------------------------

#[tokio::test]
async fn security_disabled_on_an_operation_needs_no_credentials() {
    let fx = Fx::new();
    let (set, remove, info) = allowed(fx.check(&Req::get("/open")).await);
    assert_eq!(set, vec![(Cow::Borrowed(CLUSTER_HEADER), PROD.to_string())]);
    assert!(remove.is_empty(), "nothing is removed on an unsecured resource: {remove:?}");
    assert_eq!(
        (info.auth_type_str(), info.key_type_str(), info.user.as_str()),
        ("Unsecured", "PRODUCTION", "anonymous")
    );
    assert_eq!(info.resource, "/open");

    // Whatever credentials come along are not looked at.
    allowed(fx.check(&Req::get("/open").header("authorization", "Bearer aaa.bbb.ccc")).await);
    allowed(fx.check(&Req::get("/open").header("internal-key", "x.y.z")).await);

    // No production endpoint: the sandbox cluster.
    let (set, _, info) = allowed(fx.check(&Req::get("/open").ext("prodClusterName", "")).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(SAND));
    assert_eq!(info.key_type_str(), "SANDBOX");

    // The other operations of the API still need credentials.
    assert_401(fx.check(&Req::get("/pets")).await, MISSING);
}

#[tokio::test]
async fn the_api_level_flag_alone_opens_no_operation() {
    // The adapter resolves root > path item > operation into each
    // operation's flag; the API-level flag is reported, never obeyed, so an
    // operation its author secured stays secured.
    let fx = Fx::apis(vec![pets_with(|a| a.disable_security = true)]);
    for r in [Req::get("/pets"), Req::new("POST", "/pets"), Req::new("DELETE", "/pets/{id}")] {
        assert_401(fx.check(&r).await, MISSING);
    }
    let (set, remove, info) = allowed(fx.check(&Req::get("/open")).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
    assert!(remove.is_empty());
    assert_eq!(info.auth_type_str(), "Unsecured");
}

#[tokio::test]
async fn a_blocked_api_refuses_even_unsecured_resources() {
    let fx = Fx::apis(vec![pets_with(|a| a.api_lifecycle_state = "BLOCKED".into())]);
    let (deny, www, _) = assert_denied(fx.check(&Req::get("/open")).await, 503, "700700", BLOCKED);
    assert_eq!(deny.message, "API blocked");
    assert_eq!(deny.grpc_code(), 13);
    // Choreo Connect adds the challenge on every AuthFilter failure, 503 included.
    assert_eq!(www.as_deref(), Some(WWW_BEARER));
}

#[tokio::test]
async fn a_prototyped_api_skips_authentication() {
    let fx = Fx::apis(vec![pets_with(|a| a.api_lifecycle_state = "PROTOTYPED".into())]);
    for r in
        [Req::get("/pets"), Req::new("POST", "/pets"), Req::get("/pets").header("authorization", "Bearer aaa.bbb.ccc")]
    {
        let (set, _, info) = allowed(fx.check(&r).await);
        assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
        assert_eq!(info.auth_type_str(), "Unsecured");
        assert_eq!(info.app_name, "");
    }
}

#[tokio::test]
async fn a_blocked_api_with_subscription_validation_is_503() {
    let fx = Fx::apis(vec![pets_with(|a| a.api_lifecycle_state = "BLOCKED".into())]);
    // JWT of an issuer validating subscriptions.
    let (deny, www, _) =
        assert_denied(fx.check(&Req::get("/pets").bearer(&subs_jwt(json!({})))).await, 503, "700700", BLOCKED);
    assert_eq!(deny.message, "API blocked");
    assert_eq!(www.as_deref(), Some(WWW_BEARER));
    // API key and internal key issuers validate subscriptions too.
    assert_denied(fx.check(&Req::get("/pets").header("apikey", &api_key(json!({})))).await, 503, "700700", BLOCKED);
    assert_denied(
        fx.check(&Req::get("/pets").header("internal-key", &internal_key(json!({})))).await,
        503,
        "700700",
        BLOCKED,
    );
    // An unsubscribed token is refused for the subscription first.
    let token = subs_jwt(json!({"subscribedAPIs": [subscription("Other", VERSION, "/other")]}));
    assert_denied(fx.check(&Req::get("/pets").bearer(&token)).await, 403, "900908", "Resource forbidden ");
    // Like Choreo Connect, the lifecycle state is looked at during subscription
    // validation only: an issuer that does not validate subscriptions gets through.
    allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({})))).await);
}

// ---------------------------------------------------------------------------
// JWT authenticator
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_credentials_is_401_with_the_bearer_challenge() {
    let fx = Fx::new();
    let (deny, www, info) = assert_denied(fx.check(&Req::get("/pets")).await, 401, "900901", MISSING);
    assert_eq!(deny.message, "Invalid Credentials");
    assert_eq!(www.as_deref(), Some(WWW_BEARER));
    assert_eq!(deny.grpc_code(), 16);
    assert_eq!(
        deny.body(),
        r#"{"error_message":"Invalid Credentials","code":"900901","error_description":"Make sure you have provided the correct security credentials"}"#
    );
    assert_eq!((info.api_name.as_str(), info.resource.as_str(), info.auth_type_str()), ("Pets", "/pets", ""));
}

#[tokio::test]
async fn credentials_no_authenticator_can_try_count_as_missing() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    for value in [
        "Basic YWRtaW46YWRtaW4=".to_string(),
        format!("Bearer Bearer {token}"),
        format!("Bearer {token} extra"),
        format!("Bearer {token} a b"),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Token {token}"),
        format!("Bearer{token}"),
        "Bearer abc".to_string(),
        "Bearer a.b.c.d".to_string(),
        token.clone(),
    ] {
        let d = fx.check(&Req::get("/pets").header("authorization", &value)).await;
        let (deny, www, _) = denied(d);
        assert_eq!((deny.status, deny.code, deny.description.as_ref()), (401, "900901", MISSING), "{value:?}");
        assert_eq!(www.as_deref(), Some(WWW_BEARER), "{value:?}");
    }
    // Non-JWT values in the API-key and internal-key headers are not tried either.
    let r = Req::get("/pets").header("apikey", "not-a-jwt").header("internal-key", "opaque");
    assert_401(fx.check(&r).await, MISSING);
}

#[tokio::test]
async fn a_valid_jwt_is_allowed_to_the_production_cluster() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    let (set, remove, info) = allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    assert_eq!(set, vec![(Cow::Borrowed(CLUSTER_HEADER), PROD.to_string())]);
    assert_eq!(remove, removed_by_default());
    assert_eq!(
        info,
        AuthInfo {
            api_id: "api-pets".into(),
            api_name: "Pets".into(),
            api_version: VERSION.into(),
            api_context: BASE.into(),
            api_type: "HTTP".into(),
            resource: "/pets".into(),
            auth_type: Some(AuthType::Jwt),
            app_name: "anon:IdP".into(),
            app_id: String::new(),
            app_owner: String::new(),
            key_type: Some(KeyType::Production),
            user: "alice".into(),
            tier: "Unlimited".into(),
            token,
            quota_exceeded: false,
        }
    );
    // Other RSA algorithms the issuer's key allows.
    for alg in [Algorithm::RS384, Algorithm::RS512] {
        allowed(
            fx.check(&Req::get("/pets").bearer(&sign_with(alg, None, &KEYS.idp.enc, &claims(ISS_IDP, json!({})))))
                .await,
        );
    }
    // A client cannot choose the cluster: the header is overwritten.
    let r = Req::get("/pets").bearer(&jwt(json!({"keytype": "PRODUCTION"}))).header(CLUSTER_HEADER, SAND);
    let (set, _, _) = allowed(fx.check(&r).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        allowed(fx.check(&Req::get("/pets").header("authorization", &format!("{scheme} {token}"))).await);
    }
    // Trailing whitespace is not a third part.
    allowed(fx.check(&Req::get("/pets").header("authorization", &format!("Bearer {token} "))).await);
}

#[tokio::test]
async fn two_spaces_after_bearer_give_an_empty_token() {
    // Choreo Connect splits on single whitespace and takes the second element.
    let fx = Fx::new();
    let r = Req::get("/pets").header("authorization", &format!("Bearer  {}", jwt(json!({}))));
    assert_401(fx.check(&r).await, NOT_JWT);
}

#[tokio::test]
async fn enable_outbound_auth_header_keeps_authorization() {
    let fx = Fx::config(|c, _| {
        auth_header(c).enable_outbound_auth_header = true;
    });
    let (_, remove, _) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({})))).await);
    assert!(!remove.contains(&"authorization".to_string()), "{remove:?}");
    assert_eq!(remove, vec!["apikey", "internal-key", "x-wso2-client-certificate"]);
}

#[tokio::test]
async fn outbound_certificate_header_is_kept_when_enabled() {
    let fx = Fx::config(|c, _| {
        mutual_ssl(c).enable_outbound_certificate_header = true;
    });
    let (_, remove, _) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({})))).await);
    assert_eq!(remove, vec!["apikey", "internal-key", "authorization"]);
}

#[tokio::test]
async fn a_jwt_with_a_bad_signature_is_refused() {
    let fx = Fx::new();
    assert_401(fx.check(&Req::get("/pets").bearer(&sign(&KEYS.other, &claims(ISS_IDP, json!({}))))).await, BAD);
    // A good token with its payload changed.
    let good = jwt(json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64(&serde_json::to_vec(&claims(ISS_IDP, json!({"sub": "root"}))).expect("json"));
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_401(fx.check(&Req::get("/pets").bearer(&forged)).await, BAD);
    // A token of another configured issuer signed by the wrong one of their keys.
    assert_401(fx.check(&Req::get("/pets").bearer(&sign(&KEYS.idp, &claims(ISS_SUBS, json!({}))))).await, BAD);
}

#[tokio::test]
async fn expiry_allows_five_seconds_of_clock_skew() {
    let fx = Fx::new();
    for exp in [now() - 10, now() - 3600, now() - 5] {
        assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"exp": exp})))).await, BAD);
    }
    let (_, _, info) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"exp": now() - 3})))).await);
    assert_eq!(info.user, "alice");
    // exp as a float is a time too.
    allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"exp": (now() + 60) as f64 + 0.5})))).await);
}

#[tokio::test]
async fn a_jwt_not_valid_yet_is_refused() {
    let fx = Fx::new();
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"nbf": now() + 60})))).await, BAD);
    // Within the skew.
    allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"nbf": now() + 3})))).await);
    allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"nbf": now() - 60})))).await);
}

#[tokio::test]
async fn a_jwt_without_exp_is_refused() {
    let fx = Fx::new();
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"exp": null})))).await, BAD);
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"exp": "tomorrow"})))).await, BAD);
}

#[tokio::test]
async fn an_unknown_or_missing_issuer_is_refused() {
    let fx = Fx::new();
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"iss": "https://unknown.example.com"})))).await, BAD);
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"iss": null})))).await, BAD);
    // The issuer is matched exactly.
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"iss": format!("{ISS_IDP}/")})))).await, BAD);
}

#[tokio::test]
async fn what_is_not_a_jwt_has_its_own_description() {
    let fx = Fx::new();
    let d = fx.check(&Req::get("/pets").header("authorization", "Bearer aaa.bbb.ccc")).await;
    let (deny, www, _) = assert_denied(d, 401, "900901", NOT_JWT);
    assert_eq!(www.as_deref(), Some(WWW_BEARER));
    assert_eq!(
        deny.body(),
        r#"{"error_message":"Invalid Credentials","code":"900901","error_description":"Not a JWT token. Failed to decode the token header. Make sure you have provided the correct security credentials"}"#
    );
    // A header without alg, a payload that is not an object.
    let p = b64(br#"{"iss":"x"}"#);
    for t in [
        format!("{}.{p}.c2ln", b64(br#"{"typ":"JWT"}"#)),
        format!("{}.{}.c2ln", b64(br#"{"alg":"RS256"}"#), b64(b"[1,2]")),
        format!(".{p}.c2ln"),
    ] {
        assert_401(fx.check(&Req::get("/pets").bearer(&t)).await, NOT_JWT);
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let fx = Fx::new();
    let c = claims(ISS_IDP, json!({}));
    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(c.to_string().as_bytes()));
    // Choreo Connect's parser refuses it ("Not a JWT token"); here it fails
    // signature verification: still 401 900901.
    assert_401(fx.check(&Req::get("/pets").bearer(&unsigned)).await, BAD);
    // A good token's signature under a header saying none.
    let good = jwt(json!({}));
    let sig = good.rsplit('.').next().expect("signature");
    let relabelled = format!("{}.{}.{sig}", b64(br#"{"alg":"none"}"#), b64(c.to_string().as_bytes()));
    assert_401(fx.check(&Req::get("/pets").bearer(&relabelled)).await, BAD);
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let fx = Fx::new();
    let c = claims(ISS_IDP, json!({}));
    for secret in [KEYS.idp.public_pem.as_bytes(), KEYS.idp.cert_pem.as_bytes()] {
        let t = sign_with(Algorithm::HS256, None, &EncodingKey::from_secret(secret), &c);
        assert_401(fx.check(&Req::get("/pets").bearer(&t)).await, BAD);
    }
}

#[tokio::test]
async fn an_algorithm_the_key_does_not_allow_is_refused() {
    let fx = Fx::new();
    // ES256 against an RSA certificate.
    let es = sign_with(Algorithm::ES256, None, &KEYS.ec, &claims(ISS_IDP, json!({})));
    assert_401(fx.check(&Req::get("/pets").bearer(&es)).await, BAD);
    // A real RS256 signature under a header naming an unknown algorithm.
    let good = jwt(json!({}));
    let mut parts = good.split('.');
    let (_, p, s) = (parts.next(), parts.next().expect("payload"), parts.next().expect("signature"));
    for alg in ["XYZ", "HS512", "RS257"] {
        let t = format!("{}.{p}.{s}", b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()));
        assert_401(fx.check(&Req::get("/pets").bearer(&t)).await, BAD);
    }
}

#[tokio::test]
async fn jwks_keys_are_found_by_kid_and_their_alg_is_enforced() {
    let k = &KEYS.jwks;
    let (n, e) = k.jwk_n_e();
    let body = json!({"keys": [{"kty": "RSA", "kid": "jwks-1", "use": "sig", "alg": "RS256", "n": n, "e": e}]});
    let fx = Fx::config_with(Arc::new(Document(body.to_string().into_bytes())), |c, _| {
        let s = c.security.as_mut().expect("security");
        s.token_service.push(pc::Issuer {
            name: "JWKS IdP".into(),
            issuer: ISS_JWKS.into(),
            jwks_url: "https://jwks.example.com/keys".into(),
            ..Default::default()
        });
    });
    let c = || claims(ISS_JWKS, json!({}));
    let (_, _, info) =
        allowed(fx.check(&Req::get("/pets").bearer(&sign_with(Algorithm::RS256, Some("jwks-1"), &k.enc, &c()))).await);
    assert_eq!(info.app_name, "anon:JWKS IdP");
    // The same key, an algorithm the JWK does not allow.
    let ps = sign_with(Algorithm::PS256, Some("jwks-1"), &k.enc, &c());
    assert_401(fx.check(&Req::get("/pets").bearer(&ps)).await, BAD);
    // A kid the set does not have, and a key that is not in the set.
    assert_401(
        fx.check(&Req::get("/pets").bearer(&sign_with(Algorithm::RS256, Some("nope"), &k.enc, &c()))).await,
        BAD,
    );
    let other = sign_with(Algorithm::RS256, Some("jwks-1"), &KEYS.other.enc, &c());
    assert_401(fx.check(&Req::get("/pets").bearer(&other)).await, BAD);
    // Without kid, every key of the set is tried.
    allowed(fx.check(&Req::get("/pets").bearer(&sign_with(Algorithm::RS256, None, &k.enc, &c()))).await);
}

// ---------------------------------------------------------------------------
// Revocation and the token cache
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_revoked_jwt_is_refused() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    let other = jwt(json!({}));
    fx.engine.set_revoked(revoked(&[&jti_of(&token)]));
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, REVOKED);
    allowed(fx.check(&Req::get("/pets").bearer(&other)).await);
    // Revocation is by jti, so even a token not valid otherwise says "revoked".
    let forged = sign(&KEYS.other, &claims(ISS_IDP, json!({"jti": jti_of(&token)})));
    assert_401(fx.check(&Req::get("/pets").bearer(&forged)).await, REVOKED);
    // Revocation lifted.
    fx.engine.set_revoked(HashMap::new());
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
}

#[tokio::test]
async fn a_token_without_jti_is_revoked_by_its_signature() {
    let fx = Fx::new();
    let token = jwt(json!({"jti": null}));
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    let sig = token.rsplit('.').next().expect("signature");
    fx.engine.set_revoked(revoked(&[sig]));
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, REVOKED);
}

#[tokio::test]
async fn a_token_revoked_after_it_was_cached_is_refused() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    assert_eq!(fx.engine.memory.cache.load().len(), 1);
    fx.engine.set_revoked(revoked(&[&jti_of(&token)]));
    assert_eq!(fx.engine.memory.cache.load().len(), 0, "revocation drops the cached token");
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, REVOKED);

    // The revoked list replaced without the cache being told (as in a race):
    // a cache hit is still checked against it.
    let second = jwt(json!({}));
    allowed(fx.check(&Req::get("/pets").bearer(&second)).await);
    fx.engine.memory.revoked.store(Arc::new(revoked(&[&jti_of(&second)])));
    assert_401(fx.check(&Req::get("/pets").bearer(&second)).await, REVOKED);
}

#[tokio::test]
async fn revoked_api_keys_and_internal_keys_are_refused() {
    let fx = Fx::new();
    let key = api_key(json!({}));
    let ik = internal_key(json!({}));
    allowed(fx.check(&Req::get("/pets").header("apikey", &key)).await);
    allowed(fx.check(&Req::get("/pets").header("internal-key", &ik)).await);
    fx.engine.set_revoked(revoked(&[&jti_of(&key), &jti_of(&ik)]));
    assert_401(fx.check(&Req::get("/pets").header("apikey", &key)).await, BAD);
    assert_401(fx.check(&Req::get("/pets").header("internal-key", &ik)).await, BAD);
}

#[tokio::test]
async fn a_cached_token_is_allowed_again() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    let first = fx.check(&Req::get("/pets").bearer(&token)).await;
    assert_eq!(fx.engine.memory.cache.load().len(), 1);
    let second = fx.check(&Req::get("/pets").bearer(&token)).await;
    assert_eq!(first, second, "a cache hit decides the same");
    allowed(second);
    assert_eq!(fx.engine.memory.cache.load().len(), 1);
}

#[tokio::test]
async fn with_the_cache_disabled_tokens_are_validated_every_time() {
    let fx = Fx::config(|c, _| c.cache = Some(pc::Cache { enabled: false, maximum_size: 10, expiry_time: 1 }));
    let token = jwt(json!({}));
    for _ in 0..3 {
        allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    }
    assert_eq!(fx.engine.memory.cache.load().len(), 0);
    fx.engine.set_revoked(revoked(&[&jti_of(&token)]));
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, REVOKED);
}

#[tokio::test]
async fn a_cached_token_is_still_checked_for_scopes_subscriptions_and_key_type() {
    let fx = Fx::new();
    let token = jwt(json!({"scope": "read"}));
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    assert_denied(
        fx.check(&Req::new("POST", "/pets").bearer(&token)).await,
        403,
        "900910",
        "User is NOT authorized to access the Resource: /pets. Scope validation failed.",
    );
    let subs = subs_jwt(json!({}));
    allowed(fx.check(&Req::get("/pets").bearer(&subs)).await);
    let other_api = pets_with(|a| {
        a.title = "Other".into();
        a.base_path = "/other/1.0.0".into();
    });
    fx.engine.set_apis(ApiIndex::new(vec![pets_api(), other_api]).expect("APIs"));
    let r = Req::get("/pets").api("/other/1.0.0", VERSION).bearer(&subs);
    assert_denied(fx.check(&r).await, 403, "900908", "Resource forbidden ");
    assert_401(
        fx.check(&Req::get("/pets").bearer(&token).ext("prodClusterName", "")).await,
        "Production key offered to an API with no production endpoint",
    );
}

#[tokio::test]
async fn a_token_cached_as_a_jwt_is_not_accepted_as_an_api_key() {
    let fx = Fx::new();
    let token = jwt(json!({}));
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    let d = fx.check(&Req::get("/pets").header("apikey", &token)).await;
    let (deny, _, _) = assert_denied(
        d,
        401,
        "900901",
        "API key authentication failed.. Make sure you have provided the correct security credentials",
    );
    assert_eq!(deny.message, "Invalid Credentials", "error_message comes from the code");
}

#[tokio::test]
async fn a_new_configuration_drops_tokens_validated_under_the_old_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fx = Fx::new();
    let token = jwt(json!({}));
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    // The IdP issuer is removed (same cache shape): its tokens must stop working.
    let mut c = base_config(dir.path());
    without_issuer(&mut c, "IdP");
    fx.engine.set_settings(Arc::new(load(&c)));
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, BAD);
    // And when its key changes.
    let mut c = base_config(dir.path());
    for i in &mut c.security.as_mut().expect("security").token_service {
        if i.name == "IdP" {
            i.certificate_file_path = write_pem(dir.path(), "rotated.pem", &KEYS.other.cert_pem);
        }
    }
    fx.engine.set_settings(Arc::new(load(&c)));
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, BAD);
    allowed(fx.check(&Req::get("/pets").bearer(&sign(&KEYS.other, &claims(ISS_IDP, json!({}))))).await);
}

// ---------------------------------------------------------------------------
// Subscriptions and scopes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_subscribed_application_is_allowed_with_its_details() {
    let fx = Fx::new();
    let (set, _, info) = allowed(fx.check(&Req::get("/pets").bearer(&subs_jwt(json!({})))).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
    assert_eq!(info.auth_type_str(), "JWT");
    assert_eq!(
        (info.app_name.as_str(), info.app_id.as_str(), info.app_owner.as_str(), info.tier.as_str()),
        ("PetApp", "app-uuid-1", "bob", "Gold")
    );
    // Any entry of the list may match; the context is not compared for JWTs.
    let token = subs_jwt(
        json!({"subscribedAPIs": [subscription("Other", "2", "/o"), subscription("Pets", VERSION, "/elsewhere")]}),
    );
    allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
}

#[tokio::test]
async fn a_subscription_to_something_else_is_403_900908() {
    let fx = Fx::new();
    for subs in [
        json!([subscription("Pets", "2.0.0", BASE)]),
        json!([subscription("pets", VERSION, BASE)]),
        json!([subscription("Other", VERSION, BASE)]),
        json!([]),
    ] {
        let d = fx.check(&Req::get("/pets").bearer(&subs_jwt(json!({"subscribedAPIs": subs})))).await;
        let (deny, www, info) = assert_denied(d, 403, "900908", "Resource forbidden ");
        assert_eq!(deny.message, "Resource forbidden ");
        assert_eq!(deny.grpc_code(), 7);
        assert_eq!(www.as_deref(), Some(WWW_BEARER), "every authentication failure carries the challenge");
        assert_eq!(info.api_name, "Pets");
    }
}

#[tokio::test]
async fn without_the_subscribed_apis_claim_subscription_validation_fails() {
    let fx = Fx::new();
    let (deny, _, _) = denied(fx.check(&Req::get("/pets").bearer(&subs_jwt(json!({"subscribedAPIs": null})))).await);
    assert_eq!((deny.status, deny.code, deny.message), (403, "900908", "Resource forbidden "));
    assert_eq!(deny.description, "User is NOT authorized to access the Resource. API Subscription validation failed.");
}

#[tokio::test]
async fn without_subscription_validation_the_application_is_anonymous() {
    let fx = Fx::new();
    // Claims that would fail subscription validation are not looked at.
    let token = jwt(json!({"application": application(), "subscribedAPIs": []}));
    let (_, _, info) = allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    assert_eq!((info.app_name.as_str(), info.tier.as_str()), ("anon:IdP", "Unlimited"));
}

#[tokio::test]
async fn a_missing_scope_is_403_900910() {
    let fx = Fx::new();
    for scope in [json!(null), json!("read"), json!(""), json!(["read", "writer"]), json!("Write")] {
        let d = fx.check(&Req::new("POST", "/pets").bearer(&jwt(json!({"scope": scope})))).await;
        let (deny, www, _) = assert_denied(
            d,
            403,
            "900910",
            "User is NOT authorized to access the Resource: /pets. Scope validation failed.",
        );
        assert_eq!(deny.message, "The access token does not allow you to access the requested resource", "{scope}");
        assert_eq!(www.as_deref(), Some(WWW_BEARER));
    }
    // The description names the template, not the request path.
    assert_denied(
        fx.check(&Req::new("DELETE", "/pets/{id}").bearer(&jwt(json!({"scope": "read"})))).await,
        403,
        "900910",
        "User is NOT authorized to access the Resource: /pets/{id}. Scope validation failed.",
    );
    // Subscription validation comes before scopes.
    let token = subs_jwt(json!({"scope": "read", "subscribedAPIs": []}));
    assert_denied(fx.check(&Req::new("POST", "/pets").bearer(&token)).await, 403, "900908", "Resource forbidden ");
}

#[tokio::test]
async fn a_required_scope_allows() {
    let fx = Fx::new();
    for scope in [json!("write"), json!("read write"), json!(["read", "write"]), json!(["write"])] {
        allowed(fx.check(&Req::new("POST", "/pets").bearer(&jwt(json!({"scope": scope})))).await);
    }
    // Any one of the listed scopes suffices.
    for scope in ["admin", "pets:delete", "read pets:delete"] {
        allowed(fx.check(&Req::new("DELETE", "/pets/{id}").bearer(&jwt(json!({"scope": scope})))).await);
    }
    // Scopes are not needed where none are listed.
    allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"scope": null})))).await);
}

// ---------------------------------------------------------------------------
// Key type → cluster
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_sandbox_key_goes_to_the_sandbox_cluster() {
    let fx = Fx::new();
    for keytype in ["SANDBOX", "sandbox", "Sandbox"] {
        let (set, _, info) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"keytype": keytype})))).await);
        assert_eq!(header(&set, CLUSTER_HEADER), Some(SAND), "{keytype}");
        assert_eq!(info.key_type_str(), "SANDBOX");
    }
    // Sandbox API keys and internal keys too.
    let (set, _, _) =
        allowed(fx.check(&Req::get("/pets").header("apikey", &api_key(json!({"keytype": "SANDBOX"})))).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(SAND));
    let ik = internal_key(json!({"keytype": "SANDBOX"}));
    let (set, _, _) = allowed(fx.check(&Req::get("/pets").header("internal-key", &ik)).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(SAND));
    // No keytype, or an empty one: production.
    for keytype in [json!(null), json!("")] {
        let (set, _, info) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"keytype": keytype})))).await);
        assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
        assert_eq!(info.key_type_str(), "PRODUCTION");
    }
}

#[tokio::test]
async fn a_sandbox_key_without_a_sandbox_cluster_is_401() {
    let fx = Fx::new();
    let mut absent = Req::get("/pets");
    absent.ext.remove("sandClusterName");
    for r in [Req::get("/pets").ext("sandClusterName", ""), absent] {
        let d = fx.check(&r.bearer(&jwt(json!({"keytype": "SANDBOX"})))).await;
        assert_401(d, "Sandbox key offered to an API with no sandbox endpoint");
    }
}

#[tokio::test]
async fn a_production_key_without_a_production_cluster_is_401() {
    let fx = Fx::new();
    let r = Req::get("/pets").ext("prodClusterName", "").bearer(&jwt(json!({})));
    assert_401(fx.check(&r).await, "Production key offered to an API with no production endpoint");
    // The sandbox still works there.
    let r = Req::get("/pets").ext("prodClusterName", "").bearer(&jwt(json!({"keytype": "SANDBOX"})));
    let (set, _, _) = allowed(fx.check(&r).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(SAND));
}

#[tokio::test]
async fn an_invalid_key_type_is_401() {
    let fx = Fx::new();
    for keytype in [json!("STAGING"), json!(7), json!("PRODUCTION ")] {
        let d = fx.check(&Req::get("/pets").bearer(&jwt(json!({"keytype": keytype})))).await;
        assert_401(d, "Invalid key type.. Make sure you have provided the correct security credentials");
    }
}

// ---------------------------------------------------------------------------
// Authorization header names
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_apis_own_authorization_header_replaces_the_configured_one() {
    let fx = Fx::apis(vec![pets_with(|a| a.authorization_header = "X-Pets-Auth".into())]);
    let token = jwt(json!({}));
    let (_, remove, _) = allowed(fx.check(&Req::get("/pets").header("x-pets-auth", &format!("Bearer {token}"))).await);
    assert!(remove.contains(&"x-pets-auth".to_string()), "{remove:?}");
    assert!(!remove.contains(&"authorization".to_string()), "{remove:?}");
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, MISSING);
}

#[tokio::test]
async fn the_configured_authorization_and_internal_key_headers_are_used() {
    let fx = Fx::config(|c, _| {
        let h = auth_header(c);
        h.authorization_header = "X-Gateway-Auth".into();
        h.test_console_header_name = "X-Test-Key".into();
    });
    let token = jwt(json!({}));
    let (_, remove, _) =
        allowed(fx.check(&Req::get("/pets").header("x-gateway-auth", &format!("Bearer {token}"))).await);
    assert_eq!(remove, vec!["apikey", "x-test-key", "x-gateway-auth", "x-wso2-client-certificate"]);
    assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, MISSING);
    let (_, _, info) = allowed(fx.check(&Req::get("/pets").header("x-test-key", &internal_key(json!({})))).await);
    assert_eq!(info.auth_type_str(), "Internal Key");
    assert_401(fx.check(&Req::get("/pets").header("internal-key", &internal_key(json!({})))).await, MISSING);
}

// ---------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_api_key_in_a_header_is_allowed() {
    let fx = Fx::new();
    let (set, remove, info) = allowed(fx.check(&Req::get("/pets").header("ApiKey", &api_key(json!({})))).await);
    assert_eq!(set, vec![(Cow::Borrowed(CLUSTER_HEADER), PROD.to_string())]);
    assert_eq!(remove, removed_by_default());
    assert_eq!(info.auth_type_str(), "API Key");
    assert_eq!(
        (info.app_name.as_str(), info.app_id.as_str(), info.app_owner.as_str(), info.tier.as_str()),
        ("PetApp", "app-uuid-1", "bob", "Gold")
    );
    assert_eq!((info.user.as_str(), info.key_type_str()), ("alice@carbon.super", "PRODUCTION"));
    // Surrounding whitespace is trimmed; iss is not checked for API keys; no exp is fine.
    allowed(fx.check(&Req::get("/pets").header("apikey", &format!("  {}  ", api_key(json!({}))))).await);
    allowed(fx.check(&Req::get("/pets").header("apikey", &api_key(json!({"iss": "anything", "exp": null})))).await);
    // A resource that accepts only an API key.
    allowed(fx.check(&Req::get("/keyonly").header("apikey", &api_key(json!({})))).await);
}

#[tokio::test]
async fn an_api_key_in_the_query_is_removed_from_the_path() {
    let fx = Fx::new();
    let key = api_key(json!({}));
    let r = Req::get("/pets").path(&format!("{BASE}/pets?limit=10&apikey={key}&sort=asc"));
    let (set, remove, info) = allowed(fx.check(&r).await);
    assert_eq!(info.auth_type_str(), "API Key");
    assert_eq!(header(&set, ":path"), Some(format!("{BASE}/pets?limit=10&sort=asc").as_str()));
    assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
    assert_eq!(remove, removed_by_default());
    // The only parameter: no `?` left.
    let (set, _, _) = allowed(fx.check(&Req::get("/pets").path(&format!("{BASE}/pets?apikey={key}"))).await);
    assert_eq!(header(&set, ":path"), Some(format!("{BASE}/pets").as_str()));
    // Percent-encoded key, other parameters kept verbatim.
    let r = Req::get("/pets").path(&format!("{BASE}/pets?q=a%20b&apikey={}&x", key.replace('.', "%2E")));
    let (set, _, _) = allowed(fx.check(&r).await);
    assert_eq!(header(&set, ":path"), Some(format!("{BASE}/pets?q=a%20b&x").as_str()));
    // A header key on the same request still removes the query parameter.
    let r = Req::get("/pets").path(&format!("{BASE}/pets?apikey=zzz&a=1")).header("apikey", &key);
    let (set, _, _) = allowed(fx.check(&r).await);
    assert_eq!(header(&set, ":path"), Some(format!("{BASE}/pets?a=1").as_str()));
}

#[tokio::test]
async fn the_query_api_key_is_removed_for_other_authenticators_too() {
    let fx = Fx::new();
    let r = Req::get("/pets").path(&format!("{BASE}/pets?apikey=leftover&a=1")).bearer(&jwt(json!({})));
    let (set, _, info) = allowed(fx.check(&r).await);
    assert_eq!(info.auth_type_str(), "JWT");
    assert_eq!(header(&set, ":path"), Some(format!("{BASE}/pets?a=1").as_str()));
    // No such parameter: the path is left alone.
    let r = Req::get("/pets").path(&format!("{BASE}/pets?a=1")).bearer(&jwt(json!({})));
    let (set, _, _) = allowed(fx.check(&r).await);
    assert_eq!(header(&set, ":path"), None);
}

#[tokio::test]
async fn an_api_key_signed_by_another_key_fails_api_key_authentication() {
    let fx = Fx::new();
    for key in [sign(&KEYS.other, &api_key_claims(json!({}))), sign(&KEYS.idp, &api_key_claims(json!({})))] {
        let (deny, www, _) = assert_denied(
            fx.check(&Req::get("/pets").header("apikey", &key)).await,
            401,
            "900901",
            "API key authentication failed.. Make sure you have provided the correct security credentials",
        );
        assert_eq!(deny.message, "Invalid Credentials", "error_message comes from the code");
        assert_eq!(www.as_deref(), Some(WWW_BEARER));
    }
    // In the query as well.
    let bad = sign(&KEYS.other, &api_key_claims(json!({})));
    let (deny, _, _) = denied(fx.check(&Req::get("/pets").path(&format!("{BASE}/pets?apikey={bad}"))).await);
    assert_eq!(deny.message, "Invalid Credentials", "error_message comes from the code");
    // Not a JWT though three parts.
    let (deny, _, _) = denied(fx.check(&Req::get("/pets").header("apikey", "aaa.bbb.ccc")).await);
    assert_eq!((deny.status, deny.message), (401, "Invalid Credentials"));
}

#[tokio::test]
async fn an_api_key_or_an_internal_key_is_not_a_bearer_token() {
    // Both are JWTs of configured issuers; the JWT authenticator must not take them.
    let fx = Fx::new();
    for token in [
        api_key(json!({})),
        internal_key(json!({})),
        jwt(json!({"token_type": "apiKey"})),
        jwt(json!({"token_type": "InternalKey"})),
        jwt(json!({"token_type": "APIKEY"})),
    ] {
        assert_401(fx.check(&Req::get("/pets").bearer(&token)).await, BAD);
    }
    // Any other token_type is no business of the gateway's.
    allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({"token_type": "Bearer"})))).await);
}

#[tokio::test]
async fn an_internal_key_is_not_an_api_key() {
    let fx = Fx::new();
    let d = fx.check(&Req::get("/pets").header("apikey", &api_key(json!({"token_type": "InternalKey"})))).await;
    assert_401(d, BAD);
    // Even a real internal key, signed by the publisher.
    let fx = Fx::config(|c, _| without_issuer(c, "APIM APIkey"));
    let d = fx.check(&Req::get("/pets").header("apikey", &internal_key(json!({})))).await;
    assert_401(d, BAD);
    // Without an `APIM APIkey` issuer, `APIM Publisher` signs API keys.
    allowed(fx.check(&Req::get("/pets").header("apikey", &sign(&KEYS.publisher, &api_key_claims(json!({}))))).await);
}

#[tokio::test]
async fn an_expired_api_key_is_refused() {
    let fx = Fx::new();
    assert_401(fx.check(&Req::get("/pets").header("apikey", &api_key(json!({"exp": now() - 60})))).await, BAD);
}

#[tokio::test]
async fn an_api_key_not_subscribed_to_the_api_is_403() {
    let fx = Fx::new();
    let key = api_key(json!({"subscribedAPIs": [subscription("Pets", "2.0.0", BASE)]}));
    let (deny, _, _) =
        assert_denied(fx.check(&Req::get("/pets").header("apikey", &key)).await, 403, "900908", "Resource forbidden ");
    assert_eq!(deny.message, "Resource forbidden ");
    let key = api_key(json!({"subscribedAPIs": null}));
    let (deny, _, _) = denied(fx.check(&Req::get("/pets").header("apikey", &key)).await);
    assert_eq!((deny.status, deny.code), (403, "900908"));
    // An API-key issuer that does not validate subscriptions: anonymous application.
    let fx = Fx::config(|c, _| {
        for i in &mut c.security.as_mut().expect("security").token_service {
            if i.name == "APIM APIkey" {
                i.validate_subscription = false;
            }
        }
    });
    let (_, _, info) = allowed(fx.check(&Req::get("/pets").header("apikey", &key)).await);
    assert_eq!((info.app_name.as_str(), info.tier.as_str()), ("anon:APIM APIkey", "Unlimited"));
}

#[tokio::test]
async fn an_api_key_where_the_resource_takes_none_is_not_tried() {
    let fx = Fx::new();
    // POST /pets accepts OAuth2 only.
    assert_401(fx.check(&Req::new("POST", "/pets").header("apikey", &api_key(json!({})))).await, MISSING);
    // GET /keyonly accepts the API key header only: a JWT is not tried.
    assert_401(fx.check(&Req::get("/keyonly").bearer(&jwt(json!({})))).await, MISSING);
    let r = Req::get("/keyonly").path(&format!("{BASE}/keyonly?apikey={}", api_key(json!({}))));
    assert_401(fx.check(&r).await, MISSING);
}

#[tokio::test]
async fn permitted_ip_restricts_api_keys() {
    let fx = Fx::new();
    let key = api_key(json!({"permittedIP": "10.0.0.0/8, 192.0.2.1, 2001:db8::/32"}));
    // The router's address (x-wso2-client-ip) decides, else the check's peer;
    // x-forwarded-for, which a client writes, never does.
    for (ip, router, xff) in [
        ("10.1.2.3", None, None),
        ("192.0.2.1", None, None),
        ("2001:db8::5", None, None),
        ("198.51.100.1", Some("10.9.9.9"), Some("198.51.100.1")),
    ] {
        let mut r = Req::get("/pets").header("apikey", &key).source_ip(ip);
        if let Some(x) = router {
            r = r.header("x-wso2-client-ip", x);
        }
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        allowed(fx.check(&r).await);
    }
    for (ip, router, xff) in [
        ("11.0.0.1", None, None),
        ("192.0.2.2", None, None),
        ("198.51.100.1", None, Some("10.1.2.3")),
        ("10.1.2.3", Some("198.51.100.1"), Some("10.1.2.3")),
        ("::1", None, None),
    ] {
        let mut r = Req::get("/pets").header("apikey", &key).source_ip(ip);
        if let Some(x) = router {
            r = r.header("x-wso2-client-ip", x);
        }
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        let (deny, www, _) = assert_denied(fx.check(&r).await, 403, "900908", "Resource forbidden ");
        assert_eq!(deny.message, "Resource forbidden ", "{ip} {router:?} {xff:?}");
        assert_eq!(www.as_deref(), Some(WWW_BEARER));
    }
}

#[tokio::test]
async fn permitted_referer_restricts_api_keys() {
    let fx = Fx::new();
    let key = api_key(json!({"permittedReferer": "https://*.example.com/*, https://partner.test/app"}));
    for referer in ["https://www.example.com/page", "https://a.example.com/", "https://partner.test/app"] {
        allowed(fx.check(&Req::get("/pets").header("apikey", &key).header("referer", referer)).await);
    }
    for referer in
        [Some("https://evil.test/"), Some("https://partner.test/app/x"), Some("https://www.example.org/"), None]
    {
        let mut r = Req::get("/pets").header("apikey", &key);
        if let Some(x) = referer {
            r = r.header("referer", x);
        }
        assert_denied(fx.check(&r).await, 403, "900908", "Resource forbidden ");
    }
}

#[tokio::test]
async fn a_permitted_ip_match_skips_the_referer_check() {
    let fx = Fx::new();
    let key = api_key(json!({"permittedIP": "192.0.2.10", "permittedReferer": "https://only.example.com/"}));
    allowed(fx.check(&Req::get("/pets").header("apikey", &key)).await);
    let r = Req::get("/pets").header("apikey", &key).source_ip("192.0.2.99");
    assert_denied(fx.check(&r).await, 403, "900908", "Resource forbidden ");
}

// ---------------------------------------------------------------------------
// Internal keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_internal_key_is_allowed() {
    let fx = Fx::new();
    let (set, remove, info) =
        allowed(fx.check(&Req::get("/pets").header("Internal-Key", &internal_key(json!({})))).await);
    assert_eq!(set, vec![(Cow::Borrowed(CLUSTER_HEADER), PROD.to_string())]);
    assert_eq!(remove, removed_by_default());
    assert_eq!(info.auth_type_str(), "Internal Key");
    assert_eq!(
        (info.app_name.as_str(), info.tier.as_str(), info.user.as_str()),
        ("internal-key-app", "Unlimited", "admin")
    );
    // Matched by context and version; the name does not matter. iss is not checked.
    let k = internal_key(
        json!({"iss": "whatever", "subscribedAPIs": [{"name": "Renamed", "context": BASE, "version": VERSION}]}),
    );
    allowed(fx.check(&Req::get("/pets").header("internal-key", &k)).await);
    // Internal keys pass resources that need scopes or only an API key.
    allowed(fx.check(&Req::new("POST", "/pets").header("internal-key", &internal_key(json!({})))).await);
    allowed(fx.check(&Req::get("/keyonly").header("internal-key", &internal_key(json!({})))).await);
}

#[tokio::test]
async fn internal_key_failures() {
    let fx = Fx::new();
    let check = |k: String| {
        let r = Req::get("/pets").header("internal-key", &k);
        let fx = &fx;
        async move { fx.check(&r).await }
    };
    // Not an internal key: the generic error.
    assert_401(check(internal_key(json!({"token_type": null}))).await, MISSING);
    assert_401(check(internal_key(json!({"token_type": "apiKey"}))).await, MISSING);
    assert_401(check(jwt(json!({}))).await, MISSING);
    // Not subscribed: by name only, another context, another version.
    for subs in [
        json!([{"name": "Pets", "context": "/other", "version": VERSION}]),
        json!([{"name": "Pets", "context": BASE, "version": "2.0.0"}]),
        json!([]),
        json!(null),
    ] {
        let (deny, _, _) = assert_denied(
            check(internal_key(json!({"subscribedAPIs": subs}))).await,
            403,
            "900908",
            "Resource forbidden ",
        );
        assert_eq!(deny.message, "Resource forbidden ");
    }
    // Bad signature, expired.
    assert_401(check(sign(&KEYS.other, &internal_key_claims(json!({})))).await, BAD);
    assert_401(check(sign(&KEYS.idp, &internal_key_claims(json!({})))).await, BAD);
    assert_401(check(internal_key(json!({"exp": now() - 60}))).await, BAD);
    // Three parts that do not parse.
    let (deny, _, _) = assert_denied(
        check("aaa.bbb.ccc".into()).await,
        401,
        "900901",
        "Internal key authentication failed.. Make sure you have provided the correct security credentials",
    );
    assert_eq!(deny.message, "Invalid Credentials", "error_message comes from the code");
}

// ---------------------------------------------------------------------------
// Several authenticators
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_first_authenticator_that_succeeds_wins() {
    let fx = Fx::new();
    // A bad internal key, a good JWT.
    let bad_ik = sign(&KEYS.other, &internal_key_claims(json!({})));
    let (_, _, info) =
        allowed(fx.check(&Req::get("/pets").header("internal-key", &bad_ik).bearer(&jwt(json!({})))).await);
    assert_eq!(info.auth_type_str(), "JWT");
    // A bad JWT, a good API key.
    let r = Req::get("/pets").bearer(&jwt(json!({"exp": now() - 60}))).header("apikey", &api_key(json!({})));
    let (_, _, info) = allowed(fx.check(&r).await);
    assert_eq!(info.auth_type_str(), "API Key");
    // Good internal key and good JWT: the internal key is tried first.
    let r = Req::get("/pets").header("internal-key", &internal_key(json!({}))).bearer(&jwt(json!({})));
    let (_, _, info) = allowed(fx.check(&r).await);
    assert_eq!(info.auth_type_str(), "Internal Key");
    // Good JWT and good API key: the JWT.
    let r = Req::get("/pets").bearer(&jwt(json!({}))).header("apikey", &api_key(json!({})));
    let (_, _, info) = allowed(fx.check(&r).await);
    assert_eq!(info.auth_type_str(), "JWT");
}

#[tokio::test]
async fn the_first_error_is_the_one_returned() {
    let fx = Fx::new();
    // A bad JWT and no API key.
    assert_401(fx.check(&Req::get("/pets").bearer(&jwt(json!({"exp": now() - 60})))).await, BAD);
    // A bad JWT and a bad API key: the JWT's error.
    let bad_key = sign(&KEYS.other, &api_key_claims(json!({})));
    let r = Req::get("/pets").header("authorization", "Bearer aaa.bbb.ccc").header("apikey", &bad_key);
    assert_401(fx.check(&r).await, NOT_JWT);
    // A bad internal key (not subscribed) and a bad JWT: the internal key's error.
    let ik = internal_key(json!({"subscribedAPIs": []}));
    let r = Req::get("/pets").header("internal-key", &ik).bearer(&jwt(json!({"exp": now() - 60})));
    assert_denied(fx.check(&r).await, 403, "900908", "Resource forbidden ");
    // Something that is not an internal key masks the JWT's error with the generic one.
    let r = Req::get("/pets").header("internal-key", &jwt(json!({}))).bearer(&jwt(json!({"exp": now() - 60})));
    assert_401(fx.check(&r).await, MISSING);
    // A JWT failing subscription validation and a bad API key: the subscription error.
    let r = Req::get("/pets").bearer(&subs_jwt(json!({"subscribedAPIs": []}))).header("apikey", &bad_key);
    assert_denied(fx.check(&r).await, 403, "900908", "Resource forbidden ");
    // An authenticator that cannot try does not hide an error: a bad API key alone.
    let r = Req::get("/pets").header("authorization", "Basic YWRtaW46YWRtaW4=").header("apikey", &bad_key);
    let (deny, _, _) = denied(fx.check(&r).await);
    assert_eq!(deny.message, "Invalid Credentials", "error_message comes from the code");
}

// ---------------------------------------------------------------------------
// Mutual TLS
// ---------------------------------------------------------------------------

const SECURE: &str = "/secure/1.0.0";

fn secure_api(mutual_ssl: &str, application_security: bool) -> pa::Api {
    let mut a = mtls_api(mutual_ssl, application_security);
    a.id = "api-secure".into();
    a.title = "Secure".into();
    a.base_path = SECURE.into();
    a
}

fn secure(template: &str) -> Req {
    Req::get(template).api(SECURE, VERSION)
}

/// `Mutual SSL realm=...` first, then the Bearer challenge.
#[track_caller]
fn assert_mtls_401(d: Decision, description: &str) {
    let (deny, www, _) = assert_denied(d, 401, "900901", description);
    assert_eq!(deny.message, "Invalid Credentials");
    let www = www.expect("WWW-Authenticate");
    assert!(www.starts_with(MTLS_CHALLENGE), "{www}");
    assert!(www.contains(BEARER_CHALLENGE), "{www}");
    assert!(www.ends_with(", error=\"invalid_token\", error_description=\"The provided token is invalid\""), "{www}");
    assert!(www.find(MTLS_CHALLENGE) < www.find(BEARER_CHALLENGE), "{www}");
}

#[tokio::test]
async fn mandatory_mtls_with_the_clients_certificate_is_enough() {
    let fx = Fx::apis(vec![secure_api("mandatory", false)]);
    let (set, remove, info) = allowed(fx.check(&secure("/pets").peer_cert(&KEYS.client)).await);
    assert_eq!(header(&set, CLUSTER_HEADER), Some(PROD));
    assert_eq!(remove, removed_by_default());
    assert_eq!((info.auth_type_str(), info.key_type_str(), info.api_name.as_str()), ("mtls", "PRODUCTION", "Secure"));
    // Case-insensitive setting; the sandbox cluster when there is no production one.
    let fx = Fx::apis(vec![secure_api("MANDATORY", false)]);
    let (set, _, info) = allowed(fx.check(&secure("/pets").peer_cert(&KEYS.client).ext("prodClusterName", "")).await);
    assert_eq!((header(&set, CLUSTER_HEADER), info.key_type_str()), (Some(SAND), "SANDBOX"));
    // Scopes are an application-level matter: not needed.
    allowed(fx.check(&Req::new("POST", "/pets").api(SECURE, VERSION).peer_cert(&KEYS.client)).await);
}

#[tokio::test]
async fn mandatory_mtls_without_the_clients_certificate_is_401() {
    let fx = Fx::apis(vec![secure_api("mandatory", false)]);
    assert_mtls_401(fx.check(&secure("/pets")).await, MISSING);
    assert_mtls_401(fx.check(&secure("/pets").peer_cert(&KEYS.other_client)).await, MISSING);
    // Garbage, and a certificate that is not URL-decoded properly.
    let mut r = secure("/pets");
    r.peer_cert = "not a certificate".into();
    assert_mtls_401(fx.check(&r).await, MISSING);
    // A good JWT does not replace the certificate.
    assert_mtls_401(fx.check(&secure("/pets").bearer(&jwt(json!({})))).await, MISSING);
    assert_mtls_401(fx.check(&secure("/pets").peer_cert(&KEYS.other_client).bearer(&jwt(json!({})))).await, MISSING);
}

#[tokio::test]
async fn mandatory_mtls_with_application_security_needs_both() {
    let fx = Fx::apis(vec![secure_api("mandatory", true)]);
    assert_mtls_401(fx.check(&secure("/pets").peer_cert(&KEYS.client)).await, MISSING);
    assert_mtls_401(fx.check(&secure("/pets").bearer(&jwt(json!({})))).await, MISSING);
    let (_, _, info) = allowed(fx.check(&secure("/pets").peer_cert(&KEYS.client).bearer(&jwt(json!({})))).await);
    assert_eq!(info.auth_type_str(), "JWT");
    // The token's own failure is reported once the certificate is accepted.
    let r = secure("/pets").peer_cert(&KEYS.client).bearer(&jwt(json!({"exp": now() - 60})));
    assert_mtls_401(fx.check(&r).await, BAD);
}

#[tokio::test]
async fn optional_mtls_falls_through_to_the_token() {
    let fx = Fx::apis(vec![secure_api("optional", false)]);
    // No certificate or a wrong one: the token decides.
    for r in [secure("/pets"), secure("/pets").peer_cert(&KEYS.other_client), secure("/pets").peer_cert(&KEYS.client)] {
        let (_, _, info) = allowed(fx.check(&r.clone().bearer(&jwt(json!({})))).await);
        assert_eq!(info.auth_type_str(), "JWT");
        // A certificate alone is not enough when mTLS is optional.
        assert_mtls_401(fx.check(&r).await, MISSING);
    }
}

#[tokio::test]
async fn the_client_certificate_can_come_from_a_header() {
    let fx = Fx::with(
        |c, _| {
            let m = mutual_ssl(c);
            m.enable_client_validation = false;
            m.client_certificate_encode = true;
        },
        vec![secure_api("mandatory", false)],
    );
    let r = secure("/pets").header("x-wso2-client-certificate", &url_encode(&KEYS.client));
    let (_, remove, info) = allowed(fx.check(&r).await);
    assert_eq!(info.auth_type_str(), "mtls");
    assert!(remove.contains(&"x-wso2-client-certificate".to_string()), "{remove:?}");
    // The TLS peer certificate is not used in this mode.
    assert_mtls_401(fx.check(&secure("/pets").peer_cert(&KEYS.client)).await, MISSING);
    // Not URL-encoded when the header is not encoded.
    let fx = Fx::with(
        |c, _| {
            let m = mutual_ssl(c);
            m.enable_client_validation = false;
            m.certificate_header = "X-Client-Cert".into();
        },
        vec![secure_api("mandatory", false)],
    );
    let (_, remove, _) = allowed(fx.check(&secure("/pets").header("x-client-cert", &KEYS.client)).await);
    assert!(remove.contains(&"x-client-cert".to_string()), "{remove:?}");
}

// ---------------------------------------------------------------------------
// Backend JWT
// ---------------------------------------------------------------------------

/// The backend JWT, verified with the signer's public key.
#[track_caller]
fn backend_jwt(set: &[(Cow<'static, str>, String)]) -> (jsonwebtoken::Header, Value, String) {
    let raw = header(set, "x-jwt-assertion").expect("x-jwt-assertion set").to_string();
    let data = decode_backend_jwt(&raw, Algorithm::RS256).expect("a valid backend JWT");
    (data.header, data.claims, raw)
}

#[tokio::test]
async fn the_backend_jwt_is_signed_with_the_configured_algorithm() {
    for (name, alg, jws) in [("SHA384withRSA", Algorithm::RS384, "RS384"), ("SHA512withRSA", Algorithm::RS512, "RS512")]
    {
        let fx = Fx::config(|c, dir| {
            with_backend_jwt(c, dir, 3600);
            c.jwt_generator.as_mut().expect("generator").signing_algorithm = name.into();
        });
        let (set, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({})))).await);
        let raw = header(&set, "x-jwt-assertion").expect("backend JWT");
        let data = decode_backend_jwt(raw, alg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(data.header.alg, alg, "{name}");
        // The JWKS advertises the same algorithm.
        let s = fx.engine.settings.load_full().expect("settings");
        let jwks: Value = serde_json::from_str(&s.backend_jwt.as_ref().expect("backend JWT").jwks).expect("JWKS");
        assert_eq!(jwks["keys"][0]["alg"], jws, "{name}");
    }
}

#[tokio::test]
async fn a_backend_jwt_describes_the_caller() {
    let fx = Fx::config(|c, dir| with_backend_jwt(c, dir, 3600));
    let token = jwt(json!({"department": "pets", "scope": "read"}));
    let (set, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    let (h, c, raw) = backend_jwt(&set);
    let d = |k: &str| c[format!("http://wso2.org/claims/{k}")].clone();
    assert_eq!(c["iss"], "wso2.org/products/am");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"), 3600);
    assert!((c["iat"].as_i64().expect("iat") - now()).abs() <= 5);
    assert!(c["jti"].is_string() && c["jti"] != payload(&token)["jti"]);
    assert_eq!(d("apiname"), "Pets");
    assert_eq!(d("apicontext"), BASE);
    assert_eq!(d("version"), VERSION);
    assert_eq!(d("keytype"), "PRODUCTION");
    assert_eq!(d("usertype"), "Application_User");
    assert_eq!(d("enduserTenantId"), "0");
    assert_eq!(d("applicationname"), "anon:IdP");
    assert_eq!(d("tier"), "Unlimited");
    // Custom claims copied as they are; standard ones not.
    assert_eq!((c["department"].clone(), c["scope"].clone()), (json!("pets"), json!("read")));
    assert!(c.get("aud").is_none(), "{c}");
    // Signed with the configured key, named as in the /jwks document.
    assert_eq!(h.alg, Algorithm::RS256);
    let settings = fx.engine.settings.load_full().expect("settings");
    let jwks: Value = serde_json::from_str(&settings.backend_jwt.as_ref().expect("backend JWT").jwks).expect("jwks");
    assert_eq!(h.kid.as_deref(), jwks["keys"][0]["kid"].as_str());
    assert!(h.kid.is_some());

    // The same token: the same JWT. Another token: another JWT.
    let (set2, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    assert_eq!(header(&set2, "x-jwt-assertion"), Some(raw.as_str()));
    let (set3, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({})))).await);
    assert_ne!(header(&set3, "x-jwt-assertion"), Some(raw.as_str()));
    // The same token on another API: a JWT naming that API.
    let other = pets_with(|a| {
        a.title = "Other".into();
        a.base_path = "/other/1.0.0".into();
    });
    fx.engine.set_apis(ApiIndex::new(vec![pets_api(), other]).expect("APIs"));
    let (set4, _, _) = allowed(fx.check(&Req::get("/pets").api("/other/1.0.0", VERSION).bearer(&token)).await);
    let (_, c4, _) = backend_jwt(&set4);
    assert_eq!(
        (c4["http://wso2.org/claims/apiname"].clone(), c4["http://wso2.org/claims/apicontext"].clone()),
        (json!("Other"), json!("/other/1.0.0"))
    );
}

#[tokio::test]
async fn a_backend_jwt_carries_the_subscribed_application() {
    let fx = Fx::config(|c, dir| with_backend_jwt(c, dir, 600));
    let (set, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&subs_jwt(json!({"keytype": "SANDBOX"})))).await);
    let (_, c, _) = backend_jwt(&set);
    let d = |k: &str| c[format!("http://wso2.org/claims/{k}")].clone();
    assert_eq!(c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"), 600);
    assert_eq!(d("subscriber"), "bob");
    assert_eq!(d("applicationid"), "app-uuid-1");
    assert_eq!(d("applicationUUId"), "app-uuid-1");
    assert_eq!(d("applicationname"), "PetApp");
    assert_eq!(d("applicationtier"), "10PerMin");
    assert_eq!(d("tier"), "Gold");
    assert_eq!(d("keytype"), "SANDBOX");
    assert!(c.get("application").is_none() && c.get("subscribedAPIs").is_none(), "{c}");
    // API keys get one too; mTLS alone has no token to describe.
    let (set, _, _) = allowed(fx.check(&Req::get("/pets").header("apikey", &api_key(json!({})))).await);
    let (_, c, _) = backend_jwt(&set);
    assert_eq!(c["http://wso2.org/claims/applicationname"], "PetApp");
    let fx = Fx::with(|c, dir| with_backend_jwt(c, dir, 600), vec![secure_api("mandatory", false)]);
    let (set, _, _) = allowed(fx.check(&secure("/pets").peer_cert(&KEYS.client)).await);
    assert_eq!(header(&set, "x-jwt-assertion"), None);
}

#[tokio::test]
async fn a_backend_jwt_about_to_expire_is_not_reused() {
    // Choreo Connect reuses a cached backend JWT only while it has at least 5 s left.
    let fx = Fx::config(|c, dir| with_backend_jwt(c, dir, 3));
    let token = jwt(json!({}));
    let (set1, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    let (set2, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&token)).await);
    let (_, c1, _) = backend_jwt(&set1);
    let (_, c2, _) = backend_jwt(&set2);
    assert_ne!(c1["jti"], c2["jti"], "a JWT with 3 s left is not handed out again");
}

#[tokio::test]
async fn without_a_backend_jwt_generator_no_header_is_added() {
    let fx = Fx::new();
    let (set, _, _) = allowed(fx.check(&Req::get("/pets").bearer(&jwt(json!({})))).await);
    assert_eq!(header(&set, "x-jwt-assertion"), None);
}

// ---------------------------------------------------------------------------
// GraphQL APIs
// ---------------------------------------------------------------------------

const GQL_SDL: &str = "type Query { hero: Hero, human(id: ID!): Hero, secret: String }\n\
                       type Mutation { createReview(stars: Int): String }\n\
                       type Hero { name: String, friends(first: Int): [Hero] }\n";

/// A GraphQL API on Pets' base path: `hero` open, `human` secured, `secret`
/// needing scope `spy`, `createReview` secured with tier 10PerMin.
fn gql_api() -> pa::Api {
    let gql_op = |verb: &str, open: bool, scopes: &[&str], tier: &str| pa::Operation {
        method: verb.into(),
        disable_security: open,
        has_security: true,
        security: if open {
            vec![]
        } else {
            vec![pa::SecurityList {
                scope_list: [(
                    "default".to_string(),
                    pa::Scopes { scopes: scopes.iter().map(|s| s.to_string()).collect() },
                )]
                .into_iter()
                .collect(),
            }]
        },
        tier: tier.into(),
        ..Default::default()
    };
    pets_with(|a| {
        a.api_type = "GRAPHQL".into();
        a.graphql_schema = GQL_SDL.into();
        a.resources = vec![
            pa::Resource { path: "hero".into(), methods: vec![gql_op("QUERY", true, &[], "")] },
            pa::Resource { path: "human".into(), methods: vec![gql_op("QUERY", false, &[], "")] },
            pa::Resource { path: "secret".into(), methods: vec![gql_op("QUERY", false, &["spy"], "")] },
            pa::Resource { path: "createReview".into(), methods: vec![gql_op("MUTATION", false, &[], "10PerMin")] },
        ];
    })
}

fn gql(query: &str) -> Req {
    Req::new("POST", "")
        .path(BASE)
        .header("content-type", "application/json")
        .body(&json!({ "query": query }).to_string())
}

#[tokio::test]
async fn graphql_queries_are_parsed_before_authentication_and_resolved_to_operations() {
    let fx = Fx::apis(vec![gql_api()]);
    // Open operation: no credentials needed; the resource is the root field.
    let (_, _, info) = allowed(fx.check(&gql("{ hero { name } }")).await);
    assert_eq!(info.resource, "hero");
    // A query that does not parse, or does not validate: 400 before any credential check.
    assert_denied(fx.check(&gql("{ hero { name }")).await, 400, "900422", "Invalid syntax");
    assert_denied(fx.check(&gql("{ hero { age } }")).await, 400, "900422", "Payload is invalid");
    let r = Req::new("POST", "").path(BASE).header("content-type", "application/json").body("{\"q\": 1}");
    assert_denied(fx.check(&r).await, 400, "900422", "Invalid GraphQL query body structure");
    let r = Req::new("POST", "").path(BASE).header("content-type", "text/plain").body("{ hero { name } }");
    let (d, _, _) = denied(fx.check(&r).await);
    assert_eq!((d.status, d.code, d.message), (400, "900422", "INVALID QUERY"));
    // application/graphql and GET with ?query=.
    let r = Req::new("POST", "").path(BASE).header("content-type", "application/graphql").body("{ hero { name } }");
    allowed(fx.check(&r).await);
    let r = Req::new("GET", "").path(&format!("{BASE}?query=%7B%20hero%20%7B%20name%20%7D%20%7D"));
    allowed(fx.check(&r).await);
    // Mixed: one secured operation makes the request secured.
    assert_401(
        fx.check(&gql("{ hero { name } human(id: 1) { name } }")).await,
        "Make sure you have provided the correct security credentials",
    );
    let token = jwt(json!({}));
    let (_, _, info) = allowed(fx.check(&gql("{ hero { name } human(id: 1) { name } }").bearer(&token)).await);
    assert_eq!(info.resource, "hero,human");
    // The backend must run what was checked: no query in the URL of a POST,
    // no body on a GET, no mutation over GET.
    let r = gql("{ hero { name } }").path(&format!("{BASE}?query=mutation%20%7B%20createReview%20%7D"));
    assert_denied(fx.check(&r).await, 400, "900422", crate::chain::graphql::POST_WITH_URL_PARAMETERS);
    let r = gql("{ hero { name } }").path(&format!("{BASE}?operationName=B"));
    assert_denied(fx.check(&r).await, 400, "900422", crate::chain::graphql::POST_WITH_URL_PARAMETERS);
    let r = Req::new("GET", "")
        .path(&format!("{BASE}?query=%7B%20hero%20%7B%20name%20%7D%20%7D"))
        .body("{\"variables\":{}}");
    assert_denied(fx.check(&r).await, 400, "900422", crate::chain::graphql::GET_WITH_BODY);
    let r = Req::new("GET", "").path(&format!("{BASE}?query=mutation%20%7B%20createReview%20%7D"));
    assert_denied(
        fx.check(&r.bearer(&jwt(json!({})))).await,
        400,
        "900422",
        crate::chain::graphql::ONLY_QUERIES_WITH_GET,
    );
    // GraphQL over WebSocket (subscriptions) is refused, saying so.
    let r = Req::new("GET", "").path(BASE).header("upgrade", "websocket").header("connection", "upgrade");
    assert_denied(fx.check(&r).await, 400, "900422", crate::chain::graphql::NO_SUBSCRIPTIONS_OVER_WEBSOCKET);
    // Introspection only: no operation of the API.
    assert_denied(fx.check(&gql("{ __typename }")).await, 404, "404", "The requested resource is not available.");
}

#[tokio::test]
async fn graphql_scopes_are_checked_per_operation() {
    let fx = Fx::apis(vec![gql_api()]);
    let plain = jwt(json!({}));
    let (d, _, _) = assert_denied(
        fx.check(&gql("{ human(id: 1) { name } secret }").bearer(&plain)).await,
        403,
        "900910",
        "User is NOT authorized to access the Resource: secret. Scope validation failed.",
    );
    assert_eq!(d.message, "The access token does not allow you to access the requested resource");
    let spy = jwt(json!({"scope": "spy"}));
    allowed(fx.check(&gql("{ human(id: 1) { name } secret }").bearer(&spy)).await);
}

#[tokio::test]
async fn graphql_depth_and_complexity_limits_come_from_the_subscription_tier() {
    let fx = Fx::apis(vec![gql_api()]);
    let deep = "{ human(id: 1) { friends { friends { name } } } }";
    // No limits in the token's tierInfo or the catalogue: anything goes.
    allowed(fx.check(&gql(deep).bearer(&subs_jwt(json!({})))).await);
    let limited = subs_jwt(json!({"tierInfo": {"Gold": {"graphQLMaxDepth": 2, "graphQLMaxComplexity": 0}}}));
    let (d, _, _) = assert_denied(
        fx.check(&gql(deep).bearer(&limited)).await,
        400,
        "900820",
        "[maximum query depth exceeded 4 > 2]",
    );
    assert_eq!(d.message, "QUERY TOO DEEP");
    allowed(fx.check(&gql("{ human(id: 1) { name } }").bearer(&limited)).await);
    let complex = subs_jwt(json!({"tierInfo": {"Gold": {"graphQLMaxComplexity": 5}}}));
    let (d, _, _) = assert_denied(
        fx.check(&gql("{ human(id: 1) { friends(first: 10) { name } } }").bearer(&complex)).await,
        400,
        "900821",
        "[maximum query complexity exceeded]",
    );
    assert_eq!(d.message, "QUERY TOO COMPLEX");
}

#[tokio::test]
async fn graphql_options_are_answered_and_unknown_operations_are_404() {
    let fx = Fx::apis(vec![gql_api()]);
    let (d, _, _) = denied(fx.check(&Req::new("OPTIONS", "").path(BASE)).await);
    assert_eq!(d.status, 204);
    assert_eq!(d.headers, vec![("allow", "OPTIONS, POST, GET".to_string())]);
    // A mutation the API does not list (the schema has it, api.yaml may not).
    let api = pets_with(|a| {
        *a = gql_api();
        a.resources.retain(|r| r.path != "createReview");
    });
    let fx = Fx::apis(vec![api]);
    assert_denied(
        fx.check(&gql("mutation { createReview(stars: 5) }").bearer(&jwt(json!({})))).await,
        404,
        "404",
        "The requested resource is not available.",
    );
}
