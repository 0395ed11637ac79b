//! `make bench`: control-plane and data-plane benchmarks.
//!
//! * control plane: N generated API projects (5 resources each) in the
//!   artifacts folder; time from adapter start until Envoy serves the last
//!   API; one API change at N APIs: time until Envoy serves it and bytes
//!   sent, compared with the full configuration; adapter and Envoy RSS.
//! * data plane: wrk through the gateway, plain Envoy and straight to the
//!   backend, interleaved rounds (`dataplane.rs`).
//!
//! Results: JSON in `bench/results/` and a printed summary. The machine is
//! shared and noisy: compare ratios within one run, not absolute numbers
//! across runs.

mod apitypes;
mod dataplane;
mod deploy;
mod enforcer;
mod floor;
mod mediation;
mod module;
mod throttling;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use integration::{Gateway, XdsMode, api_yaml, workspace_root};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Cli {
    /// API counts for the control-plane benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    apis: Vec<usize>,
    /// Changes measured per API count.
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// wrk seconds per target and round of the data-plane benchmark.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Skip the control-plane benchmark.
    #[arg(long)]
    no_control_plane: bool,
    /// Skip the data-plane benchmark.
    #[arg(long)]
    no_data_plane: bool,
    /// Data plane: only the gateway, plain Envoy and direct (no static variants).
    #[arg(long)]
    no_ablation: bool,
    /// Extra config.toml text for the control-plane gateway (experiments).
    #[arg(long, default_value = "")]
    config: String,
    /// Skip the enforcer benchmarks.
    #[arg(long)]
    no_enforcer: bool,
    /// Skip the deploy-latency benchmark.
    #[arg(long)]
    no_deploy: bool,
    /// Already deployed API counts for the deploy-latency benchmark.
    #[arg(long, value_delimiter = ',', default_value = "10,10000")]
    deploy_existing: Vec<usize>,
    /// Pushes measured per count.
    #[arg(long, default_value_t = 50)]
    deploy_pushes: usize,
    /// Which enforcer benchmarks to run (`module`: the dynamic-module spike).
    #[arg(long, value_delimiter = ',', default_value = "checks,e2e,module,memory,throttling,mediation,apitypes")]
    enforcer_parts: Vec<String>,
    /// Seconds per scenario of the direct enforcer benchmark.
    #[arg(long, default_value_t = 5)]
    check_duration: u64,
    /// wrk seconds per run of the enforcer end-to-end benchmark.
    #[arg(long, default_value_t = 5)]
    e2e_duration: u64,
    /// Interleaved rounds of the enforcer end-to-end benchmark.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// APIs and cached tokens for the enforcer memory benchmark.
    #[arg(long, default_value_t = 1000)]
    memory_apis: usize,
    #[arg(long, default_value_t = 100_000)]
    memory_tokens: usize,
}

pub(crate) fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// A memory line of `/proc/<pid>/status` (`VmRSS:`, `RssAnon:`, `RssFile:`), MB.
pub(crate) fn status_mb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub(crate) fn oas(i: usize, extra: &str) -> String {
    // A typical API: secured resources (the enforcer's, once it runs) and one public one.
    let mut s = format!("openapi: 3.0.1\ninfo: {{title: Api{i}, version: v1}}\npaths:\n");
    for r in 0..5 {
        let (path, public) = match r {
            0 => ("/items", false),
            1 => ("/items/{id}", false),
            2 => ("/items/{id}/details", false),
            3 => ("/search", true),
            _ => ("/files/*", false),
        };
        let ext = if public { " {x-wso2-disable-security: true}" } else { " {}" };
        s.push_str(&format!("  {path}:\n    get:{ext}\n    post:{ext}\n"));
    }
    s.push_str(extra);
    s
}

