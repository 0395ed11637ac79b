//! Throttling's cost (issue 11's targets), every figure a ratio measured in
//! one run:
//!
//! * enforcer CPU per check with throttling on (API, subscription and
//!   application levels counted; in memory, and in Redis on lease hits) over
//!   throttling off, gRPC straight to the enforcer, interleaved rounds;
//! * Redis commands per admitted request at Gold (5000/min) with three
//!   enforcer replicas sharing one real `redis-server`, offered well over the
//!   limit;
//! * gateway throughput (wrk through Envoy) with throttling on over off.

use crate::median;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use integration::{Gateway, RedisServer, XdsMode, api_yaml, free_port};
use serde_json::{Value, json};

use crate::enforcer::{
    Load, channels, check_request, closed_loop, context_extensions, jwt_claims, start_backend, until_allowed,
    with_projects,
};
use crate::wrk_with;

/// A limit never reached in a benchmark run: every level counts, none refuses.
const HUGE: &str = "1000000000PerMin";

const OAS: &str = "openapi: 3.0.1\ninfo: {title: Bench, version: v1}\npaths:\n  /__fixed:\n    get: {}\n";

fn projects(backend: u16, api_tier: &str) -> Vec<(String, Vec<(String, String)>)> {
    let url = format!("http://127.0.0.1:{backend}");
    let yaml = api_yaml("Bench", "v1", "/bench", &url)
        .replace("  context:", &format!("  apiThrottlingPolicy: {api_tier}\n  context:"));
    vec![("bench".into(), vec![("api.yaml".into(), yaml), ("Definitions/swagger.yaml".into(), OAS.into())])]
}

/// A token whose subscription and application tiers are `sub` and `app`.
fn claims(jti: &str, sub: &str, app: &str) -> Value {
    let mut c = jwt_claims(jti);
    c["subscribedAPIs"][0]["subscriptionTier"] = sub.into();
    c["application"]["tier"] = app.into();
    c
}

fn redis_config(url: &str, replicas: u32) -> String {
    format!(
        "[enforcer.throttling]\nbackend = \"redis\"\nreplicas = {replicas}\n[enforcer.throttling.redis]\nurl = \"{url}\"\ntimeoutMillis = 100\n"
    )
}

