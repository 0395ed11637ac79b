//! With no enforcer, secured resources are refused (500, code 102500) and
//! nothing reaches the backend; resources with security disabled still work.

use integration::{Gateway, XdsMode, api_yaml};
use test_backend::Backend;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Guarded, version: v1 }
paths:
  /secret:
    get: {}
    post: {}
  /public:
    get: { x-wso2-disable-security: true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_routes_fail_closed_without_an_enforcer() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .project(
            "guarded",
            &[("api.yaml", &api_yaml("Guarded", "v1", "/guarded", &b.url())), ("Definitions/swagger.yaml", OAS)],
        )
        .start()
        .await;
    for (method, headers) in [("GET", vec![]), ("POST", vec![("authorization", "Bearer a.b.c")])] {
        let r = gw.request(method, "localhost", "/guarded/v1/secret", &headers).await.expect("request");
        assert_eq!(r.status, 500, "{method}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            serde_json::json!({
                "code": "102500",
                "message": "Unclassified Validation Failure",
                "description": "Error during validating the request"
            })
        );
    }
    // OPTIONS on a secured resource is the enforcer's to answer (204 with
    // Allow, as in Choreo Connect): without it, refused too.
    let r = gw.request("OPTIONS", "localhost", "/guarded/v1/secret", &[]).await.expect("request");
    assert_eq!(r.status, 500);
    // A CORS preflight is answered by Envoy, enforcer or not.
    let r = gw
        .request(
            "OPTIONS",
            "localhost",
            "/guarded/v1/secret",
            &[("origin", "https://x.example"), ("access-control-request-method", "POST")],
        )
        .await
        .expect("request");
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("https://x.example")));
    assert_eq!(b.hits(), 0, "nothing reached the backend");
    let r = gw.get("/guarded/v1/public").await.expect("request");
    assert_eq!(r.status, 200);
    assert_eq!(b.hits(), 1);
    assert!(gw.stat("http.ingress_http.ext_authz.error").await >= 2, "ext_authz failed, did not allow");
    assert_eq!(gw.stat("http.ingress_http.ext_authz.failure_mode_allowed").await, 0);

    // The route carries what the enforcer will need.
    let dump = gw.config_dump(Some("dynamic_route_configs")).await;
    let routes: Vec<serde_json::Value> = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["route_config"]["virtual_hosts"].as_array().cloned().unwrap_or_default())
        .flat_map(|vh| vh["routes"].as_array().cloned().unwrap_or_default())
        .collect();
    let route =
        routes.iter().find(|r| r["name"] == "Guarded:v1 GET,POST,OPTIONS /guarded/v1/secret").expect("secured route");
    // Envoy redacts the (sensitive) context extensions in config_dump; the
    // golden tests check their values. Here: checked, not disabled.
    let per_route = &route["typed_per_filter_config"]["envoy.filters.http.ext_authz"];
    assert!(per_route["check_settings"]["context_extensions"].is_object(), "{per_route}");
    assert!(per_route.get("disabled").is_none(), "{per_route}");
    // The open route names no ext_authz at all: the filter is off unless a
    // route turns it on, so Envoy never creates it there.
    let open = routes
        .iter()
        .find(|r| r["name"].as_str().is_some_and(|n| n.ends_with("/guarded/v1/public")))
        .expect("open route");
    assert!(open["typed_per_filter_config"].get("envoy.filters.http.ext_authz").is_none(), "{open}");
    let listeners = gw.config_dump(Some("dynamic_listeners")).await;
    let filters: Vec<(String, bool)> = listeners["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| {
            l["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|f| (f["name"].as_str().unwrap_or("").to_string(), f["disabled"] == true))
        .collect();
    assert!(filters.contains(&("envoy.filters.http.ext_authz".to_string(), true)), "{filters:?}");

    // The ext_authz cluster has explicit bounds: past them a check fails
    // closed at once instead of queueing behind an overwhelmed enforcer.
    let dump = gw.config_dump(Some("static_clusters")).await;
    let authz = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["cluster"]["name"] == "ext-authz")
        .expect("ext-authz cluster");
    assert_eq!(
        authz["cluster"]["circuit_breakers"]["thresholds"][0],
        serde_json::json!({
            "max_connections": 64, "max_pending_requests": 1024, "max_requests": 10000, "max_retries": 0,
            "track_remaining": true
        })
    );
}
