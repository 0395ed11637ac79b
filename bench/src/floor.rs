//! Envoy's own floor for the cold start (issue 14): how long a fresh stock
//! Envoy takes to serve the last of N APIs when it reads the very resources
//! the gateway's Envoy holds (its `/config_dump`) from one static file, with
//! no control plane at all. Beside it, the same Envoy binary started on a
//! minimal file, so the process's own start can be told apart.
//!
//! The static file holds the gateway's HTTP listener with every scope's
//! route table inline (`scoped_route_configurations_list`, the static form
//! of scoped RDS), every API cluster with its endpoint inline (the one
//! endpoint EDS delivered), and the bootstrap's own clusters. The HTTPS
//! listener is left out: over xDS both listeners share one scoped-route
//! subscription, inline each would build its own copy of the tables.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use integration::{Gateway, free_port};
use serde_json::{Value, json};

use envoy_descriptors::DynamicMessage;
use prost::Message as _;

use crate::dataplane::{bare, http_listener, section, start_envoy_file, with_static_endpoint};

/// Points every route to an API cluster at `to` instead.
fn share_clusters(v: &mut Value, api_clusters: &std::collections::HashSet<String>, to: &str) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match x {
                    Value::String(s) if k == "cluster" && api_clusters.contains(s.as_str()) => *s = to.to_string(),
                    _ => share_clusters(x, api_clusters, to),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| share_clusters(x, api_clusters, to)),
        _ => {}
    }
}

