//! Operating the gateway: Prometheus metrics of the adapter, the enforcer
//! and the router, and stopping without failing requests (the enforcer's
//! drain with two replicas behind one router; the router's container
//! entrypoint draining on SIGTERM).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use integration::fixtures::pets_claims;
use integration::{Gateway, Proc, XdsMode, api_yaml, envoy_bin, eventually, free_port, workspace_root};
use serde_json::json;
use test_backend::Backend;

const OAS: &str = r#"
openapi: 3.0.1
info: { title: Pets, version: "1.0" }
paths:
  /pets:
    get: {}
  /open:
    get:
      x-auth-type: None
"#;

async fn gateway(b: &Backend) -> integration::GatewayBuilder {
    let api = api_yaml("Pets", "1.0", "/pets", &b.url());
    Gateway::builder(XdsMode::Delta)
        .with_enforcer()
        .project("pets", &[("api.yaml", api.as_str()), ("Definitions/swagger.yaml", OAS)])
}

fn token(gw: &Gateway) -> String {
    gw.idp().idp.sign(&pets_claims("ops-1"))
}

async fn status(gw: &Gateway, path: &str, token: Option<&str>) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    gw.request("GET", "localhost", path, &headers).await.map(|r| r.status).unwrap_or(0)
}

async fn get(gw: &Gateway, port: u16, path: &str) -> (u16, String, String) {
    let r = gw.client().get(format!("http://127.0.0.1:{port}{path}")).send().await.expect("scrape");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), ct, r.text().await.expect("body"))
}

/// Samples of a Prometheus text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(s: &BTreeMap<String, f64>, key: &str, text: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_enforcer_and_router_serve_prometheus_metrics() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b).await.start().await;
    let t = token(&gw);
    assert_eq!(status(&gw, "/pets/1.0/open", None).await, 200);
    assert_eq!(status(&gw, "/pets/1.0/pets", None).await, 401);
    assert_eq!(status(&gw, "/pets/1.0/pets", None).await, 401);
    assert_eq!(status(&gw, "/pets/1.0/pets", Some(&t)).await, 200);
    assert_eq!(status(&gw, "/pets/1.0/pets", Some(&t)).await, 200);
    // A refused deploy is counted by result.
    let r = gw.mgmt_raw("POST", "/apis", &[("authorization", "Basic bm86bm8=")], Vec::new()).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // The adapter (CC's port 19085 in production; a free port here).
    let (code, ct, text) = get(&gw, gw.ports.adapter_metrics, "/metrics").await;
    assert_eq!(code, 200, "{text}");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let s = samples(&text);
    assert_eq!(value(&s, "adapter_apis_deployed{label=\"Default\"}", &text), 1.0);
    assert_eq!(value(&s, "adapter_xds_clients{kind=\"router\"}", &text), 1.0);
    // With the enforcer in the router, its module is the second enforcer
    // client (`<router>-module`).
    let enforcers = if gw.enforcer_in_module() { 2.0 } else { 1.0 };
    assert_eq!(value(&s, "adapter_xds_clients{kind=\"enforcer\"}", &text), enforcers);
    for ty in ["cds", "lds", "rds"] {
        assert!(value(&s, &format!("adapter_xds_responses_total{{kind=\"router\",type=\"{ty}\"}}"), &text) >= 1.0);
    }
    assert!(value(&s, "adapter_xds_responses_total{kind=\"enforcer\",type=\"apis\"}", &text) >= 1.0);
    assert!(value(&s, "adapter_xds_push_to_ack_seconds_count{kind=\"router\"}", &text) >= 1.0);
    assert!(value(&s, "adapter_xds_push_to_ack_seconds_count{kind=\"enforcer\"}", &text) >= 1.0);
    assert!(value(&s, "adapter_snapshot_build_seconds_count", &text) >= 1.0);
    assert_eq!(value(&s, "adapter_deploy_requests_total{result=\"unauthorized\"}", &text), 1.0);

    // The enforcer: one sample per decision and error code (the public
    // resource is not checked: its route has ext_authz off). With the
    // enforcer in the router, its module counts them on its own port.
    let (code, _, text) = get(&gw, gw.decision_metrics_port(), "/metrics").await;
    assert_eq!(code, 200, "{text}");
    let s = samples(&text);
    assert_eq!(value(&s, "enforcer_checks_total{decision=\"deny\",code=\"900901\"}", &text), 2.0);
    assert_eq!(value(&s, "enforcer_checks_total{decision=\"allow\",code=\"\"}", &text), 2.0);
    assert_eq!(value(&s, "enforcer_check_duration_seconds_count", &text), 4.0);
    assert_eq!(value(&s, "enforcer_token_cache_hits_total", &text), 1.0, "the second call of the token");
    assert_eq!(value(&s, "enforcer_token_cache_misses_total", &text), 1.0);
    assert_eq!(value(&s, "enforcer_analytics_events_dropped_total", &text), 0.0);
    assert!(value(&s, "enforcer_jwks_fetches_total{result=\"success\"}", &text) >= 1.0);

    // The router: Envoy's stats and readiness on the stats listener; the
    // admin API is on loopback only (its address in the bootstrap).
    let (code, _, text) = get(&gw, gw.ports.router_stats, "/stats/prometheus").await;
    assert_eq!(code, 200);
    assert!(text.contains("envoy_cluster_upstream_rq_completed{envoy_cluster_name=\"ext-authz\"}"), "{text}");
    assert_eq!(get(&gw, gw.ports.router_stats, "/ready").await.0, 200);
    assert_eq!(get(&gw, gw.ports.router_stats, "/config_dump").await.0, 404, "only stats and /ready");
    let dump = gw.config_dump(None).await["configs"][0].to_string();
    assert!(dump.contains(&format!("\"address\":\"127.0.0.1\",\"port_value\":{}", gw.ports.router_admin)), "{dump}");
}

