//! Enforcer benchmarks (issue 3):
//!
//! * **checks**: a gRPC load client sends realistic CheckRequests (what
//!   Envoy sends for the route: headers, peer, the route's real context
//!   extensions read from Envoy's config) straight to the enforcer, over the
//!   same mutual TLS Envoy uses. Per scenario: checks/s, enforcer CPU µs per
//!   check (from /proc, so the load client's own CPU does not count) and
//!   checks/s per enforcer core; then p50/p99 at half of the measured peak
//!   (open loop).
//! * **end to end**: wrk through Envoy to a secured route (the enforcer,
//!   cached JWT) and to the same route shape with security off, then the
//!   same two with a do-nothing ext_authz server (`noop-authz`) behind the
//!   same Envoy configuration: the ceiling. Plus the added p50 at one
//!   connection.
//! * **memory**: enforcer RSS with 1,000 APIs and 100,000 cached tokens.

use crate::median;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, attribute_context};
use integration::tokens::{SigningKey, now};
use integration::{Gateway, IDP_ISSUER, XdsMode, api_yaml, free_port};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{percentile, rss_mb, wrk_with};

/// The secured benchmark API: `/bench/v1/__fixed` (JWT or API key).
const BENCH_OAS: &str = "openapi: 3.0.1\ninfo: {title: Bench, version: v1}\npaths:\n  /__fixed:\n    get: {}\n";
/// The same route shape with security off: Envoy skips ext_authz.
const OPEN_OAS: &str = "openapi: 3.0.1\ninfo: {title: Open, version: v1}\nx-wso2-disable-security: true\npaths:\n  /__fixed:\n    get: {}\n";

