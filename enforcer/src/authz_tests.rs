//! The ext_authz edge: a [`Decision`] becomes a CheckResponse (status,
//! headers, body, dynamic metadata for the router and analytics) and a
//! CheckRequest becomes an [`Input`]. The decisions themselves are tested in
//! enforcer/core/src/engine_tests.rs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, check_response};
use envoy_types::pb::google::protobuf::value::Kind as ValueKind;
use gateway_proto::api as pa;
use gateway_proto::config as pc;
use serde_json::{Value, json};

use enforcer_core::apis::ApiIndex;
use enforcer_core::chain::CLUSTER_HEADER;
use enforcer_core::deny::Deny;
use enforcer_core::settings::{NoFetch, Settings};
use enforcer_core::{AuthInfo, AuthType, Decision, Engine};

const PROD: &str = "carbon.super_clusterProd_localhost_Pets1.0.0";
const WWW_BEARER: &str =
    "Bearer realm=\"Choreo Connect\", error=\"invalid_token\", error_description=\"The provided token is invalid\"";

fn meta(r: &CheckResponse, key: &str) -> Option<String> {
    r.dynamic_metadata.as_ref()?.fields.get(key).and_then(|v| match &v.kind {
        Some(ValueKind::StringValue(s)) => Some(s.clone()),
        _ => None,
    })
}

struct Denied {
    grpc: i32,
    status: i32,
    headers: Vec<(String, String, i32)>,
    body: String,
}

#[track_caller]
fn denied_response(r: &CheckResponse) -> Denied {
    let Some(check_response::HttpResponse::DeniedResponse(d)) = &r.http_response else { panic!("not denied: {r:?}") };
    Denied {
        grpc: r.status.as_ref().map(|s| s.code).expect("status"),
        status: d.status.as_ref().map(|s| s.code).expect("HTTP status"),
        headers: d
            .headers
            .iter()
            .map(|h| {
                let hv = h.header.as_ref().expect("header");
                (hv.key.clone(), hv.value.clone(), h.append_action)
            })
            .collect(),
        body: d.body.clone(),
    }
}

fn deny_decision(deny: Deny, www: Option<&str>) -> Decision {
    Decision::Deny { deny, www_authenticate: www.map(str::to_string), info: AuthInfo::default() }
}

#[test]
fn a_deny_becomes_a_denied_check_response() {
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    for (deny, grpc) in [
        (Deny::missing_credentials(), 16),
        (Deny::not_subscribed("Resource forbidden "), 7),
        (Deny::scopes("/pets"), 7),
        (Deny::not_found(), 13),
        (Deny::api_blocked(), 13),
        (Deny::unavailable(), 13),
    ] {
        let status = deny.status;
        let body = deny.body();
        let www = (status == 401).then_some(WWW_BEARER);
        let r = super::response(deny_decision(deny, www), "/pets/1.0.0/pets?x=1", "req-1", false, None);
        let d = denied_response(&r);
        assert_eq!((d.grpc, d.status), (grpc, i32::from(status)));
        assert_eq!(d.body, body);
        assert!(d.headers.contains(&("content-type".into(), "application/json".into(), overwrite)), "{:?}", d.headers);
        for (k, _, action) in &d.headers {
            assert_eq!(*k, k.to_ascii_lowercase());
            assert_eq!(*action, overwrite);
        }
        let www_header = d.headers.iter().find(|h| h.0 == "www-authenticate").map(|h| h.1.as_str());
        assert_eq!(www_header, www);
        assert_eq!(meta(&r, super::REPLY_KEY).as_deref(), Some("Ok"));
        assert_eq!(meta(&r, "correlationID").as_deref(), Some("req-1"));
        assert_eq!(meta(&r, "originalPath"), None);
    }
}

#[test]
fn an_options_answer_has_allow_and_no_body() {
    let r = super::response(deny_decision(Deny::options("OPTIONS, GET".into()), None), "/p", "id", false, None);
    let d = denied_response(&r);
    assert_eq!((d.grpc, d.status), (13, 204));
    assert_eq!(d.body, "");
    assert_eq!(
        d.headers,
        vec![("allow".into(), "OPTIONS, GET".into(), HeaderAppendAction::OverwriteIfExistsOrAdd as i32)]
    );
    assert_eq!(meta(&r, super::REPLY_KEY).as_deref(), Some("Ok"));
}