/// Requests sent by `workers` tasks until `stop`: (sent, failed, first failures).
async fn load(gw: Arc<Gateway>, token: String, workers: usize, stop: Arc<AtomicBool>) -> (u64, u64, Vec<String>) {
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (gw, token, stop) = (Arc::clone(&gw), token.clone(), Arc::clone(&stop));
        let (sent, failed, seen) = (Arc::clone(&sent), Arc::clone(&failed), Arc::clone(&seen));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let auth = format!("Bearer {token}");
                let r = gw.request("GET", "localhost", "/pets/1.0/pets", &[("authorization", &auth)]).await;
                sent.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(r) if r.status == 200 => {}
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let mut s = seen.lock();
                        if s.len() < 5 {
                            s.push(format!("{:?}", other.map(|r| (r.status, r.body))));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    let seen = seen.lock().clone();
    (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed), seen)
}

async fn enforcer_health_port_up(port: u16) {
    eventually("the enforcer replica to listen", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforcer_replica_restarted_under_load_fails_no_request() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = gateway(&b).await.manual().start().await;
    if gw.enforcer_in_module() {
        // The enforcer's replicas are not on the request path: the routers
        // decide (the module's restart is the router's, operations drains it).
        eprintln!("SKIPPED in module mode: no enforcer replica decides requests");
        return;
    }
    gw.start_adapter().await;
    gw.start_enforcer().await;
    let replica_ports = [free_port(), free_port(), free_port(), free_port()];
    gw.extra_enforcer_ports = vec![replica_ports[0]];
    let mut replica = gw.enforcer_process("replica", replica_ports);
    enforcer_health_port_up(replica_ports[0]).await;
    gw.start_envoy().await;
    let t = token(&gw);
    assert_eq!(status(&gw, "/pets/1.0/pets", Some(&t)).await, 200);

    let gw = Arc::new(gw);
    let stop = Arc::new(AtomicBool::new(false));
    let load_task = tokio::spawn(load(Arc::clone(&gw), t.clone(), 4, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGTERM: NOT_SERVING, the router moves to the other enforcer, the
    // replica exits once its checks stop.
    replica.terminate();
    let code = replica.wait_exit().await;
    assert_eq!(code, Some(0), "{}", replica.log());
    let log = replica.log();
    assert!(log.contains("draining: health NOT_SERVING"), "{log}");
    // Started again on the same ports: taken back once healthy.
    let mut replica = gw.enforcer_process("replica", replica_ports);
    enforcer_health_port_up(replica_ports[0]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failed, seen) = load_task.await.expect("load");
    assert!(sent > 100, "only {sent} requests sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed: {seen:?}");
    // Both enforcers decided while the load ran.
    let (_, _, text) = get(&gw, replica_ports[3], "/metrics").await;
    assert!(
        samples(&text).get("enforcer_checks_total{decision=\"allow\",code=\"\"}").is_some_and(|n| *n >= 1.0),
        "the restarted replica took no checks:\n{text}"
    );
    replica.kill();
}

/// The router's container entrypoint (docker/router/docker-entrypoint.sh),
/// run here with the PyPI Envoy: on SIGTERM /ready fails at once, requests
/// in flight complete, and Envoy exits once its connections are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_entrypoint_drains_on_sigterm() {
    let b = Backend::start("b").await.expect("backend");
    let mut gw = gateway(&b).await.without_envoy().start().await;
    let _ = &mut gw;
    let home = gw.dir.path().join("router-home");
    std::fs::create_dir_all(&home).expect("router home");
    let root = workspace_root();
    std::fs::copy(root.join("envoy/bootstrap.yaml"), home.join("envoy.yaml.template")).expect("template");
    std::fs::copy(root.join("scripts/render-bootstrap.sh"), home.join("render-bootstrap.sh")).expect("render script");
    let (admin, stats) = (gw.ports.router_admin, gw.ports.router_stats);
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("docker/router/docker-entrypoint.sh"))
        .envs(gw.bootstrap_vars("Default", "drain-router", admin, stats))
        .env("COMPONENT_TLS", "true")
        .env("ROUTER_HOME", &home)
        .env("BOOTSTRAP_OUT", home.join("envoy.yaml"))
        .env("ENVOY_BIN", envoy_bin())
        .env("CONCURRENCY", "1")
        .env("DRAIN_TIME_S", "15")
        .env("DRAIN_MIN_S", "1")
        .env("TRAILING_ARGS", "--use-dynamic-base-id");
    let mut router = Proc::spawn_group("router", &mut cmd, gw.dir.path().join("router.log"));
    let client = gw.client().clone();
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    eventually("the router to be ready", || {
        let (client, u) = (client.clone(), url(gw.ports.http, "/pets/1.0/open"));
        async move {
            let r = client.get(&u).header("host", "localhost").send().await.map_err(|e| e.to_string())?;
            if r.status() == 200 { Ok(()) } else { Err(format!("status {}", r.status())) }
        }
    })
    .await;
    assert_eq!(client.get(url(stats, "/ready")).send().await.expect("ready").status(), 200);

    // Requests that take 3 s at the backend, in flight when SIGTERM comes.
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let (client, u) = (client.clone(), url(gw.ports.http, "/pets/1.0/open"));
        in_flight.push(tokio::spawn(async move {
            let r = client
                .get(&u)
                .header("host", "localhost")
                .header("x-backend-delay-ms", "3000")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            r.text().await.map_err(|e| e.to_string())?;
            Ok::<u16, String>(status)
        }));
    }
    eventually("the slow requests to reach the backend", || async {
        let hits = b.hits();
        if hits >= 5 { Ok(()) } else { Err(format!("{hits} hits")) }
    })
    .await;
    let signalled = std::time::Instant::now();
    router.terminate();
    eventually("/ready to fail", || {
        let (client, u) = (client.clone(), url(stats, "/ready"));
        async move {
            let s = client.get(&u).send().await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())?;
            if s == 503 { Ok(()) } else { Err(format!("/ready answered {s}")) }
        }
    })
    .await;
    for t in in_flight {
        assert_eq!(t.await.expect("task"), Ok(200), "a request in flight failed:\n{}", router.log());
    }
    let code = router.wait_exit().await;
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "{}", router.log());
    assert!(took >= Duration::from_secs(2), "exited before its requests were done ({took:?})");
    assert!(took < Duration::from_secs(12), "waited for the whole drain time although nothing was open ({took:?})");
    assert!(router.log().contains("router: drained after"), "{}", router.log());
}

