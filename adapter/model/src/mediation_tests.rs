//! Interceptors, operation policies and mock examples in projects.

use pretty_assertions::assert_eq;

use crate::*;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Med, version: 1.0.0 }
servers: [{ url: "http://backend:8080/v2" }]
x-wso2-request-interceptor:
  serviceURL: https://interceptor:8443/ignored/path
  includes: [request_headers, request_body, invocation_context]
  requestTimeout: 5
paths:
  /echo/{id}:
    get: {}
    post:
      x-wso2-request-interceptor:
        serviceURL: http://op-interceptor:9000
        includes: [request_headers]
      x-wso2-response-interceptor:
        serviceURL: http://op-interceptor:9000
        includes: [response_body]
        clusterTimeout: 2
  /shops/{shopId}/pets/{petId}:
    put: {}
    get: {}
"#;

fn api_yaml(extra: &str) -> String {
    format!("type: api\nversion: v4.1.0\ndata:\n  name: Med\n  version: 1.0.0\n  context: /med\n  type: HTTP\n{extra}")
}

fn parse_with(extra: &str, more: &[(&str, &str)]) -> Result<Project, Problems> {
    let y = api_yaml(extra);
    let mut files = ProjectFiles::new();
    files.insert("api.yaml", y.as_bytes());
    files.insert("Definitions/swagger.yaml", OAS.as_bytes());
    for (n, c) in more {
        files.insert(*n, c.as_bytes());
    }
    parse_project(&files, &ParseOptions::default())
}

fn op<'a>(p: &'a Project, path: &str, m: Method) -> &'a Operation {
    let r = p.api.resources.iter().find(|r| r.path == path).expect("resource");
    r.operations.iter().find(|o| o.method == m).expect("operation")
}

