//! Shared throttling through a real `redis-server` (started on an ephemeral
//! port; `.ci/run` installs it): quota leases across enforcer replicas behind
//! one Envoy, Redis killed and restarted mid-run, and the failure modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use integration::fixtures::{PETS_OAS, pets_claims};
use integration::{Gateway, RedisServer, XdsMode, api_yaml, eventually, free_port};
use parking_lot::Mutex;
use test_backend::Backend;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}

fn redis_config(url: &str, replicas: u32, failure_mode: &str, timeout_ms: u64) -> String {
    format!(
        "[enforcer.throttling]\nbackend = \"redis\"\nreplicas = {replicas}\nfailureMode = \"{failure_mode}\"\n\
         [enforcer.throttling.redis]\nurl = \"{url}\"\ntimeoutMillis = {timeout_ms}\n"
    )
}

/// 600 requests per 5-second window.
const SHARED: &str = "type: throttling policy
subtype: advanced policy
data:
  policyName: Shared
  defaultLimit:
    type: REQUESTCOUNTLIMIT
    requestCount: {timeUnit: sec, unitTime: 5, requestCount: 600}
";
const LIMIT: u64 = 600;
const WINDOW_MS: u64 = 5000;

fn token(gw: &Gateway, context: &str, name: &str) -> String {
    let mut claims = pets_claims("shared-1");
    claims["subscribedAPIs"] =
        serde_json::json!([{"name": name, "version": "1.0", "context": context, "subscriptionTier": "Unlimited"}]);
    format!("Bearer {}", gw.idp().idp.sign(&claims))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

async fn metrics_at(gw: &Gateway, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    gw.client().get(url).send().await.expect("metrics").text().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharing_redis_admit_between_98_percent_and_the_limit_in_every_window() {
    let b = Backend::start("b").await.expect("backend");
    let logs = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start(logs.path()).await;
    let api = api_yaml("Shared", "1.0", "/shared", &b.url())
        .replace("  context:", "  apiThrottlingPolicy: Shared\n  context:");
    let oas = PETS_OAS.replace("title: Pets", "title: Shared");
    let mut gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config(&redis_config(&redis.url(), 3, "local", 50))
        .policy_file("Advanced-Shared.yaml", SHARED)
        .project("shared", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", &oas)])
        .manual()
        .start()
        .await;
    gw.start_adapter().await;
    gw.start_enforcer().await;
    // Three deciders: the enforcer and two replicas behind one router, or,
    // with the enforcer in the router (its module), three routers sharing
    // the listener's port (SO_REUSEPORT spreads the connections).
    let module = gw.enforcer_in_module();
    let replicas: Vec<[u16; 4]> = if module {
        Vec::new()
    } else {
        (0..2).map(|_| [free_port(), free_port(), free_port(), free_port()]).collect()
    };
    gw.extra_enforcer_ports = replicas.iter().map(|p| p[0]).collect();
    let _procs: Vec<integration::Proc> =
        replicas.iter().enumerate().map(|(i, p)| gw.enforcer_process(&format!("replica-{i}"), *p)).collect();
    // Each enforcer holds the policy (its throttling data arrived).
    for port in std::iter::once(gw.ports.enforcer_https).chain(replicas.iter().map(|p| p[2])) {
        let client = gw.client().clone();
        eventually("an enforcer to hold the Shared policy", || {
            let client = client.clone();
            async move {
                let r = client
                    .get(format!("https://localhost:{port}/throttling_policies/advanced?name=Shared"))
                    .basic_auth("admin", Some("admin"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let body = r.text().await.unwrap_or_default();
                if body.contains("\"count\":1") { Ok(()) } else { Err(body) }
            }
        })
        .await;
    }
    gw.start_envoy().await;
    let mut metric_ports: Vec<u16> = replicas.iter().map(|p| p[3]).collect();
    if module {
        for i in 0..2 {
            let hostname = format!("replica-{i}");
            let admin = gw.add_envoy("Default", &hostname).await;
            gw.wait_module_synced(&format!("{hostname}-module")).await;
            eventually("the replica router's routes", || async {
                let n = gw.route_names_at(&admin).await;
                if n.iter().any(|r| r.contains("Shared")) { Ok(()) } else { Err(format!("{n:?}")) }
            })
            .await;
        }
        metric_ports.clone_from(&gw.extra_module_metrics);
    }
    let auth = token(&gw, "/shared/1.0", "Shared");
    let first = gw.request("GET", "localhost", "/shared/1.0/pets", &[("authorization", &auth)]).await.expect("request");
    assert_eq!(first.status, 200, "{}", first.body);

    // Start at a window's start; offer about 2× the limit for 4 windows,
    // never within 150 ms of a window's edge (so each request's window is
    // the one it was sent in).
    let start = (now_ms() / WINDOW_MS + 1) * WINDOW_MS;
    tokio::time::sleep(Duration::from_millis(start - now_ms())).await;
    let end = start + 4 * WINDOW_MS;
    let gw = Arc::new(gw);
    let results: Arc<Mutex<Vec<(u64, u16)>>> = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (gw, auth, results) = (Arc::clone(&gw), auth.clone(), Arc::clone(&results));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(36));
                loop {
                    tick.tick().await;
                    let t = now_ms();
                    if t >= end {
                        return;
                    }
                    let into = t % WINDOW_MS;
                    if !(150..WINDOW_MS - 150).contains(&into) {
                        continue;
                    }
                    let r = gw.request("GET", "localhost", "/shared/1.0/pets", &[("authorization", &auth)]).await;
                    results.lock().push((t / WINDOW_MS, r.map(|r| r.status).unwrap_or(0)));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("load task");
    }
    let results = results.lock().clone();
    let mut report = Vec::new();
    for w in start / WINDOW_MS..end / WINDOW_MS {
        let in_window: Vec<u16> = results.iter().filter(|(x, _)| *x == w).map(|(_, s)| *s).collect();
        let admitted = in_window.iter().filter(|s| **s == 200).count() as u64;
        let throttled = in_window.iter().filter(|s| **s == 429).count();
        let failed = in_window.len() - admitted as usize - throttled;
        report.push(format!("window {w}: offered {}, admitted {admitted}, throttled {throttled}", in_window.len()));
        assert_eq!(failed, 0, "{report:?}");
        assert!(in_window.len() as u64 > LIMIT + LIMIT / 2, "not enough load offered to test the limit: {report:?}");
        assert!(admitted <= LIMIT, "over the limit: {report:?}");
        assert!(admitted * 100 >= LIMIT * 98, "more than 2 % under the limit: {report:?}");
    }
    // Every replica counted through Redis; about one store call per lease.
    let mut calls = 0.0;
    let mut admitted = 0.0;
    for port in std::iter::once(gw.decision_metrics_port()).chain(metric_ports) {
        let text = metrics_at(&gw, port).await;
        let c = metric(&text, "enforcer_throttle_store_calls_total");
        assert!(c > 0.0, "a replica never used Redis:\n{text}");
        calls += c;
        admitted += metric(&text, "enforcer_throttle_admitted_shared_total");
    }
    let lease = (0.02 * LIMIT as f64 / 3.0).floor().max(1.0);
    println!("{}\nRedis calls per admitted request: {:.3} (lease {lease})", report.join("\n"), calls / admitted);
    assert!(calls / admitted <= 1.5 / lease, "{calls} calls for {admitted} admitted");
    assert!(redis.cli(&["KEYS", "cc:rl:/shared/1.0:1.0:*"]).contains("cc:rl:/shared/1.0:1.0:"), "counters in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run_fails_no_request_and_shared_counting_resumes() {
    let b = Backend::start("b").await.expect("backend");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut redis = RedisServer::start(logs.path()).await;
    let api =
        api_yaml("Fail", "1.0", "/fail", &b.url()).replace("  context:", "  apiThrottlingPolicy: 40PerDay\n  context:");
    let oas = PETS_OAS.replace("title: Pets", "title: Fail");
    let gw = Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .config(&redis_config(&redis.url(), 2, "local", 50))
        .project("fail", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", &oas)])
        .start()
        .await;
    let auth = token(&gw, "/fail/1.0", "Fail");
    let get = || async {
        let t = Instant::now();
        let r = gw.request("GET", "localhost", "/fail/1.0/pets", &[("authorization", &auth)]).await.expect("request");
        (r.status, t.elapsed())
    };
    let key = |redis: &RedisServer| {
        let keys = redis.cli(&["KEYS", "cc:rl:/fail/1.0:1.0:*"]);
        keys.lines().next().map(str::trim).filter(|k| !k.is_empty()).map(str::to_string)
    };
    for _ in 0..10 {
        assert_eq!(get().await.0, 200);
    }
    let k = key(&redis).expect("the counter is in Redis");
    assert_eq!(redis.cli(&["GET", &k]).trim(), "10", "one lease of 1 per request (40 ÷ 2 replicas × 2 %)");

    // Redis gone: every request answered at once, counted locally with 40 ÷ 2.
    redis.kill();
    let mut admitted = 0;
    for i in 0..25 {
        let (status, took) = get().await;
        assert!(status == 200 || status == 429, "request {i}: {status}");
        assert!(took < Duration::from_secs(1), "request {i} waited {took:?}");
        admitted += usize::from(status == 200);
    }
    assert_eq!(admitted, 20, "the local limit (limit ÷ replicas) applies at once");
    let metrics = metrics_at(&gw, gw.decision_metrics_port()).await;
    assert_eq!(metric(&metrics, "enforcer_throttle_degraded"), 1.0, "{metrics}");
    assert!(metric(&metrics, "enforcer_throttle_store_errors_total") >= 1.0, "{metrics}");

    // Back (empty): shared counting resumes within 5 s.
    redis.restart().await;
    let back = Instant::now();
    let resumed = Arc::new(AtomicBool::new(false));
    while back.elapsed() < Duration::from_secs(5) && !resumed.load(Ordering::Relaxed) {
        let (status, took) = get().await;
        assert!(status == 200 || status == 429, "{status}");
        assert!(took < Duration::from_secs(1), "waited {took:?}");
        if key(&redis).is_some() {
            resumed.store(true, Ordering::Relaxed);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(resumed.load(Ordering::Relaxed), "no counter in Redis 5 s after it came back");
    let metrics = metrics_at(&gw, gw.decision_metrics_port()).await;
    assert_eq!(metric(&metrics, "enforcer_throttle_degraded"), 0.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_closed_refuses_with_503_and_open_admits() {
    let b = Backend::start("b").await.expect("backend");
    let api =
        api_yaml("Fail", "1.0", "/fail", &b.url()).replace("  context:", "  apiThrottlingPolicy: 40PerDay\n  context:");
    let oas = PETS_OAS.replace("title: Pets", "title: Fail");
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    for (mode, status) in [("closed", 503), ("open", 200)] {
        let gw = Gateway::builder(XdsMode::Delta)
            .with_enforcer()
            .config(&redis_config(&nowhere, 1, mode, 50))
            .project("fail", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", &oas)])
            .start()
            .await;
        let auth = token(&gw, "/fail/1.0", "Fail");
        for _ in 0..3 {
            let r =
                gw.request("GET", "localhost", "/fail/1.0/pets", &[("authorization", &auth)]).await.expect("request");
            assert_eq!(r.status, status, "{mode}: {}", r.body);
            if mode == "closed" {
                assert_eq!(
                    r.body,
                    r#"{"error_message":"Service Unavailable","code":"900808","error_description":"Rate limits cannot be checked: the shared counter store is unreachable"}"#
                );
            }
        }
    }
}