/// log_config.toml (LOG_CONFIG_PATH): JSON logs at the file's level, the
/// router's access log in the file's format; levels changed at run time
/// through the adapter's and the enforcer's admin APIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_config_sets_format_level_and_access_log_and_levels_change_at_run_time() {
    let b = Backend::start("b").await.expect("backend");
    let dir = tempfile::tempdir().expect("dir");
    let access = dir.path().join("access.log");
    let log_config = dir.path().join("log_config.toml");
    std::fs::write(
        &log_config,
        format!(
            "logLevel = \"WARN\"\nLogFormat = \"JSON\"\n[[pkg]]\nname = \"adapter\"\nlogLevel = \"INFO\"\n\
             [accessLogs]\nenable = true\nlogfile = \"{}\"\nformat = \"ACCESS %REQ(:METHOD)% %REQ_WITHOUT_QUERY(:PATH)% %RESPONSE_CODE%\\n\"\n",
            access.display()
        ),
    )
    .expect("write log_config.toml");
    let mut builder = gateway(&b).await.adapter_env("LOG_CONFIG_PATH", &log_config.display().to_string());
    builder = builder.adapter_env("RUST_LOG", "");
    let gw = builder.start().await;
    assert_eq!(status(&gw, "/pets/1.0/open?secret=1", None).await, 200);
    let line = eventually("the access log line", || async {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        text.lines().find(|l| l.starts_with("ACCESS GET /open")).map(str::to_string).ok_or(text)
    })
    .await;
    // The path sent upstream (the API's context removed), without the query.
    assert_eq!(line, "ACCESS GET /open 200");

    // The adapter's log: JSON lines; info from `adapter` ([[pkg]]).
    let log = gw.adapter_log();
    let first = log.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(first).expect("a JSON log line");
    assert!(v["level"].is_string() && v["fields"].is_object(), "{first}");
    assert!(!log.lines().any(|l| !l.starts_with('{') && !l.trim().is_empty()), "a non-JSON line:\n{log}");

    // Levels at run time.
    let r = gw.mgmt("GET", "/logging", None).await;
    assert_eq!(r.json(), json!({"level": "warn,adapter=info"}), "{}", r.body);
    let r = gw.mgmt("PUT", "/logging", Some(json!({"level": "DEBG"}))).await;
    assert_eq!((r.status, r.json()), (200, json!({"level": "debug"})), "{}", r.body);
    assert_eq!(gw.mgmt("GET", "/logging", None).await.json(), json!({"level": "debug"}));
    let r = gw.mgmt("PUT", "/logging", Some(json!({"level": "info,=["}))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["description"].as_str().unwrap_or("").starts_with("level: invalid log level"), "{}", r.body);
    assert_eq!(
        gw.mgmt("GET", "/logging", None).await.json(),
        json!({"level": "debug"}),
        "a refused change changes nothing"
    );
    let r =
        gw.mgmt_raw("PUT", "/logging", &[("content-type", "application/json")], b"{\"level\":\"info\"}".to_vec()).await;
    assert_eq!(r.status, 401, "the admin APIs' credentials are required");

    let admin = [("authorization", "Basic YWRtaW46YWRtaW4=")];
    let r = gw.enforcer_https("PUT", "/logging", &admin, r#"{"level": "info,enforcer=debug"}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"level": "info,enforcer=debug"})), "{}", r.body);
    assert_eq!(gw.enforcer_https("GET", "/logging", &admin, "").await.json(), json!({"level": "info,enforcer=debug"}));
    let r = gw.enforcer_https("PUT", "/logging", &admin, r#"{"level": 3}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = gw.enforcer_https("PUT", "/logging", &[], r#"{"level": "debug"}"#).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// A bad log_config.toml stops the adapter with the key and the value named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_log_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log_config.toml");
    std::fs::write(&path, "LogFormat = \"XML\"\n").expect("write");
    let out = Command::new(integration::workspace_bin("adapter"))
        .arg("--validate")
        .arg("--config")
        .arg(workspace_root().join("samples/config.toml"))
        .env("LOG_CONFIG_PATH", &path)
        .output()
        .expect("run adapter");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LogFormat: invalid value \"XML\": expected TEXT or JSON"), "{err}");
}

