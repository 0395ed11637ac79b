//! Operation policies, mock APIs and OPA through the real router, adapter
//! and enforcer, with the exact request the backend saw (Choreo Connect's
//! `apipolicy/*` and `mockEndpoint/MockApiTestCase`, ported).
//!
//! OPA: no OPA server binary can be installed on these machines; the remote
//! mode is tested against integration/opa/opa_server.py, which speaks OPA's
//! Data API and evaluates with OPA's own Go engine (PyPI
//! `opa-golib-python-bindings`, installed into .tools/pip-opa by `make test`). The embedded mode runs
//! the same Rego module inside the enforcer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use integration::{Gateway, XdsMode, api_yaml, tokens::now};
use serde_json::{Value, json};
use test_backend::Backend;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Policies, version: "1.0" }
paths:
  /headers/{id}:
    get: {}
    post: {}
  /response-headers:
    delete: {}
  /query:
    patch: {}
  /rewrite/{shopId}/pets/{petId}:
    get: {}
    put: {}
  /open-query:
    get:
      x-wso2-disable-security: true
  /opa:
    get: {}
  /rego:
    get: {}
"#;

const OPERATIONS: &str = r#"
  operations:
    - target: /headers/{id}
      verb: POST
      operationPolicies:
        request:
          - policyName: ccAddHeader
            policyVersion: v1
            parameters: { headerName: newHeaderKey1, headerValue: newHeaderVal1 }
          - policyName: ccRemoveHeader
            policyVersion: v1
            parameters: { headerName: RemOveThisHeaDer }
    - target: /response-headers
      verb: DELETE
      operationPolicies:
        response:
          - policyName: ccAddHeader
            policyVersion: v1
            parameters: { headerName: Response-Header-By-Policy, headerValue: by-policy }
          - policyName: ccRemoveHeader
            policyVersion: v1
            parameters: { headerName: response-header }
    - target: /query
      verb: PATCH
      operationPolicies:
        request:
          - policyName: addQueryParam
            policyVersion: v1
            parameters: { paramKey: helloQ1, paramValue: worldQ1 }
          - policyName: addQueryParam
            policyVersion: v1
            parameters: { paramKey: helloQ2, paramValue: worldQ2 }
    - target: /rewrite/{shopId}/pets/{petId}
      verb: PUT
      operationPolicies:
        request:
          - policyName: rewriteResourcePath
            policyVersion: v1
            parameters: { newResourcePath: "/new/{uri.var.petId}.pets/of/{uri.var.shopId}" }
          - policyName: ccChangeHTTPMethod
            policyVersion: v1
            parameters: { updatedMethod: GET }
    - target: /rewrite/{shopId}/pets/{petId}
      verb: GET
      operationPolicies:
        request:
          - policyName: rewriteResourcePath
            policyVersion: v1
            parameters: { newResourcePath: /new-path2, includeQueryParams: false }
          - policyName: ccChangeHTTPMethod
            policyVersion: v1
            parameters: { updatedMethod: DELETE }
    - target: /open-query
      verb: GET
      operationPolicies:
        request:
          - policyName: addQueryParam
            policyVersion: v1
            parameters: { paramKey: added, paramValue: "yes" }
    - target: /opa
      verb: GET
      operationPolicies:
        request:
          - policyName: opaPolicy
            policyVersion: v1
            parameters: { serverUrl: "OPA_URL", policy: example, rule: RULE, sendAccessToken: true, accessKey: opa-secret }
    - target: /rego
      verb: GET
      operationPolicies:
        request:
          - policyName: regoPolicy
            policyVersion: v1
            parameters: { regoFile: authz.rego, policy: example, rule: allow }
"#;

/// The OPA test server (integration/opa/opa_server.py) on a free port.
struct OpaServer {
    child: Child,
    port: u16,
}

