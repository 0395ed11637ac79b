//! Upstream behaviour through the real Envoy: load balancing, failover,
//! timeouts, retries, circuit breaking and unreachable backends, with the
//! router's JSON errors.

use integration::{Gateway, XdsMode, api_yaml, free_port};
use test_backend::Backend;

fn oas_with(endpoints: &str) -> String {
    format!(
        "openapi: 3.0.1\ninfo: {{title: Up, version: v1}}\nx-wso2-disable-security: true\n{endpoints}\npaths:\n  /echo:\n    get: {{}}\n"
    )
}

async fn gateway(endpoints: &str) -> Gateway {
    Gateway::builder(XdsMode::Delta)
        .project(
            "up",
            &[
                ("api.yaml", &api_yaml("Up", "v1", "/up", "http://127.0.0.1:1")),
                ("Definitions/swagger.yaml", &oas_with(endpoints)),
            ],
        )
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing_spreads_requests_over_the_endpoints() {
    let a = Backend::start("a").await.expect("backend");
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&format!("x-wso2-production-endpoints:\n  urls: [{}, {}]\n", a.url(), b.url())).await;
    for _ in 0..40 {
        let r = gw.get("/up/v1/echo").await.expect("request");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(a.hits() >= 10 && b.hits() >= 10, "round robin: a={} b={}", a.hits(), b.hits());
    assert_eq!(a.hits() + b.hits(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_prefers_the_primary_and_uses_the_secondary_when_it_is_down() {
    let primary = Backend::start("primary").await.expect("backend");
    let secondary = Backend::start("secondary").await.expect("backend");
    let gw = gateway(&format!(
        "x-wso2-production-endpoints:\n  type: failover\n  urls: [{}, {}]\n",
        primary.url(),
        secondary.url()
    ))
    .await;
    for _ in 0..10 {
        let r = gw.get("/up/v1/echo").await.expect("request");
        assert_eq!((r.status, r.header("x-backend-name")), (200, Some("primary")));
    }
    assert_eq!(secondary.hits(), 0);

    // Primary down from the start: every request is answered by the secondary.
    let dead = free_port();
    let gw = gateway(&format!(
        "x-wso2-production-endpoints:\n  type: failover\n  urls: [http://127.0.0.1:{dead}, {}]\n",
        secondary.url()
    ))
    .await;
    for _ in 0..10 {
        let r = gw.get("/up/v1/echo").await.expect("request");
        assert_eq!((r.status, r.header("x-backend-name")), (200, Some("secondary")), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_gives_504_and_code_102504() {
    let slow = Backend::start("slow").await.expect("backend");
    let gw = gateway(&format!(
        "x-wso2-production-endpoints:\n  urls: [{}]\n  advanceEndpointConfig:\n    timeoutInMillis: 300\n",
        slow.url()
    ))
    .await;
    let started = std::time::Instant::now();
    let r = gw.request("GET", "localhost", "/up/v1/echo", &[("x-backend-delay-ms", "3000")]).await.expect("request");
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    let j = r.json();
    assert_eq!(j["code"], "102504");
    assert_eq!(j["message"], "Upstream connection timeout");
    assert!(took < std::time::Duration::from_millis(2500), "timed out after {took:?}, not ~300 ms");
    // Within the timeout, fine.
    let r = gw.request("GET", "localhost", "/up/v1/echo", &[("x-backend-delay-ms", "10")]).await.expect("request");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_gives_503_and_code_102503() {
    let dead = free_port();
    let gw = gateway(&format!("x-wso2-production-endpoints:\n  urls: [http://127.0.0.1:{dead}/x]\n")).await;
    let r = gw.get("/up/v1/echo").await.expect("request");
    assert_eq!(r.status, 503, "{}", r.body);
    let j = r.json();
    assert_eq!(j["code"], "102503");
    assert_eq!(j["message"], "Upstream connection failed");
    assert!(j["description"].as_str().unwrap_or_default().contains("connection"), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_endpoint_retry_config() {
    let flaky = Backend::start("flaky").await.expect("backend");
    let gw = gateway(&format!(
        "x-wso2-production-endpoints:\n  urls: [{}]\n  advanceEndpointConfig:\n    retryConfig: {{count: 2, statusCodes: [503]}}\n",
        flaky.url()
    ))
    .await;
    let r = gw.request("GET", "localhost", "/up/v1/echo", &[("x-backend-status", "503")]).await.expect("request");
    assert_eq!(r.status, 503);
    assert_eq!(flaky.hits(), 3, "one attempt and two retries");
    let before = flaky.hits();
    let r = gw.request("GET", "localhost", "/up/v1/echo", &[("x-backend-status", "500")]).await.expect("request");
    assert_eq!(r.status, 500);
    assert_eq!(flaky.hits() - before, 1, "500 is not in statusCodes: no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breakers_overflow_with_503_and_code_102505() {
    let slow = Backend::start("slow").await.expect("backend");
    let gw = gateway(&format!(
        "x-wso2-production-endpoints:\n  urls: [{}]\n  advanceEndpointConfig:\n    circuitBreakers: {{maxConnections: 1, maxRequests: 1, maxPendingRequests: 1}}\n",
        slow.url()
    ))
    .await;
    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let gw = std::sync::Arc::clone(&gw);
        tasks.push(tokio::spawn(async move {
            gw.request("GET", "localhost", "/up/v1/echo", &[("x-backend-delay-ms", "800")]).await.expect("request")
        }));
    }
    let mut overflow = 0;
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == 503 {
            let j = r.json();
            assert_eq!(j["code"], "102505", "{j}");
            assert_eq!(j["message"], "Upstream overflow");
            overflow += 1;
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(overflow >= 1, "six concurrent requests against one allowed request must overflow");
}