/// CPU time (user + system) a process has used.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
        // Fields after the command name (which may contain spaces): utime is the 14th field overall.
        let rest = s.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    });
    Duration::from_secs_f64(ticks.unwrap_or(0) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A child process killed when dropped, so an early return (`?`) leaves nothing behind.
pub(crate) struct Reaped(Child);

impl Reaped {
    /// Owns `child`.
    pub(crate) fn new(child: Child) -> Reaped {
        Reaped(child)
    }

    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test backend as its own process (release build).
pub(crate) fn start_backend() -> Result<(Reaped, u16)> {
    let port = free_port();
    let child = Command::new(integration::workspace_bin("test-backend"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--name", "bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the test backend")?;
    Ok((Reaped(child), port))
}

pub(crate) fn bench_projects(backend: u16) -> Vec<(String, Vec<(String, String)>)> {
    let url = format!("http://127.0.0.1:{backend}");
    let yaml = api_yaml("Bench", "v1", "/bench", &url)
        .replace("  type: HTTP\n", "  type: HTTP\n  securityScheme: [oauth2, api_key]\n");
    vec![
        ("bench".into(), vec![("api.yaml".into(), yaml), ("Definitions/swagger.yaml".into(), BENCH_OAS.into())]),
        (
            "open".into(),
            vec![
                ("api.yaml".into(), api_yaml("Open", "v1", "/open", &url)),
                ("Definitions/swagger.yaml".into(), OPEN_OAS.into()),
            ],
        ),
    ]
}

pub(crate) fn with_projects(
    mut b: integration::GatewayBuilder,
    projects: &[(String, Vec<(String, String)>)],
) -> integration::GatewayBuilder {
    for (name, files) in projects {
        let files: Vec<(&str, &str)> = files.iter().map(|(a, c)| (a.as_str(), c.as_str())).collect();
        b = b.project(name, &files);
    }
    b
}

/// Claims of a JWT from the IdP issuer, subscribed to the Bench API.
pub(crate) fn jwt_claims(jti: &str) -> Value {
    json!({
        "iss": IDP_ISSUER, "sub": "bench-user", "azp": "bench-client", "aud": "bench",
        "exp": now() + 3600, "iat": now(), "jti": jti, "scope": "read write",
        "keytype": "PRODUCTION",
        "application": {"id": 7, "uuid": "app-7", "name": "BenchApp", "tier": "Unlimited", "owner": "bench-user"},
        "subscribedAPIs": [{"name": "Bench", "version": "v1", "context": "/bench/v1", "subscriptionTier": "Unlimited"}],
    })
}

/// Starts the do-nothing ext_authz server with the gateway's certificates (mutual TLS).
fn start_noop(gw: &Gateway) -> Result<(Reaped, u16)> {
    let port = free_port();
    let child = Command::new(integration::workspace_bin("noop-authz"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--cert")
        .arg(&gw.certs.cert_path)
        .arg("--key")
        .arg(&gw.certs.key_path)
        .arg("--ca")
        .arg(&gw.certs.ca_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start noop-authz")?;
    Ok((Reaped(child), port))
}

fn api_key(gw: &Gateway) -> String {
    gw.idp().apim.sign_without_kid(&json!({
        "iss": "https://localhost:9443/apikey", "sub": "bench-user", "jti": "bench-api-key", "iat": now(), "exp": now() + 3600,
        "keytype": "PRODUCTION", "application": {"id": 7, "uuid": "app-7", "name": "BenchApp", "owner": "bench-user"},
        "subscribedAPIs": [{"name": "Bench", "version": "v1", "context": "/bench/v1", "subscriptionTier": "Unlimited"}],
    }))
}

/// The context extensions of the route `/bench/v1/__fixed`, as the adapter
/// gives them to Envoy (Envoy redacts them in its config dump, so only the
/// cluster name is read from there).
pub(crate) async fn context_extensions(gw: &Gateway) -> Result<HashMap<String, String>> {
    let dump = gw.config_dump(Some("dynamic_active_clusters")).await;
    let prod = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"]["name"].as_str())
        .find(|n| n.contains("clusterProd") && n.ends_with("_Benchv1"))
        .context("no production cluster of the Bench API in Envoy's config")?
        .to_string();
    Ok([
        ("path", "/__fixed"),
        ("vHost", "localhost"),
        ("basePath", "/bench/v1"),
        ("method", "GET"),
        ("version", "v1"),
        ("name", "Bench"),
        ("prodClusterName", prod.as_str()),
        ("sandClusterName", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect())
}

/// A CheckRequest as Envoy builds it for `GET /bench/v1/__fixed` on one connection.
pub(crate) fn check_request(ext: &HashMap<String, String>, extra_headers: &[(&str, &str)], n: u64) -> CheckRequest {
    let peer = |ip: &str, port: u32| attribute_context::Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(
                    envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port),
                ),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let request_id = format!("5f0c1b7e-2a4d-4c1e-9b7a-{n:012x}");
    let mut headers: HashMap<String, String> = [
        (":authority", "localhost"),
        (":method", "GET"),
        (":path", "/bench/v1/__fixed"),
        (":scheme", "http"),
        ("accept", "application/json"),
        ("user-agent", "wrk"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", request_id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra_headers {
        headers.insert(k.to_string(), v.to_string());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer("127.0.0.1", 40000 + (n % 20000) as u32)),
            destination: Some(peer("127.0.0.1", 9090)),
            request: Some(attribute_context::Request {
                time: Some(envoy_types::pb::google::protobuf::Timestamp { seconds: now(), nanos: 0 }),
                http: Some(attribute_context::HttpRequest {
                    id: format!("{n}"),
                    method: "GET".into(),
                    headers,
                    path: "/bench/v1/__fixed".into(),
                    host: "localhost".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
            }),
            context_extensions: ext.clone(),
            ..Default::default()
        }),
    }
}

/// gRPC channels to the enforcer's ext_authz port, with the router's client certificate.
pub(crate) async fn channels(gw: &Gateway, port: u16, n: usize) -> Result<Vec<AuthorizationClient<Channel>>> {
    let key = std::fs::read(&gw.certs.key_path)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&gw.certs.ca_pem))
            .identity(Identity::from_pem(&gw.certs.cert_pem, &key))
            .domain_name("localhost");
        let ch = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))?
            .tls_config(tls)?
            .tcp_nodelay(true)
            .connect()
            .await
            .context("connect to the enforcer")?;
        out.push(AuthorizationClient::new(ch));
    }
    Ok(out)
}

/// Outcome of a load run.
#[derive(Debug, Default)]
pub(crate) struct Load {
    pub(crate) checks: u64,
    pub(crate) denied: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) enforcer_cpu: Duration,
    latencies_us: Vec<f64>,
}

impl Load {
    pub(crate) fn rate(&self) -> f64 {
        self.checks as f64 / self.elapsed.as_secs_f64()
    }
    pub(crate) fn cpu_us_per_check(&self) -> f64 {
        self.enforcer_cpu.as_secs_f64() * 1e6 / self.checks.max(1) as f64
    }
}

async fn one_check(c: &mut AuthorizationClient<Channel>, req: CheckRequest) -> Result<bool, tonic::Status> {
    let r = c.check(req).await?.into_inner();
    Ok(r.status.map(|s| s.code).unwrap_or(0) == 0)
}

/// Closed loop: `concurrency` callers, each sending the next request as soon
/// as the previous one is answered, for `duration` (or until `limit` checks).
pub(crate) async fn closed_loop(
    clients: &[AuthorizationClient<Channel>],
    reqs: Arc<Vec<CheckRequest>>,
    concurrency: usize,
    duration: Duration,
    limit: Option<u64>,
    pid: u32,
) -> Load {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cpu0 = cpu_time(pid);
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for i in 0..concurrency {
        let mut c = clients[i % clients.len()].clone();
        let reqs = Arc::clone(&reqs);
        let next = Arc::clone(&next);
        set.spawn(async move {
            let (mut ok, mut denied, mut errors) = (0u64, 0u64, 0u64);
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if limit.is_some_and(|l| n >= l) || Instant::now() >= deadline {
                    break;
                }
                let req = reqs[(n as usize) % reqs.len()].clone();
                match one_check(&mut c, req).await {
                    Ok(true) => ok += 1,
                    Ok(false) => denied += 1,
                    Err(_) => errors += 1,
                }
            }
            (ok, denied, errors)
        });
    }
    let mut load = Load::default();
    while let Some(r) = set.join_next().await {
        if let Ok((ok, denied, errors)) = r {
            load.checks += ok + denied + errors;
            load.denied += denied;
            load.errors += errors;
        }
    }
    load.elapsed = start.elapsed();
    load.enforcer_cpu = cpu_time(pid).saturating_sub(cpu0);
    load
}

/// Open loop at `rate` checks/s for `duration`: requests go out on a 1 ms
/// tick whatever the answers do; latency is measured per request from its
/// send to its answer.
async fn open_loop(
    clients: &[AuthorizationClient<Channel>],
    reqs: Arc<Vec<CheckRequest>>,
    rate: f64,
    duration: Duration,
    pid: u32,
) -> Load {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, bool, bool)>();
    let cpu0 = cpu_time(pid);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while start.elapsed() < duration {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let mut c = clients[(sent as usize) % clients.len()].clone();
            let req = reqs[(sent as usize) % reqs.len()].clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let r = one_check(&mut c, req).await;
                let _ = tx.send((t.elapsed().as_secs_f64() * 1e6, matches!(r, Ok(false)), r.is_err()));
            });
            sent += 1;
        }
    }
    drop(tx);
    let mut load = Load::default();
    while let Some((us, denied, error)) = rx.recv().await {
        load.checks += 1;
        load.denied += u64::from(denied);
        load.errors += u64::from(error);
        load.latencies_us.push(us);
    }
    load.elapsed = start.elapsed();
    load.enforcer_cpu = cpu_time(pid).saturating_sub(cpu0);
    load.latencies_us.sort_by(f64::total_cmp);
    load
}

