//! Routing through the real Envoy: base paths, versions, default versions,
//! vhosts, methods, path parameters, wildcards, rewrites, 404s, OPTIONS/CORS
//! and the HTTPS listener, in both xDS variants.

use integration::{Gateway, XdsMode, api_yaml};
use test_backend::Backend;

const PETSTORE: &str = r#"
openapi: 3.0.1
info: { title: PetStore, version: 1.0.0 }
paths:
  /pets:
    get: { x-wso2-disable-security: true }
  /pets/{petId}:
    get: { x-wso2-disable-security: true }
  /pets/findByStatus:
    get: { x-wso2-disable-security: true }
  /pets/{petId}/photos/{photoId}:
    put: { x-wso2-disable-security: true }
  /store/*:
    get: { x-wso2-disable-security: true }
    post: { x-wso2-disable-security: true }
"#;

const ECHO_V2: &str = r#"
openapi: 3.0.1
info: { title: PetStore, version: 2.0.0 }
paths:
  /pets:
    get: { x-wso2-disable-security: true }
"#;

async fn routing(mode: XdsMode) {
    let v1 = Backend::start("v1").await.expect("backend");
    let v2 = Backend::start("v2").await.expect("backend");
    let v1_yaml = api_yaml("PetStore", "1.0.0", "/petstore", &format!("{}/api/v1", v1.url()));
    let v2_yaml = api_yaml("PetStore", "2.0.0", "/petstore", &format!("{}/api/v2", v2.url()))
        .replace("  type: HTTP\n", "  type: HTTP\n  isDefaultVersion: true\n");
    let gw = Gateway::builder(mode)
        .project("petstore-v1", &[("api.yaml", &v1_yaml), ("Definitions/swagger.yaml", PETSTORE)])
        .project("petstore-v2", &[("api.yaml", &v2_yaml), ("Definitions/swagger.yaml", ECHO_V2)])
        .start()
        .await;

    // Base path and version pick the API; the upstream sees the endpoint's base path.
    let r = gw.get("/petstore/1.0.0/pets").await.expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-backend-name"), Some("v1"));
    assert_eq!(r.upstream_path(), "/api/v1/pets");
    let r = gw.get("/petstore/2.0.0/pets").await.expect("request");
    assert_eq!((r.status, r.header("x-backend-name")), (200, Some("v2")));
    assert_eq!(r.upstream_path(), "/api/v2/pets");
    // Default version: the version-less path goes to 2.0.0.
    let r = gw.get("/petstore/pets").await.expect("request");
    assert_eq!((r.status, r.header("x-backend-name")), (200, Some("v2")));
    assert_eq!(r.upstream_path(), "/api/v2/pets");

    // Path parameters, literal segments before parameters, trailing slash, query.
    let r = gw.get("/petstore/1.0.0/pets/42").await.expect("request");
    assert_eq!(r.upstream_path(), "/api/v1/pets/42");
    let r = gw.get("/petstore/1.0.0/pets/findByStatus?status=sold").await.expect("request");
    assert_eq!(r.upstream_path(), "/api/v1/pets/findByStatus");
    assert_eq!(r.json()["query"], "status=sold");
    let r = gw.get("/petstore/1.0.0/pets/").await.expect("request");
    assert_eq!((r.status, r.upstream_path().as_str()), (200, "/api/v1/pets"));
    let r = gw.request("PUT", "localhost", "/petstore/1.0.0/pets/7/photos/x.png", &[]).await.expect("request");
    assert_eq!((r.status, r.upstream_path().as_str()), (200, "/api/v1/pets/7/photos/x.png"));
    assert_eq!(r.json()["method"], "PUT");
    // A parameter is one segment.
    assert_eq!(gw.get("/petstore/1.0.0/pets/42/extra").await.expect("request").status, 404);

    // Wildcards match anything below, also with a query.
    let r = gw.get("/petstore/1.0.0/store/a/b/c?x=1").await.expect("request");
    assert_eq!((r.status, r.upstream_path().as_str()), (200, "/api/v1/store/a/b/c"));
    let r = gw.request("POST", "localhost", "/petstore/1.0.0/store", &[]).await.expect("request");
    assert_eq!((r.status, r.upstream_path().as_str()), (200, "/api/v1/store"));

    // Methods: undeclared methods are not routed.
    let r = gw.request("DELETE", "localhost", "/petstore/1.0.0/pets", &[]).await.expect("request");
    assert_eq!(r.status, 404);

    // Unknown paths and hosts: the JSON 404 of Choreo Connect.
    for path in ["/nothing/here", "/petstore/9.9.9/pets", "/", "/petstore"] {
        let r = gw.get(path).await.expect("request");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(
            r.json(),
            serde_json::json!({"code": "404", "message": "Not Found", "description": "The requested resource is not available."}),
            "{path}"
        );
    }
    let r = gw.request("GET", "unknown.example.com", "/petstore/1.0.0/pets", &[]).await.expect("request");
    assert_eq!(r.status, 404);

    // What the backend sees: no internal routing headers, even when a client sends them.
    let r = gw
        .request(
            "GET",
            "localhost",
            "/petstore/1.0.0/pets",
            &[
                ("x-wso2-cluster-header", "carbon.super_clusterSand_localhost_PetStore1.0.0"),
                ("x-wso2-route-scope", "/x"),
            ],
        )
        .await
        .expect("request");
    let headers = r.json()["headers"].clone();
    assert!(headers.get("x-wso2-cluster-header").is_none(), "{headers}");
    assert!(headers.get("x-wso2-route-scope").is_none(), "{headers}");
    assert_eq!(headers["host"], v1.addr.ip().to_string(), "host rewritten to the endpoint");

    // OPTIONS without a declared OPTIONS goes to the enforcer (which answers
    // 204 with Allow: tests/cors.rs); without one it fails closed.
    let hits = v1.hits();
    let r = gw.request("OPTIONS", "localhost", "/petstore/1.0.0/pets/42", &[]).await.expect("request");
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["code"], "102500");
    // CORS preflight from an allowed origin: answered by Envoy (the global [router.cors] policy).
    let r = gw
        .request(
            "OPTIONS",
            "localhost",
            "/petstore/1.0.0/pets",
            &[("origin", "https://app.example.com"), ("access-control-request-method", "GET")],
        )
        .await
        .expect("request");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT, POST, DELETE, PATCH, OPTIONS"));
    assert_eq!(v1.hits(), hits, "OPTIONS never reaches the backend");

    // The HTTPS listener serves the same routes.
    let r = gw.request_tls("GET", "/petstore/1.0.0/pets/5").await.expect("https request");
    assert_eq!((r.status, r.upstream_path().as_str()), (200, "/api/v1/pets/5"));

    // Envoy holds the expected scoped configuration and uses no deprecated field.
    let dump = gw.config_dump(Some("dynamic_route_configs")).await;
    let names: Vec<&str> =
        dump["configs"].as_array().into_iter().flatten().filter_map(|c| c["route_config"]["name"].as_str()).collect();
    assert!(names.contains(&"routes/petstore"), "{names:?}");
    assert!(names.contains(&"routes/health"), "{names:?}");
    assert_eq!(gw.stat("runtime.deprecated_feature_use").await, 0, "a deprecated Envoy field was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_state_of_the_world() {
    routing(XdsMode::Sotw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_delta() {
    routing(XdsMode::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhosts_separate_apis_with_the_same_base_path() {
    let a = Backend::start("a").await.expect("backend");
    let b = Backend::start("b").await.expect("backend");
    let oas = "openapi: 3.0.1\ninfo: {title: x, version: '1'}\nx-wso2-disable-security: true\npaths:\n  /hello:\n    get: {}\n";
    let envs = |vhost: &str| {
        format!(
            "type: deployment_environments\ndata:\n  - deploymentEnvironment: Default\n    deploymentVhost: {vhost}\n"
        )
    };
    let gw = Gateway::builder(XdsMode::Delta)
        .config("[[adapter.vhostMapping]]\nenvironment = \"Default\"\nvhost = \"localhost\"\n")
        .project(
            "on-a",
            &[
                ("api.yaml", &api_yaml("ApiA", "v1", "/shared", &a.url())),
                ("Definitions/swagger.yaml", oas),
                ("deployment_environments.yaml", &envs("a.example.com")),
            ],
        )
        .project(
            "on-b",
            &[
                ("api.yaml", &api_yaml("ApiB", "v1", "/shared", &b.url())),
                ("Definitions/swagger.yaml", oas),
                ("deployment_environments.yaml", &envs("b.example.com")),
            ],
        )
        .start()
        .await;
    let ra = gw.request("GET", "a.example.com", "/shared/v1/hello", &[]).await.expect("request");
    assert_eq!((ra.status, ra.header("x-backend-name")), (200, Some("a")));
    let rb = gw.request("GET", "b.example.com:443", "/shared/v1/hello", &[]).await.expect("request");
    assert_eq!((rb.status, rb.header("x-backend-name")), (200, Some("b")));
    let r = gw.request("GET", "localhost", "/shared/v1/hello", &[]).await.expect("request");
    assert_eq!(r.status, 404, "not deployed on the default vhost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_envoy_gets_the_apis_of_its_label() {
    let b = Backend::start("b").await.expect("backend");
    let oas =
        "openapi: 3.0.1\ninfo: {title: x, version: '1'}\nx-wso2-disable-security: true\npaths:\n  /a:\n    get: {}\n";
    let envs = |list: &[&str]| {
        let mut s = String::from("type: deployment_environments\ndata:\n");
        for e in list {
            s.push_str(&format!("  - deploymentEnvironment: {e}\n"));
        }
        s
    };
    let project = |name: &str, list: &[&str]| {
        vec![
            ("api.yaml".to_string(), api_yaml(name, "v1", &format!("/{}", name.to_lowercase()), &b.url())),
            ("Definitions/swagger.yaml".to_string(), oas.to_string()),
            ("deployment_environments.yaml".to_string(), envs(list)),
        ]
    };
    let mut builder = Gateway::builder(XdsMode::Delta).config("[[adapter.vhostMapping]]\nenvironment = \"Default\"\nvhost = \"localhost\"\n[[adapter.vhostMapping]]\nenvironment = \"staging\"\nvhost = \"localhost\"\n");
    for (name, list) in
        [("OnlyDefault", &["Default"][..]), ("OnlyStaging", &["staging"][..]), ("Both", &["Default", "staging"][..])]
    {
        let files = project(name, list);
        let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        builder = builder.project(name, &refs);
    }
    let mut gw = builder.start().await;
    let staging_a = gw.add_envoy("staging", "staging-a").await;
    let staging_b = gw.add_envoy("staging", "staging-b").await;

    let has = |names: &[String], api: &str| names.iter().any(|n| n.starts_with(&format!("{api}:v1 ")));
    for admin in [&staging_a, &staging_b] {
        let names = integration::eventually("the staging routes", || async {
            let n = gw.route_names_at(admin).await;
            if has(&n, "OnlyStaging") { Ok(n) } else { Err(format!("{n:?}")) }
        })
        .await;
        assert!(has(&names, "Both"), "{names:?}");
        assert!(!has(&names, "OnlyDefault"), "{names:?}");
    }
    let names = gw.route_names().await;
    assert!(has(&names, "OnlyDefault") && has(&names, "Both") && !has(&names, "OnlyStaging"), "{names:?}");

    // The adapter reports three routers, grouped by label.
    let status = integration::eventually("three streams", || async {
        let s = gw.xds_status().await;
        if s["streams"].as_array().map(|a| a.len()) == Some(3) { Ok(s) } else { Err(s.to_string()) }
    })
    .await;
    let mut nodes: Vec<(String, String)> = status["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["node"]["id"].as_str().unwrap_or("").to_string(),
                s["node"]["instance"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        vec![
            ("Default".to_string(), "test-router".to_string()),
            ("staging".to_string(), "staging-a".to_string()),
            ("staging".to_string(), "staging-b".to_string())
        ]
    );
}
