//! The open route's cost (issue 14): wrk through the gateway's Envoy, a
//! plain Envoy with a minimal configuration, and straight to the backend, in
//! interleaved rounds (each round runs every target once, in a rotated
//! order; ratios are taken within a round, medians reported, every round
//! printed).
//!
//! To tell which part of the gateway's configuration costs what, the same
//! rounds run the gateway's own listener, route and cluster as Envoy holds
//! them (its `/config_dump`), loaded from a static file, whole and with one
//! part taken out at a time: the scoped-route lookup (a static file has no
//! SRDS: the API's route table is inlined), the early header mutation, each
//! HTTP filter, the local-reply mappers, path normalisation, the regex route
//! match. A part whose removal moves the ratio is what the open route pays for.

use crate::median;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use integration::{Gateway, XdsMode, api_yaml, free_port};
use serde_json::{Value, json};

use crate::enforcer::Reaped;

/// One thing wrk is pointed at.
struct Target {
    name: String,
    /// Its Envoy's log, if the benchmark started it.
    log: Option<std::path::PathBuf>,
    /// The Envoy's process (CPU time per request).
    pid: Option<u32>,
    url: String,
    host: Option<&'static str>,
}

/// The `@type`d section of a full `/config_dump`.
pub(crate) fn section<'a>(dump: &'a Value, type_suffix: &str) -> Result<&'a Value> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(type_suffix)))
        .with_context(|| format!("no {type_suffix} in the config dump"))
}

/// The pieces of the gateway's configuration an open request touches.
struct Captured {
    hcm: Value,
    listener: Value,
    route_config: Value,
    cluster: Value,
}

/// `route_name`: part of the name of the route the open request takes.
fn capture(dump: &Value, http_port: u16, route_name: &str) -> Result<Captured> {
    let listener = http_listener(dump, http_port)?;
    let hcm = listener["filter_chains"][0]["filters"][0]["typed_config"].clone();
    let routes = section(dump, ".RoutesConfigDump")?;
    let named = |rt: &Value| rt["name"].as_str().is_some_and(|n| n.contains(route_name));
    // The route table holding the route, and the route's cluster, in one pass.
    let (route_config, cluster_name) = routes["dynamic_route_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["route_config"])
        .find_map(|rc| {
            let vhosts = rc["virtual_hosts"].as_array().into_iter().flatten();
            let route = vhosts.flat_map(|vh| vh["routes"].as_array().into_iter().flatten()).find(|rt| named(rt))?;
            Some((rc.clone(), route["route"]["cluster"].as_str().map(str::to_string)))
        })
        .with_context(|| format!("a route table with {route_name}"))?;
    let cluster_name = cluster_name.context("the route's cluster")?;
    let clusters = section(dump, ".ClustersConfigDump")?;
    let cluster = clusters["dynamic_active_clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["cluster"])
        .find(|c| c["name"].as_str() == Some(cluster_name.as_str()))
        .with_context(|| format!("cluster {cluster_name}"))?
        .clone();
    Ok(Captured { hcm, listener, route_config: bare(route_config), cluster: bare(cluster) })
}

/// A resource of the dump without its `@type`: as top-level resources they
/// carry one; inside a bootstrap they must not.
pub(crate) fn bare(mut v: Value) -> Value {
    v.as_object_mut().map(|o| o.remove("@type"));
    v
}

/// The gateway's listener on `http_port`, from a full `/config_dump`, bare.
pub(crate) fn http_listener(dump: &Value, http_port: u16) -> Result<Value> {
    section(dump, ".ListenersConfigDump")?["dynamic_listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| &l["active_state"]["listener"])
        .find(|l| l["address"]["socket_address"]["port_value"].as_u64() == Some(u64::from(http_port)))
        .map(|l| bare(l.clone()))
        .context("the gateway's HTTP listener")
}

/// Turns an EDS cluster of the dump into a static one whose one endpoint is `backend`.
pub(crate) fn with_static_endpoint(cluster: &mut Value, backend: u16) {
    if let Some(o) = cluster.as_object_mut() {
        o.remove("eds_cluster_config");
        o.insert("type".into(), json!("STATIC"));
    }
    let name = cluster["name"].clone();
    cluster["load_assignment"] = json!({"cluster_name": name, "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": backend}}}}]}]});
}

