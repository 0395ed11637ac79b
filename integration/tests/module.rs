//! The enforcer as an Envoy dynamic module (enforcer/module): the real
//! Envoy binary loads `libgateway_module.so` by configuration and runs its
//! filter on every request.

use std::process::Command;

use integration::fixtures::{noop_module_filter, pets_claims, plain_envoy_config_with};
use integration::{Gateway, Proc, XdsMode, eventually, free_port, workspace_bin};
use test_backend::Backend;

/// A stock Envoy with the module's filter before the router, sending
/// everything to `backend`.
fn envoy_config(listen: u16, admin: u16, backend: u16) -> String {
    let module = workspace_bin("libgateway_module.so");
    let filter = noop_module_filter(&module);
    format!(
        "admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}\n{}",
        plain_envoy_config_with(listen, backend, "", "", &filter)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_envoy_loads_the_module_and_runs_its_filter() {
    let backend = Backend::start("module-backend").await.expect("backend");
    let backend_port: u16 = backend.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("backend port");
    let dir = tempfile::tempdir().expect("dir");
    let (listen, admin) = (free_port(), free_port());
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, envoy_config(listen, admin, backend_port)).expect("config");
    let mut cmd = Command::new(integration::envoy_bin());
    cmd.arg("-c").arg(&config).args(["--use-dynamic-base-id", "--concurrency", "1", "--log-level", "info"]);
    let envoy = Proc::spawn_group("envoy-module", &mut cmd, dir.path().join("envoy.log"));

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{listen}/pets");
    eventually("Envoy to answer through the module's filter", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let name = r.headers().get("x-backend-name").and_then(|v| v.to_str().ok()).map(String::from);
            if r.status() == 200 && name.as_deref() == Some("module-backend") {
                Ok(())
            } else {
                Err(format!("{} {name:?}", r.status()))
            }
        }
    })
    .await;

    // Envoy checked the module's ABI version and found it its own.
    let log = envoy.log();
    assert!(log.contains("Dynamic module ABI version v0.2.0 matched"), "{log}");
    // The filter Envoy holds is the module's.
    let dump = client.get(format!("http://127.0.0.1:{admin}/config_dump")).send().await.expect("config dump");
    let text = dump.text().await.expect("dump text");
    assert!(text.contains("envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"), "{text}");
    assert!(text.contains("libgateway_module.so"), "{text}");
}

/// The Pets API (`oas`) in front of `backend`, its enforcer in Envoy as the
/// module, with `more` of the builder's settings.
async fn pets_in_module_mode(
    backend: &Backend,
    oas: &str,
    more: impl FnOnce(integration::GatewayBuilder) -> integration::GatewayBuilder,
) -> Gateway {
    let api = integration::api_yaml("Pets", "1.0", "/pets", &backend.url());
    more(Gateway::builder(XdsMode::Delta).with_enforcer().enforcer_in_module())
        .project("pets", &[("api.yaml", &api), ("Definitions/swagger.yaml", oas)])
        .start()
        .await
}

const PETS_OAS: &str = "openapi: 3.0.1\ninfo: {title: Pets, version: \"1.0\"}\npaths:\n  /pets:\n    get: {}\n  /open:\n    get: {x-wso2-disable-security: true}\n";

/// `[router] enforcerMode = "module"`: the router's Envoy holds the module's
/// filter where ext_authz would be, secured routes carry the enforcer's
/// settings for it, and the module decides: the enforcer service is never
/// asked (its check counter stays at zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_module_mode_envoy_decides_through_the_module_not_ext_authz() {
    let backend = Backend::start("pets").await.expect("backend");
    let gw = pets_in_module_mode(&backend, PETS_OAS, |b| b).await;

    let listeners = gw.config_dump(Some("dynamic_listeners")).await.to_string();
    assert!(listeners.contains("\"name\":\"gateway.enforcer\""), "the module's filter is in the listener");
    assert!(listeners.contains("envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"));
    assert!(!listeners.contains("\"name\":\"envoy.filters.http.ext_authz\""), "no ext_authz filter");
    let routes = gw.config_dump(Some("dynamic_route_configs")).await.to_string();
    assert!(routes.contains("DynamicModuleFilterPerRoute"), "secured routes carry the module's settings");
    assert!(!routes.contains("ExtAuthzPerRoute"), "and not ext_authz's");
    // The module sets the client-address header itself: no header-mutation
    // filter runs for the secured routes' virtual host.
    assert!(!routes.contains("HeaderMutationPerRoute"), "{routes}");

    // Decided by the module: no token, a bad token, a good one; the open
    // resource does not go through the enforcer at all.
    let r = gw.get("/pets/1.0/pets").await.expect("request");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("900901"), "{}", r.body);
    let r = gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", "Bearer x.y.z")]).await.expect("req");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("900901"), "{}", r.body);
    let token = gw.idp().idp.sign(&pets_claims("module-1"));
    let bearer = format!("Bearer {token}");
    let r = gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", &bearer)]).await.expect("req");
    assert_eq!((r.status, r.header("x-backend-name")), (200, Some("pets")), "{}", r.body);
    assert_eq!(gw.get("/pets/1.0/open").await.expect("request").status, 200);

    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", gw.ports.enforcer_metrics))
        .await
        .expect("enforcer metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.lines().any(|l| l.starts_with("enforcer_checks_total{")),
        "the enforcer service decided: {metrics}"
    );
}

