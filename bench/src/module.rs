//! The dynamic-module spike: what deciding inside Envoy could save.
//!
//! Three stock Envoys, identical but for one HTTP filter before the router:
//! none (the open route), ext_authz to the do-nothing gRPC server
//! (`noop-authz`), and the module's do-nothing filter
//! (`libgateway_module.so`, enforcer/module). wrk runs against each in turn,
//! round after round, at `connections` and at one connection: throughput
//! ratios to the open route within a round, and the p50 each filter adds at
//! one connection. The ext_authz hop is plain gRPC here (the gateway's is
//! mutual TLS), which only flatters ext_authz.

use crate::median;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::dataplane::start_envoy;
use crate::enforcer::{Reaped, cpu_time, start_backend};
use crate::{plain_envoy_config_with, wrk_with};
use integration::{free_port, workspace_bin};

/// The HTTP filter each Envoy runs before its router (YAML list items).
fn filters(kind: &str, authz_port: u16, module: &std::path::Path) -> (String, String) {
    match kind {
        "ext_authz" => (
            r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              grpc_service: { envoy_grpc: { cluster_name: authz }, timeout: 1s }
"#
            .to_string(),
            format!(
                r#"  - name: authz
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: authz
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {authz_port} }} }} }} }} ] }} ]
"#
            ),
        ),
        "module" => (integration::fixtures::noop_module_filter(module), String::new()),
        _ => (String::new(), String::new()),
    }
}

