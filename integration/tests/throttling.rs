//! Throttling through the real router and enforcer (in memory, one
//! enforcer): the API's tier (900800), else the resource's (900802), the
//! token's subscription (900804) and application (900803) tiers, with
//! Choreo Connect's bodies and `Retry-After` at the window's end, and the
//! backend never seeing a throttled request. Per-day tiers keep the test away
//! from window edges (midnight UTC). Issue 11 in progress: custom policies,
//! blocking conditions, conditional groups, burst control and Redis come next.

use integration::fixtures::pets_claims;
use integration::{Gateway, XdsMode, api_yaml};
use test_backend::Backend;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Pets, version: "1.0" }
paths:
  /pets:
    get:
      x-throttling-tier: 3PerDay
    post: {}
"#;

fn next_midnight() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    enforcer_core::ratelimit::http_date(now - now % 86_400 + 86_400)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_resource_tiers_throttle_with_choreo_connects_answers() {
    let b = Backend::start("b").await.expect("backend");
    // Pets: resource tier on GET /pets only. Stock: an API tier.
    let pets = api_yaml("Pets", "1.0", "/pets", &b.url());
    let stock = api_yaml("Stock", "1.0", "/stock", &b.url())
        .replace("  context:", "  apiThrottlingPolicy: 2PerDay\n  context:");
    assert!(stock.contains("apiThrottlingPolicy"), "{stock}");
    let stock_oas =
        OAS.replace("Pets", "Stock").replace("    get:\n      x-throttling-tier: 3PerDay\n", "    get: {}\n");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("pets", &[("api.yaml", pets.as_str()), ("Definitions/swagger.yaml", OAS)])
        .project("stock", &[("api.yaml", stock.as_str()), ("Definitions/swagger.yaml", &stock_oas)])
        .start()
        .await;
    let mut claims = pets_claims("throttle-1");
    claims["subscribedAPIs"].as_array_mut().expect("list").push(
        serde_json::json!({"name": "Stock", "version": "1.0", "context": "/stock/1.0", "subscriptionTier": "Unlimited"}),
    );
    let auth = format!("Bearer {}", gw.idp().idp.sign(&claims));
    let call = |method: &'static str, path: &'static str| {
        let (gw, auth) = (&gw, auth.clone());
        async move { gw.request(method, "localhost", path, &[("authorization", &auth)]).await.expect("request") }
    };

    // Resource level: GET /pets has 3 a day; POST /pets has no tier.
    for _ in 0..3 {
        assert_eq!(call("GET", "/pets/1.0/pets").await.status, 200);
    }
    let hits = b.hits();
    let r = call("GET", "/pets/1.0/pets").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"error_message":"Message throttled out","code":"900802","error_description":"You have exceeded your quota"}"#
    );
    assert_eq!(r.header("retry-after"), Some(next_midnight().as_str()));
    assert_eq!(b.hits(), hits, "the backend saw the throttled request");
    for _ in 0..5 {
        assert_eq!(call("POST", "/pets/1.0/pets").await.status, 200, "an operation without a tier is not counted");
    }

    // API level: 2 a day over all its resources.
    let first = call("GET", "/stock/1.0/pets").await;
    assert_eq!(first.status, 200, "{} {}", first.body, gw.artifacts_status().await);
    assert_eq!(call("POST", "/stock/1.0/pets").await.status, 200);
    let r = call("POST", "/stock/1.0/pets").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains(r#""code":"900800""#), "{}", r.body);
    assert_eq!(r.header("retry-after"), Some(next_midnight().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tier_is_refused_at_deploy_naming_file_and_field() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta).start().await;
    let api =
        api_yaml("Odd", "1.0", "/odd", &b.url()).replace("  context:", "  apiThrottlingPolicy: Platinum\n  context:");
    let zip = integration::zip_project("odd", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", OAS)]);
    let token = gw.mgmt_token().await;
    let r = gw.deploy_zip(zip, false, &format!("Bearer {token}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("data.apiThrottlingPolicy") && r.body.contains("unknown throttling tier \\\"Platinum\\\""),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_and_application_tiers_come_from_the_token() {
    let b = Backend::start("b").await.expect("backend");
    let pets = api_yaml("Pets", "1.0", "/pets", &b.url());
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("pets", &[("api.yaml", pets.as_str()), ("Definitions/swagger.yaml", OAS)])
        .start()
        .await;
    // Subscription tier 2PerDay for application 1.
    let mut sub = pets_claims("throttle-sub");
    sub["subscribedAPIs"][0]["subscriptionTier"] = "2PerDay".into();
    // Application tier 1PerDay for application 2 (its subscription unlimited).
    let mut app = pets_claims("throttle-app");
    app["application"] =
        serde_json::json!({"id": 2, "uuid": "app-2", "name": "Other", "owner": "alice", "tier": "1PerDay"});
    app["subscribedAPIs"][0]["subscriptionTier"] = "Unlimited".into();
    let post = |claims: serde_json::Value| {
        let auth = format!("Bearer {}", gw.idp().idp.sign(&claims));
        let gw = &gw;
        async move { gw.request("POST", "localhost", "/pets/1.0/pets", &[("authorization", &auth)]).await.expect("request") }
    };
    assert_eq!(post(sub.clone()).await.status, 200);
    assert_eq!(post(sub.clone()).await.status, 200);
    let r = post(sub.clone()).await;
    assert_eq!((r.status, r.header("retry-after")), (429, Some(next_midnight().as_str())), "{}", r.body);
    assert!(r.body.contains(r#""code":"900804""#), "{}", r.body);

    assert_eq!(post(app.clone()).await.status, 200, "another application has its own counters");
    let r = post(app).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains(r#""code":"900803""#), "{}", r.body);
}

/// Memory mode is exact: 2×L requests offered at once, exactly L admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_admits_exactly_the_limit_at_twice_the_offered_load() {
    let b = Backend::start("b").await.expect("backend");
    let api = api_yaml("Bulk", "1.0", "/bulk", &b.url())
        .replace("  context:", "  apiThrottlingPolicy: 150PerDay\n  context:");
    let oas = OAS.replace("Pets", "Bulk").replace("    get:\n      x-throttling-tier: 3PerDay\n", "    get: {}\n");
    let gw = std::sync::Arc::new(
        Gateway::builder(XdsMode::Delta)
            .with_enforcer()
            .project("bulk", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", &oas)])
            .start()
            .await,
    );
    let mut claims = pets_claims("bulk-1");
    claims["subscribedAPIs"] = serde_json::json!([{"name": "Bulk", "version": "1.0", "context": "/bulk/1.0", "subscriptionTier": "Unlimited"}]);
    let auth = format!("Bearer {}", gw.idp().idp.sign(&claims));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (gw, auth) = (std::sync::Arc::clone(&gw), auth.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..25 {
                    let r = gw.request("GET", "localhost", "/bulk/1.0/pets", &[("authorization", &auth)]).await;
                    codes.push(r.map(|r| r.status).unwrap_or(0));
                }
                codes
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.expect("task"));
    }
    let admitted = codes.iter().filter(|c| **c == 200).count();
    let throttled = codes.iter().filter(|c| **c == 429).count();
    assert_eq!((admitted, throttled), (150, 150), "300 offered at once");
    assert_eq!(b.hits(), 150, "the backend saw exactly the admitted requests");
}

/// An operation open to anyone still counts against its tier: its route
/// goes through the enforcer; an open operation without a tier does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsecured_operation_with_a_tier_is_counted() {
    let b = Backend::start("b").await.expect("backend");
    let oas = "openapi: 3.0.1\ninfo: { title: Open, version: \"1.0\" }\npaths:\n  /limited:\n    get:\n      x-wso2-disable-security: true\n      x-throttling-tier: 2PerDay\n  /free:\n    get:\n      x-wso2-disable-security: true\n";
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "open",
            &[("api.yaml", api_yaml("Open", "1.0", "/open", &b.url()).as_str()), ("Definitions/swagger.yaml", oas)],
        )
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(gw.request("GET", "localhost", "/open/1.0/limited", &[]).await.expect("request").status, 200);
    }
    let r = gw.request("GET", "localhost", "/open/1.0/limited", &[]).await.expect("request");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains(r#""code":"900802""#), "{}", r.body);
    // Without a tier: no enforcer hop (it keeps answering with the enforcer gone).
    let mut gw = gw;
    gw.kill_enforcer();
    for _ in 0..3 {
        assert_eq!(gw.request("GET", "localhost", "/open/1.0/free", &[]).await.expect("request").status, 200);
    }
    let r = gw.request("GET", "localhost", "/open/1.0/limited", &[]).await.expect("request");
    if gw.enforcer_in_module() {
        // Counted in the router itself (its module): the enforcer service is
        // not needed, and the quota is still spent.
        assert_eq!(r.status, 429, "{}", r.body);
    } else {
        assert_eq!(r.status, 500, "a counted route fails closed without the enforcer: {}", r.body);
    }
}