/// A panic inside the module never reaches Envoy: it is caught at the C
/// boundary and the request is refused with the enforcer's failure,
/// 500/102500, as JSON, or as a SOAP fault for a SOAP request (as when
/// ext_authz fails); Envoy keeps serving. The panic is the module's test
/// hook (debug builds only, `GATEWAY_MODULE_FAULT=panic`: every decision
/// panics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_module_fails_the_request_closed_and_envoy_keeps_serving() {
    let backend = Backend::start("pets").await.expect("backend");
    let gw = pets_in_module_mode(&backend, PETS_OAS, |b| {
        b.adapter_env("CC_ADAPTER_SOAPERRORINXMLENABLED", "true").router_env("GATEWAY_MODULE_FAULT", "panic")
    })
    .await;
    for _ in 0..3 {
        let r = gw.get("/pets/1.0/pets").await.expect("request");
        assert_eq!(r.status, 500, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.body,
            r#"{"code":"102500","message":"Unclassified Validation Failure","description":"Error during validating the request"}"#
        );
    }
    let soap = [("content-type", "text/xml"), ("soapaction", "urn:x")];
    let r = gw.request_with_body("GET", "localhost", "/pets/1.0/pets", &soap, "<x/>").await.expect("request");
    assert_eq!((r.status, r.header("content-type")), (500, Some("text/xml")), "{}", r.body);
    assert!(
        r.body.contains(
            "<faultstring>Unclassified Validation Failure</faultstring><detail>102500:Error during validating the request</detail>"
        ),
        "{}",
        r.body
    );
    // Envoy is alive and still routes: the open resource needs no decision.
    assert_eq!(gw.get("/pets/1.0/open").await.expect("request").status, 200);
    assert!(gw.envoy_log().contains("panic in request headers: GATEWAY_MODULE_FAULT=panic"), "{}", gw.envoy_log());
}

/// `[router.payloadPassingToEnforcer]` in module mode: the module holds the
/// request until its body is in, the backend still gets the whole body, and
/// a body over `maxRequestBytes` is refused with 413 as ext_authz refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_reads_the_body_the_router_passes_to_the_enforcer() {
    let backend = Backend::start("pets").await.expect("backend");
    let oas = PETS_OAS.replace("    get: {}\n", "    get: {}\n    post: {}\n");
    let gw = pets_in_module_mode(&backend, &oas, |b| {
        b.config("[router.payloadPassingToEnforcer]\npassRequestPayload = true\nmaxRequestBytes = 1024\n")
    })
    .await;
    let routes = gw.config_dump(Some("dynamic_route_configs")).await.to_string();
    assert!(routes.contains(r#"\"body\":{\"maxBytes\":1024,\"allowPartial\":false}"#), "{routes}");
    let token = gw.idp().idp.sign(&pets_claims("module-body"));
    let bearer = format!("Bearer {token}");
    let body = "x".repeat(1000);
    let r = gw
        .request_with_body("POST", "localhost", "/pets/1.0/pets", &[("authorization", &bearer)], &body)
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.body);
    let echo: serde_json::Value = serde_json::from_str(&r.body).expect("the backend's echo");
    assert_eq!(echo["body"], body.as_str(), "the backend got the whole body");
    let r = gw.request_with_body("POST", "localhost", "/pets/1.0/pets", &[], &body).await.expect("request");
    assert_eq!(r.status, 401, "a body does not stand in for a token: {}", r.body);
    let r = gw
        .request_with_body("POST", "localhost", "/pets/1.0/pets", &[("authorization", &bearer)], &"x".repeat(4000))
        .await
        .expect("request");
    assert_eq!((r.status, r.body.as_str()), (413, "Payload Too Large"));
}