/// Polls `path` until 200, with 1 ms sleeps; returns the time taken.
pub(crate) async fn until_served(gw: &Gateway, path: &str, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if let Ok(r) = gw.get(path).await
            && r.status == 200
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{path} not served after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn bytes_sent(status: &Value) -> (u64, u64) {
    let mut bytes = 0;
    let mut responses = 0;
    for s in status["streams"].as_array().into_iter().flatten() {
        for (_, t) in s["types"].as_object().into_iter().flatten() {
            bytes += t["bytesSent"].as_u64().unwrap_or(0);
            responses += t["responses"].as_u64().unwrap_or(0);
        }
    }
    (bytes, responses)
}

fn full_config_bytes(status: &Value) -> (u64, Value) {
    let label = &status["labels"]["Default"];
    let total = label.as_object().into_iter().flatten().map(|(_, t)| t["bytes"].as_u64().unwrap_or(0)).sum();
    (total, label.clone())
}

async fn in_sync(gw: &Gateway) -> Value {
    integration::eventually("the stream to be in sync", || async {
        let s = gw.xds_status().await;
        if s["streams"][0]["inSync"] == true { Ok(s) } else { Err("not yet".to_string()) }
    })
    .await
}

/// The median of `xs` (the 50th percentile, as [`percentile`] takes it).
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    percentile(&xs, 50.0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn control_plane(n: usize, changes: usize, config: &str) -> Result<Value> {
    eprintln!("control plane: {n} APIs");
    let backend = test_backend::Backend::start("cp").await?;
    let gw = Gateway::builder(XdsMode::Delta).config(config).manual().start().await;
    // Projects exist before the adapter starts (as mounted artifacts).
    for i in 0..n {
        gw.write_project(
            &format!("api{i:05}"),
            &[
                ("api.yaml", &api_yaml(&format!("Api{i}"), "v1", &format!("/api{i}"), &backend.url())),
                ("Definitions/swagger.yaml", &oas(i, "")),
            ],
        );
    }
    let mut gw = gw;
    // Envoy first (it waits for the adapter), then the clock starts with the adapter.
    gw.spawn_envoy().await;
    let t0 = Instant::now();
    gw.start_adapter().await;
    // The public resource answers 200 once the API is served.
    let last = format!("/api{}/v1/search", n - 1);
    // An adapter under a profiler (ADAPTER_WRAP, integration/src/gateway/adapter.rs)
    // is many times slower.
    let limit = if std::env::var_os("ADAPTER_WRAP").is_some() { 1800 } else { 120 };
    until_served(&gw, &last, Duration::from_secs(limit)).await?;
    let startup = t0.elapsed();
    let first = "/api0/v1/search".to_string();
    until_served(&gw, &first, Duration::from_secs(10)).await?;
    let status = in_sync(&gw).await;
    let (full_bytes, per_type) = full_config_bytes(&status);
    let adapter_rss = gw.adapter_pid().map(rss_mb).unwrap_or(0.0);
    let envoy_rss = gw.envoy_pid().map(rss_mb).unwrap_or(0.0);

    // One API change at a time: a new resource on an existing API.
    let mut latencies = Vec::new();
    let mut change_bytes = Vec::new();
    for c in 0..changes {
        let i = (c * 7919 + 13) % n;
        let before = bytes_sent(&gw.xds_status().await);
        let extra = format!("  /changed{c}:\n    get: {{x-wso2-disable-security: true}}\n");
        let t = Instant::now();
        gw.write_project(&format!("api{i:05}"), &[("Definitions/swagger.yaml", &oas(i, &extra))]);
        until_served(&gw, &format!("/api{i}/v1/changed{c}"), Duration::from_secs(30)).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        let after = bytes_sent(&in_sync(&gw).await);
        change_bytes.push((after.0 - before.0, after.1 - before.1));
    }
    // Envoy alone, reading the same resources from a static file.
    let port = backend.url().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).unwrap_or(0);
    let floor = floor::envoy_floor(&gw, port, &last).await?;
    if let Ok(path) = std::env::var("BENCH_ADAPTER_LOG") {
        let _ = std::fs::write(path, gw.adapter_log());
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let max_change_bytes = change_bytes.iter().map(|(b, _)| *b).max().unwrap_or(0);
    Ok(json!({
        "apis": n,
        "resources_per_api": 5,
        "xds": "delta",
        "startup_until_last_api_served_ms": startup.as_secs_f64() * 1000.0,
        "full_config_bytes": full_bytes,
        "full_config_by_type": per_type,
        "change_latency_ms": {"samples": latencies, "p50": percentile(&sorted, 50.0), "max": sorted.last().copied().unwrap_or(0.0)},
        "change_bytes_sent": change_bytes.iter().map(|(b, r)| json!({"bytes": b, "responses": r})).collect::<Vec<_>>(),
        "change_bytes_max_fraction_of_full": max_change_bytes as f64 / full_bytes.max(1) as f64,
        "adapter_rss_mb": adapter_rss,
        "envoy_rss_mb": envoy_rss,
        "envoy_floor": floor,
        "single_route_configuration_bytes": per_type["rds"]["bytes"],
    }))
}

pub(crate) struct Wrk {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non2xx: u64,
}

fn parse_latency(v: &str) -> f64 {
    let v = v.trim();
    if let Some(x) = v.strip_suffix("us") {
        x.parse::<f64>().unwrap_or(0.0) / 1000.0
    } else if let Some(x) = v.strip_suffix("ms") {
        x.parse().unwrap_or(0.0)
    } else if let Some(x) = v.strip_suffix('s') {
        x.parse::<f64>().unwrap_or(0.0) * 1000.0
    } else {
        0.0
    }
}

fn wrk(url: &str, host: Option<&str>, duration: u64, connections: u32) -> Result<(Wrk, String)> {
    let headers: Vec<String> = host.map(|h| format!("Host: {h}")).into_iter().collect();
    wrk_with(url, &headers, duration, connections)
}

/// Runs wrk (one thread) with extra headers; the command line is returned
/// with long header values shortened.
pub(crate) fn wrk_with(url: &str, headers: &[String], duration: u64, connections: u32) -> Result<(Wrk, String)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", &format!("-c{connections}"), &format!("-d{duration}s"), "--latency"]);
    let mut shown = format!("wrk -t1 -c{connections} -d{duration}s --latency");
    for h in headers {
        cmd.args(["-H", h]);
        let short = if h.len() > 40 { format!("{}...", &h[..40]) } else { h.clone() };
        shown.push_str(&format!(" -H '{short}'"));
    }
    cmd.arg(url);
    shown.push_str(&format!(" {url}"));
    let line = shown;
    let out = cmd.output().context("run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut w = Wrk { rps: 0.0, p50_ms: 0.0, p99_ms: 0.0, non2xx: 0 };
    for l in text.lines() {
        let t = l.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            w.p50_ms = parse_latency(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            w.p99_ms = parse_latency(v);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            w.non2xx = v.trim().parse().unwrap_or(0);
        }
    }
    if w.rps == 0.0 {
        bail!("wrk produced no result: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((w, line))
}

pub(crate) use integration::fixtures::{plain_envoy_config, plain_envoy_config_with};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // Quiet processes: logging 10,000 deployments is not what is measured.
    // SAFETY-free: plain environment for child processes spawned below.
    let mut results = serde_json::Map::new();
    results.insert("date".into(), json!(chrono_like_now()));
    results.insert("machine".into(), json!(machine()));
    if !cli.no_control_plane {
        let mut cp = Vec::new();
        for &n in &cli.apis {
            cp.push(control_plane(n, cli.changes, &cli.config).await?);
        }
        results.insert("control_plane".into(), Value::Array(cp));
    }
    if !cli.no_data_plane {
        results.insert(
            "data_plane".into(),
            dataplane::data_plane(cli.duration, cli.connections, cli.rounds, !cli.no_ablation).await?,
        );
    }
    if !cli.no_deploy {
        let mut runs = Vec::new();
        for &n in &cli.deploy_existing {
            runs.push(deploy::latency(n, cli.deploy_pushes).await?);
        }
        results.insert("deploy_latency".into(), Value::Array(runs));
    }
    if !cli.no_enforcer {
        let part = |p: &str| cli.enforcer_parts.iter().any(|x| x == p);
        if part("checks") {
            results.insert("enforcer_checks".into(), enforcer::checks(cli.check_duration).await?);
        }
        if part("e2e") {
            results.insert(
                "enforcer_end_to_end".into(),
                enforcer::end_to_end(cli.e2e_duration, cli.connections, cli.rounds).await?,
            );
        }
        if part("module") {
            results.insert("module_spike".into(), module::spike(cli.e2e_duration, cli.connections, cli.rounds).await?);
        }
        if part("module-profile") {
            results.insert("module_profile".into(), module::profile(cli.e2e_duration, cli.connections).await?);
        }
        if part("memory") {
            results.insert("enforcer_memory".into(), enforcer::memory(cli.memory_apis, cli.memory_tokens).await?);
        }
        if part("throttling") {
            results.insert(
                "throttling".into(),
                throttling::throttling(cli.check_duration, cli.rounds, cli.connections).await?,
            );
        }
        if part("apitypes") {
            results
                .insert("api_types".into(), apitypes::apitypes(cli.e2e_duration, cli.rounds, cli.connections).await?);
        }
        if part("mediation") {
            results
                .insert("mediation".into(), mediation::mediation(cli.e2e_duration, cli.rounds, cli.connections).await?);
        }
    }
    let results = Value::Object(results);
    let dir = workspace_root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(&results)? + "\n";
    std::fs::write(dir.join("latest.json"), &text)?;
    print_summary(&results);
    println!("\nJSON: {}", dir.join("latest.json").display());
    Ok(())
}

fn chrono_like_now() -> String {
    let out = Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    json!({"cpus": cpus, "cpu": model})
}

fn print_summary(r: &Value) {
    print_control_and_data_plane(r);
    deploy::print_summary(r);
    enforcer::print_summary(r);
    module::print_summary(r);
    throttling::print_summary(r);
    mediation::print_summary(r);
    apitypes::print_summary(r);
}

fn print_control_and_data_plane(r: &Value) {
    println!("\n== Benchmark summary ({}) ==", r["date"].as_str().unwrap_or(""));
    for cp in r["control_plane"].as_array().into_iter().flatten() {
        println!(
            "control plane, {} APIs x {} resources (delta xDS):\n  start-up until the last API is served: {:.0} ms\n  one API change until served: p50 {:.1} ms, max {:.1} ms\n  bytes sent per change: max {:.3}% of the full configuration ({} bytes)\n  adapter RSS {:.1} MB, Envoy RSS {:.1} MB",
            cp["apis"],
            cp["resources_per_api"],
            cp["startup_until_last_api_served_ms"].as_f64().unwrap_or(0.0),
            cp["change_latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            cp["change_latency_ms"]["max"].as_f64().unwrap_or(0.0),
            cp["change_bytes_max_fraction_of_full"].as_f64().unwrap_or(0.0) * 100.0,
            cp["full_config_bytes"],
            cp["adapter_rss_mb"].as_f64().unwrap_or(0.0),
            cp["envoy_rss_mb"].as_f64().unwrap_or(0.0),
        );
        let f = &cp["envoy_floor"];
        if f.is_object() {
            let ms = |k: &str| f[k].as_f64().unwrap_or(0.0);
            println!(
                "  Envoy alone on the same resources from a static file, start until the last API is served: {:.0} ms from Envoy's binary form ({:.1} MB), {:.0} ms from JSON ({:.1} MB); a minimal Envoy's own start {:.0} ms: floor {:.0} ms; binary with one shared API cluster {:.0} ms",
                ms("binary_start_until_last_api_served_ms"),
                ms("binary_bytes") / 1e6,
                ms("json_start_until_last_api_served_ms"),
                ms("json_bytes") / 1e6,
                ms("plain_envoy_start_until_served_ms"),
                ms("floor_ms"),
                ms("one_shared_cluster_start_until_last_api_served_ms"),
            );
        }
    }
    dataplane::print_summary(r);
}