/// Runs the spike: `rounds` interleaved rounds of `duration` seconds per
/// Envoy and connection count.
pub async fn spike(duration: u64, connections: u32, rounds: usize) -> Result<Value> {
    eprintln!("dynamic-module spike: {rounds} interleaved rounds of wrk {duration}s, {connections} and 1 connections");
    let (_backend, backend) = start_backend()?;
    let authz_port = free_port();
    let _noop = Reaped::new(
        Command::new(workspace_bin("noop-authz"))
            .args(["--listen", &format!("127.0.0.1:{authz_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start noop-authz")?,
    );
    let module = workspace_bin("libgateway_module.so");
    let dir = tempfile::tempdir()?;
    let kinds = ["open", "ext_authz", "module"];
    let mut envoys = Vec::new();
    for kind in kinds {
        let port = free_port();
        let (f, clusters) = filters(kind, authz_port, &module);
        let config = plain_envoy_config_with(port, backend, "", "", &f) + &clusters;
        let envoy = start_envoy(dir.path(), kind, &config)?;
        envoys.push((kind, port, envoy));
    }
    let client = reqwest::Client::new();
    for (kind, port, _) in &envoys {
        integration::eventually(&format!("the {kind} Envoy to answer 200"), || async {
            let r = client.get(format!("http://127.0.0.1:{port}/")).send().await.map_err(|e| e.to_string())?;
            if r.status() == 200 { Ok(()) } else { Err(r.status().to_string()) }
        })
        .await;
    }
    let url = |port: u16| format!("http://127.0.0.1:{port}/__fixed");
    for (_, port, _) in &envoys {
        wrk_with(&url(*port), &[], 2, connections)?;
    }
    // runs[envoy][c] = one entry per round; c: 0 = `connections`, 1 = one.
    let mut runs: Vec<[Vec<Value>; 2]> = vec![[Vec::new(), Vec::new()]; envoys.len()];
    for round in 0..rounds {
        eprintln!("  round {}/{rounds}", round + 1);
        for (c, conns) in [connections, 1].into_iter().enumerate() {
            for (i, (kind, port, envoy)) in envoys.iter().enumerate() {
                let pid = envoy.id();
                let before = cpu_time(pid);
                let (w, cmd) = wrk_with(&url(*port), &[], duration, conns)?;
                let cpu = cpu_time(pid) - before;
                if w.non2xx > 0 {
                    bail!("{kind}: {} non-2xx responses ({cmd})", w.non2xx);
                }
                let requests = (w.rps * duration as f64).max(1.0);
                runs[i][c].push(json!({
                    "command": cmd, "rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms,
                    "envoy_cpu_us_per_req": cpu.as_secs_f64() * 1e6 / requests,
                }));
            }
        }
    }
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let ratio = |i: usize| -> Vec<f64> {
        (0..rounds).map(|r| f(&runs[i][0][r], "rps") / f(&runs[0][0][r], "rps").max(1.0)).collect()
    };
    let added = |i: usize| -> Vec<f64> {
        (0..rounds).map(|r| (f(&runs[i][1][r], "p50_ms") - f(&runs[0][1][r], "p50_ms")) * 1000.0).collect()
    };
    let mut out = serde_json::Map::new();
    for (i, (kind, _, _)) in envoys.iter().enumerate() {
        let s = |c: usize, k: &str| median(runs[i][c].iter().map(|v| f(v, k)).collect());
        out.insert(
            (*kind).to_string(),
            json!({
                "rps_median": s(0, "rps"), "p50_ms_median": s(0, "p50_ms"), "p99_ms_median": s(0, "p99_ms"),
                "envoy_cpu_us_per_req_median": s(0, "envoy_cpu_us_per_req"),
                "rps_c1_median": s(1, "rps"), "p50_ms_c1_median": s(1, "p50_ms"),
                "envoy_cpu_us_per_req_c1_median": s(1, "envoy_cpu_us_per_req"),
                "runs": runs[i][0], "runs_c1": runs[i][1],
            }),
        );
    }
    let (authz_ratio, module_ratio) = (ratio(1), ratio(2));
    let (authz_added, module_added) = (added(1), added(2));
    out.insert("connections".into(), json!(connections));
    out.insert("rounds".into(), json!(rounds));
    out.insert("ratio_ext_authz_to_open_per_round".into(), json!(authz_ratio));
    out.insert("ratio_module_to_open_per_round".into(), json!(module_ratio));
    out.insert("ratio_ext_authz_to_open".into(), json!(median(authz_ratio)));
    out.insert("ratio_module_to_open".into(), json!(median(module_ratio)));
    out.insert("added_p50_us_c1_ext_authz_per_round".into(), json!(authz_added));
    out.insert("added_p50_us_c1_module_per_round".into(), json!(module_added));
    out.insert("added_p50_us_c1_ext_authz".into(), json!(median(authz_added)));
    out.insert("added_p50_us_c1_module".into(), json!(median(module_added)));
    Ok(Value::Object(out))
}

/// The spike's lines of the summary.
pub fn print_summary(r: &Value) {
    let s = &r["module_spike"];
    if !s.is_object() {
        return;
    }
    let g = |k: &str| s[k].as_f64().unwrap_or(0.0);
    println!(
        "dynamic-module spike ({} connections, median of {} interleaved rounds): throughput / open route: ext_authz (no-op server) {:.2}, module (no-op filter) {:.2}; p50 added at 1 connection: ext_authz {:.0} us, module {:.0} us",
        s["connections"],
        s["rounds"],
        g("ratio_ext_authz_to_open"),
        g("ratio_module_to_open"),
        g("added_p50_us_c1_ext_authz"),
        g("added_p50_us_c1_module"),
    );
    for kind in ["open", "ext_authz", "module"] {
        let k = &s[kind];
        let v = |x: &str| k[x].as_f64().unwrap_or(0.0);
        println!(
            "  {kind:<9} {:>8.0} req/s  p50 {:.3} ms  Envoy CPU {:.1} us/req | 1 connection: {:>7.0} req/s  p50 {:.3} ms",
            v("rps_median"),
            v("p50_ms_median"),
            v("envoy_cpu_us_per_req_median"),
            v("rps_c1_median"),
            v("p50_ms_c1_median"),
        );
    }
}

/// `--enforcer-parts module-profile` (not in the default set): where the
/// Envoy of a module-mode gateway spends its CPU on secured requests (cached
/// JWT): `perf record` of that Envoy during `duration` s of wrk, and the
/// symbols above 1 % of its samples (self time, `perf report --no-children`).
/// Needs `perf` (Debian's linux-perf).
pub async fn profile(duration: u64, connections: u32) -> Result<Value> {
    use integration::{Gateway, XdsMode};
    eprintln!("module profile: perf record of the module gateway's Envoy, wrk {duration}s, {connections} connections");
    let (_backend, port) = crate::enforcer::start_backend()?;
    let projects = crate::enforcer::bench_projects(port);
    let gw = crate::enforcer::with_projects(
        Gateway::builder(XdsMode::Delta).with_enforcer().enforcer_in_module(),
        &projects,
    )
    .start()
    .await;
    let bearer = format!("Bearer {}", gw.idp().idp.sign(&crate::enforcer::jwt_claims("bench-profile")));
    integration::eventually("the secured route to answer 200", || async {
        let r = gw.request("GET", "localhost", "/bench/v1/__fixed", &[("authorization", &bearer)]).await?;
        if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
    })
    .await;
    let url = format!("http://127.0.0.1:{}/bench/v1/__fixed", gw.ports.http);
    let headers = vec!["Host: localhost".to_string(), format!("Authorization: {bearer}")];
    crate::wrk_with(&url, &headers, 2, connections)?;
    let envoy = gw.envoy_pid().context("envoy pid")?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("perf.data");
    let mut perf = std::process::Command::new("perf")
        .args(["record", "-F", "1999", "-g", "-o"])
        .arg(&data)
        .args(["-p", &envoy.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("perf (apt-get install linux-perf)")?;
    let (w, cmd) = crate::wrk_with(&url, &headers, duration, connections)?;
    std::process::Command::new("kill").args(["-INT", &perf.id().to_string()]).status()?;
    perf.wait()?;
    // Envoy's binary is stripped: its own time shows per library only; the
    // module's and the kernel's per symbol.
    let report = |sort: &str, dsos: Option<&str>| -> Result<Vec<String>> {
        let mut c = std::process::Command::new("perf");
        c.args(["report", "--no-children", "--stdio", "--sort", sort, "--percent-limit", "0.5", "-g", "none"]);
        if let Some(d) = dsos {
            c.args(["--dsos", d]);
        }
        let out = c.arg("-i").arg(&data).output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('%'))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect())
    };
    let by_library = report("dso", None)?;
    let module_symbols = report("symbol", Some("libgateway_module.so"))?;
    let kernel_symbols = report("symbol", Some("[kernel.kallsyms]"))?;
    for (what, lines) in [("by library", &by_library), ("module", &module_symbols), ("kernel", &kernel_symbols)] {
        eprintln!("  {what}:");
        for l in lines.iter().take(25) {
            eprintln!("    {l}");
        }
    }
    Ok(json!({
        "command": cmd, "rps": w.rps,
        "self_percent_by_library": by_library,
        "module_symbols": module_symbols,
        "kernel_symbols": kernel_symbols,
    }))
}