impl OpaServer {
    fn start(token: &str) -> OpaServer {
        let root = integration::workspace_root().join("integration/opa");
        let engine = integration::workspace_root().join(".tools/pip-opa");
        let mut child = Command::new("python3")
            .env("PYTHONPATH", &engine)
            .arg(root.join("opa_server.py"))
            .args(["--policies", &root.join("policies").to_string_lossy(), "--port", "0", "--token", token])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 integration/opa/opa_server.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("the OPA server's first line");
        let port = line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!(
                "the OPA test server did not start ({line:?}): `make opa` installs its engine \
                 (OPA's Go engine from PyPI opa-golib-python-bindings) into .tools/pip-opa"
            )
        });
        OpaServer { child, port }
    }
}

impl Drop for OpaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const REGO: &str = "package example\nimport rego.v1\ndefault allow := false\nallow if {\n  input.method == \"GET\"\n  input.transportHeaders[\"x-user\"] == \"alice\"\n  input.apiContext.apiName == \"Policies\"\n}\n";

fn claims(jti: &str) -> Value {
    json!({
        "iss": integration::IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": jti,
        "application": {"id": 1, "uuid": "app-1", "name": "PetApp", "owner": "alice"},
        "subscribedAPIs": [{"name": "Policies", "version": "1.0", "context": "/policies/1.0", "subscriptionTier": "Gold"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_policies_edit_what_the_backend_and_the_client_see() {
    let b = Backend::start("b").await.expect("backend");
    let opa = OpaServer::start("opa-secret");
    let api = api_yaml("Policies", "1.0", "/policies", &format!("{}/v2", b.url())) + OPERATIONS;
    let api = api.replace("OPA_URL", &format!("http://127.0.0.1:{}/v1/data", opa.port)).replace("RULE", "allow");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "policies",
            &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", OAS), ("Policies/authz.rego", REGO)],
        )
        .start()
        .await;
    let auth = format!("Bearer {}", gw.idp().idp.sign(&claims("policies-1")));
    let call = |method: &'static str, path: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let (gw, auth) = (&gw, auth.clone());
        async move {
            let mut h: Vec<(&str, &str)> = vec![("authorization", auth.as_str()), ("sample1", "Sample Value")];
            h.extend_from_slice(extra);
            gw.request(method, "localhost", path, &h).await.expect("request")
        }
    };

    // SET_HEADER and REMOVE_HEADER (case-insensitive), request flow; the client's other headers and query pass.
    let r = call("POST", "/policies/1.0/headers/123?foo1=bar1&foo2=bar2", &[("removethisheader", "x")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let echo = r.json();
    assert_eq!(echo["path"], "/v2/headers/123");
    assert_eq!(echo["query"], "foo1=bar1&foo2=bar2");
    assert_eq!(echo["headers"]["newheaderkey1"], "newHeaderVal1");
    assert_eq!(echo["headers"]["sample1"], "Sample Value");
    assert!(echo["headers"].get("removethisheader").is_none(), "{echo}");
    // GET on the same resource has no policies.
    let echo = call("GET", "/policies/1.0/headers/123", &[("removethisheader", "x")]).await.json();
    assert_eq!(echo["headers"]["removethisheader"], "x");
    assert!(echo["headers"].get("newheaderkey1").is_none(), "{echo}");

    // Response flow.
    let r =
        call("DELETE", "/policies/1.0/response-headers", &[("x-backend-set-headers", "response-header, keep-header")])
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("response-header-by-policy"), Some("by-policy"));
    assert_eq!(r.header("keep-header"), Some("response-header-value"));
    assert_eq!(r.header("response-header"), None);

    // ADD_QUERY, added after the client's parameters.
    let echo = call("PATCH", "/policies/1.0/query?foo1=bar1", &[]).await.json();
    assert_eq!(echo["query"], "foo1=bar1&helloQ1=worldQ1&helloQ2=worldQ2");
    assert_eq!(echo["method"], "PATCH");

    // REWRITE_RESOURCE_PATH with {uri.var.x} and REWRITE_RESOURCE_METHOD; the query is kept.
    let echo = call("PUT", "/policies/1.0/rewrite/shop1234.xyz/pets/pet890?foo1=bar1", &[]).await.json();
    assert_eq!(
        (&echo["method"], &echo["path"], &echo["query"]),
        (&json!("GET"), &json!("/v2/new/pet890.pets/of/shop1234.xyz"), &json!("foo1=bar1"))
    );
    // ... and with includeQueryParams: false the query is dropped (trailing slash too).
    for path in ["/policies/1.0/rewrite/s/pets/p?foo1=bar1&foo2=bar2", "/policies/1.0/rewrite/s/pets/p/?foo1=bar1"] {
        let r = gw.request("GET", "localhost", path, &[("authorization", &auth)]).await.expect("request");
        let echo = r.json();
        assert_eq!(
            (&echo["method"], &echo["path"], &echo["query"]),
            (&json!("DELETE"), &json!("/v2/new-path2"), &json!("")),
            "{path}"
        );
    }

    // An operation open to anyone still gets its enforcer-side policy.
    let r = gw.request("GET", "localhost", "/policies/1.0/open-query?a=1", &[]).await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["query"], "a=1&added=yes");

    // Remote OPA: allowed, denied (403 901101); the backend never sees a denied request.
    let r = call("GET", "/policies/1.0/opa", &[("x-user", "alice")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let hits = b.hits();
    let r = call("GET", "/policies/1.0/opa", &[("x-user", "bob")]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["code"], "901101");
    assert_eq!(r.json()["error_message"], "Forbidden");
    assert_eq!(b.hits(), hits);

    // Embedded Rego: the same decisions with no server.
    assert_eq!(call("GET", "/policies/1.0/rego", &[("x-user", "alice")]).await.status, 200);
    let r = call("GET", "/policies/1.0/rego", &[("x-user", "bob")]).await;
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!("901101")), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opa_failures_are_500_with_choreo_connects_codes() {
    let b = Backend::start("b").await.expect("backend");
    let opa = OpaServer::start("opa-secret");
    let base = api_yaml("Policies", "1.0", "/policies", &b.url()) + OPERATIONS;
    let url = format!("http://127.0.0.1:{}/v1/data", opa.port);
    // 901103: the rule is undefined for the input (OPA answers {}); 901102:
    // the server refuses the call (wrong token) or cannot be reached.
    let undefined = base.replace("OPA_URL", &url).replace("RULE", "allow_no_default");
    let wrong_token = base.replace("OPA_URL", &url).replace("RULE", "allow").replace("opa-secret", "wrong");
    let unreachable = base
        .replace("OPA_URL", &format!("http://127.0.0.1:{}/v1/data", integration::ports::free_port()))
        .replace("RULE", "allow");
    let project = |name: &str, api: &str| {
        let mut p = api.replace("name: Policies", &format!("name: {name}"));
        p = p.replace("context: /policies", &format!("context: /{}", name.to_lowercase()));
        p
    };
    let (u, w, n) = (project("Undefined", &undefined), project("Token", &wrong_token), project("Down", &unreachable));
    let oas = |title: &str| OAS.replace("title: Policies", &format!("title: {title}"));
    let (ou, ow, on) = (oas("Undefined"), oas("Token"), oas("Down"));
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "u",
            &[("api.yaml", u.as_str()), ("Definitions/swagger.yaml", ou.as_str()), ("Policies/authz.rego", REGO)],
        )
        .project(
            "w",
            &[("api.yaml", w.as_str()), ("Definitions/swagger.yaml", ow.as_str()), ("Policies/authz.rego", REGO)],
        )
        .project(
            "n",
            &[("api.yaml", n.as_str()), ("Definitions/swagger.yaml", on.as_str()), ("Policies/authz.rego", REGO)],
        )
        .start()
        .await;
    for (api, path, code) in [
        ("Undefined", "/undefined/1.0/opa", "901103"),
        ("Token", "/token/1.0/opa", "901102"),
        ("Down", "/down/1.0/opa", "901102"),
    ] {
        let mut c = claims(&format!("opa-{api}"));
        c["subscribedAPIs"] = json!([{"name": api, "version": "1.0", "context": format!("/{}/1.0", api.to_lowercase()), "subscriptionTier": "Gold"}]);
        let auth = format!("Bearer {}", gw.idp().idp.sign(&c));
        let r = gw
            .request("GET", "localhost", path, &[("authorization", &auth), ("x-user", "bob")])
            .await
            .expect("request");
        assert_eq!(r.status, 500, "{api}: {}", r.body);
        assert_eq!(r.json()["code"], code, "{api}: {}", r.body);
        assert_eq!(r.json()["error_message"], "Internal Server Error");
    }
    assert_eq!(b.hits(), 0, "no request reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_at_deploy_and_change_nothing() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let token = format!("Bearer {}", gw.mgmt_token().await);
    let ops = |policy: &str, params: &str| {
        format!(
            "  operations:\n    - target: /headers/{{id}}\n      verb: POST\n      operationPolicies:\n        request:\n          - policyName: {policy}\n            policyVersion: v1\n            parameters: {params}\n"
        )
    };
    let spec = "type: operation_policy_specification\nversion: v4.1.0\ndata:\n  name: custom\n  version: v1\n  applicableFlows: [request]\n  supportedGateways: [ChoreoConnect]\n  policyAttributes:\n    - name: headerName\n      required: true\n";
    let unsupported =
        "definition:\n  action: SET_HEADER_NOT_SUPPORTED_ACTION\n  parameters:\n    headerName: {{ .headerName }}\n";
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            ops("custom", "{ headerName: a }"),
            vec![("Policies/custom_v1.yaml", spec), ("Policies/custom_v1.gotmpl", unsupported)],
            r#"policy action \"SET_HEADER_NOT_SUPPORTED_ACTION\" not supported by Choreo Connect gateway"#,
        ),
        (
            ops("ccAddHeader", "{ headerName: \"bad name!\", headerValue: v }"),
            vec![],
            "does not match the policy's validationRegex",
        ),
        (ops("ccRemoveHeader", "{}"), vec![], "parameters.headerName: missing: policy ccRemoveHeader_v1 requires it"),
        (ops("nope", "{}"), vec![], r#"unknown policy \"nope\" version \"v1\""#),
    ];
    for (extra, files, expect) in cases {
        let api = api_yaml("Policies", "1.0", "/policies", &b.url()) + &extra;
        let mut all = vec![("api.yaml", api.as_str()), ("Definitions/swagger.yaml", OAS)];
        all.extend(files);
        let zip = integration::zip_project("policies", &all);
        let r = gw.deploy_zip(zip, false, &token).await;
        assert_eq!(r.status, 400, "{expect}: {}", r.body);
        assert!(r.body.contains(expect), "expected {expect:?} in {}", r.body);
        assert!(r.body.contains("api.yaml"), "the file is named: {}", r.body);
    }
    let r = gw.mgmt("GET", "/apis", None).await;
    assert!(!r.body.contains("Policies"), "nothing was deployed: {}", r.body);
}

const MOCK_OAS: &str = r#"
openapi: 3.0.1
info: { title: MockApiTest, version: 1.0.0 }
x-wso2-basePath: /mockApiTest/1.0.0
paths:
  /testMockApi:
    get:
      responses:
        "50X":
          headers:
            x-wso2-header: { example: Sample header value }
          content:
            text/html:
              examples:
                example1: { value: { description: content for example 1 } }
                example2: { value: { description: content for example 2 } }
            application/xml:
              example: { description: choreo connect }
        default:
          headers:
            x-wso2-header: { example: Sample header value }
          content:
            application/json:
              example: { description: default content }
  /testOneExample:
    get:
      x-wso2-disable-security: true
      responses:
        "500":
          headers:
            x-wso2-header: { example: Sample header value }
          content:
            application/json:
              examples:
                example1: { value: { description: json mediatype example1 } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mocked_apis_answer_from_their_examples() {
    let api = "type: api\nversion: v4.1.0\ndata:\n  name: mockApiTest\n  version: 1.0.0\n  context: /prototyped\n  type: HTTP\n  endpointImplementationType: MOCKED_OAS\n";
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("mock", &[("api.yaml", api), ("Definitions/swagger.yaml", MOCK_OAS)])
        .start()
        .await;
    let mut c = claims("mock-1");
    c["subscribedAPIs"] = json!([{"name": "mockApiTest", "version": "1.0.0", "context": "/mockApiTest/1.0.0", "subscriptionTier": "Gold"}]);
    let auth = format!("Bearer {}", gw.idp().idp.sign(&c));
    let get = |path: &'static str, extra: &'static [(&'static str, &'static str)], authed: bool| {
        let (gw, auth) = (&gw, auth.clone());
        async move {
            let mut h: Vec<(&str, &str)> = extra.to_vec();
            if authed {
                h.push(("authorization", auth.as_str()));
            }
            gw.request("GET", "localhost", path, &h).await.expect("request")
        }
    };
    // Security still applies.
    assert_eq!(get("/mockApiTest/1.0.0/testMockApi", &[], false).await.status, 401);
    // A sandbox key is answered too (the API has no endpoints at all).
    let mut sc = c.clone();
    sc["keytype"] = json!("SANDBOX");
    sc["jti"] = json!("mock-sandbox");
    let sandbox = format!("Bearer {}", gw.idp().idp.sign(&sc));
    let r = gw
        .request("GET", "localhost", "/mockApiTest/1.0.0/testMockApi", &[("authorization", &sandbox)])
        .await
        .expect("request");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"description":"default content"}"#));
    // Default content: status 200.
    let r = get("/mockApiTest/1.0.0/testMockApi", &[], true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-wso2-header"), Some("Sample header value"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, r#"{"description":"default content"}"#);
    // The only code of an open operation.
    let r = get("/mockApiTest/1.0.0/testOneExample", &[], false).await;
    assert_eq!((r.status, r.body.as_str()), (500, r#"{"description":"json mediatype example1"}"#));
    // Prefer code and example, Accept.
    let r =
        get("/mockApiTest/1.0.0/testMockApi", &[("accept", "text/*"), ("prefer", "code=508, example=example2")], true)
            .await;
    assert_eq!(
        (r.status, r.header("content-type"), r.body.as_str()),
        (508, Some("text/html"), r#"{"description":"content for example 2"}"#)
    );
    let r = get("/mockApiTest/1.0.0/testMockApi", &[("accept", "text/*"), ("prefer", "code=508")], true).await;
    assert_eq!(r.status, 508);
    assert!(r.body.contains("content for example"), "{}", r.body);
    // 501 and 400.
    let r =
        get("/mockApiTest/1.0.0/testMockApi", &[("accept", "text/*"), ("prefer", "code=508, example=example4")], true)
            .await;
    assert_eq!(r.status, 501);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        r#"{"error_message":"Not Implemented","code":"900871","error_description":"Example preference example4 is not supported for this resource"}"#
    );
    let r = get("/mockApiTest/1.0.0/testMockApi", &[("prefer", "code=400")], true).await;
    assert_eq!(
        r.body,
        r#"{"error_message":"Not Implemented","code":"900871","error_description":"Preferred code 400 is not supported for this resource."}"#
    );
    let r = get("/mockApiTest/1.0.0/testMockApi", &[("prefer", "code=5xx0")], true).await;
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!("900870")), "{}", r.body);
}