fn errors(r: Result<Project, Problems>) -> Vec<String> {
    match r {
        Ok(p) => panic!("expected problems, got {:#?}", p.api.resources),
        Err(Problems(ps)) => ps.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn interceptors_resolve_operation_over_path_over_api() {
    let p = parse_with("", &[]).expect("parses");
    let get = op(&p, "/echo/{id}", Method::Get);
    let i = get.mediation().request_interceptor.as_ref().expect("API-level interceptor");
    assert_eq!((i.service.host.as_str(), i.service.port, i.service.scheme), ("interceptor", 8443, Scheme::Https));
    assert_eq!(i.includes.names(), vec!["request_headers", "request_body", "invocation_context"]);
    assert_eq!((i.request_timeout_s, i.cluster_timeout_s), (Some(5), None));
    assert!(get.mediation().response_interceptor.is_none());
    let post = op(&p, "/echo/{id}", Method::Post);
    let i = post.mediation().request_interceptor.as_ref().expect("operation interceptor");
    assert_eq!((i.service.host.as_str(), i.service.port), ("op-interceptor", 9000));
    assert_eq!(i.includes.names(), vec!["request_headers"]);
    let r = post.mediation().response_interceptor.as_ref().expect("response interceptor");
    assert_eq!(r.cluster_timeout_s, Some(2));
}

#[test]
fn bad_interceptors_are_refused_with_the_field() {
    let bad = OAS
        .replace("includes: [request_headers]", "includes: [request_header]")
        .replace("serviceURL: https://interceptor:8443/ignored/path", "serviceURL: ftp://x");
    let mut files = ProjectFiles::new();
    files.insert("api.yaml", api_yaml("").as_bytes());
    files.insert("Definitions/swagger.yaml", bad.as_bytes());
    let ps = errors(parse_project(&files, &ParseOptions::default()));
    assert!(ps.iter().any(|p| p.contains("x-wso2-request-interceptor.serviceURL") && p.contains("ftp")), "{ps:?}");
    assert!(
        ps.iter().any(|p| p.contains("paths./echo/{id}.post.x-wso2-request-interceptor.includes")
            && p.contains("unknown part \"request_header\"")),
        "{ps:?}"
    );
}

const POLICIES: &str = r#"
  operations:
    - target: /echo/{id}
      verb: GET
      operationPolicies:
        request:
          - policyName: ccAddHeader
            policyVersion: v1
            parameters: { headerName: X-New, headerValue: new value }
          - policyName: ccRemoveHeader
            policyVersion: v1
            parameters: { headerName: X-Old }
          - policyName: addQueryParam
            policyVersion: v1
            parameters: { paramKey: q1, paramValue: v1 }
        response:
          - policyName: ccAddHeader
            policyVersion: v1
            parameters: { headerName: X-Resp, headerValue: r }
    - target: /shops/{shopId}/pets/{petId}
      verb: PUT
      operationPolicies:
        request:
          - policyName: rewriteResourcePath
            policyVersion: v1
            parameters: { newResourcePath: "/pets/{uri.var.petId}/of/{uri.var.shopId}", includeQueryParams: false }
          - policyName: ccChangeHTTPMethod
            policyVersion: v1
            parameters: { updatedMethod: GET }
          - policyName: ccCallInterceptorService
            policyVersion: v1
            parameters: { interceptorServiceURL: "http://pi:7000", includes: "request_headers,request_body" }
"#;

#[test]
fn built_in_policies_render_into_actions() {
    let p = parse_with(POLICIES, &[]).expect("parses");
    let get = op(&p, "/echo/{id}", Method::Get);
    assert_eq!(
        get.mediation().request,
        vec![
            PolicyAction::SetHeader { name: "X-New".into(), value: "new value".into() },
            PolicyAction::RemoveHeader { name: "X-Old".into() },
            PolicyAction::AddQuery { name: "q1".into(), value: "v1".into() },
        ]
    );
    assert_eq!(get.mediation().response, vec![PolicyAction::SetHeader { name: "X-Resp".into(), value: "r".into() }]);
    let put = op(&p, "/shops/{shopId}/pets/{petId}", Method::Put);
    assert_eq!(
        put.mediation().request,
        vec![
            PolicyAction::RewritePath {
                path: "/pets/{uri.var.petId}/of/{uri.var.shopId}".into(),
                include_query: false
            },
            PolicyAction::RewriteMethod { method: Method::Get },
        ]
    );
    // The policy's interceptor replaces the API-level extension's.
    let i = put.mediation().request_interceptor.as_ref().expect("interceptor");
    assert_eq!((i.service.host.as_str(), i.includes.names()), ("pi", vec!["request_headers", "request_body"]));
}

#[test]
fn project_policies_are_checked_and_rendered() {
    let spec = r#"
type: operation_policy_specification
version: v4.1.0
data:
  name: customAddHeader
  version: v2
  applicableFlows: [request]
  supportedGateways: [ChoreoConnect]
  policyAttributes:
    - name: customHeaderValue
      required: true
      validationRegex: '^[a-z]+$'
"#;
    let tmpl = "definition:\n  action: SET_HEADER\n  parameters:\n    headerName: customV2\n    headerValue: {{ .customHeaderValue }}\n";
    let use_it = |value: &str, flow: &str| {
        format!(
            "  operations:\n    - target: /echo/{{id}}\n      verb: get\n      operationPolicies:\n        {flow}:\n          - policyName: customAddHeader\n            policyVersion: v2\n            parameters: {{ customHeaderValue: {value} }}\n"
        )
    };
    let files = [("Policies/customAddHeader_v2.yaml", spec), ("Policies/customAddHeader_v2.gotmpl", tmpl)];
    let p = parse_with(&use_it("abc", "request"), &files).expect("parses");
    assert_eq!(
        op(&p, "/echo/{id}", Method::Get).mediation().request,
        vec![PolicyAction::SetHeader { name: "customV2".into(), value: "abc".into() }]
    );
    let ps = errors(parse_with(&use_it("ABC", "request"), &files));
    assert_eq!(
        ps,
        vec![
            "api.yaml: data.operations[0].operationPolicies.request[0].parameters.customHeaderValue: \"ABC\" does not match the policy's validationRegex ^[a-z]+$"
        ]
    );
    let ps = errors(parse_with(&use_it("abc", "response"), &files));
    assert!(ps[0].contains("cannot be applied to the response flow"), "{ps:?}");
    // Unknown action, missing definition, unknown policy.
    let bad = tmpl.replace("SET_HEADER", "SET_HEADER_NOT_SUPPORTED_ACTION");
    let ps = errors(parse_with(
        &use_it("abc", "request"),
        &[("Policies/customAddHeader_v2.yaml", spec), ("Policies/customAddHeader_v2.gotmpl", &bad)],
    ));
    assert!(
        ps[0].contains("policy action \"SET_HEADER_NOT_SUPPORTED_ACTION\" not supported by Choreo Connect gateway"),
        "{ps:?}"
    );
    let ps = errors(parse_with(&use_it("abc", "request"), &[("Policies/customAddHeader_v2.yaml", spec)]));
    assert!(ps.iter().any(|p| p.contains("Policies/customAddHeader_v2.yaml") && p.contains("no definition")), "{ps:?}");
    let ps = errors(parse_with(&use_it("abc", "request"), &[]));
    assert!(ps[0].contains("unknown policy \"customAddHeader\" version \"v2\""), "{ps:?}");
    let missing = tmpl.replace("headerName: customV2", "headerNameX: customV2");
    let ps = errors(parse_with(
        &use_it("abc", "request"),
        &[("Policies/customAddHeader_v2.yaml", spec), ("Policies/customAddHeader_v2.gotmpl", &missing)],
    ));
    assert!(ps[0].contains("gives SET_HEADER no headerName"), "{ps:?}");
}

#[test]
fn rewrite_paths_name_existing_parameters_and_operations_must_exist() {
    let y = POLICIES.replace("{uri.var.shopId}", "{uri.var.invalidParamId}");
    let ps = errors(parse_with(&y, &[]));
    assert!(ps.iter().any(|p| p.contains("invalid path param \"invalidParamId\"")), "{ps:?}");
    let y = POLICIES.replace("verb: GET", "verb: DELETE");
    let ps = errors(parse_with(&y, &[]));
    assert!(
        ps.iter().any(|p| p.contains("DELETE /echo/{id} has policies but the definition declares no such operation")),
        "{ps:?}"
    );
    // currentMethod must be the operation's.
    let y = POLICIES
        .replace("parameters: { updatedMethod: GET }", "parameters: { currentMethod: POST, updatedMethod: GET }");
    let ps = errors(parse_with(&y, &[]));
    assert!(ps.iter().any(|p| p.contains("currentMethod \"POST\" is not the operation's method PUT")), "{ps:?}");
    // Headers Envoy may not edit, and paths with a query.
    let y = POLICIES.replace("headerName: X-New", "headerName: Host");
    assert!(errors(parse_with(&y, &[])).iter().any(|p| p.contains("headerName \"Host\" is not a header")));
    let y = POLICIES.replace("headerName: X-Old", "headerName: \":path\"");
    assert!(errors(parse_with(&y, &[])).iter().any(|p| p.contains("is not a header this gateway may edit")));
    let y = POLICIES.replace("/pets/{uri.var.petId}/of/{uri.var.shopId}", "/pets?x=1");
    assert!(errors(parse_with(&y, &[])).iter().any(|p| p.contains("may hold only letters")));
    // A required parameter missing.
    let y = POLICIES.replace("{ headerName: X-Old }", "{}");
    let ps = errors(parse_with(&y, &[]));
    assert!(
        ps.iter()
            .any(|p| p.ends_with("request[1].parameters.headerName: missing: policy ccRemoveHeader_v1 requires it")),
        "{ps:?}"
    );
}

#[test]
fn mocked_apis_keep_their_examples_and_need_no_endpoint() {
    let oas = r#"
openapi: 3.0.1
info: { title: Mock, version: 1.0.0 }
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
            application/xml:
              example: "<a/>"
        default:
          content:
            application/json:
              example: { description: default content }
"#;
    let y = "type: api\nversion: v4.1.0\ndata:\n  name: Mock\n  version: 1.0.0\n  context: /mock\n  endpointImplementationType: MOCKED_OAS\n";
    let mut files = ProjectFiles::new();
    files.insert("api.yaml", y.as_bytes());
    files.insert("Definitions/swagger.yaml", oas.as_bytes());
    let p = parse_project(&files, &ParseOptions::default()).expect("a mocked API needs no endpoint");
    assert!(p.api.mocked);
    let mock = op(&p, "/testMockApi", Method::Get).mediation().mock.clone().expect("mock config");
    assert_eq!(mock.responses[0].code, "50X");
    assert_eq!(mock.responses[0].headers, vec![("x-wso2-header".to_string(), "Sample header value".to_string())]);
    assert_eq!(
        mock.responses[0].content[0].examples,
        vec![("example1".to_string(), r#"{"description":"content for example 1"}"#.to_string())]
    );
    assert_eq!(mock.responses[0].content[1].examples, vec![(String::new(), "<a/>".to_string())]);
    assert_eq!(mock.responses[1].code, "default");
}