#[test]
fn an_allow_becomes_an_ok_check_response() {
    let info = AuthInfo {
        api_name: "Pets".into(),
        auth_type: Some(AuthType::Jwt),
        app_name: "anon:IdP".into(),
        ..Default::default()
    };
    let decision = Decision::Allow {
        set: vec![
            (Cow::Borrowed(CLUSTER_HEADER), PROD.into()),
            (Cow::Borrowed(":path"), "/pets/1.0.0/pets?a=1".into()),
        ],
        remove: vec!["authorization".into(), "internal-key".into()],
        respond: vec![("x-ratelimit-remaining", "4".into())],
        info,
    };
    let r = super::response(decision.clone(), "/pets/1.0.0/pets?apikey=k&a=1", "req-2", false, None);
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(0));
    let Some(check_response::HttpResponse::OkResponse(ok)) = &r.http_response else { panic!("not OK: {r:?}") };
    let headers: Vec<(String, String, i32)> = ok
        .headers
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().expect("header");
            (hv.key.clone(), hv.value.clone(), h.append_action)
        })
        .collect();
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    let to_client: Vec<(String, String)> = ok
        .response_headers_to_add
        .iter()
        .filter_map(|h| h.header.as_ref().map(|v| (v.key.clone(), v.value.clone())))
        .collect();
    assert_eq!(
        to_client,
        vec![("x-ratelimit-remaining".to_string(), "4".to_string())],
        "rate-limit headers go to the client"
    );
    assert_eq!(
        headers,
        vec![
            (CLUSTER_HEADER.into(), PROD.into(), overwrite),
            (":path".into(), "/pets/1.0.0/pets?a=1".into(), overwrite)
        ]
    );
    assert_eq!(ok.headers_to_remove, vec!["authorization", "internal-key"]);
    assert_eq!(meta(&r, super::REPLY_KEY).as_deref(), Some("Ok"));
    assert_eq!(meta(&r, "originalPath").as_deref(), Some("/pets/1.0.0/pets"));
    assert_eq!(meta(&r, "x-wso2-api-name"), None, "analytics off");
    // Analytics on: who was let in.
    let r = super::response(decision, "/pets/1.0.0/pets", "req-2", true, None);
    assert_eq!(meta(&r, "x-wso2-api-name").as_deref(), Some("Pets"));
    assert_eq!(meta(&r, "x-wso2-auth-type").as_deref(), Some("JWT"));
    assert_eq!(meta(&r, "x-wso2-application-name").as_deref(), Some("anon:IdP"));
    assert_eq!(meta(&r, "x-wso2-correlation-id").as_deref(), Some("req-2"));
}

fn check_request(
    headers: &[(&str, &str)],
    path: &str,
    ext: &HashMap<String, String>,
    ip: &str,
) -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, attribute_context};
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: ip.into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    id: "envoy-id".into(),
                    method: "GET".into(),
                    path: path.into(),
                    headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: ext.clone(),
            ..Default::default()
        }),
    }
}

