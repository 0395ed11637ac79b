//! Interceptors through the real router (Envoy's Lua filter running
//! adapter/xds/src/translate/interceptor.lua), the real enforcer and the
//! reference interceptor service (tools/interceptor): Choreo Connect's
//! `interceptor/*TestCase` scenarios, ported. Each scenario scripts the
//! service's answer, sends a request, and checks what the backend, the
//! client and the service saw.

use base64::Engine;
use integration::{Gateway, XdsMode, tokens::now};
use serde_json::{Value, json};
use test_backend::Backend;
use test_interceptor::Interceptor;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn oas(interceptor: &str, down: &str) -> String {
    format!(
        r#"
openapi: 3.0.1
info: {{ title: Intercepted, version: "1.0" }}
x-wso2-endpoints:
  - myDynamicEndpoint:
      urls: [DYNAMIC]
paths:
  /echo/{{id}}:
    post:
      x-wso2-request-interceptor:
        serviceURL: {interceptor}/ignored/base
        includes: [request_headers, request_body, invocation_context]
  /both:
    post:
      x-wso2-request-interceptor:
        serviceURL: {interceptor}
        includes: [request_headers]
      x-wso2-response-interceptor:
        serviceURL: {interceptor}
        includes: [request_headers, response_headers, response_body, invocation_context]
  /response:
    post:
      x-wso2-response-interceptor:
        serviceURL: {interceptor}
        includes: [response_headers, response_body]
  /down:
    post:
      x-wso2-request-interceptor:
        serviceURL: {down}
        includes: [request_headers]
  /open:
    get:
      x-wso2-disable-security: true
      x-wso2-request-interceptor:
        serviceURL: {interceptor}
        includes: [request_headers]
  /by-policy:
    post:
      x-wso2-request-interceptor:
        serviceURL: {down}
        includes: [request_headers]
"#
    )
}

const POLICY: &str = r#"
  operations:
    - target: /by-policy
      verb: POST
      operationPolicies:
        request:
          - policyName: ccCallInterceptorService
            policyVersion: v1
            parameters: { interceptorServiceURL: "INTERCEPTOR", includes: "request_headers,request_body" }
"#;

struct Fx {
    gw: Gateway,
    backend: Backend,
    dynamic: Backend,
    interceptor: Interceptor,
    client: reqwest::Client,
    auth: String,
}

impl Fx {
    async fn new() -> Fx {
        let backend = Backend::start("main").await.expect("backend");
        let dynamic = Backend::start("dynamic").await.expect("backend");
        let interceptor = Interceptor::start().await.expect("interceptor");
        let down = format!("http://127.0.0.1:{}", integration::free_port());
        let api = integration::api_yaml("Intercepted", "1.0", "/intercepted", &format!("{}/v2", backend.url()))
            + &POLICY.replace("INTERCEPTOR", &interceptor.url());
        let oas = oas(&interceptor.url(), &down).replace("DYNAMIC", &format!("{}/dyn", dynamic.url()));
        let gw = Gateway::builder(XdsMode::Delta)
            .with_enforcer()
            .project("intercepted", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", oas.as_str())])
            .start()
            .await;
        let claims = json!({
            "iss": integration::IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": "intercept",
            "application": {"id": 1, "uuid": "app-1", "name": "PetApp", "owner": "alice"},
            "subscribedAPIs": [{"name": "Intercepted", "version": "1.0", "context": "/intercepted/1.0", "subscriptionTier": "Gold"}],
        });
        let auth = format!("Bearer {}", gw.idp().idp.sign(&claims));
        Fx { gw, backend, dynamic, interceptor, client: reqwest::Client::new(), auth }
    }

    async fn manage(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/interceptor/{path}", self.interceptor.url());
        let rb = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url);
        let rb = match body {
            Some(b) => rb.json(&b),
            None => rb,
        };
        let r = rb.send().await.expect("interceptor manager");
        r.json().await.unwrap_or(Value::Null)
    }