/// The enforcer beside its router (one pod): after SIGTERM it keeps deciding
/// while the router sends checks, whatever its health says, and stops as
/// soon as the router is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforcer_outlives_the_router_beside_it_and_then_stops_at_once() {
    let b = Backend::start("b").await.expect("backend");
    let gw = gateway(&b).await.start().await;
    let t = token(&gw);
    assert_eq!(status(&gw, "/pets/1.0/pets", Some(&t)).await, 200);
    let pid = gw.enforcer_pid().expect("enforcer running");
    let gw = Arc::new(gw);
    let stop = Arc::new(AtomicBool::new(false));
    let load_task = tokio::spawn(load(Arc::clone(&gw), t.clone(), 2, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    // Three seconds of traffic after SIGTERM: every check answered.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failed, seen) = load_task.await.expect("load");
    assert!(sent > 50, "only {sent} requests sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed while the enforcer drained: {seen:?}");
    assert!(!gw.enforcer_log().contains("enforcer stopped"), "stopped while its router was there");
    // The router goes: the enforcer stops within a second (not after its 5 s idle wait).
    let mut gw = Arc::into_inner(gw).expect("the load tasks are done");
    let gone = std::time::Instant::now();
    gw.kill_envoy();
    eventually("the enforcer to stop", || async {
        if gw.enforcer_log().contains("enforcer stopped") { Ok(()) } else { Err(gw.enforcer_log()) }
    })
    .await;
    assert!(gone.elapsed() < Duration::from_secs(2), "took {:?}", gone.elapsed());
}