/// A static Envoy configuration holding the captured listener (HTTP only,
/// on `port`), its route table inline, and the API's cluster with the
/// backend as a static endpoint. `change` edits the HCM and the route table.
fn static_config(c: &Captured, port: u16, backend: u16, change: &dyn Fn(&mut Value, &mut Value)) -> Value {
    let mut hcm = c.hcm.clone();
    let mut routes = c.route_config.clone();
    change(&mut hcm, &mut routes);
    let hcm = hcm.as_object_mut().map(|o| {
        o.remove("scoped_routes");
        o.remove("rds");
        o.insert("route_config".into(), routes);
        Value::Object(o.clone())
    });
    let mut listener = c.listener.clone();
    listener["address"]["socket_address"] = json!({"address": "127.0.0.1", "port_value": port});
    listener["filter_chains"][0]["filters"][0]["typed_config"] = hcm.unwrap_or(Value::Null);
    let mut cluster = c.cluster.clone();
    with_static_endpoint(&mut cluster, backend);
    // The gRPC services the filters name (never called on an open route) must exist.
    let unused = |n: &str| {
        json!({"name": n, "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": n, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]}})
    };
    json!({"static_resources": {"listeners": [listener], "clusters": [
        cluster, unused("ext-authz"), unused("access-logger"), unused("ext_authz_http_cluster")]}})
}

/// Removes the HTTP filter `name`.
fn without_filter(hcm: &mut Value, name: &str) {
    if let Some(list) = hcm["http_filters"].as_array_mut() {
        list.retain(|f| f["name"].as_str() != Some(name));
    }
}

/// Every variant of the gateway's static configuration: (name, edit).
type Edit = Box<dyn Fn(&mut Value, &mut Value)>;

fn variants(hcm: &Value) -> Vec<(String, Edit)> {
    let mut v: Vec<(String, Edit)> = vec![
        ("static (no SRDS)".into(), Box::new(|_, _| {})),
        (
            "- early header mutation".into(),
            Box::new(|h, _| {
                h.as_object_mut().map(|o| o.remove("early_header_mutation_extensions"));
            }),
        ),
        (
            "- local reply mappers".into(),
            Box::new(|h, _| {
                h.as_object_mut().map(|o| o.remove("local_reply_config"));
            }),
        ),
        (
            "- path normalisation".into(),
            Box::new(|h, _| {
                if let Some(o) = h.as_object_mut() {
                    for k in ["normalize_path", "merge_slashes", "path_with_escaped_slashes_action"] {
                        o.remove(k);
                    }
                }
            }),
        ),
        (
            "- regex route match".into(),
            Box::new(|_, r| {
                for vh in r["virtual_hosts"].as_array_mut().into_iter().flatten() {
                    for rt in vh["routes"].as_array_mut().into_iter().flatten() {
                        if let Some(m) = rt["match"].as_object_mut()
                            && m.remove("safe_regex").is_some()
                        {
                            m.insert("prefix".into(), json!("/"));
                            m.remove("headers");
                        }
                    }
                }
            }),
        ),
        (
            "- route timers, host rewrite".into(),
            Box::new(|_, r| {
                for vh in r["virtual_hosts"].as_array_mut().into_iter().flatten() {
                    for rt in vh["routes"].as_array_mut().into_iter().flatten() {
                        if let Some(a) = rt["route"].as_object_mut() {
                            a.remove("idle_timeout");
                            a.remove("auto_host_rewrite");
                        }
                    }
                }
            }),
        ),
        (
            "- request_headers_to_remove".into(),
            Box::new(|_, r| {
                r.as_object_mut().map(|o| o.remove("request_headers_to_remove"));
            }),
        ),
    ];
    for f in hcm["http_filters"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("").to_string();
        // The router stays; a filter off by default costs nothing to remove.
        if name.is_empty() || name == "envoy.filters.http.router" || f["disabled"] == true {
            continue;
        }
        let label = format!("- {}", name.trim_start_matches("envoy.filters.http."));
        v.push((label, Box::new(move |h, _| without_filter(h, &name))));
    }
    v.push((
        "- every filter but the router".into(),
        Box::new(|h, _| {
            if let Some(list) = h["http_filters"].as_array_mut() {
                list.retain(|f| f["name"].as_str() == Some("envoy.filters.http.router"));
            }
        }),
    ));
    v
}

