//! The throttling catalogue and blocking conditions through the real
//! adapter, enforcer and router: policies in apictl's export format imported
//! over the management API (and from the artifacts folder), pushed to the
//! enforcer and counted there; conditional groups, burst control,
//! `stopOnQuotaReach`, custom key templates, rate-limit headers; blocking
//! conditions of each kind; everything kept across an adapter restart.
//! Per-day limits keep the tests away from window edges; the one per-minute
//! limit (burst control) starts away from a minute's end.

use std::time::Duration;

use integration::fixtures::{PETS_OAS, pets_claims};
use integration::{Gateway, XdsMode, api_yaml, zip_project};
use serde_json::{Value, json};
use test_backend::Backend;

const ADMIN: (&str, &str) = ("authorization", "Basic YWRtaW46YWRtaW4=");
const THROTTLED: &str =
    r#"{"error_message":"Message throttled out","code":"900802","error_description":"You have exceeded your quota"}"#;
const BLOCKED: &str = r#"{"error_message":"Message blocked","code":"900805","error_description":"You have been blocked from accessing the resource"}"#;

fn oas(tier: &str) -> String {
    format!(
        "openapi: 3.0.1\ninfo: {{ title: Pets, version: \"1.0\" }}\npaths:\n  /pets:\n    get:\n      x-throttling-tier: {tier}\n    post: {{}}\n"
    )
}

/// An advanced policy: 100 a day, 2 a day for requests with `X-Plan: free`.
const TIERED: &str = "type: throttling policy
subtype: advanced policy
version: v4.1.0
data:
  policyName: Tiered
  description: Free plans get less
  defaultLimit:
    type: REQUESTCOUNTLIMIT
    requestCount: {timeUnit: day, unitTime: 1, requestCount: 100}
  conditionalGroups:
  - description: free plan
    conditions:
    - type: HEADERCONDITION
      invertCondition: false
      headerCondition: {headerName: X-Plan, headerValue: ^free$}
    limit:
      type: REQUESTCOUNTLIMIT
      requestCount: {timeUnit: day, unitTime: 1, requestCount: 2}
";

fn subscription(name: &str, per_day: u64, stop: bool, burst_per_min: u64) -> String {
    format!(
        "type: throttling policy\nsubtype: subscription policy\ndata:\n  policyName: {name}\n  defaultLimit:\n    type: REQUESTCOUNTLIMIT\n    requestCount: {{timeUnit: day, unitTime: 1, requestCount: {per_day}}}\n  stopOnQuotaReach: {stop}\n  rateLimitCount: {burst_per_min}\n  rateLimitTimeUnit: min\n"
    )
}

async fn import(gw: &Gateway, body: &str, overwrite: bool) -> integration::Resp {
    let path = if overwrite { "/throttling/policies/import?overwrite=true" } else { "/throttling/policies/import" };
    gw.mgmt_raw("POST", path, &[ADMIN, ("content-type", "application/yaml")], body.as_bytes().to_vec()).await
}

/// Waits (bounded) until the enforcer lists `name` among its `kind` policies.
async fn enforcer_has(gw: &Gateway, kind: &str, name: &str) -> Value {
    let path = format!("/throttling_policies/{kind}?name={name}");
    integration::eventually(&format!("the enforcer to hold {kind} policy {name}"), || async {
        let r = gw.enforcer_https("GET", &path, &[ADMIN], "").await;
        if r.status == 200 && r.json()["count"] == 1 { Ok(r.json()["list"][0].clone()) } else { Err(r.body) }
    })
    .await
}

fn next_midnight() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    enforcer_core::ratelimit::http_date(now - now % 86_400 + 86_400)
}