/// One scenario of the direct benchmark: peak, then latency at half of it.
async fn scenario(
    name: &str,
    clients: &[AuthorizationClient<Channel>],
    reqs: Vec<CheckRequest>,
    duration: Duration,
    pid: u32,
) -> Result<Value> {
    let reqs = Arc::new(reqs);
    const CONCURRENCY: usize = 64;
    // Warm-up (connections, caches, JIT-free but allocator and CPU caches).
    closed_loop(clients, Arc::clone(&reqs), CONCURRENCY, Duration::from_secs(1), None, pid).await;
    let peak = closed_loop(clients, Arc::clone(&reqs), CONCURRENCY, duration, None, pid).await;
    if peak.denied + peak.errors > 0 {
        bail!("{name}: {} denied and {} failed checks out of {}", peak.denied, peak.errors, peak.checks);
    }
    let half = open_loop(clients, Arc::clone(&reqs), peak.rate() / 2.0, duration, pid).await;
    if half.denied + half.errors > 0 {
        bail!("{name} (half load): {} denied and {} failed checks", half.denied, half.errors);
    }
    let cpu = peak.cpu_us_per_check();
    eprintln!(
        "  {name}: {:.0} checks/s, {cpu:.1} µs enforcer CPU/check ({:.0}/s per core); at half load p50 {:.0} µs p99 {:.0} µs",
        peak.rate(),
        1e6 / cpu,
        percentile(&half.latencies_us, 50.0),
        percentile(&half.latencies_us, 99.0)
    );
    Ok(json!({
        "scenario": name,
        "distinct_requests": reqs.len(),
        "concurrency": CONCURRENCY,
        "checks": peak.checks,
        "checks_per_s": peak.rate(),
        "enforcer_cpu_s": peak.enforcer_cpu.as_secs_f64(),
        "enforcer_cores_busy": peak.enforcer_cpu.as_secs_f64() / peak.elapsed.as_secs_f64(),
        "enforcer_cpu_us_per_check": cpu,
        "checks_per_s_per_enforcer_core": 1e6 / cpu,
        "half_load": {
            "rate_per_s": peak.rate() / 2.0,
            "checks": half.checks,
            "p50_us": percentile(&half.latencies_us, 50.0),
            "p99_us": percentile(&half.latencies_us, 99.0),
            "enforcer_cpu_us_per_check": half.cpu_us_per_check(),
        },
    }))
}

