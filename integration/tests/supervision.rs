//! A background task that dies stops its process with a clear message, so
//! the supervisor (Kubernetes, Compose) restarts it in a known state; a
//! process never lives on half dead. Tasks are killed with failpoints
//! (`GATEWAY_FAILPOINT`, debug builds only).

use integration::{Gateway, XdsMode, api_yaml};
use test_backend::Backend;

const OAS: &str = "openapi: 3.0.1\ninfo: { title: Pets, version: \"1.0\" }\npaths:\n  /pets:\n    get: { x-wso2-disable-security: true }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_loading_the_artifacts_stops_the_adapter_before_any_router_is_served() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .manual()
        .project(
            "pets",
            &[("api.yaml", &api_yaml("Pets", "1.0", "/pets", &b.url())), ("Definitions/swagger.yaml", OAS)],
        )
        .start()
        .await;
    let (code, log) = gw.run_adapter_until_exit(&[("GATEWAY_FAILPOINT", "artifacts-load")]).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("background task \"artifacts folder\" stopped: loading the artifacts folder failed")
            && log.contains("panicked"),
        "{log}"
    );
    assert!(!log.contains("restored the APIs"), "it went on after the failure:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_background_task_stops_the_adapter() {
    let gw = Gateway::builder(XdsMode::Delta).manual().start().await;
    let (code, log) = gw.run_adapter_until_exit(&[("GATEWAY_FAILPOINT", "revocation-expiry")]).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("background task \"revocation expiry\" stopped: panicked"), "{log}");
    assert!(log.contains("stopping so that the adapter is restarted in a known state"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_discovery_stream_stops_the_enforcer() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .without_envoy()
        .project(
            "pets",
            &[("api.yaml", &api_yaml("Pets", "1.0", "/pets", &b.url())), ("Definitions/swagger.yaml", OAS)],
        )
        .start()
        .await;
    gw.kill_enforcer();
    let (code, log) = gw.run_enforcer_until_exit(&[("GATEWAY_FAILPOINT", "enforcer-api-stream")]).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("background task \"API stream\" stopped: panicked"), "{log}");
}