/// Starts a stock Envoy on `config` (written to `<dir>/<name>.yaml`, or
/// `.json` when it is JSON: Envoy picks its parser by the extension, and its
/// JSON parser is the fast one), at the gateway's concurrency.
pub(crate) fn start_envoy(dir: &std::path::Path, name: &str, config: &str) -> Result<Reaped> {
    let ext = if config.trim_start().starts_with('{') { "json" } else { "yaml" };
    let path = dir.join(format!("{name}.{ext}"));
    std::fs::write(&path, config)?;
    start_envoy_file(dir, name, &path)
}

/// Starts a stock Envoy on the bootstrap file `path` (its log at
/// `<dir>/<name>.log`), at the gateway's concurrency (ENVOY_CONCURRENCY,
/// default 1).
pub(crate) fn start_envoy_file(dir: &std::path::Path, name: &str, path: &std::path::Path) -> Result<Reaped> {
    let child = Command::new(integration::envoy_bin())
        .arg("-c")
        .arg(path)
        .args(["--use-dynamic-base-id", "--concurrency"])
        .arg(std::env::var("ENVOY_CONCURRENCY").unwrap_or_else(|_| "1".into()))
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log")))?)
        .spawn()
        .with_context(|| format!("start Envoy ({name})"))?;
    Ok(Reaped::new(child))
}

async fn until_ok(url: &str, host: Option<&str>) -> Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let mut req = client.get(url);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        if let Ok(r) = req.send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bail!("{url} never answered 200")
}