fn secs_to_midnight() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    86_400 - now % 86_400
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_over_rest_are_listed_exported_protected_and_survive_a_restart() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = Gateway::builder(XdsMode::Delta).with_enforcer().start().await;
    let token = format!("Bearer {}", gw.mgmt_token().await);
    let project = zip_project(
        "pets",
        &[
            ("api.yaml", api_yaml("Pets", "1.0", "/pets", &b.url()).as_str()),
            ("Definitions/swagger.yaml", &oas("Tiered")),
        ],
    );

    // A project naming a policy not deployed yet is refused.
    let r = gw.deploy_zip(project.clone(), false, &token).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("x-throttling-tier") && r.body.contains("Tiered"), "{}", r.body);

    let r = import(&gw, TIERED, false).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["message"], "Successfully imported Advanced Throttling Policy : Tiered");
    let r = import(&gw, TIERED, false).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["description"], "Advanced Policy with name Tiered already exists");
    assert_eq!(import(&gw, TIERED, true).await.status, 200, "overwrite");
    // Bad input names the field and changes nothing.
    let r = import(&gw, &TIERED.replace("requestCount: 2}", "requestCount: -2}"), true).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("data.conditionalGroups[0].limit.requestCount.requestCount"), "{}", r.body);

    let r = gw.deploy_zip(project, false, &token).await;
    assert_eq!(r.status, 200, "the policy is known now: {}", r.body);

    // Listed with API Manager's defaults, exported in apictl's format.
    let r = gw.mgmt_as("GET", "/throttling/policies/search?query=type:advanced", Some(&token), None).await;
    let names: Vec<String> = r.json()["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["policyName"].as_str().unwrap_or("").into())
        .collect();
    assert_eq!(names, ["10KPerMin", "20KPerMin", "50KPerMin", "Tiered", "Unlimited"]);
    let r = gw.mgmt_as("GET", "/throttling/policies/export?name=tiered&type=advanced", Some(&token), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!((doc["type"].as_str(), doc["subtype"].as_str()), (Some("throttling policy"), Some("advanced policy")));
    assert_eq!(doc["data"]["conditionalGroups"][0]["conditions"][0]["headerCondition"]["headerName"], "X-Plan");
    let r = gw.mgmt_as("GET", "/throttling/policies/export?name=Gold&type=sub", Some(&token), None).await;
    assert_eq!(r.json()["data"]["defaultLimit"]["requestCount"]["requestCount"], 5000, "built-in: {}", r.body);

    // The enforcer holds the catalogue (no more empty lists).
    let p = enforcer_has(&gw, "advanced", "Tiered").await;
    assert_eq!(p["conditionalGroups"][0]["limit"], json!({"requestCount": 2, "windowSeconds": 86_400}));
    assert_eq!(enforcer_has(&gw, "subscription", "Gold").await["stopOnQuotaReach"], true);

    // In use: refused; built-in: refused; unknown: 404.
    let r = gw.mgmt_as("DELETE", "/throttling/policies/advanced/Tiered", Some(&token), None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["description"].as_str().unwrap_or("").contains("API Pets 1.0"), "{}", r.body);
    assert_eq!(gw.mgmt_as("DELETE", "/throttling/policies/sub/Gold", Some(&token), None).await.status, 409);
    assert_eq!(gw.mgmt_as("DELETE", "/throttling/policies/app/Nope", Some(&token), None).await.status, 404);

    // A blocking condition too, then a restart: both are still there.
    let r = gw
        .mgmt_as(
            "POST",
            "/throttling/deny-policies",
            Some(&token),
            Some(json!({"conditionType": "USER", "conditionValue": "mallory", "conditionStatus": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["conditionId"].as_str().expect("id").to_string();
    gw.kill_adapter();
    gw.start_adapter().await;
    let token = format!("Bearer {}", gw.mgmt_token().await);
    let r = gw.mgmt_as("GET", "/throttling/policies/export?name=Tiered", Some(&token), None).await;
    assert_eq!(r.status, 200, "the policy survived the restart: {}", r.body);
    let r = gw.mgmt_as("GET", "/throttling/deny-policies", Some(&token), None).await;
    assert_eq!(r.json()["list"][0]["conditionId"], id.as_str(), "{}", r.body);
    assert_eq!(r.json()["list"][0]["conditionValue"], "mallory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_groups_count_apart_and_rate_limit_headers_report_the_tightest_quota() {
    let b = Backend::start("b").await.expect("backend");
    // From the artifacts folder: the policy is there before the project that names it.
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config("[enforcer.throttling]\nenableHeaderConditions = true\n[enforcer.throttling.headers]\nxRateLimit = true\nietf = true\n")
        .project("pets", &[("api.yaml", api_yaml("Pets", "1.0", "/pets", &b.url()).as_str()), ("Definitions/swagger.yaml", &oas("Tiered"))])
        .policy_file("Advanced-Tiered.yaml", TIERED)
        .start()
        .await;
    enforcer_has(&gw, "advanced", "Tiered").await;
    let mut claims = pets_claims("groups-1");
    claims["subscribedAPIs"][0]["subscriptionTier"] = "Unlimited".into();
    let auth = format!("Bearer {}", gw.idp().idp.sign(&claims));
    let get = |plan: Option<&'static str>| {
        let (gw, auth) = (&gw, auth.clone());
        async move {
            let mut h = vec![("authorization", auth.as_str())];
            if let Some(p) = plan {
                h.push(("x-plan", p));
            }
            gw.request("GET", "localhost", "/pets/1.0/pets", &h).await.expect("request")
        }
    };
    let r = get(Some("free")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reset = secs_to_midnight();
    assert_eq!(r.header("x-ratelimit-limit"), Some(r#"2, 2;w=86400;name="Tiered""#));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    let t: u64 = r.header("x-ratelimit-reset").and_then(|v| v.parse().ok()).expect("reset seconds");
    assert!(t.abs_diff(reset) <= 2, "reset {t} vs {reset}");
    assert_eq!(r.header("ratelimit-policy"), Some(r#""Tiered";q=2;w=86400"#));
    assert!(r.header("ratelimit").is_some_and(|v| v.starts_with(r#""Tiered";r=1;t="#)), "{:?}", r.headers);
    assert_eq!(get(Some("free")).await.status, 200);
    let hits = b.hits();
    let r = get(Some("free")).await;
    assert_eq!((r.status, r.body.as_str()), (429, THROTTLED));
    assert_eq!(r.header("retry-after"), Some(next_midnight().as_str()));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(b.hits(), hits, "the backend never saw it");
    // Other plans use the default limit, counted apart.
    let r = get(Some("gold")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("99"));
    assert_eq!(get(None).await.header("x-ratelimit-remaining"), Some("98"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_control_count_only_quotas_and_custom_key_templates() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config("[analytics]\nenabled = true\n[analytics.adapter]\nbufferFlushInterval = \"100ms\"\n[analytics.enforcer.configProperties]\nsink = \"{dir}/analytics.jsonl\"\n")
        .project(
            "pets",
            &[
                ("api.yaml", api_yaml("Pets", "1.0", "/pets", &b.url()).as_str()),
                ("Definitions/swagger.yaml", PETS_OAS),
            ],
        )
        .start()
        .await;
    for doc in [
        subscription("Spiky", 1000, true, 2),
        subscription("Counted", 1, false, 0),
        "type: throttling policy\nsubtype: custom rule\ndata:\n  policyName: PerUser\n  keyTemplate: $userId:$apiContext\n  defaultLimit:\n    type: REQUESTCOUNTLIMIT\n    requestCount: {timeUnit: day, unitTime: 1, requestCount: 4}\n".to_string(),
    ] {
        let r = import(&gw, &doc, false).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    enforcer_has(&gw, "custom", "PerUser").await;
    enforcer_has(&gw, "subscription", "Spiky").await;
    let call = |tier: &'static str, jti: &'static str, sub: &'static str| {
        let mut claims = pets_claims(jti);
        claims["sub"] = sub.into();
        claims["subscribedAPIs"][0]["subscriptionTier"] = tier.into();
        let auth = format!("Bearer {}", gw.idp().idp.sign(&claims));
        let gw = &gw;
        async move { gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", &auth)]).await.expect("request") }
    };

    // stopOnQuotaReach false: a quota of 1 a day is counted, not enforced,
    // and analytics says which requests went past it.
    for _ in 0..3 {
        assert_eq!(call("Counted", "count-1", "carol").await.status, 200);
    }
    let path = gw.dir.path().join("analytics.jsonl");
    let flags: Vec<bool> = integration::eventually("three analytics events", || async {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let evs: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &Value| e["userName"] == "carol")
            .collect();
        if evs.len() >= 3 {
            Ok(evs.iter().map(|e| e["subscriptionQuotaExceeded"] == true).collect())
        } else {
            Err(text)
        }
    })
    .await;
    assert_eq!(flags, [false, true, true]);

    // Burst control: 2 a minute on top of 1000 a day; start away from a minute's end.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    if now % 60 > 50 {
        tokio::time::sleep(Duration::from_secs(61 - now % 60)).await;
    }
    assert_eq!(call("Spiky", "burst-1", "dave").await.status, 200);
    assert_eq!(call("Spiky", "burst-1", "dave").await.status, 200);
    let r = call("Spiky", "burst-1", "dave").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains(r#""code":"900804""#), "burst control answers with the subscription code: {}", r.body);
    let minute_end = {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        enforcer_core::ratelimit::http_date(n - n % 60 + 60)
    };
    assert_eq!(r.header("retry-after"), Some(minute_end.as_str()));

    // Custom template $userId:$apiContext, 4 a day: dave spent 2 (the burst-throttled request consumed nothing).
    assert_eq!(call("Unlimited", "custom-1", "dave").await.status, 200);
    assert_eq!(call("Unlimited", "custom-1", "dave").await.status, 200);
    let r = call("Unlimited", "custom-1", "dave").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"error_message":"Message throttled out","code":"900806","error_description":"You have exceeded your quota"}"#
    );
    assert_eq!(call("Unlimited", "custom-2", "erin").await.status, 200, "another user has their own counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_conditions_of_each_kind_answer_403_and_can_be_lifted() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "pets",
            &[
                ("api.yaml", api_yaml("Pets", "1.0", "/pets", &b.url()).as_str()),
                ("Definitions/swagger.yaml", PETS_OAS),
            ],
        )
        .start()
        .await;
    let token = format!("Bearer {}", gw.mgmt_token().await);
    let auth = format!("Bearer {}", gw.idp().idp.sign(&pets_claims("block-1")));
    let get = || async {
        gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", &auth)]).await.expect("request")
    };
    assert_eq!(get().await.status, 200);
    // Waits (bounded) for the enforcer to apply a change: the status it should now answer.
    let until = |status: u16| async move {
        for _ in 0..100 {
            let r = get().await;
            if r.status == status {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never answered {status}");
    };
    for (kind, value) in [
        ("IP", json!({"fixedIp": "127.0.0.1", "invert": false})),
        ("IPRANGE", json!({"startingIp": "10.0.0.0", "endingIp": "10.0.0.255", "invert": true})),
        ("API", json!("/pets/1.0")),
        ("APPLICATION", json!("alice:PetApp")),
        ("USER", json!("alice@carbon.super")),
        ("SUBSCRIPTION", json!("/pets/1.0:1.0:alice-PetApp:PRODUCTION")),
    ] {
        let r = gw
            .mgmt_as(
                "POST",
                "/throttling/deny-policies",
                Some(&token),
                Some(json!({"conditionType": kind, "conditionValue": value, "conditionStatus": true})),
            )
            .await;
        assert_eq!(r.status, 201, "{kind}: {}", r.body);
        let id = r.json()["conditionId"].as_str().expect("id").to_string();
        until(403).await;
        let hits = b.hits();
        let blocked = get().await;
        assert_eq!((blocked.status, blocked.body.as_str()), (403, BLOCKED), "{kind}");
        assert_eq!(blocked.header("retry-after"), None, "no Retry-After on a block");
        assert_eq!(b.hits(), hits, "{kind}: the backend saw a blocked request");
        // Off, then on, then removed.
        let r = gw
            .mgmt_as(
                "PATCH",
                &format!("/throttling/deny-policies/{id}"),
                Some(&token),
                Some(json!({"conditionStatus": false})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        until(200).await;
        gw.mgmt_as(
            "PATCH",
            &format!("/throttling/deny-policies/{id}"),
            Some(&token),
            Some(json!({"conditionStatus": true})),
        )
        .await;
        until(403).await;
        assert_eq!(
            gw.mgmt_as("DELETE", &format!("/throttling/deny-policies/{id}"), Some(&token), None).await.status,
            200
        );
        until(200).await;
    }
    // Another user, another IP range: not blocked.
    for (kind, value) in
        [("USER", json!("mallory")), ("IPRANGE", json!({"startingIp": "10.0.0.0", "endingIp": "10.0.0.255"}))]
    {
        let r = gw
            .mgmt_as(
                "POST",
                "/throttling/deny-policies",
                Some(&token),
                Some(json!({"conditionType": kind, "conditionValue": value})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let listed = enforcer_blocking(&gw, 2).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(get().await.status, 200);
    // Bad input names the field.
    let r = gw
        .mgmt_as(
            "POST",
            "/throttling/deny-policies",
            Some(&token),
            Some(json!({"conditionType": "IP", "conditionValue": {"fixedIp": "300.1.1.1"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("conditionValue.fixedIp"), "{}", r.body);
}

/// The enforcer's blocking conditions once it holds `n`.
async fn enforcer_blocking(gw: &Gateway, n: usize) -> Vec<Value> {
    integration::eventually(&format!("the enforcer to hold {n} blocking conditions"), || async {
        let r = gw.enforcer_https("GET", "/blocking_conditions", &[ADMIN], "").await;
        if r.status == 200 && r.json()["count"] == n {
            Ok(r.json()["list"].as_array().cloned().unwrap_or_default())
        } else {
            Err(r.body)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_file_is_reported_and_its_previous_version_stays() {
    let b = Backend::start("b").await.expect("backend");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project(
            "pets",
            &[
                ("api.yaml", api_yaml("Pets", "1.0", "/pets", &b.url()).as_str()),
                ("Definitions/swagger.yaml", PETS_OAS),
            ],
        )
        .policy_file(
            "App-Small.yaml",
            &subscription("Small", 5, true, 0).replace("subscription policy", "application policy"),
        )
        .start()
        .await;
    assert_eq!(enforcer_has(&gw, "application", "Small").await["defaultLimit"]["requestCount"], 5);
    // A broken edit: refused, reported, the previous version stays in force.
    gw.write_policy_file("App-Small.yaml", "type: throttling policy\nsubtype: application policy\ndata:\n  policyName: Small\n  defaultLimit:\n    requestCount: {timeUnit: fortnight, unitTime: 1, requestCount: 5}\n");
    let status = integration::eventually("the refusal in /artifacts", || async {
        let s = gw.artifacts_status().await;
        if s["entries"]["throttling-policies/App-Small.yaml"]["state"] == "refused" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let problems = status["entries"]["throttling-policies/App-Small.yaml"]["problems"].to_string();
    assert!(
        problems.contains("data.defaultLimit.requestCount.timeUnit") && problems.contains("fortnight"),
        "{problems}"
    );
    assert_eq!(enforcer_has(&gw, "application", "Small").await["defaultLimit"]["requestCount"], 5);
    // Fixed: the new limit reaches the enforcer; removed: gone.
    gw.write_policy_file(
        "App-Small.yaml",
        &subscription("Small", 7, true, 0).replace("subscription policy", "application policy"),
    );
    integration::eventually("the new limit at the enforcer", || async {
        let p = enforcer_has(&gw, "application", "Small").await;
        if p["defaultLimit"]["requestCount"] == 7 { Ok(()) } else { Err(p.to_string()) }
    })
    .await;
    std::fs::remove_file(gw.dir.path().join("artifacts/throttling-policies/App-Small.yaml")).expect("remove");
    integration::eventually("the policy gone from the enforcer", || async {
        let r = gw.enforcer_https("GET", "/throttling_policies/application?name=Small", &[ADMIN], "").await;
        if r.json()["count"] == 0 { Ok(()) } else { Err(r.body) }
    })
    .await;
}