/// The route of Pets 1.0.0 `template`, as the router's context extensions name it.
fn pets_route(template: &str) -> HashMap<String, String> {
    [
        ("vHost", "localhost"),
        ("basePath", "/pets/1.0.0"),
        ("version", "1.0.0"),
        ("path", template),
        ("prodClusterName", PROD),
        ("sandClusterName", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn input_reads_every_field_of_the_check_request() {
    let ext = pets_route("/pets");
    let mut req =
        check_request(&[("x-request-id", "req-9"), ("apikey", "k")], "/pets/1.0.0/pets?a=1", &ext, "203.0.113.9");
    if let Some(src) = req.attributes.as_mut().and_then(|a| a.source.as_mut()) {
        src.certificate = "-----BEGIN%20CERTIFICATE-----".into();
    }
    let (input, id) = super::input(&req);
    assert_eq!(input.method, "GET");
    assert_eq!(input.path, "/pets/1.0.0/pets?a=1");
    assert_eq!(input.header("apikey"), Some("k"));
    assert_eq!(input.ext("prodClusterName"), PROD);
    assert_eq!(input.peer_cert, "-----BEGIN%20CERTIFICATE-----");
    assert_eq!(input.source_ip, "203.0.113.9");
    assert_eq!(input.client_ip(), "203.0.113.9");
    assert_eq!(id, "req-9", "the client's x-request-id is the correlation id");

    // Without x-request-id the correlation id is Envoy's request id.
    let req = check_request(&[], "/p", &ext, "203.0.113.9");
    assert_eq!(super::input(&req).1, "envoy-id");

    // Nothing at all: every field empty, nothing invented.
    let empty = envoy_types::pb::envoy::service::auth::v3::CheckRequest::default();
    let (input, id) = super::input(&empty);
    assert_eq!((input.method, input.path, input.peer_cert, input.source_ip, id), ("", "", "", "", ""));
    assert!(input.headers.is_empty() && input.ext.is_empty());
}

/// An engine with no issuers and one API: Pets 1.0.0, `GET /open` without
/// security, `GET /pets` secured by OAuth2.
fn engine() -> Engine {
    let engine = Engine::new();
    let settings = Settings::load(&pc::Config::default(), &(Arc::new(NoFetch) as _)).expect("default settings");
    engine.set_settings(Arc::new(settings));
    let op = |method: &str, open: bool| pa::Operation {
        method: method.into(),
        disable_security: open,
        ..Default::default()
    };
    let api = pa::Api {
        id: "api-pets".into(),
        title: "Pets".into(),
        version: "1.0.0".into(),
        api_type: "HTTP".into(),
        base_path: "/pets/1.0.0".into(),
        vhost: "localhost".into(),
        api_lifecycle_state: "PUBLISHED".into(),
        security_scheme: vec![pa::SecurityScheme {
            definition_name: "default".into(),
            r#type: "oauth2".into(),
            ..Default::default()
        }],
        resources: vec![
            pa::Resource { path: "/open".into(), methods: vec![op("GET", true)] },
            pa::Resource { path: "/pets".into(), methods: vec![op("GET", false)] },
        ],
        ..Default::default()
    };
    engine.set_apis(ApiIndex::new(vec![api]).expect("API"));
    engine.set_revoked(HashMap::new());
    engine.set_throttle(enforcer_core::throttle::ThrottleData::default());
    engine
}

#[tokio::test]
async fn check_answers_through_the_engine() {
    let ext = pets_route("/open");
    let req = check_request(&[("x-request-id", "req-9")], "/pets/1.0.0/open?a=1", &ext, "203.0.113.9");

    // No configuration yet: a gRPC error, so that the router answers 500.
    let status = super::check(&Engine::new(), &req).await.expect_err("not ready");
    assert_eq!(status.code(), tonic::Code::Unavailable);

    let engine = engine();
    let r = super::check(&engine, &req).await.expect("response");
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(0), "{r:?}");
    let Some(check_response::HttpResponse::OkResponse(ok)) = &r.http_response else { panic!("not OK: {r:?}") };
    let set: Vec<(&str, &str)> =
        ok.headers.iter().filter_map(|h| h.header.as_ref()).map(|h| (h.key.as_str(), h.value.as_str())).collect();
    assert!(set.contains(&(CLUSTER_HEADER, PROD)), "{set:?}");
    assert_eq!(meta(&r, "originalPath").as_deref(), Some("/pets/1.0.0/open"));
    assert_eq!(meta(&r, "correlationID"), None, "only denials carry the correlation id");

    // A secured resource without credentials: 401 with Choreo Connect's body.
    let req = check_request(&[], "/pets/1.0.0/pets", &pets_route("/pets"), "203.0.113.9");
    let r = super::check(&engine, &req).await.expect("response");
    let d = denied_response(&r);
    assert_eq!((d.grpc, d.status), (16, 401));
    assert!(d.headers.iter().any(|h| h.0 == "www-authenticate" && h.1 == WWW_BEARER), "{:?}", d.headers);
    assert_eq!(meta(&r, "correlationID").as_deref(), Some("envoy-id"));
    let body: Value = serde_json::from_str(&d.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"error_message": "Invalid Credentials", "code": "900901",
               "error_description": "Make sure you have provided the correct security credentials"})
    );
}
