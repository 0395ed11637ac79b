use std::collections::BTreeMap;
use std::io::Write;

use pretty_assertions::assert_eq;

use crate::*;

const API_YAML: &str = r#"
type: api
version: v4.2.0
data:
  name: PetStore
  version: 1.0.0
  context: /petstore
  type: HTTP
  endpointConfig:
    endpoint_type: http
    production_endpoints:
      url: http://prod.example.com:8080/api
    sandbox_endpoints:
      url: http://sand.example.com/api
"#;

const OAS3: &str = r#"
openapi: 3.0.1
info: { title: PetStore, version: 1.0.0 }
paths:
  /pets:
    get: {}
    post:
      security:
        - default: [write:pets]
  /pets/{petId}:
    get:
      x-wso2-disable-security: true
    delete: {}
components:
  securitySchemes:
    default:
      type: oauth2
      flows: {}
"#;

fn project(files: &[(&str, &str)]) -> ProjectFiles {
    let mut p = ProjectFiles::new();
    for (name, content) in files {
        p.insert(*name, content.as_bytes());
    }
    p
}

fn parse(files: &[(&str, &str)]) -> Result<Project, Problems> {
    parse_project(&project(files), &ParseOptions::default())
}

fn problems(files: &[(&str, &str)]) -> Vec<String> {
    match parse(files) {
        Ok(p) => panic!("expected problems, got {p:?}"),
        Err(Problems(ps)) => ps.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn an_apictl_project_becomes_an_api() {
    let p = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", OAS3)]).expect("valid");
    let a = &p.api;
    assert_eq!(a.name, "PetStore");
    assert_eq!(a.version, "1.0.0");
    assert_eq!(a.base_path, "/petstore/1.0.0");
    assert_eq!(a.id, name_version_hash("PetStore", "1.0.0"));
    assert_eq!(a.id.len(), 40);
    assert_eq!(a.organization, "carbon.super");
    let prod = a.production.as_ref().expect("production");
    assert_eq!(prod.endpoints[0].host, "prod.example.com");
    assert_eq!(prod.endpoints[0].port, 8080);
    assert_eq!(prod.base_path(), "/api");
    assert_eq!(a.sandbox.as_ref().expect("sandbox").endpoints[0].port, 80);
    let paths: Vec<_> = a.resources.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/pets", "/pets/{petId}"]);
    let methods: Vec<_> = a.resources[0].operations.iter().map(|o| o.method).collect();
    assert_eq!(methods, vec![Method::Get, Method::Post]);
    assert!(a.resources[1].operations[0].disable_security);
    assert!(!a.resources[1].operations[1].disable_security);
    assert_eq!(
        a.resources[0].operations[1].security,
        Some(vec![[("default".to_string(), vec!["write:pets".to_string()])].into_iter().collect()])
    );
    assert_eq!(a.cors, ApiCors::Global);
    assert_eq!(p.deployments, vec![Deployment { environment: "Default".into(), vhost: "localhost".into() }]);
}

#[test]
fn oas2_base_path_and_host_win_over_api_yaml() {
    let oas2 = r#"
swagger: "2.0"
info: { title: x, version: "1" }
basePath: /v2
host: petstore.swagger.io
schemes: [http, https]
paths:
  /pet/{id}:
    get: {}
"#;
    let a = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", oas2)]).expect("valid").api;
    assert_eq!(a.base_path, "/v2");
    let prod = a.production.expect("prod");
    assert_eq!(prod.endpoints[0].url, "https://petstore.swagger.io/v2");
    assert_eq!(prod.endpoints[0].port, 443);
    assert!(a.sandbox.is_none(), "host clears the sandbox endpoints, as in Choreo Connect");
}

#[test]
fn oas2_without_base_path_needs_x_wso2_base_path() {
    let oas2 = "swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n";
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", oas2)]);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(ps[0].starts_with("Definitions/swagger.yaml: empty base path"), "{ps:?}");
}

#[test]
fn oas3_servers_and_extensions_follow_choreo_connect_precedence() {
    let oas3 = r##"
openapi: 3.0.0
info: { title: x, version: "1" }
servers:
  - url: /relative-is-ignored
  - url: https://backend.example.com/store/v1
x-wso2-basePath: /shop/v1
x-wso2-endpoints:
  - myDynamicEndpoint:
      urls: [http://dyn1.example.com/x, http://dyn2.example.com/x]
      type: failover
      advanceEndpointConfig:
        retryConfig: { count: 9, statusCodes: [503, 200, 504] }
        timeoutInMillis: 120000
        circuitBreakers: { maxConnections: 10, maxRequests: 0 }
x-wso2-sandbox-endpoints: "#/x-wso2-endpoints/myDynamicEndpoint"
x-wso2-cors:
  accessControlAllowOrigins: ["https://*.example.com"]
  accessControlAllowCredentials: true
x-wso2-http2-backend-enabled: true
x-wso2-auth-header: X-Auth
x-wso2-throttling-tier: Gold
paths:
  /items:
    x-wso2-production-endpoints:
      urls: [http://items.example.com/v9]
    get: {}
"##;
    let a = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", oas3)]).expect("valid").api;
    assert_eq!(a.base_path, "/shop/v1", "x-wso2-basePath wins over servers");
    assert!(a.production.is_none(), "only sandbox endpoints in the definition: no production");
    let sand = a.sandbox.as_ref().expect("sandbox");
    assert_eq!(sand.kind, EndpointKind::Failover);
    assert_eq!(sand.reference.as_deref(), Some("myDynamicEndpoint"));
    assert!(sand.http2);
    let retry = sand.retry.as_ref().expect("retry");
    assert_eq!(retry.count, 5, "clamped to maxRetryCount");
    assert_eq!(retry.status_codes, vec![503, 504], "200 is outside 401-598");
    assert_eq!(sand.timeout_ms, Some(60_000), "clamped to maxRouteTimeoutInSeconds");
    let cb = sand.circuit_breakers.as_ref().expect("cb");
    assert_eq!((cb.max_connections, cb.max_requests), (Some(10), None));
    assert_eq!(a.auth_header.as_deref(), Some("X-Auth"));
    assert_eq!(a.tier.as_deref(), Some("Gold"));
    match &a.cors {
        ApiCors::Api(c) => {
            assert_eq!(c.allow_origins, vec!["https://*.example.com"]);
            assert!(c.allow_credentials);
        }
        other => panic!("{other:?}"),
    }
    let items = &a.resources[0];
    assert_eq!(items.production.as_ref().expect("resource prod").endpoints[0].host, "items.example.com");
}

#[test]
fn security_can_be_disabled_at_api_path_and_operation_level() {
    let oas = r#"
openapi: 3.0.0
info: { title: x, version: "1" }
paths:
  /open:
    x-wso2-disable-security: true
    get: {}
    post:
      x-wso2-disable-security: false
  /closed:
    get: {}
    put:
      x-auth-type: None
"#;
    let a = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", oas)]).expect("valid").api;
    let flags: Vec<(String, Method, bool)> = a
        .resources
        .iter()
        .flat_map(|r| r.operations.iter().map(move |o| (r.path.clone(), o.method, o.disable_security)))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("/open".into(), Method::Get, true),
            ("/open".into(), Method::Post, false),
            ("/closed".into(), Method::Get, false),
            ("/closed".into(), Method::Put, true),
        ]
    );
    assert!(!a.disable_security);
    let api_level =
        "openapi: 3.0.0\ninfo: {title: x, version: '1'}\nx-wso2-disable-security: true\npaths:\n  /a:\n    get: {}\n";
    let a = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", api_level)]).expect("valid").api;
    assert!(a.disable_security);
    assert!(a.resources[0].operations[0].disable_security);
}

/// Open at the root, secured below: the lower level wins (operation > path
/// item > root), in OAS 3 and OAS 2 alike. A resource its author secured
/// must never be open.
#[test]
fn a_path_or_operation_secures_what_the_root_opens() {
    let paths = r#"
x-wso2-disable-security: true
paths:
  /secured:
    x-wso2-disable-security: false
    get: {}
    post:
      x-wso2-disable-security: true
  /op-secured:
    get:
      x-wso2-disable-security: false
    put: {}
"#;
    let expected = vec![
        ("/secured".to_string(), Method::Get, false),
        ("/secured".to_string(), Method::Post, true),
        ("/op-secured".to_string(), Method::Get, false),
        ("/op-secured".to_string(), Method::Put, true),
    ];
    for head in [
        "openapi: 3.0.0\ninfo: { title: x, version: \"1\" }",
        "swagger: \"2.0\"\ninfo: { title: x, version: \"1\" }\nbasePath: /petstore/1.0.0",
    ] {
        let oas = format!("{head}\n{paths}");
        let a = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", &oas)]).expect("valid").api;
        let flags: Vec<(String, Method, bool)> = a
            .resources
            .iter()
            .flat_map(|r| r.operations.iter().map(move |o| (r.path.clone(), o.method, o.disable_security)))
            .collect();
        assert_eq!(flags, expected, "{head}");
    }
    // A root `x-auth-type: None` is an API-level flag only (as in Choreo Connect).
    let oas = "openapi: 3.0.0\ninfo: {title: x, version: '1'}\nx-auth-type: None\npaths:\n  /a:\n    get: {}\n";
    let a = parse(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", oas)]).expect("valid").api;
    assert!(!a.resources[0].operations[0].disable_security);
}

#[test]
fn every_problem_is_reported_with_file_and_field() {
    let oas = r##"
openapi: 3.0.0
info: { title: x, version: "1" }
x-wso2-basePath: "/bad path"
x-wso2-production-endpoints:
  urls: ["ftp://nope.example.com"]
x-wso2-sandbox-endpoints: "#/x-wso2-endpoints/missing"
paths:
  /pets/{id}:
    get:
      x-wso2-disable-security: "maybe"
"##;
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", oas)]);
    let want = [
        "Definitions/swagger.yaml: x-wso2-production-endpoints.urls[0]: unsupported scheme \"ftp\"",
        "Definitions/swagger.yaml: paths./pets/{id}.get.x-wso2-disable-security: expected true or false, found \"maybe\"",
    ];
    for w in want {
        assert!(ps.iter().any(|p| p.starts_with(w)), "missing {w:?} in {ps:#?}");
    }
}

#[test]
fn api_yaml_problems_name_the_data_fields() {
    let yaml =
        "type: api\ndata:\n  name: ''\n  version: 1.0\n  context: /x\n  type: GRPC\n  isDefaultVersion: sometimes\n";
    let ps = problems(&[("api.yaml", yaml), ("Definitions/swagger.yaml", OAS3)]);
    assert!(
        ps.contains(&"api.yaml: data.name: missing or empty: an API needs a name, a version and a context".to_string()),
        "{ps:#?}"
    );
    assert!(ps.iter().any(|p| p.starts_with("api.yaml: data.type: API type \"GRPC\" is not supported")), "{ps:#?}");
    assert!(ps.iter().any(|p| p.starts_with("api.yaml: data.isDefaultVersion: expected true or false")), "{ps:#?}");
}

#[test]
fn unparseable_files_and_missing_files_are_named() {
    let ps = problems(&[("Definitions/swagger.yaml", OAS3)]);
    assert_eq!(ps, vec!["no api.yaml or api.json at the project root"]);
    let ps = problems(&[("api.yaml", API_YAML)]);
    assert!(ps[0].starts_with("Definitions/swagger.yaml: missing"), "{ps:?}");
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", "openapi: [unclosed")]);
    assert!(ps[0].starts_with("Definitions/swagger.yaml: not valid YAML"), "{ps:?}");
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.json", "{\"openapi\": }")]);
    assert!(ps[0].starts_with("Definitions/swagger.json: not valid JSON"), "{ps:?}");
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", "info: {}\npaths: {}\n")]);
    assert!(ps[0].contains("neither `swagger` nor `openapi`"), "{ps:?}");
}

#[test]
fn json_projects_parse_too() {
    let yaml = r#"{"type":"api","data":{"name":"J","version":"v1","context":"/j","endpointConfig":{"production_endpoints":[{"url":"http://a.example"},{"url":"http://b.example"}],"production_failovers":[{"url":"http://c.example"}]}}}"#;
    let oas = r#"{"openapi":"3.0.0","info":{"title":"J","version":"v1"},"paths":{"/x":{"get":{}}}}"#;
    let a = parse(&[("api.json", yaml), ("Definitions/swagger.json", oas)]).expect("valid").api;
    assert_eq!(a.base_path, "/j/v1");
    let prod = a.production.expect("prod");
    assert_eq!(prod.kind, EndpointKind::Failover, "failovers make the list a failover list");
    assert_eq!(prod.endpoints.len(), 3);
}

#[test]
fn api_yaml_endpoint_config_fills_gaps_and_security() {
    let yaml = r#"
data:
  name: S
  version: v1
  context: /s
  endpointConfig:
    production_endpoints:
      url: http://a.example
      config: { actionDuration: "3000", retryTimeOut: "2" }
    endpoint_security:
      production: { enabled: true, type: BASIC, username: u1, password: p1 }
"#;
    let oas = "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get: {}\n";
    let a = parse(&[("api.yaml", yaml), ("Definitions/swagger.yaml", oas)]).expect("valid").api;
    let prod = a.production.expect("prod");
    assert_eq!(prod.timeout_ms, Some(3000));
    assert_eq!(prod.retry, Some(RetryConfig { count: 2, status_codes: vec![504] }));
    let auth = prod.basic_auth.expect("basic");
    assert_eq!((auth.username.as_str(), auth.password.as_str()), ("u1", "p1"));
}

#[test]
fn environment_variables_override_endpoints() {
    let hash = name_version_hash("PetStore", "1.0.0");
    let mut opts = ParseOptions::default();
    opts.env.insert(format!("api_{hash}_prod_endpoint_0"), "\"http://env1.example.com/e\"".into());
    opts.env.insert(format!("api_{hash}_prod_endpoint_1"), "http://env2.example.com/e".into());
    opts.env.insert(format!("api_{hash}_sand_endpoint_1"), "http://skipped.example.com".into());
    let p =
        parse_project(&project(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", OAS3)]), &opts).expect("valid");
    let hosts: Vec<_> = p.api.production.expect("prod").endpoints.into_iter().map(|e| e.host).collect();
    assert_eq!(hosts, vec!["env1.example.com", "env2.example.com"]);
    assert_eq!(p.api.sandbox.expect("sand").endpoints[0].host, "sand.example.com", "index 0 missing: no override");
}

#[test]
fn deployments_map_environments_to_vhosts() {
    let envs = r#"
type: deployment_environments
version: v4.2.0
data:
  - deploymentEnvironment: Default
    deploymentVhost: us.example.com
  - deploymentEnvironment: staging
  - deploymentEnvironment: unknown-env
"#;
    let mut opts = ParseOptions::default();
    opts.vhost_mapping.push(("staging".into(), "staging.example.com".into()));
    let files =
        project(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", OAS3), ("deployment_environments.yaml", envs)]);
    let p = parse_project(&files, &opts).expect("valid");
    assert_eq!(
        p.deployments,
        vec![
            Deployment { environment: "Default".into(), vhost: "us.example.com".into() },
            Deployment { environment: "staging".into(), vhost: "staging.example.com".into() },
        ]
    );
    assert_eq!(p.skipped_environments, vec!["unknown-env".to_string()]);
}

#[test]
fn default_version_needs_a_versioned_base_path() {
    let yaml = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  isDefaultVersion: true\n");
    let a = parse(&[("api.yaml", &yaml), ("Definitions/swagger.yaml", OAS3)]).expect("valid").api;
    assert_eq!(a.versionless_base_path.as_deref(), Some("/petstore"));
    let oas = OAS3.replace("paths:", "x-wso2-basePath: /other\npaths:");
    let ps = problems(&[("api.yaml", &yaml), ("Definitions/swagger.yaml", &oas)]);
    assert!(
        ps[0].starts_with("api.yaml: data.isDefaultVersion: the base path \"/other\" does not end with /1.0.0"),
        "{ps:?}"
    );
}

#[test]
fn endpoint_certificates_are_matched_by_url_or_used_as_default() {
    let cert_a = rcgen::generate_simple_self_signed(vec!["a.example".into()]).expect("cert").cert.pem();
    let cert_b = rcgen::generate_simple_self_signed(vec!["b.example".into()]).expect("cert").cert.pem();
    let index =
        "type: endpoint_certificates\ndata:\n  - alias: a\n    endpoint: https://a.example/x\n    certificate: a.crt\n";
    let p = parse(&[
        ("api.yaml", API_YAML),
        ("Definitions/swagger.yaml", OAS3),
        ("Endpoint-certificates/endpoint_certificates.yaml", index),
        ("Endpoint-certificates/a.crt", &cert_a),
        ("Endpoint-certificates/b.pem", &cert_b),
    ])
    .expect("valid");
    assert_eq!(p.api.endpoint_certificates.get("https://a.example/x"), Some(&cert_a));
    assert_eq!(p.api.default_certificate.as_deref(), Some(cert_b.as_str()));

    let ps = problems(&[
        ("api.yaml", API_YAML),
        ("Definitions/swagger.yaml", OAS3),
        ("Endpoint-certificates/bad.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    ]);
    assert!(ps[0].starts_with("Endpoint-certificates/bad.crt: not a valid X.509 certificate"), "{ps:?}");
}

#[test]
fn zips_are_rooted_at_the_project_folder() {
    let mut buf = Vec::new();
    {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut buf));
        let opts = zip::write::SimpleFileOptions::default();
        w.add_directory("PetStore-1.0.0/", opts).expect("dir");
        w.start_file("PetStore-1.0.0/api.yaml", opts).expect("file");
        w.write_all(API_YAML.as_bytes()).expect("write");
        w.start_file("PetStore-1.0.0/Definitions/swagger.yaml", opts).expect("file");
        w.write_all(OAS3.as_bytes()).expect("write");
        w.finish().expect("finish");
    }
    let files = ProjectFiles::from_zip(&buf, ZipLimits::default()).expect("zip");
    assert_eq!(files.paths().collect::<Vec<_>>(), vec!["Definitions/swagger.yaml", "api.yaml"]);
    assert!(parse_project(&files, &ParseOptions::default()).is_ok());
}

#[test]
fn unsafe_zips_are_refused() {
    let zip_with = |name: &str| {
        let mut buf = Vec::new();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut buf));
        w.start_file(name, zip::write::SimpleFileOptions::default()).expect("file");
        w.write_all(b"x").expect("write");
        w.finish().expect("finish");
        buf
    };
    for name in ["../evil/api.yaml", "/abs/api.yaml", "a/../../b"] {
        let err = ProjectFiles::from_zip(&zip_with(name), ZipLimits::default()).unwrap_err();
        assert!(err.to_string().contains("unsafe path"), "{name}: {err}");
    }
    let err = ProjectFiles::from_zip(b"not a zip", ZipLimits::default()).unwrap_err();
    assert!(err.to_string().starts_with("not a valid zip file"), "{err}");
    let limits = ZipLimits { max_total_bytes: 1, ..ZipLimits::default() };
    let mut buf = Vec::new();
    {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut buf));
        w.start_file("big", zip::write::SimpleFileOptions::default()).expect("file");
        w.write_all(b"0123456789").expect("write");
        w.finish().expect("finish");
    }
    let err = ProjectFiles::from_zip(&buf, limits).unwrap_err();
    assert!(err.to_string().contains("more than the limit"), "{err}");
}

const ASYNCAPI: &str = r#"
asyncapi: 2.0.0
info: { title: Chat, version: 1.0.0 }
servers:
  production: { url: "wss://ws.example.com:9443/socket", protocol: wss }
channels:
  /notifications:
    publish:
      x-uri-mapping: /notifications
      x-scopes: { "0": creator }
    subscribe:
      x-uri-mapping: /ignored
  /rooms/{roomID}:
    subscribe:
      x-uri-mapping: /chat/{uri.var.roomID}
  /open:
    x-auth-type: None
    publish: {}
components:
  securitySchemes:
    oauth2: { type: oauth2 }
"#;

#[test]
fn websocket_apis_take_topics_scopes_and_mappings_from_asyncapi() {
    let yaml = API_YAML.replace("type: HTTP", "type: WS").replace("http://", "ws://");
    let a = parse(&[("api.yaml", &yaml), ("Definitions/asyncapi.yaml", ASYNCAPI)]).expect("valid").api;
    assert_eq!(a.api_type, ApiType::Ws);
    let prod = a.production.as_ref().expect("servers.production");
    assert_eq!(
        (prod.endpoints[0].scheme, prod.endpoints[0].host.as_str(), prod.endpoints[0].port),
        (Scheme::Wss, "ws.example.com", 9443)
    );
    assert_eq!(prod.endpoints[0].base_path, "/socket");
    assert!(a.sandbox.is_some(), "api.yaml's sandbox stays: AsyncAPI names no sandbox server");
    let paths: Vec<_> = a.resources.iter().map(|r| (r.path.as_str(), r.upstream_path.as_deref())).collect();
    assert_eq!(
        paths,
        vec![
            ("/notifications", Some("/notifications")),
            ("/rooms/{roomID}", Some("/chat/{roomID}")),
            ("/open", Some("/"))
        ]
    );
    let n = &a.resources[0].operations[0];
    assert_eq!(n.method, Method::Get);
    assert_eq!(n.security, Some(vec![[("oauth2".to_string(), vec!["creator".to_string()])].into_iter().collect()]));
    assert!(!n.disable_security);
    assert!(a.resources[2].operations[0].disable_security, "x-auth-type: None");
    assert!(a.security_schemes.contains_key("oauth2"));
}

#[test]
fn a_topic_scope_written_on_subscribe_applies_when_publish_has_none() {
    let yaml = API_YAML.replace("type: HTTP", "type: WS").replace("http://", "ws://");
    let def = "asyncapi: 2.0.0\nchannels:\n  /a:\n    publish:\n      x-uri-mapping: /a\n    subscribe:\n      x-scopes: [reader]\n";
    let a = parse(&[("api.yaml", &yaml), ("Definitions/asyncapi.yaml", def)]).expect("valid").api;
    let reqs = a.resources[0].operations[0].security.clone().expect("the topic's own security");
    assert_eq!(reqs, vec![[("default".to_string(), vec!["reader".to_string()])].into_iter().collect()]);
    assert_eq!(a.resources[0].upstream_path.as_deref(), Some("/a"), "publish's mapping still wins");
}

#[test]
fn broken_asyncapi_definitions_name_the_field() {
    let yaml = API_YAML.replace("type: HTTP", "type: WS");
    let ps = problems(&[("api.yaml", &yaml)]);
    assert_eq!(
        ps,
        vec![
            "Definitions/asyncapi.yaml: missing: a WebSocket API needs an AsyncAPI 2 definition (Definitions/asyncapi.yaml or .json)"
        ]
    );
    for (def, expect) in [
        (
            "asyncapi: 3.0.0\nchannels: {}",
            "Definitions/asyncapi.yaml: asyncapi: AsyncAPI version \"3.0.0\" is not supported (2.x is)",
        ),
        (
            "asyncapi: 2.0.0\nchannels:\n  nope:\n    publish: {}",
            "Definitions/asyncapi.yaml: channels.nope: a channel name is the topic's path: it must start with /",
        ),
        (
            "asyncapi: 2.0.0\nchannels:\n  /a: {}",
            "Definitions/asyncapi.yaml: channels./a: the channel has neither `publish` nor `subscribe`: no client could use it",
        ),
        (
            "asyncapi: 2.0.0\nchannels:\n  /a/{x}:\n    publish:\n      x-uri-mapping: /b/{uri.var.y}",
            "Definitions/asyncapi.yaml: channels./a/{x}.publish.x-uri-mapping: {uri.var.y} is not a parameter of the channel \"/a/{x}\"",
        ),
        (
            "asyncapi: 2.0.0\nchannels:\n  /rooms:\n    publish:\n      x-uri-mapping: /rooms?room=1",
            "Definitions/asyncapi.yaml: channels./rooms.publish.x-uri-mapping: \"/rooms?room=1\": query parameters in x-uri-mapping are not supported; map the topic to a path",
        ),
        (
            "asyncapi: 2.0.0\nservers:\n  production: {url: \"http://x\"}\nchannels:\n  /a:\n    publish: {}",
            "Definitions/asyncapi.yaml: servers.production.url: \"http://x\" is not a ws:// or wss:// URL",
        ),
    ] {
        let ps = problems(&[("api.yaml", &yaml), ("Definitions/asyncapi.yaml", def)]);
        assert_eq!(ps, vec![expect.to_string()], "{def}");
    }
}

const SCHEMA: &str =
    "type Query { hero: String, human(id: ID!): String }\ntype Mutation { createReview(stars: Int): String }\n";

fn graphql_yaml(ops: &str) -> String {
    API_YAML.replace("type: HTTP", &format!("type: GRAPHQL\n  securityScheme: [oauth2, api_key]\n  operations:\n{ops}"))
}

#[test]
fn graphql_apis_take_operations_from_api_yaml_and_check_them_against_the_schema() {
    let ops = "    - {target: hero, verb: QUERY, authType: None, throttlingPolicy: 10KPerMin}\n    - {target: human, verb: query, scopes: [read]}\n    - {target: createReview, verb: MUTATION}\n";
    let complexity = "type: graphql-complexity\nversion: v4.1.0\ndata:\n  list:\n    - {type: Query, field: hero, complexityValue: 4}\n";
    let a = parse(&[
        ("api.yaml", &graphql_yaml(ops)),
        ("Definitions/schema.graphql", SCHEMA),
        ("Definitions/graphql-complexity.yaml", complexity),
    ])
    .expect("valid")
    .api;
    let g = a.graphql.as_ref().expect("graphql");
    assert_eq!(g.schema, SCHEMA);
    assert_eq!(
        g.complexity,
        vec![graphql::FieldComplexity { type_name: "Query".into(), field: "hero".into(), value: 4 }]
    );
    let ops: Vec<_> = g
        .operations
        .iter()
        .map(|o| (o.target.as_str(), o.verb.as_str(), o.disable_security, o.tier.as_deref()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("hero", "QUERY", true, Some("10KPerMin")),
            ("human", "QUERY", false, None),
            ("createReview", "MUTATION", false, None)
        ]
    );
    assert_eq!(g.operations[1].scopes, vec!["read"]);
    // One route on the base path, POST and GET, always through the enforcer.
    assert_eq!(a.resources.len(), 1);
    assert_eq!(a.resources[0].path, "");
    assert_eq!(a.resources[0].operations.iter().map(|o| o.method).collect::<Vec<_>>(), vec![Method::Post, Method::Get]);
    assert_eq!(a.pass_request_payload, Some(true));
    let names: Vec<_> = a.security_schemes.keys().cloned().collect();
    assert_eq!(names, vec!["api_key_header", "api_key_query", "default"]);
}

#[test]
fn broken_graphql_projects_name_the_file_and_field() {
    let ok_ops = "    - {target: hero, verb: QUERY}\n";
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (graphql_yaml(ok_ops), vec![], "Definitions/schema.graphql: missing: a GraphQL API needs its schema (SDL)"),
        (
            graphql_yaml(ok_ops),
            vec![("Definitions/schema.graphql", "type Query {")],
            "Definitions/schema.graphql: the schema does not parse: ",
        ),
        (
            graphql_yaml("    - {target: villain, verb: QUERY}\n"),
            vec![("Definitions/schema.graphql", SCHEMA)],
            "api.yaml: data.operations[0].target: the schema's query type has no field \"villain\"",
        ),
        (
            graphql_yaml("    - {target: hero, verb: FETCH}\n"),
            vec![("Definitions/schema.graphql", SCHEMA)],
            "api.yaml: data.operations[0].verb: \"FETCH\" is not a GraphQL operation type (QUERY, MUTATION, SUBSCRIPTION)",
        ),
        (
            graphql_yaml("    - {target: hero, verb: QUERY, throttlingPolicy: Nope}\n"),
            vec![("Definitions/schema.graphql", SCHEMA)],
            "api.yaml: data.operations[0].throttlingPolicy: unknown throttling tier \"Nope\"",
        ),
        (
            graphql_yaml(ok_ops),
            vec![
                ("Definitions/schema.graphql", SCHEMA),
                (
                    "Definitions/graphql-complexity.yaml",
                    "data:\n  list:\n    - {type: Query, field: hero, complexityValue: -1}\n",
                ),
            ],
            "Definitions/graphql-complexity.yaml: data.list[0].complexityValue: ",
        ),
    ];
    for (yaml, mut files, expect) in cases {
        files.push(("api.yaml", &yaml));
        let ps = problems(&files);
        assert_eq!(ps.len(), 1, "{expect}: {ps:?}");
        assert!(ps[0].starts_with(expect), "expected {expect:?}, got {ps:?}");
    }
}

#[test]
fn the_root_base_path_is_refused() {
    let oas = OAS3.replace("paths:", "x-wso2-basePath: /\npaths:");
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", &oas)]);
    assert!(ps[0].contains("the base path \"/\" is not supported"), "{ps:?}");
}

#[test]
fn api_key_security_scheme_adds_header_and_query_schemes() {
    let yaml = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  securityScheme: [oauth2, api_key, mutualssl]\n");
    let a = parse(&[("api.yaml", &yaml), ("Definitions/swagger.yaml", OAS3)]).expect("valid").api;
    let names: Vec<_> = a.security_schemes.keys().cloned().collect();
    assert_eq!(names, vec!["api_key_header", "api_key_query", "default"]);
    assert_eq!(a.security_schemes["api_key_query"].location, "query");
    assert_eq!(a.mutual_ssl, "optional");
    let reqs = a.resources[0].operations[1].security.clone().expect("op security");
    assert_eq!(reqs.len(), 3, "default + the two api key requirements: {reqs:?}");
    let _ = BTreeMap::<String, String>::new();
}

#[test]
fn client_certificates_are_named_and_tiered_by_their_index() {
    let cert = rcgen::generate_simple_self_signed(vec!["client".into()]).expect("cert").cert.pem();
    let index =
        "type: client_certificates\ndata:\n  - alias: partner\n    certificate: partner.crt\n    tierName: Gold\n";
    let yaml = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  securityScheme: [mutualssl, mutualssl_mandatory]\n");
    let p = parse(&[
        ("api.yaml", &yaml),
        ("Definitions/swagger.yaml", OAS3),
        ("Client-certificates/client_certificates.yaml", index),
        ("Client-certificates/partner.crt", &cert),
    ])
    .expect("valid");
    assert_eq!(p.api.mutual_ssl, "mandatory");
    assert_eq!(p.api.client_certificates.len(), 1);
    assert_eq!(
        (p.api.client_certificates[0].alias.as_str(), p.api.client_certificates[0].tier.as_str()),
        ("partner", "Gold")
    );
    let ps = problems(&[
        ("api.yaml", &yaml),
        ("Definitions/swagger.yaml", OAS3),
        ("Client-certificates/client_certificates.yaml", "data:\n  - alias: x\n    certificate: missing.crt\n"),
    ]);
    assert!(ps[0].contains("data[0].certificate") && ps[0].contains("missing.crt"), "{ps:?}");
}

#[test]
fn oauth2_with_api_key_keeps_a_default_oauth2_requirement() {
    let yaml = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  securityScheme: [oauth2, api_key]\n");
    let oas = "openapi: 3.0.1\ninfo: { title: P, version: 1.0.0 }\npaths:\n  /a:\n    get: {}\n";
    let p = parse(&[("api.yaml", &yaml), ("Definitions/swagger.yaml", oas)]).expect("valid");
    assert_eq!(p.api.security_schemes["default"].kind, "oauth2");
    assert!(p.api.security.iter().any(|r| r.contains_key("default")), "{:?}", p.api.security);
    assert!(p.api.security.iter().any(|r| r.contains_key("api_key_header")), "{:?}", p.api.security);
}

#[test]
fn throttling_tiers_must_be_known() {
    let api = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  apiThrottlingPolicy: 5PerDay\n");
    let oas = OAS3.replace("    delete: {}\n", "    delete:\n      x-throttling-tier: 10KPerMin\n");
    let p = parse(&[("api.yaml", &api), ("Definitions/swagger.yaml", &oas)]).expect("known tiers");
    assert_eq!(p.api.tier.as_deref(), Some("5PerDay"));

    let api = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  apiThrottlingPolicy: Platinum\n");
    let oas = OAS3.replace("    delete: {}\n", "    delete:\n      x-wso2-throttling-tier: 7PerFortnight\n");
    let ps = problems(&[("api.yaml", &api), ("Definitions/swagger.yaml", &oas)]);
    assert!(
        ps.iter().any(|p| p.starts_with("api.yaml: data.apiThrottlingPolicy: unknown throttling tier \"Platinum\"")),
        "{ps:?}"
    );
    let ps = problems(&[("api.yaml", API_YAML), ("Definitions/swagger.yaml", &oas)]);
    assert!(
        ps.iter().any(|p| p.starts_with("Definitions/swagger.yaml: ")
            && p.contains("x-wso2-throttling-tier: unknown throttling tier \"7PerFortnight\"")),
        "{ps:?}"
    );
}

#[test]
fn choreos_throttling_limits_name_tiers() {
    let api = API_YAML.replace(
        "  type: HTTP\n",
        "  type: HTTP\n  operations:\n    - {target: /pets, verb: get, throttlingLimit: {requestCount: 10, unit: MINUTE}}\n    - {target: \"/pets/{petId}\", verb: DELETE, throttlingLimit: {requestCount: -1, unit: second}}\n    - {target: /pets, verb: POST}\n",
    );
    let p = parse(&[("api.yaml", &api), ("Definitions/swagger.yaml", OAS3)]).expect("valid");
    let tier = |path: &str, m: &str| {
        p.api
            .resources
            .iter()
            .find(|r| r.path == path)
            .and_then(|r| r.operations.iter().find(|o| o.method.as_str() == m).and_then(|o| o.tier.clone()))
    };
    assert_eq!(tier("/pets", "GET").as_deref(), Some("10PerMinute"));
    assert_eq!(tier("/pets/{petId}", "DELETE").as_deref(), Some("Unlimited"));
    assert_eq!(tier("/pets", "POST"), None);
    assert_eq!(p.api.tier, None);
    // At API level: the API's tier (operation limits then do not apply, as in Choreo).
    let api = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  throttlingLimit: {requestCount: 3, unit: Day}\n");
    let p = parse(&[("api.yaml", &api), ("Definitions/swagger.yaml", OAS3)]).expect("valid");
    assert_eq!(p.api.tier.as_deref(), Some("3PerDay"));
    // Bad limits name the field.
    let api = API_YAML.replace("  type: HTTP\n", "  type: HTTP\n  throttlingLimit: {requestCount: 0, unit: WEEK}\n");
    let ps = problems(&[("api.yaml", &api), ("Definitions/swagger.yaml", OAS3)]);
    assert!(
        ps.iter().any(|p| p.starts_with("api.yaml: data.throttlingLimit.requestCount: expected a positive")),
        "{ps:?}"
    );
}

#[test]
fn the_sample_projects_of_make_run_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/apis");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&root).expect("samples/apis") {
        let dir = entry.expect("entry").path();
        let mut files = ProjectFiles::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(&dir).expect("inside").to_string_lossy().replace('\\', "/");
                    files.insert(rel, std::fs::read(&p).expect("read"));
                }
            }
        }
        let p = parse_project(&files, &ParseOptions::default()).unwrap_or_else(|e| panic!("{}: {e:?}", dir.display()));
        seen.push(p.api.api_type);
    }
    seen.sort_by_key(|t| t.to_string());
    assert_eq!(seen, vec![ApiType::Graphql, ApiType::Http, ApiType::Ws]);
    // The GraphQL sample's schema is the one its backend serves.
    let sample = std::fs::read_to_string(root.join("starwars/Definitions/schema.graphql")).expect("sample schema");
    let served = std::fs::read_to_string(root.join("../../tools/protocols/schema.graphql")).expect("server schema");
    assert_eq!(sample, served, "copy tools/protocols/schema.graphql to samples/apis/starwars/Definitions/");
}