/// `cmdstat_evalsha` + `cmdstat_eval` calls so far.
fn script_calls(redis: &RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]);
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// The benchmark.
pub async fn throttling(duration: u64, rounds: usize, connections: u32) -> Result<Value> {
    eprintln!(
        "throttling: CPU per check on/off ({rounds} rounds of {duration}s), Redis calls at Gold x3 replicas, wrk on/off"
    );
    let d = Duration::from_secs(duration);
    let (_backend, port) = start_backend()?;
    let logs = tempfile::tempdir()?;
    let redis = RedisServer::start(logs.path()).await;

    // 1. CPU per check: off, memory, Redis leases; same token, same requests.
    let variants: [(&str, String); 3] = [
        ("off", "[enforcer.throttling]\nenabled = false\n".into()),
        ("memory", String::new()),
        ("redis_leases", redis_config(&redis.url(), 3)),
    ];
    let mut gateways = Vec::new();
    for (name, config) in &variants {
        let gw = with_projects(Gateway::builder(XdsMode::Delta).with_enforcer().config(config), &projects(port, HUGE))
            .without_envoy()
            .start()
            .await;
        gateways.push((*name, gw));
    }
    let ext = {
        // Envoy's cluster name is only needed in the extensions; one Envoy suffices.
        let mut probe =
            with_projects(Gateway::builder(XdsMode::Delta), &projects(port, HUGE)).without_envoy().start().await;
        probe.start_envoy().await;
        context_extensions(&probe).await?
    };
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut prepared = Vec::new();
    for (_, gw) in &gateways {
        let bearer = format!("Bearer {}", gw.idp().idp.sign(&claims("bench-throttle", HUGE, HUGE)));
        let reqs: Arc<Vec<_>> =
            Arc::new((0..1024).map(|n| check_request(&ext, &[("authorization", &bearer)], n)).collect());
        let clients = channels(gw, gw.ports.enforcer, 2).await?;
        until_allowed(&clients, &reqs[0]).await;
        let pid = gw.enforcer_pid().context("enforcer pid")?;
        closed_loop(&clients, Arc::clone(&reqs), 64, Duration::from_secs(1), None, pid).await;
        prepared.push((clients, reqs, pid));
    }
    for round in 0..rounds {
        eprintln!("  CPU round {}/{rounds}", round + 1);
        for (i, (clients, reqs, pid)) in prepared.iter().enumerate() {
            let l: Load = closed_loop(clients, Arc::clone(reqs), 64, d, None, *pid).await;
            if l.denied + l.errors > 0 {
                bail!("{}: {} denied, {} failed of {}", variants[i].0, l.denied, l.errors, l.checks);
            }
            cpu[i].push(l.cpu_us_per_check());
            rates[i].push(l.rate());
        }
    }
    let per_round = |i: usize| -> Vec<f64> { (0..rounds).map(|r| cpu[i][r] / cpu[0][r]).collect() };
    let (mem_ratio, redis_ratio) = (per_round(1), per_round(2));
    let cpu_part = json!({
        "tool": "bench (tonic gRPC client, 64 in flight, 2 connections, mutual TLS)",
        "levels": "API, subscription and application tiers of 1e9/min (counted, never refusing)",
        "cpu_us_per_check_median": {"off": median(cpu[0].clone()), "memory": median(cpu[1].clone()), "redis_leases": median(cpu[2].clone())},
        "checks_per_s_median": {"off": median(rates[0].clone()), "memory": median(rates[1].clone()), "redis_leases": median(rates[2].clone())},
        "ratio_memory_to_off_per_round": mem_ratio,
        "ratio_redis_to_off_per_round": redis_ratio,
        "ratio_memory_to_off": median(mem_ratio.clone()),
        "ratio_redis_to_off": median(redis_ratio.clone()),
        "target_ratio_max": 1.15,
    });
    drop(prepared);
    drop(gateways);

    // 2. Redis commands per admitted request: Gold, three replicas, one Redis
    //    (emptied first: the counters above share the subscription's key).
    redis.cli(&["FLUSHALL"]);
    let mut gw = with_projects(
        Gateway::builder(XdsMode::Delta).with_enforcer().config(&redis_config(&redis.url(), 3)),
        &projects(port, "Unlimited"),
    )
    .without_envoy()
    .start()
    .await;
    let replica_ports: Vec<[u16; 4]> = (0..2).map(|_| [free_port(), free_port(), free_port(), free_port()]).collect();
    gw.extra_enforcer_ports = replica_ports.iter().map(|p| p[0]).collect();
    let _replicas: Vec<integration::Proc> =
        replica_ports.iter().enumerate().map(|(i, p)| gw.enforcer_process(&format!("replica-{i}"), *p)).collect();
    let bearer = format!("Bearer {}", gw.idp().idp.sign(&claims("bench-gold", "Gold", "Unlimited")));
    let reqs: Arc<Vec<_>> =
        Arc::new((0..1024).map(|n| check_request(&ext, &[("authorization", &bearer)], n)).collect());
    let mut clients = Vec::new();
    for port in std::iter::once(gw.ports.enforcer).chain(replica_ports.iter().map(|p| p[0])) {
        let c = integration::eventually("an enforcer replica to answer", || async {
            channels(&gw, port, 1).await.map_err(|e| e.to_string())
        })
        .await;
        until_allowed(&c, &reqs[0]).await;
        clients.extend(c);
    }
    // The warm-up checks above took from this minute's quota: start on a fresh window.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    tokio::time::sleep(Duration::from_secs(60 - now % 60)).await;
    let before = script_calls(&redis);
    let gold_secs = (duration * 4).max(20);
    let l = closed_loop(
        &clients,
        Arc::clone(&reqs),
        48,
        Duration::from_secs(gold_secs),
        None,
        gw.enforcer_pid().unwrap_or(0),
    )
    .await;
    let calls = script_calls(&redis) - before;
    let admitted = l.checks - l.denied - l.errors;
    let gold = json!({
        "replicas": 3,
        "tier": "Gold (5000/min)",
        "lease": (0.02_f64 * 5000.0 / 3.0).floor(),
        "seconds": gold_secs,
        "offered": l.checks,
        "admitted": admitted,
        "errors": l.errors,
        "redis_script_calls": calls,
        "redis_calls_per_admitted": calls as f64 / admitted.max(1) as f64,
        "target_max": 0.05,
        "command": "redis-cli INFO commandstats (cmdstat_evalsha + cmdstat_eval calls)",
    });
    drop(gw);

    // 3. Throughput through Envoy: throttling on (memory) vs off, interleaved wrk rounds.
    let on = with_projects(Gateway::builder(XdsMode::Delta).with_enforcer(), &projects(port, HUGE)).start().await;
    let off = with_projects(
        Gateway::builder(XdsMode::Delta).with_enforcer().config("[enforcer.throttling]\nenabled = false\n"),
        &projects(port, HUGE),
    )
    .start()
    .await;
    let mut wrk_ratio = Vec::new();
    let mut runs = Vec::new();
    let targets = [("on", &on), ("off", &off)];
    let bearer_of = |gw: &Gateway| format!("Bearer {}", gw.idp().idp.sign(&claims("bench-wrk", HUGE, HUGE)));
    for (_, gw) in &targets {
        let b = bearer_of(gw);
        integration::eventually("the secured route to answer 200", || async {
            let r = gw.request("GET", "localhost", "/bench/v1/__fixed", &[("authorization", &b)]).await?;
            if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
        })
        .await;
        let url = format!("http://127.0.0.1:{}/bench/v1/__fixed", gw.ports.http);
        wrk_with(&url, &["Host: localhost".into(), format!("Authorization: {b}")], 2, connections)?;
    }
    for round in 0..rounds {
        eprintln!("  wrk round {}/{rounds}", round + 1);
        let mut rps = [0.0f64; 2];
        for (i, (name, gw)) in targets.iter().enumerate() {
            let url = format!("http://127.0.0.1:{}/bench/v1/__fixed", gw.ports.http);
            let (w, cmd) = wrk_with(
                &url,
                &["Host: localhost".into(), format!("Authorization: {}", bearer_of(gw))],
                duration,
                connections,
            )?;
            if w.non2xx > 0 {
                bail!("throttling {name}: {} non-2xx responses ({cmd})", w.non2xx);
            }
            rps[i] = w.rps;
            runs.push(json!({"throttling": name, "round": round, "rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "command": cmd}));
        }
        wrk_ratio.push(rps[0] / rps[1].max(1.0));
    }
    Ok(json!({
        "enforcer_cpu": cpu_part,
        "redis_gold_three_replicas": gold,
        "gateway_throughput": {
            "tool": "wrk through Envoy (secured route, JWT cached)",
            "ratio_on_to_off_per_round": wrk_ratio,
            "ratio_on_to_off": median(wrk_ratio.clone()),
            "target_min": 0.95,
            "runs": runs,
        },
    }))
}

/// The printed summary.
pub fn print_summary(r: &Value) {
    let t = &r["throttling"];
    if !t.is_object() {
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let c = &t["enforcer_cpu"];
    println!(
        "throttling (API + subscription + application levels):\n  enforcer CPU/check: off {:.1} µs, memory {:.1} µs ({:.3} x), Redis leases {:.1} µs ({:.3} x) (target <= 1.15 x)",
        f(&c["cpu_us_per_check_median"]["off"]),
        f(&c["cpu_us_per_check_median"]["memory"]),
        f(&c["ratio_memory_to_off"]),
        f(&c["cpu_us_per_check_median"]["redis_leases"]),
        f(&c["ratio_redis_to_off"]),
    );
    let g = &t["redis_gold_three_replicas"];
    println!(
        "  Redis script calls per admitted request, Gold, 3 replicas: {:.4} ({} calls, {} admitted of {} offered in {} s; target <= 0.05)",
        f(&g["redis_calls_per_admitted"]),
        g["redis_script_calls"],
        g["admitted"],
        g["offered"],
        g["seconds"],
    );
    let w = &t["gateway_throughput"];
    println!("  gateway throughput on/off (wrk through Envoy): {:.3} (target >= 0.95)", f(&w["ratio_on_to_off"]));
}