/// Waits until a check with `req` is allowed (the enforcer has the API and the key).
pub(crate) async fn until_allowed(clients: &[AuthorizationClient<Channel>], req: &CheckRequest) {
    let mut c = clients[0].clone();
    integration::eventually("the enforcer to allow the benchmark request", || {
        let mut c = c.clone();
        let req = req.clone();
        async move {
            match one_check(&mut c, req).await {
                Ok(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let _ = one_check(&mut c, req.clone()).await;
}

/// Direct gRPC benchmark of the enforcer: cached JWT, unique RS256 JWTs (cache
/// off), API key (cached and not).
pub async fn checks(duration: u64) -> Result<Value> {
    eprintln!("enforcer checks: gRPC load client straight to the enforcer, {duration}s per scenario");
    let duration = Duration::from_secs(duration);
    let (_backend, port) = start_backend()?;
    let projects = bench_projects(port);
    let mut results = Vec::new();
    let mut ext = HashMap::new();
    for cache in [true, false] {
        let config = if cache { "" } else { "[enforcer.cache]\nenabled = false\n" };
        let gw =
            with_projects(Gateway::builder(XdsMode::Delta).with_enforcer().config(config), &projects).start().await;
        if ext.is_empty() {
            ext = context_extensions(&gw).await?;
        }
        let pid = gw.enforcer_pid().context("enforcer pid")?;
        let clients = channels(&gw, gw.ports.enforcer, 2).await?;
        let key = api_key(&gw);
        let api_key_req = vec![check_request(&ext, &[("apikey", &key)], 1)];
        if cache {
            let jwt = gw.idp().idp.sign(&jwt_claims("bench-cached"));
            let bearer = format!("Bearer {jwt}");
            let reqs: Vec<CheckRequest> =
                (0..1024).map(|n| check_request(&ext, &[("authorization", &bearer)], n)).collect();
            // The reference: the do-nothing server, same requests, same client, same TLS.
            let (noop, noop_port) = start_noop(&gw)?;
            let noop_clients = integration::eventually("noop-authz to accept connections", || async {
                channels(&gw, noop_port, 2).await.map_err(|e| e.to_string())
            })
            .await;
            results.push(scenario("noop_ext_authz", &noop_clients, reqs.clone(), duration, noop.id()).await?);
            drop(noop);
            until_allowed(&clients, &reqs[0]).await;
            results.push(scenario("jwt_rs256_cached", &clients, reqs, duration, pid).await?);
            until_allowed(&clients, &api_key_req[0]).await;
            results.push(scenario("api_key_cached", &clients, api_key_req, duration, pid).await?);
        } else {
            // Cache off: every check verifies an RS256 signature. 2,000
            // distinct tokens (signing each costs ~1 ms, so not one per check).
            let signer = &gw.idp().idp;
            let reqs: Vec<CheckRequest> = (0..2000)
                .map(|n| {
                    let bearer = format!("Bearer {}", signer.sign(&jwt_claims(&format!("bench-{n}"))));
                    check_request(&ext, &[("authorization", &bearer)], n)
                })
                .collect();
            until_allowed(&clients, &reqs[0]).await;
            results.push(scenario("jwt_rs256_uncached", &clients, reqs, duration, pid).await?);
            until_allowed(&clients, &api_key_req[0]).await;
            results.push(scenario("api_key_uncached", &clients, api_key_req, duration, pid).await?);
        }
    }
    // CPU per check relative to the do-nothing server measured in the same run.
    let noop_cpu = results
        .iter()
        .find(|r| r["scenario"] == "noop_ext_authz")
        .and_then(|r| r["enforcer_cpu_us_per_check"].as_f64())
        .unwrap_or(0.0);
    for r in &mut results {
        let cpu = r["enforcer_cpu_us_per_check"].as_f64().unwrap_or(0.0);
        r["cpu_relative_to_noop"] = json!(if noop_cpu > 0.0 { cpu / noop_cpu } else { 0.0 });
    }
    Ok(json!({
        "tool": "bench (tonic gRPC client, 2 HTTP/2 connections, mutual TLS as Envoy uses)",
        "request": "GET /bench/v1/__fixed with Envoy's headers and the route's context extensions",
        "token": "RS256, RSA-2048, from a JWKS issuer with subscription validation",
        "scenarios": results,
    }))
}

/// One Envoy under test: its gateway and the ext_authz server behind it.
struct Target<'a> {
    name: &'static str,
    gw: &'a Gateway,
    authz_pid: u32,
    /// wrk's headers: the host and this gateway's token.
    headers: Vec<String>,
}

/// Envoy → enforcer vs Envoy → no-op ext_authz server, each against the same
/// route shape without ext_authz. Two gateways run side by side (same
/// projects, same bootstrap, one Envoy worker each) and the wrk runs are
/// interleaved round by round, so that the machine's drift hits both alike;
/// ratios are taken within a round and the median round is reported.
pub async fn end_to_end(duration: u64, connections: u32, rounds: usize) -> Result<Value> {
    eprintln!("enforcer end to end: {rounds} interleaved rounds of wrk {duration}s, {connections} and 1 connections");
    let (_backend, port) = start_backend()?;
    let projects = bench_projects(port);
    let enforced = with_projects(Gateway::builder(XdsMode::Delta).with_enforcer(), &projects).start().await;
    // The same enforcer deciding inside Envoy, as its dynamic module.
    let module =
        with_projects(Gateway::builder(XdsMode::Delta).with_enforcer().enforcer_in_module(), &projects).start().await;
    // The ceiling: a gateway whose Envoy has the no-op server as its ext_authz cluster.
    let mut ceiling = with_projects(Gateway::builder(XdsMode::Delta), &projects).without_envoy().start().await;
    let (noop, noop_port) = start_noop(&ceiling)?;
    ceiling.bootstrap_overrides.push(("ENFORCER_PORT", noop_port.to_string()));
    ceiling.start_envoy().await;

    // Each gateway with an enforcer has its own test issuers: a token per
    // gateway (the no-op server takes any, the enforcer's will do).
    let bearer = |gw: &Gateway| {
        let issuer = if std::ptr::eq(gw, &ceiling) { &enforced } else { gw };
        format!("Bearer {}", issuer.idp().idp.sign(&jwt_claims("bench-e2e")))
    };
    for gw in [&enforced, &ceiling, &module] {
        let bearer = bearer(gw);
        integration::eventually("the secured route to answer 200", || async {
            let r = gw.request("GET", "localhost", "/bench/v1/__fixed", &[("authorization", &bearer)]).await?;
            if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
        })
        .await;
    }
    let headers = |gw: &Gateway| vec!["Host: localhost".to_string(), format!("Authorization: {}", bearer(gw))];
    let targets = [
        Target {
            name: "enforcer",
            gw: &enforced,
            authz_pid: enforced.enforcer_pid().context("enforcer pid")?,
            headers: headers(&enforced),
        },
        Target { name: "noop_ext_authz", gw: &ceiling, authz_pid: noop.id(), headers: headers(&ceiling) },
        // The module decides in Envoy: its CPU is Envoy's (the enforcer
        // service's is counted to show it stays idle).
        Target {
            name: "module",
            gw: &module,
            authz_pid: module.enforcer_pid().context("enforcer pid")?,
            headers: headers(&module),
        },
    ];
    let url = |t: &Target<'_>, secured: bool| {
        format!("http://127.0.0.1:{}/{}/v1/__fixed", t.gw.ports.http, if secured { "bench" } else { "open" })
    };
    // Warm-up.
    for t in &targets {
        for secured in [true, false] {
            wrk_with(&url(t, secured), &t.headers, 2, connections)?;
        }
    }
    // runs[target][kind] = one entry per round; kinds: secured, open, secured_c1, open_c1.
    let kinds: [(&str, bool, u32); 4] =
        [("secured", true, connections), ("open", false, connections), ("secured_c1", true, 1), ("open_c1", false, 1)];
    let mut runs: Vec<Vec<Vec<Value>>> = vec![vec![Vec::new(); kinds.len()]; targets.len()];
    for round in 0..rounds {
        eprintln!("  round {}/{rounds}", round + 1);
        for (k, (label, secured, conns)) in kinds.iter().enumerate() {
            for (ti, t) in targets.iter().enumerate() {
                let envoy = t.gw.envoy_pid().context("envoy pid")?;
                let (e0, a0) = (cpu_time(envoy), cpu_time(t.authz_pid));
                let (w, cmd) = wrk_with(&url(t, *secured), &t.headers, duration, *conns)?;
                let (e1, a1) = (cpu_time(envoy), cpu_time(t.authz_pid));
                if w.non2xx > 0 {
                    bail!("{} {label}: {} non-2xx responses ({cmd})", t.name, w.non2xx);
                }
                let requests = (w.rps * duration as f64).max(1.0);
                runs[ti][k].push(json!({
                    "command": cmd, "rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms,
                    "envoy_cpu_us_per_req": (e1 - e0).as_secs_f64() * 1e6 / requests,
                    "authz_cpu_us_per_req": if *secured { (a1 - a0).as_secs_f64() * 1e6 / requests } else { 0.0 },
                }));
            }
        }
    }

    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    // Per round: secured/open throughput ratio and added p50 at c1, per target.
    let per_round = |ti: usize| -> (Vec<f64>, Vec<f64>) {
        let r = &runs[ti];
        let ratios = (0..rounds).map(|i| f(&r[0][i], "rps") / f(&r[1][i], "rps").max(1.0)).collect();
        let added = (0..rounds).map(|i| (f(&r[2][i], "p50_ms") - f(&r[3][i], "p50_ms")) * 1000.0).collect();
        (ratios, added)
    };
    let (enf_ratios, enf_added) = per_round(0);
    let (noop_ratios, noop_added) = per_round(1);
    let (module_ratios, module_added) = per_round(2);
    let fractions: Vec<f64> = enf_ratios.iter().zip(&noop_ratios).map(|(e, n)| e / n).collect();
    let summary = |ti: usize| -> Value {
        let mut m = serde_json::Map::new();
        for (k, (label, _, _)) in kinds.iter().enumerate() {
            let rs = &runs[ti][k];
            m.insert(
                (*label).into(),
                json!({
                    "rps_median": median(rs.iter().map(|v| f(v, "rps")).collect()),
                    "p50_ms_median": median(rs.iter().map(|v| f(v, "p50_ms")).collect()),
                    "p99_ms_median": median(rs.iter().map(|v| f(v, "p99_ms")).collect()),
                    "envoy_cpu_us_per_req_median": median(rs.iter().map(|v| f(v, "envoy_cpu_us_per_req")).collect()),
                    "authz_cpu_us_per_req_median": median(rs.iter().map(|v| f(v, "authz_cpu_us_per_req")).collect()),
                    "runs": rs,
                }),
            );
        }
        Value::Object(m)
    };
    Ok(json!({
        "tool": "wrk",
        "rounds": rounds,
        "envoy_concurrency": std::env::var("ENVOY_CONCURRENCY").unwrap_or_else(|_| "1".into()),
        "components_tls": true,
        "enforcer": summary(0),
        "noop_ext_authz": summary(1),
        "module": summary(2),
        "ratio_module_secured_to_open_per_round": module_ratios,
        "ratio_module_secured_to_open": median(module_ratios.clone()),
        "added_p50_us_c1_module_per_round": module_added,
        "added_p50_us_c1_module": median(module_added.clone()),
        "ratio_enforcer_secured_to_open_per_round": enf_ratios,
        "ratio_noop_secured_to_open_per_round": noop_ratios,
        "enforcer_fraction_of_ceiling_per_round": fractions,
        "ratio_enforcer_secured_to_open": median(enf_ratios.clone()),
        "ratio_noop_secured_to_open": median(noop_ratios.clone()),
        "enforcer_fraction_of_ceiling": median(fractions.clone()),
        "added_p50_us_c1_enforcer_per_round": enf_added,
        "added_p50_us_c1_noop_per_round": noop_added,
        "added_p50_us_c1_enforcer": median(enf_added.clone()),
        "added_p50_us_c1_noop": median(noop_added.clone()),
    }))
}

/// Enforcer RSS with `apis` APIs deployed and `tokens` distinct tokens cached.
pub async fn memory(apis: usize, tokens: usize) -> Result<Value> {
    eprintln!("enforcer memory: {apis} APIs, {tokens} cached tokens");
    // Reference: an enforcer with its configuration and no API.
    let rss_empty = {
        let gw = Gateway::builder(XdsMode::Delta).with_enforcer().without_envoy().start().await;
        rss_mb(gw.enforcer_pid().context("enforcer pid")?)
    };
    let (_backend, port) = start_backend()?;
    let mut projects = bench_projects(port);
    let url = format!("http://127.0.0.1:{port}");
    for i in 0..apis.saturating_sub(1) {
        projects.push((
            format!("api{i:05}"),
            vec![
                ("api.yaml".into(), api_yaml(&format!("Api{i}"), "v1", &format!("/api{i}"), &url)),
                ("Definitions/swagger.yaml".into(), crate::oas(i, "")),
            ],
        ));
    }
    // Room for every token in the cache (Choreo Connect's default maximumSize is 10,000).
    let config = format!("[enforcer.cache]\nmaximumSize = {}\n", tokens + tokens / 10);
    let gw = with_projects(Gateway::builder(XdsMode::Delta).with_enforcer().config(&config), &projects).start().await;
    let ext = context_extensions(&gw).await?;
    let pid = gw.enforcer_pid().context("enforcer pid")?;
    // start() returned once the enforcer acknowledged the adapter's APIs.
    let rss_apis = rss_mb(pid);
    let r = gw.enforcer_https("GET", "/apis", &[("authorization", "Basic YWRtaW46YWRtaW4=")], "").await;
    let held = r.json()["count"].as_u64().unwrap_or(0);
    if held < apis as u64 {
        bail!("the enforcer holds {held} APIs, not {apis}");
    }
    // ES256 tokens: the cache does not care about the algorithm, and signing
    // 100,000 RS256 tokens would take minutes.
    let ec = SigningKey::ec256("bench-ec");
    gw.idp().jwks.set_keys(&[&gw.idp().idp, &ec]);
    let t = Instant::now();
    let reqs: Vec<CheckRequest> = (0..tokens)
        .map(|n| {
            let bearer = format!("Bearer {}", ec.sign(&jwt_claims(&format!("mem-{n}"))));
            check_request(&ext, &[("authorization", &bearer)], n as u64)
        })
        .collect();
    eprintln!("  signed {tokens} tokens in {:.1} s", t.elapsed().as_secs_f64());
    let clients = channels(&gw, gw.ports.enforcer, 2).await?;
    until_allowed(&clients, &reqs[0]).await;
    let reqs = Arc::new(reqs);
    let first = closed_loop(&clients, Arc::clone(&reqs), 64, Duration::from_secs(600), Some(tokens as u64), pid).await;
    if first.denied + first.errors > 0 {
        bail!("memory: {} denied and {} failed checks", first.denied, first.errors);
    }
    // Second pass over the same tokens: cache hits, so much less CPU per check.
    let second = closed_loop(&clients, Arc::clone(&reqs), 64, Duration::from_secs(600), Some(tokens as u64), pid).await;
    let rss_tokens = rss_mb(pid);
    // Heap and the like, against the binary's own pages.
    let (anon, file) = (crate::status_mb(pid, "RssAnon:"), crate::status_mb(pid, "RssFile:"));
    eprintln!(
        "  RSS {rss_apis:.1} MB with {apis} APIs, {rss_tokens:.1} MB with {tokens} tokens cached; CPU/check first pass {:.1} µs, second {:.1} µs",
        first.cpu_us_per_check(),
        second.cpu_us_per_check()
    );
    Ok(json!({
        "apis": apis,
        "tokens": tokens,
        "token": "ES256, ~900 bytes, unique jti",
        "cache_maximum_size": tokens + tokens / 10,
        "rss_mb_without_apis": rss_empty,
        "rss_mb_with_apis": rss_apis,
        "rss_mb_with_apis_and_tokens": rss_tokens,
        "rss_anon_mb_with_apis_and_tokens": anon,
        "rss_file_mb_with_apis_and_tokens": file,
        "first_pass_cpu_us_per_check": first.cpu_us_per_check(),
        "second_pass_cpu_us_per_check": second.cpu_us_per_check(),
    }))
}

/// The enforcer part of the printed summary, with the issue's targets.
pub fn print_summary(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    if let Some(list) = r["enforcer_checks"]["scenarios"].as_array() {
        println!("enforcer, gRPC straight to it ({}):", r["enforcer_checks"]["tool"].as_str().unwrap_or(""));
        for s in list {
            println!(
                "  {:<20} {:>7.0} checks/s  {:>6.1} µs CPU/check ({:.2} x no-op) = {:>7.0} checks/s per core  | half load: p50 {:.0} µs, p99 {:.0} µs",
                s["scenario"].as_str().unwrap_or(""),
                f(&s["checks_per_s"]),
                f(&s["enforcer_cpu_us_per_check"]),
                f(&s["cpu_relative_to_noop"]),
                f(&s["checks_per_s_per_enforcer_core"]),
                f(&s["half_load"]["p50_us"]),
                f(&s["half_load"]["p99_us"]),
            );
        }
        println!(
            "  targets (set where the no-op server costs 12 µs): cached <= 16 µs CPU/check (1.33 x no-op), uncached RS256 >= 25,000/s per core (40 µs, 3.3 x no-op), p99 < 1 ms at half load"
        );
    }
    let e = &r["enforcer_end_to_end"];
    if e.is_object() {
        let row = |name: &str, v: &Value| {
            println!(
                "  {name:<26} secured {:>6.0} req/s (p50 {:.3} ms), open {:>6.0} req/s; c1 p50 secured {:.3} ms, open {:.3} ms; authz CPU {:.1} µs/req",
                f(&v["secured"]["rps_median"]),
                f(&v["secured"]["p50_ms_median"]),
                f(&v["open"]["rps_median"]),
                f(&v["secured_c1"]["p50_ms_median"]),
                f(&v["open_c1"]["p50_ms_median"]),
                f(&v["secured"]["authz_cpu_us_per_req_median"]),
            )
        };
        println!(
            "enforcer end to end (wrk through Envoy, --concurrency {}, medians of {} interleaved rounds):",
            e["envoy_concurrency"].as_str().unwrap_or("1"),
            e["rounds"]
        );
        row("Envoy + enforcer:", &e["enforcer"]);
        row("Envoy + no-op ext_authz:", &e["noop_ext_authz"]);
        if e["module"].is_object() {
            row("Envoy + enforcer module:", &e["module"]);
        }
        println!(
            "  secured/open: enforcer {:.3}, no-op {:.3} -> enforcer at {:.1}% of the ceiling (target >= 95%); per round: {}",
            f(&e["ratio_enforcer_secured_to_open"]),
            f(&e["ratio_noop_secured_to_open"]),
            f(&e["enforcer_fraction_of_ceiling"]) * 100.0,
            e["enforcer_fraction_of_ceiling_per_round"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| format!("{:.1}%", x.as_f64().unwrap_or(0.0) * 100.0))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "  added p50 at one connection: enforcer {:.0} µs, no-op {:.0} µs (target <= 100 µs)",
            f(&e["added_p50_us_c1_enforcer"]),
            f(&e["added_p50_us_c1_noop"])
        );
        if e["module"].is_object() {
            println!(
                "  module mode: secured/open {:.3} (target >= 0.85; per round: {}), added p50 at one connection {:.0} µs (target <= 50 µs)",
                f(&e["ratio_module_secured_to_open"]),
                e["ratio_module_secured_to_open_per_round"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| format!("{:.3}", x.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(" "),
                f(&e["added_p50_us_c1_module"]),
            );
        }
    }
    let m = &r["enforcer_memory"];
    if m.is_object() {
        println!(
            "enforcer memory: {:.1} MB without APIs, {:.1} MB with {} APIs, {:.1} MB with {} tokens cached (anonymous {:.1} MB, the binary's pages {:.1} MB; target < 50 MB); CPU/check first pass {:.1} µs, cached pass {:.1} µs",
            f(&m["rss_mb_without_apis"]),
            f(&m["rss_mb_with_apis"]),
            m["apis"],
            f(&m["rss_mb_with_apis_and_tokens"]),
            m["tokens"],
            f(&m["rss_anon_mb_with_apis_and_tokens"]),
            f(&m["rss_file_mb_with_apis_and_tokens"]),
            f(&m["first_pass_cpu_us_per_check"]),
            f(&m["second_pass_cpu_us_per_check"]),
        );
    }
}