/// The gateway's configuration as one static bootstrap, its HTTP listener
/// on `port`. `shared`: the API clusters (all alike in the benchmark: one
/// endpoint, the same backend) collapsed into one, the routes pointing to it.
pub(crate) fn static_bootstrap(dump: &Value, http_port: u16, port: u16, backend: u16, shared: bool) -> Result<Value> {
    let mut listener = http_listener(dump, http_port)?;
    listener["address"]["socket_address"] = json!({"address": "127.0.0.1", "port_value": port});

    let routes: HashMap<&str, &Value> = section(dump, ".RoutesConfigDump")?["dynamic_route_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["route_config"]["name"].as_str()?, &r["route_config"])))
        .collect();
    let scopes: Vec<Value> = section(dump, ".ScopedRoutesConfigDump")?["dynamic_scoped_route_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["scoped_route_configs"].as_array().into_iter().flatten())
        .map(|scope| {
            let mut scope = bare(scope.clone());
            let name = scope["route_configuration_name"].as_str().unwrap_or_default().to_string();
            let table = routes.get(name.as_str()).with_context(|| format!("route table {name} of a scope"))?;
            if let Some(o) = scope.as_object_mut() {
                o.remove("route_configuration_name");
                o.insert("route_configuration".into(), bare((*table).clone()));
            }
            Ok(scope)
        })
        .collect::<Result<_>>()?;
    let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    let scoped = hcm["scoped_routes"].as_object_mut().context("the HTTP listener's scoped_routes")?;
    scoped.remove("scoped_rds");
    scoped.remove("rds_config_source");
    scoped.insert("scoped_route_configurations_list".into(), json!({"scoped_route_configurations": scopes}));

    let clusters = section(dump, ".ClustersConfigDump")?;
    // The bootstrap's own clusters (enforcer, analytics, ...): the dump
    // redacts their client key, and an open request never uses them.
    let mut all: Vec<Value> = clusters["static_clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = bare(c["cluster"].clone());
            if c["transport_socket"].to_string().contains("[redacted]") {
                c.as_object_mut().map(|o| o.remove("transport_socket"));
            }
            c
        })
        .collect();
    for c in clusters["dynamic_active_clusters"].as_array().into_iter().flatten() {
        let mut c = bare(c["cluster"].clone());
        if c.get("eds_cluster_config").is_some() {
            with_static_endpoint(&mut c, backend);
        }
        all.push(c);
    }
    if shared {
        let api: std::collections::HashSet<String> = clusters["dynamic_active_clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["cluster"]["name"].as_str().map(str::to_string))
            .collect();
        let keep = api.iter().min().cloned().context("no API cluster")?;
        share_clusters(&mut listener, &api, &keep);
        all.retain(|c| c["name"].as_str().is_none_or(|n| n == keep || !api.contains(n)));
    }
    Ok(json!({"static_resources": {"listeners": [listener], "clusters": all}}))
}

/// Spawns a stock Envoy on the bootstrap `file` and returns the time until
/// `GET path` (Host `localhost`) answers 200 on `port`.
async fn time_to_serve(dir: &Path, name: &str, file: &Path, port: u16, path: &str) -> Result<Duration> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let t0 = Instant::now();
    let _envoy = start_envoy_file(dir, name, file)?;
    loop {
        if let Ok(r) = client.get(&url).header("host", "localhost").send().await
            && r.status().is_success()
        {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(180) {
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            bail!("{name}: {path} not served after 180 s; Envoy's log ends:\n{}", tail(&log, 2000));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A JSON bootstrap in Envoy's binary form (what `-c x.pb` reads): the same
/// protos as xDS carries, so no JSON parsing is left in the measurement.
fn to_binary(json: &str) -> Result<Vec<u8>> {
    let desc = envoy_descriptors::message("envoy.config.bootstrap.v3.Bootstrap")?;
    let mut de = serde_json::Deserializer::from_str(json);
    let msg = DynamicMessage::deserialize(desc, &mut de).context("the bootstrap as Envoy's Bootstrap message")?;
    Ok(msg.encode_to_vec())
}

/// Envoy's floor at the gateway's current configuration: a minimal Envoy's
/// start until served, and the static file's start until `last_path` is
/// served, from JSON and from Envoy's binary form, and (binary) with the
/// API clusters collapsed into one: what sharing clusters would save.
pub(crate) async fn envoy_floor(gw: &Gateway, backend: u16, last_path: &str) -> Result<Value> {
    let dump = gw.config_dump(None).await;
    let dir = gw.dir.path().to_path_buf();
    let port = free_port();
    let json = serde_json::to_string(&static_bootstrap(&dump, gw.ports.http, port, backend, false)?)?;
    let shared = to_binary(&serde_json::to_string(&static_bootstrap(&dump, gw.ports.http, port, backend, true)?)?)?;
    drop(dump);
    let binary = to_binary(&json)?;
    let shared_file = dir.join("floor-shared.pb");
    std::fs::write(&shared_file, &shared)?;
    let (json_file, pb_file, plain_file) =
        (dir.join("floor-static.json"), dir.join("floor-static.pb"), dir.join("floor-plain.yaml"));
    std::fs::write(&json_file, &json)?;
    std::fs::write(&pb_file, &binary)?;
    let plain_port = free_port();
    std::fs::write(&plain_file, crate::plain_envoy_config(plain_port, backend))?;
    let plain = time_to_serve(&dir, "floor-plain", &plain_file, plain_port, "/").await.context("plain Envoy")?;
    let from_json = time_to_serve(&dir, "floor-json", &json_file, port, last_path).await.context("the JSON file")?;
    let from_pb = time_to_serve(&dir, "floor-pb", &pb_file, port, last_path).await.context("the binary file")?;
    let from_shared =
        time_to_serve(&dir, "floor-shared", &shared_file, port, last_path).await.context("the shared-cluster file")?;
    if let Ok(keep) = std::env::var("BENCH_FLOOR_FILE") {
        std::fs::rename(&json_file, keep)?;
    }
    let _ = (std::fs::remove_file(&json_file), std::fs::remove_file(&pb_file), std::fs::remove_file(&shared_file));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(json!({
        "json_bytes": json.len(),
        "binary_bytes": binary.len(),
        "plain_envoy_start_until_served_ms": ms(plain),
        "json_start_until_last_api_served_ms": ms(from_json),
        "binary_start_until_last_api_served_ms": ms(from_pb),
        "floor_ms": ms(from_pb.saturating_sub(plain)),
        "one_shared_cluster_start_until_last_api_served_ms": ms(from_shared),
    }))
}