/// The data-plane benchmark: `rounds` interleaved rounds of `duration`
/// seconds per target; `ablation` adds the gateway's static variants.
pub async fn data_plane(duration: u64, connections: u32, rounds: usize, ablation: bool) -> Result<Value> {
    eprintln!("data plane: wrk {duration}s x {rounds} rounds, {connections} connections");
    let (_backend, port) = crate::enforcer::start_backend()?;
    let oas = "openapi: 3.0.1\ninfo: {title: Bench, version: v1}\nx-wso2-disable-security: true\npaths:\n  /__fixed:\n    get: {}\n";
    let gw = Gateway::builder(XdsMode::Delta)
        .project(
            "bench",
            &[
                ("api.yaml", &api_yaml("Bench", "v1", "/bench", &format!("http://127.0.0.1:{port}"))),
                ("Definitions/swagger.yaml", oas),
            ],
        )
        .start()
        .await;
    gw.wait_status("/bench/v1/__fixed", 200).await;
    let dir = gw.dir.path().to_path_buf();
    let mut envoys = Vec::new();
    let mut targets = vec![
        Target {
            name: "gateway".into(),
            log: None,
            pid: gw.envoy_pid(),
            url: format!("http://127.0.0.1:{}/bench/v1/__fixed", gw.ports.http),
            host: Some("localhost"),
        },
        Target {
            name: "direct".into(),
            log: None,
            pid: None,
            url: format!("http://127.0.0.1:{port}/__fixed"),
            host: None,
        },
    ];
    let plain_port = free_port();
    envoys.push(start_envoy(&dir, "plain", &crate::plain_envoy_config(plain_port, port))?);
    let pid = envoys.last().map(Reaped::id);
    targets.push(Target {
        name: "plain Envoy".into(),
        log: Some(dir.join("plain.log")),
        pid,
        url: format!("http://127.0.0.1:{plain_port}/__fixed"),
        host: None,
    });
    if ablation {
        let dump = gw.config_dump(None).await;
        if let Ok(path) = std::env::var("BENCH_CONFIG_DUMP") {
            std::fs::write(path, serde_json::to_string_pretty(&dump)?)?;
        }
        let captured = capture(&dump, gw.ports.http, "/bench/v1/__fixed")?;
        for (i, (name, edit)) in variants(&captured.hcm).into_iter().enumerate() {
            let p = free_port();
            let cfg = static_config(&captured, p, port, &*edit);
            envoys.push(start_envoy(&dir, &format!("variant-{i}"), &serde_json::to_string_pretty(&cfg)?)?);
            targets.push(Target {
                name,
                pid: envoys.last().map(Reaped::id),
                log: Some(dir.join(format!("variant-{i}.log"))),
                url: format!("http://127.0.0.1:{p}/bench/v1/__fixed"),
                host: Some("localhost"),
            });
        }
    }
    for t in &targets {
        until_ok(&t.url, t.host).await.with_context(|| {
            let log = t.log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
            format!("target {}: {log}", t.name)
        })?;
        crate::wrk(&t.url, t.host, 1, connections)?;
    }
    let mut runs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut commands = BTreeMap::new();
    for round in 0..rounds {
        let n = targets.len();
        for k in 0..n {
            let t = &targets[(k + round) % n];
            let cpu0 = t.pid.map(crate::enforcer::cpu_time);
            let (w, cmd) = crate::wrk(&t.url, t.host, duration, connections)?;
            let cpu_us = t.pid.zip(cpu0).map(|(pid, c0)| {
                (crate::enforcer::cpu_time(pid) - c0).as_secs_f64() * 1e6 / (w.rps * duration as f64).max(1.0)
            });
            eprintln!(
                "  round {} {:<32} {:>9.0} req/s p50 {:.3} ms, Envoy CPU {:.1} µs/request",
                round + 1,
                t.name,
                w.rps,
                w.p50_ms,
                cpu_us.unwrap_or(0.0)
            );
            if w.non2xx > 0 {
                bail!("{}: {} non-2xx answers", t.name, w.non2xx);
            }
            runs.entry(t.name.clone()).or_default().push(
                json!({"rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "envoy_cpu_us_per_request": cpu_us}),
            );
            commands.insert(t.name.clone(), cmd);
        }
    }
    drop(envoys);
    let rps =
        |name: &str, r: usize| runs.get(name).and_then(|v| v.get(r)).and_then(|x| x["rps"].as_f64()).unwrap_or(0.0);
    let ratio_rounds = |a: &str, b: &str| (0..rounds).map(|r| rps(a, r) / rps(b, r).max(1.0)).collect::<Vec<_>>();
    let gateway_to_plain = ratio_rounds("gateway", "plain Envoy");
    let mut targets_json = serde_json::Map::new();
    for t in &targets {
        let v = &runs[&t.name];
        let col = |k: &str| v.iter().map(|x| x[k].as_f64().unwrap_or(0.0)).collect::<Vec<_>>();
        let to_plain = ratio_rounds(&t.name, "plain Envoy");
        targets_json.insert(
            t.name.clone(),
            json!({
                "command": commands[&t.name],
                "rounds": v,
                "rps_median": median(col("rps")),
                "p50_ms_median": median(col("p50_ms")),
                "to_plain_envoy_rounds": to_plain,
                "to_plain_envoy_median": median(to_plain.clone()),
                "envoy_cpu_us_per_request_median": t.pid.map(|_| median(col("envoy_cpu_us_per_request"))),
            }),
        );
    }
    Ok(json!({
        "tool": "wrk",
        "envoy_concurrency": std::env::var("ENVOY_CONCURRENCY").unwrap_or_else(|_| "1".into()),
        "rounds": rounds,
        "duration_s": duration,
        "connections": connections,
        "targets": targets_json,
        "order": targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "gateway_to_plain_envoy_rounds": gateway_to_plain,
        "rps_ratio_gateway_to_plain_envoy": median(gateway_to_plain.clone()),
        "rps_ratio_gateway_to_direct": median(ratio_rounds("gateway", "direct")),
        "envoy_cpu_per_request_gateway_to_plain": runs["gateway"].iter().zip(&runs["plain Envoy"])
            .map(|(g, p)| g["envoy_cpu_us_per_request"].as_f64().unwrap_or(0.0) / p["envoy_cpu_us_per_request"].as_f64().unwrap_or(1.0).max(1e-9))
            .collect::<Vec<_>>(),
    }))
}

/// The data-plane lines of the printed summary.
pub fn print_summary(r: &Value) {
    let dp = &r["data_plane"];
    if !dp.is_object() {
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "data plane, open route ({} interleaved rounds of wrk -c{} -d{}s; medians):",
        dp["rounds"], dp["connections"], dp["duration_s"]
    );
    for name in dp["order"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let t = &dp["targets"][name];
        let rounds: Vec<String> =
            t["to_plain_envoy_rounds"].as_array().into_iter().flatten().map(|x| format!("{:.2}", f(x))).collect();
        let cpu =
            t["envoy_cpu_us_per_request_median"].as_f64().map(|c| format!("{c:5.1} µs")).unwrap_or("     -  ".into());
        println!(
            "  {:<34} {:>8.0} req/s  p50 {:.3} ms  CPU/req {}  / plain Envoy {:.3} (rounds {})",
            name,
            f(&t["rps_median"]),
            f(&t["p50_ms_median"]),
            cpu,
            f(&t["to_plain_envoy_median"]),
            rounds.join(", ")
        );
    }
    println!(
        "  gateway / plain Envoy: {:.3} (target >= 0.90); gateway / direct: {:.3}",
        f(&dp["rps_ratio_gateway_to_plain_envoy"]),
        f(&dp["rps_ratio_gateway_to_direct"])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant built from a captured gateway configuration is one Envoy accepts.
    #[test]
    fn variants_validate() {
        let hcm = serde_json::from_str::<Value>(
            &std::fs::read_to_string(integration::workspace_root().join("adapter/xds/tests/golden/listeners.json"))
                .expect("golden listeners"),
        )
        .expect("JSON")[0]["filter_chains"][0]["filters"][0]["typed_config"]
            .clone();
        let golden: Value = serde_json::from_str(
            &std::fs::read_to_string(
                integration::workspace_root().join("adapter/xds/tests/golden/petstore/expected.json"),
            )
            .expect("golden petstore"),
        )
        .expect("JSON");
        let mut listener = serde_json::from_str::<Value>(
            &std::fs::read_to_string(integration::workspace_root().join("adapter/xds/tests/golden/listeners.json"))
                .expect("golden listeners"),
        )
        .expect("JSON")[0]
            .clone();
        listener["name"] = json!("http");
        let route_config = golden["rds"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"].as_str().is_some_and(|n| n.contains("petstore")))
            .cloned()
            .expect("petstore routes");
        let cluster = golden["cds"][0].clone();
        let captured = Captured { hcm: hcm.clone(), listener, route_config, cluster };
        let dir = tempfile::tempdir().expect("temp dir");
        for (i, (name, edit)) in variants(&hcm).into_iter().enumerate() {
            let cfg = serde_json::to_string_pretty(&static_config(&captured, 18080, 18081, &*edit)).expect("JSON");
            let path = dir.path().join(format!("v{i}.json"));
            std::fs::write(&path, &cfg).expect("write");
            let out = Command::new(integration::envoy_bin())
                .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
                .arg(&path)
                .output()
                .expect("envoy --mode validate");
            assert!(out.status.success(), "{name}:\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