    async fn script(&self, flow: &str, status: u16, body: Value) {
        self.manage("POST", "clear-status", None).await;
        let answer = if body.is_null() { json!({"status": status}) } else { json!({"status": status, "body": body}) };
        self.manage("POST", &format!("{flow}-answer"), Some(answer)).await;
    }

    async fn status(&self) -> String {
        self.manage("GET", "status", None).await["status"].as_str().unwrap_or_default().to_string()
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> integration::Resp {
        let mut h: Vec<(&str, &str)> = vec![("authorization", self.auth.as_str())];
        h.extend_from_slice(headers);
        self.gw
            .request_with_body("POST", "localhost", &format!("/intercepted/1.0{path}"), &h, body)
            .await
            .expect("request")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_flow_edits_headers_and_body_and_sees_the_invocation_context() {
    let fx = Fx::new().await;
    fx.script(
        "request",
        200,
        json!({
            "headersToAdd": {"foo-add": "Header_newly_added"},
            "headersToReplace": {"foo-update": "Header_Updated", "foo-update-not-exist": "Header_Updated_New_Val",
                "x-wso2-cluster-header": "foo-invalid", "x-wso2-foo-header": "x", "x-envoy-foo-header": "x",
                "content-type": "application/xml"},
            "headersToRemove": ["foo-remove"],
            "body": b64("<student><name>Foo</name></student>"),
        }),
    )
    .await;
    let headers = [("foo-remove", "r"), ("foo-update", "u"), ("foo-keep", "k"), ("content-type", "application/json")];
    let r = fx.post("/echo/123", &headers, r#"{"name":"Foo"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let echo = r.json();
    assert_eq!(echo["backend"], "main");
    assert_eq!(echo["path"], "/v2/echo/123");
    assert_eq!(echo["body"], "<student><name>Foo</name></student>");
    let h = &echo["headers"];
    assert_eq!(
        (&h["foo-add"], &h["foo-update"], &h["foo-update-not-exist"]),
        (&json!("Header_newly_added"), &json!("Header_Updated"), &json!("Header_Updated_New_Val"))
    );
    assert_eq!((&h["foo-keep"], &h["content-type"]), (&json!("k"), &json!("application/xml")));
    for absent in ["foo-remove", "x-wso2-foo-header", "x-envoy-foo-header", "authorization"] {
        assert!(h.get(absent).is_none(), "{absent} reached the backend: {h}");
    }
    assert_eq!(fx.status().await, "REQUEST_ONLY");

    // What the service was sent.
    let seen = fx.manage("GET", "request", None).await;
    assert_eq!(seen["requestBody"], b64(r#"{"name":"Foo"}"#));
    assert_eq!(seen["requestHeaders"]["foo-keep"], "k");
    let inv = &seen["invocationContext"];
    assert_eq!(
        (&inv["apiName"], &inv["apiVersion"], &inv["basePath"]),
        (&json!("Intercepted"), &json!("1.0"), &json!("/intercepted/1.0"))
    );
    assert_eq!(
        (&inv["method"], &inv["path"], &inv["pathTemplate"]),
        (&json!("POST"), &json!("/intercepted/1.0/echo/123"), &json!("/echo/{id}"))
    );
    assert_eq!((&inv["vhost"], &inv["supportedMethods"]), (&json!("localhost"), &json!("POST")));
    assert!(
        !inv["requestId"].as_str().unwrap_or_default().is_empty()
            && !inv["source"].as_str().unwrap_or_default().is_empty(),
        "{inv}"
    );
    let auth = &inv["authenticationContext"];
    assert_eq!((&auth["tokenType"], &auth["keyType"]), (&json!("JWT"), &json!("PRODUCTION")), "{inv}");
    assert_eq!(Some(auth["token"].as_str().unwrap_or_default()), fx.auth.strip_prefix("Bearer "));
    assert!(inv.get("organizationId").is_none());
    // (The service URL's path, /ignored/base, was ignored: the service
    // answers 404 anywhere but the contract's paths.)

    // 204 from the service: nothing changes.
    fx.script("request", 204, Value::Null).await;
    let echo = fx.post("/echo/1", &[("foo-remove", "r")], "as sent").await.json();
    assert_eq!((&echo["body"], &echo["headers"]["foo-remove"]), (&json!("as sent"), &json!("r")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_respond_dynamic_endpoints_and_failures() {
    let fx = Fx::new().await;
    // Direct respond with a body, a status, and none: the backend is not called, nor the response flow.
    let hits = fx.backend.hits();
    fx.script("request", 200, json!({"directRespond": true, "headersToAdd": {"foo-add": "v", "content-type": "application/json"}, "body": b64(r#"{"answer":1}"#)})).await;
    let r = fx.post("/both", &[], "x").await;
    assert_eq!((r.status, r.body.as_str(), r.header("foo-add")), (200, r#"{"answer":1}"#, Some("v")));
    assert_eq!(fx.status().await, "REQUEST_ONLY", "the response flow is skipped after a direct respond");
    fx.script("request", 200, json!({"directRespond": true, "responseCode": 202, "body": b64("UPDATED BODY")})).await;
    let r = fx.post("/both", &[], "x").await;
    assert_eq!((r.status, r.body.as_str()), (202, "UPDATED BODY"));
    fx.script("request", 200, json!({"directRespond": true})).await;
    assert_eq!(fx.post("/both", &[], "x").await.status, 204);
    assert_eq!(fx.backend.hits(), hits);

    // Dynamic endpoint: an x-wso2-endpoints list; the service cannot set the cluster header itself.
    fx.script("request", 200, json!({"dynamicEndpoint": {"endpointName": "myDynamicEndpoint"}, "headersToReplace": {"x-wso2-cluster-header": "foo-invalid-attempt"}})).await;
    for _ in 0..3 {
        let echo = fx.post("/echo/9", &[], "to the dynamic endpoint").await.json();
        assert_eq!((&echo["backend"], &echo["path"]), (&json!("dynamic"), &json!("/dyn/echo/9")), "{echo}");
    }
    assert!(fx.dynamic.hits() >= 3);

    // A dynamic endpoint that is no x-wso2-endpoints list fails closed
    // (the operation's own route would otherwise take the request).
    fx.script("request", 200, json!({"dynamicEndpoint": {"endpointName": "typo"}})).await;
    let r = fx.post("/echo/9", &[], "x").await;
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!("103500")), "{}", r.body);
    assert_eq!(fx.backend.hits(), hits);

    // A client cannot pick a dynamic endpoint's route itself, not even on an
    // open operation (no enforcer there to overwrite the cluster header).
    fx.script("request", 204, Value::Null).await;
    let cluster = "carbon.super_myDynamicEndpoint_xwso2cluster_localhost_Intercepted1.0";
    let dynamic_hits = fx.dynamic.hits();
    let r = fx
        .gw
        .request("GET", "localhost", "/intercepted/1.0/open", &[("x-wso2-cluster-header", cluster)])
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["backend"], "main", "{}", r.body);
    assert_eq!(fx.dynamic.hits(), dynamic_hits);
    let hits = fx.backend.hits();

    // Failures: service answers 500, not base64, service down.
    fx.script("request", 500, json!({"error": "boom"})).await;
    let r = fx.post("/echo/1", &[], "x").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"error_message": "Internal Server Error", "error_description": "Internal Server Error", "code": "103500"})
    );
    fx.script("request", 200, json!({"body": "<non>JSON</non>"})).await;
    let r = fx.post("/echo/1", &[], "x").await;
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!("103501")), "{}", r.body);
    let r = fx.post("/down", &[], "x").await;
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!("103500")), "{}", r.body);
    assert_eq!(fx.backend.hits(), hits, "no failed interception reached the backend");

    // CALL_INTERCEPTOR_SERVICE wins over the definition's (unreachable) interceptor.
    fx.script("request", 200, json!({"headersToAdd": {"by-policy": "yes"}})).await;
    let echo = fx.post("/by-policy", &[], "x").await.json();
    assert_eq!(echo["headers"]["by-policy"], "yes", "{echo}");
    assert_eq!(fx.manage("GET", "request", None).await["requestBody"], b64("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_flow_edits_the_answer_and_gets_the_interceptor_context() {
    let fx = Fx::new().await;
    fx.script(
        "response",
        200,
        json!({"headersToAdd": {"foo-add": "v"}, "body": b64("Not Found"), "responseCode": 404}),
    )
    .await;
    let r = fx.post("/response", &[], "hello").await;
    assert_eq!((r.status, r.body.as_str(), r.header("foo-add")), (404, "Not Found", Some("v")));
    assert_eq!(fx.status().await, "RESPONSE_ONLY");
    let seen = fx.manage("GET", "response", None).await;
    assert_eq!(seen["responseCode"], 200);
    assert_eq!(seen["responseHeaders"]["x-backend-name"], "main");
    let body = base64::engine::general_purpose::STANDARD
        .decode(seen["responseBody"].as_str().unwrap_or_default())
        .expect("base64");
    let echo: Value = serde_json::from_slice(&body).expect("the backend's echo");
    assert_eq!(echo["body"], "hello");

    // The request flow's interceptorContext reaches the response flow.
    fx.manage("POST", "clear-status", None).await;
    fx.manage(
        "POST",
        "request-answer",
        Some(json!({"status": 200, "body": {"interceptorContext": {"foo-key1": "foo-val1"}}})),
    )
    .await;
    fx.manage("POST", "response-answer", Some(json!({"status": 204}))).await;
    let r = fx.post("/both", &[], "x").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fx.status().await, "BOTH");
    let seen = fx.manage("GET", "response", None).await;
    assert_eq!(seen["interceptorContext"], json!({"foo-key1": "foo-val1"}));
    assert_eq!(seen["invocationContext"]["apiName"], "Intercepted");

    // The enforcer denies: neither flow runs.
    fx.manage("POST", "clear-status", None).await;
    let r = fx
        .gw
        .request_with_body("POST", "localhost", "/intercepted/1.0/both", &[("authorization", "Bearer bad")], "x")
        .await
        .expect("request");
    assert_eq!(r.status, 401);
    assert_eq!(fx.status().await, "NONE");
}

/// A CA and a `localhost` server certificate it signed: (CA PEM, server config).
fn tls_service() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Interceptor test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let der_key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .expect("server config");
    (ca.pem(), std::sync::Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_services_are_verified_against_the_projects_interceptor_certificates() {
    let backend = Backend::start("main").await.expect("backend");
    let (ca, config) = tls_service();
    let interceptor = Interceptor::start_tls(config).await.expect("interceptor");
    let oas = format!(
        "openapi: 3.0.1\ninfo: {{ title: Tls, version: \"1.0\" }}\npaths:\n  /a:\n    get:\n      x-wso2-disable-security: true\n      x-wso2-request-interceptor:\n        serviceURL: {}\n        includes: [request_headers]\n",
        interceptor.url()
    );
    let trusted = integration::api_yaml("Tls", "1.0", "/tls", &backend.url());
    let untrusted = integration::api_yaml("Other", "1.0", "/other", &backend.url());
    let other_oas = oas.replace("title: Tls", "title: Other");
    let gw = Gateway::builder(XdsMode::Delta)
        .project(
            "tls",
            &[
                ("api.yaml", trusted.as_str()),
                ("Definitions/swagger.yaml", oas.as_str()),
                ("Endpoint-certificates/interceptors/ca.crt", ca.as_str()),
            ],
        )
        .project("other", &[("api.yaml", untrusted.as_str()), ("Definitions/swagger.yaml", other_oas.as_str())])
        .start()
        .await;
    let r = gw.request("GET", "localhost", "/tls/1.0/a", &[]).await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-intercepted-by"], "test-interceptor");
    // Without the project's certificate the service is not trusted: fail closed.
    let hits = backend.hits();
    let r = gw.request("GET", "localhost", "/other/1.0/a", &[]).await.expect("request");
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!("103500")), "{}", r.body);
    assert_eq!(backend.hits(), hits);
}
